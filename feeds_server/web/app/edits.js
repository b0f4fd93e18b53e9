// Editing one's own posts and comments in place, the "edited" marker and the history dialog
// (F-POST-9, docs/api.md "Editing and history"). Live `post.edited` and `comment.edited` events
// update every copy of the item on the page, whichever view shows it.

import { api } from './api.js';
import { codePoints, mentionable, refusal } from './composer.js';
import { errorBox, formatDate, formatNumber, h, toast, uid } from './dom.js';
import { renderSegments } from './items.js';
import { MAX_POST_CHARS } from './limits.js';
import * as live from './live.js';
import { session } from './session.js';

// The latest text of each item element on the page (its segments), kept when an edit arrives.
const latest = new WeakMap();

const pathOf = (kind, id) => session.orgPath(kind === 'post' ? `/posts/${id}` : `/comments/${id}`);

/** Whether the signed-in member may edit this item now (the server has the last word). */
function editable(kind, item) {
  if (!session.org || item.author?.id !== session.org.userId) return false;
  if (kind === 'post' && item.kind === 'record') return false;
  const windowSeconds = session.org.editWindowSeconds;
  if (windowSeconds === 0) return false;
  if (windowSeconds === null || windowSeconds === undefined) return true;
  return Date.now() - new Date(item.created_at).getTime() <= windowSeconds * 1000;
}

/** "edited", titled with the time of the last edit; opens the history. Hidden until an edit. */
export function editedMarker(kind, item) {
  const marker = h('button', { type: 'button', class: 'link small edited-marker', 'aria-haspopup': 'dialog' }, 'edited');
  setMarker(marker, item.edited_at);
  marker.addEventListener('click', () => openHistory(kind, item.id));
  return marker;
}

function setMarker(marker, editedAt) {
  marker.hidden = !editedAt;
  marker.title = editedAt ? `Edited ${formatDate(editedAt)}: show the history` : '';
  marker.setAttribute('aria-label', editedAt ? `Edited ${formatDate(editedAt)}. Show the edit history` : 'Edit history');
}

/** The "Edit" action of one's own item; null for items of others. */
export function editButton(kind, item) {
  if (!editable(kind, item)) return null;
  const button = h('button', { type: 'button', class: 'link small edit-action', 'aria-label': `Edit this ${kind}` }, 'Edit');
  button.addEventListener('click', () => {
    const holder = button.closest(kind === 'post' ? '[data-post-id]' : '[data-comment-id]');
    if (holder) openEditor(kind, item, holder, button);
  });
  return button;
}

/** The text with each mention as "@Name", and the tokens those labels stand for. */
function editableText(segments) {
  const labels = [];
  const text = segments.map((s) => {
    if (s.type !== 'mention') return s.text;
    const token = `@[${s.kind}:${s.id}]`;
    let label = `@${s.name}`;
    if (labels.some((l) => l.label === label && l.token !== token)) label = `@${s.name} (${s.kind} ${s.id})`;
    if (!labels.some((l) => l.label === label)) labels.push({ label, token });
    return label;
  }).join('');
  return { text, labels };
}

function openEditor(kind, item, holder, button) {
  const textEl = holder.querySelector(':scope > .text');
  if (!textEl || holder.querySelector(':scope > .edit-form')) return;
  const { text, labels } = editableText(latest.get(holder) || item.segments);
  const textarea = h('textarea', { id: uid('edit'), rows: Math.min(8, Math.max(2, text.split('\n').length)), class: 'edit-text' });
  textarea.value = text;
  const mentions = mentionable(textarea);
  const body = () => {
    let out = mentions.body();
    for (const { label, token } of [...labels].sort((a, b) => b.label.length - a.label.length)) out = out.split(label).join(token);
    return out;
  };
  const count = h('span', { class: 'counter', 'aria-live': 'polite' });
  const error = errorBox();
  const save = h('button', { type: 'submit', class: 'primary small' }, 'Save changes');
  const cancel = h('button', { type: 'button', class: 'small' }, 'Cancel');
  const form = h('form', { class: 'edit-form', 'aria-label': `Edit ${kind}` },
    h('label', { for: textarea.id, class: 'sr-only' }, `Edit the ${kind}`),
    textarea, mentions.list, error,
    h('div', { class: 'compose-bar' }, h('span', { class: 'spacer' }), count, cancel, save));
  const refresh = () => {
    const n = codePoints(body());
    count.textContent = `${formatNumber(n)} / ${formatNumber(MAX_POST_CHARS)}`;
    count.classList.toggle('over', n > MAX_POST_CHARS);
    save.disabled = !body().trim() || n > MAX_POST_CHARS;
  };
  const close = () => {
    form.remove();
    textEl.hidden = false;
    button.hidden = false;
    button.focus();
  };
  textarea.addEventListener('input', refresh);
  textarea.addEventListener('keydown', (event) => {
    if (event.key === 'Escape') close();
    if (event.key === 'Enter' && (event.ctrlKey || event.metaKey)) form.requestSubmit();
  });
  cancel.addEventListener('click', close);
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    error.show(null);
    save.disabled = true;
    try {
      const answer = await api.patch(pathOf(kind, item.id), { body: body() });
      if (kind === 'post') applyPost(answer.post);
      else applyComment(item.post_id, answer.comment);
      close();
    } catch (err) {
      error.show(err.code === 'edit_window_closed' || err.code === 'editing_disabled' ? err : refusal(err));
      refresh();
    }
  });
  textEl.hidden = true;
  button.hidden = true;
  textEl.after(form);
  refresh();
  textarea.focus();
}

function applyText(holder, view) {
  latest.set(holder, view.segments);
  holder.querySelector(':scope > .text')?.replaceChildren(...renderSegments(view.segments));
  const marker = holder.querySelector(':scope > header .edited-marker, :scope > .comment-head .edited-marker');
  if (marker) setMarker(marker, view.edited_at);
}

/** Show a post's new text wherever it is on the page. */
export function applyPost(post) {
  for (const holder of document.querySelectorAll(`article[data-post-id="${post.id}"]`)) {
    applyText(holder, post);
    const who = holder.getAttribute('aria-label')?.split(':')[0];
    if (who) holder.setAttribute('aria-label', `${who}: ${post.body.slice(0, 80)}`);
  }
}

/** Show a comment's new text wherever it is on the page. */
export function applyComment(postId, comment) {
  for (const holder of document.querySelectorAll(`[data-post-id="${postId}"] [data-comment-id="${comment.id}"]`)) applyText(holder, comment);
}

live.onEvent((data) => {
  const p = data.payload;
  if (data.type === 'post.edited') applyPost(p.post);
  else if (data.type === 'comment.edited') applyComment(p.post_id, p.comment);
  else if ((data.type === 'version.hidden' || data.type === 'version.unhidden') && openDialog) openDialog.reloadIf(p);
});

let openDialog = null;

/** The history of an item: every text, newest first; admins hide or show earlier ones. */
export function openHistory(kind, id) {
  openDialog?.close();
  const list = h('ol', { class: 'history-list', 'aria-label': 'Versions, newest first' });
  const more = h('button', { type: 'button', class: 'link small', hidden: true }, 'Show earlier versions');
  const closeButton = h('button', { type: 'button', class: 'small' }, 'Close');
  const dialog = h('dialog', { class: 'history-dialog panel', 'aria-labelledby': `${uid('history')}` },
    h('div', { class: 'page-head' }, h('h2', {}, 'Edit history'), h('span', { class: 'spacer' }), closeButton),
    list, more);
  dialog.querySelector('h2').id = dialog.getAttribute('aria-labelledby');
  let before = null;

  async function load(reset = false) {
    if (reset) {
      before = null;
      list.replaceChildren();
    }
    try {
      const page = await api.get(`${pathOf(kind, id)}/history`, { before: before || undefined });
      list.append(...page.versions.map(renderVersion));
      before = page.next_before;
      more.hidden = !before;
    } catch (err) {
      toast(err.message, 'error');
    }
  }

  function renderVersion(v) {
    const text = v.segments
      ? h('div', { class: 'text' }, renderSegments(v.segments))
      : h('p', { class: 'muted hidden-version' }, 'This version was hidden by a moderator.');
    const badges = [
      v.current ? h('span', { class: 'badge' }, 'Current') : null,
      v.hidden ? h('span', { class: 'badge hidden-badge' }, 'Hidden') : null,
    ];
    const row = h('li', { class: ['version', v.hidden && 'is-hidden'], dataset: { versionId: String(v.version_id ?? 'current') } },
      h('div', { class: 'version-head' },
        h('strong', {}, v.author?.name || 'Someone'), ' ',
        h('time', { datetime: v.written_at, class: 'muted small' }, formatDate(v.written_at)), ' ', badges),
      text);
    if (!v.current && session.org?.isAdmin) {
      const toggle = h('button', { type: 'button', class: 'link small' }, v.hidden ? 'Show to everyone' : 'Hide this version');
      toggle.addEventListener('click', async () => {
        toggle.disabled = true;
        try {
          await api.patch(session.orgPath(`/versions/${v.version_id}`), { hidden: !v.hidden });
          await load(true);
        } catch (err) {
          toast(err.message, 'error');
          toggle.disabled = false;
        }
      });
      row.querySelector('.version-head').append(' ', toggle);
    }
    return row;
  }

  const close = () => {
    if (dialog.open) dialog.close();
  };
  dialog.addEventListener('close', () => {
    dialog.remove();
    if (openDialog?.dialog === dialog) openDialog = null;
  });
  closeButton.addEventListener('click', close);
  more.addEventListener('click', () => load());
  document.body.append(dialog);
  dialog.showModal();
  openDialog = {
    dialog,
    close,
    reloadIf: (p) => {
      const mine = kind === 'post' ? p.post_id === id && p.comment_id === null : p.comment_id === id;
      if (mine) load(true);
    },
  };
  load(true);
}
