// One feed item: a post, a private message or a record update (with its business card, F-FEED-4),
// its attachments and its comments. Live events find items by `data-post-id`.

import { api } from './api.js';
import { confirmButton, formatValue, h, timeAgo, toast } from './dom.js';
import { commentBox } from './composer.js';
import { editButton, editedMarker } from './edits.js';
import { pinToggle, saveToggle } from './marks.js';
import { reasonLine } from './reasons.js';
import { reactionBar } from './reactions.js';
import { renderAttachments } from './previews.js';
import { session } from './session.js';

const orgHref = (path) => `#/org/${encodeURIComponent(session.org.slug)}${path}`;

/** Rendered text: runs of text and mentions, as the server split them (never parsed as HTML). */
export function renderSegments(segments) {
  return segments.map((s) => {
    if (s.type !== 'mention') return s.text;
    const label = `@${s.name}`;
    if (s.kind === 'group') return h('a', { class: 'mention group', href: orgHref(`/group/${s.id}`) }, label);
    return h('span', { class: ['mention', s.kind], title: s.kind === 'role' ? 'Everyone in this role' : null }, label);
  });
}

function canDelete(authorId) {
  return authorId === session.org.userId || session.org.isAdmin;
}

function audienceLine(post) {
  const me = session.org.userId;
  if (post.kind === 'private' && post.group) {
    return [' → ', h('a', { href: orgHref(`/group/${post.group.id}`) }, post.group.name), h('span', { class: 'badge private' }, 'Private')];
  }
  if (post.kind === 'private') {
    const other = post.recipient && post.recipient.id === me ? 'you' : post.recipient?.name;
    return [' → ', other, h('span', { class: 'badge private' }, 'Private')];
  }
  if (post.group) return [' → ', h('a', { href: orgHref(`/group/${post.group.id}`) }, post.group.name)];
  return [];
}

function recordCard(record, fields) {
  const changes = (fields || []).filter((f) => f.field);
  return h('div', { class: 'record-card' },
    h('div', { class: 'record-head' },
      h('span', { class: 'badge module' }, record.module),
      h('a', { href: orgHref(`/record/${record.id}`), class: 'record-name' }, record.name),
      record.owner ? h('span', { class: 'muted small' }, ` · owner ${record.owner.name || 'unknown'}`) : null),
    record.key_fields?.length
      ? h('dl', { class: 'key-fields' }, record.key_fields.map((f) => [h('dt', {}, f.field), h('dd', {}, formatValue(f.value))]))
      : null,
    changes.length
      ? h('ul', { class: 'changes', 'aria-label': 'Changed fields' }, changes.map((c) =>
        h('li', {}, h('strong', {}, c.field), ': ', h('del', {}, formatValue(c.old)), ' → ', h('ins', {}, formatValue(c.new)))))
      : null);
}

export function renderComment(comment) {
  const crm = comment.data?.source === 'crm';
  const el = h('li', { class: 'comment', dataset: { commentId: String(comment.id) } },
    h('div', { class: 'comment-head' },
      h('strong', {}, comment.author?.name || (crm ? 'CRM' : 'Someone')),
      crm ? h('span', { class: 'badge' }, 'CRM note') : null,
      ' ', timeAgo(comment.created_at), ' ', editedMarker('comment', comment)),
    h('div', { class: 'text' }, renderSegments(comment.segments)),
    reactionBar('comment', comment));
  const edit = editButton('comment', comment);
  if (edit) el.querySelector('.comment-head').append(' ', edit);
  if (canDelete(comment.author?.id)) {
    el.querySelector('.comment-head').append(' ', confirmButton('Delete', 'Delete comment', async () => {
      try {
        await api.del(session.orgPath(`/comments/${comment.id}`));
        removeComment(comment.post_id, comment.id);
      } catch (err) {
        toast(err.message, 'error');
      }
    }, { 'aria-label': 'Delete this comment' }));
  }
  return el;
}

/** Add a comment to the item on the page, once, and keep its count right. */
export function addComment(postId, comment) {
  for (const item of document.querySelectorAll(`[data-post-id="${postId}"]`)) {
    const list = item.querySelector('.comments');
    if (!list || list.querySelector(`[data-comment-id="${comment.id}"]`)) continue;
    list.append(renderComment(comment));
    item.dataset.commentCount = String(Number(item.dataset.commentCount || 0) + 1);
    updateMore(item);
  }
}

export function removeComment(postId, commentId) {
  for (const el of document.querySelectorAll(`[data-post-id="${postId}"] [data-comment-id="${commentId}"]`)) {
    const item = el.closest('[data-post-id]');
    el.remove();
    item.dataset.commentCount = String(Math.max(0, Number(item.dataset.commentCount || 0) - 1));
    updateMore(item);
  }
}

function updateMore(item) {
  const more = item.querySelector('.more-comments');
  if (!more) return;
  const hidden = Number(item.dataset.commentCount) - item.querySelectorAll('.comment').length;
  more.hidden = hidden <= 0;
  more.textContent = `Show ${hidden} earlier comment${hidden === 1 ? '' : 's'}`;
}

async function loadAllComments(item, postId) {
  const list = item.querySelector('.comments');
  let after;
  const all = [];
  do {
    const page = await api.get(session.orgPath(`/posts/${postId}/comments`), { after, limit: 100 });
    all.push(...page.comments);
    after = page.next_after;
  } while (after);
  list.replaceChildren(...all.map(renderComment));
  item.dataset.commentCount = String(all.length);
  updateMore(item);
}

/** An item of a feed. `onDeleted(postId)` runs after its author deleted it here. */
export function renderItem(post, { missed = false, expanded = false } = {}) {
  const record = post.kind === 'record' ? post.data?.record : null;
  const item = h('article', {
    class: ['item', `kind-${post.kind}`, missed && 'missed'],
    dataset: { postId: String(post.id), commentCount: String(post.comment_count || 0) },
    'aria-label': `${post.author?.name || record?.module || 'Update'}: ${post.body.slice(0, 80)}`,
  });
  const head = h('header', { class: 'item-head' },
    h('strong', { class: 'author' }, post.author?.name || (record ? 'CRM' : 'Someone')),
    audienceLine(post),
    post.module && !record ? h('span', { class: 'badge module' }, post.module) : null,
    h('span', { class: 'spacer' }),
    missed ? h('span', { class: 'badge missed-badge' }, 'While you were offline') : null,
    h('a', { href: orgHref(`/post/${post.id}`), class: 'when' }, timeAgo(post.created_at)),
    editedMarker('post', post));
  item.append(head);
  // Why the reader has it, with the matching stop action (feed reads only; live copies are shared).
  const why = reasonLine(post.reason, { record, group: post.group, postId: post.id });
  if (why) item.append(why);
  item.append(h('div', { class: 'text' }, renderSegments(post.segments)));
  if (record) item.append(recordCard(record, post.data.fields));
  const files = renderAttachments(post); // thumbnails, the image viewer and downloads (previews.js)
  if (files) item.append(files);

  const comments = h('ul', { class: 'comments', 'aria-label': 'Comments' }, (post.latest_comments || []).map(renderComment));
  const more = h('button', { type: 'button', class: 'link small more-comments', hidden: true });
  more.addEventListener('click', () => loadAllComments(item, post.id).catch((err) => toast(err.message, 'error')));
  const box = commentBox(post.id, (comment) => addComment(post.id, comment));
  // The comment box opens on demand, so a long feed stays calm to read.
  box.form.hidden = !expanded;
  const reply = h('button', { type: 'button', class: 'link small', 'aria-expanded': String(expanded) }, post.kind === 'private' ? 'Reply' : 'Comment');
  reply.addEventListener('click', () => {
    box.form.hidden = false;
    reply.setAttribute('aria-expanded', 'true');
    box.focus();
  });
  const actions = h('div', { class: 'item-actions' }, reply, saveToggle(post), pinToggle(post));
  const edit = editButton('post', post);
  if (edit) actions.append(edit);
  if (canDelete(post.author?.id)) {
    actions.append(confirmButton('Delete', 'Delete post', async () => {
      try {
        await api.del(session.orgPath(`/posts/${post.id}`));
        removeItem(post.id);
      } catch (err) {
        toast(err.message, 'error');
      }
    }, { 'aria-label': 'Delete this post' }));
  }
  item.append(reactionBar('post', post), actions, more, comments, box.form);
  updateMore(item);
  if (expanded && post.comment_count > (post.latest_comments || []).length) loadAllComments(item, post.id).catch(() => {});
  return item;
}

export function removeItem(postId) {
  for (const el of document.querySelectorAll(`[data-post-id="${postId}"]`)) el.remove();
}
