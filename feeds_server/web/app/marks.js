// Saved items and pins on the page (docs/api.md, "Saved items and pins"): the save toggle and the
// pin button of each item, and the pinned posts held at the top of a feed. Live events keep them
// right: `post.saved` / `post.unsaved` come on the reader's own channel (their other tabs),
// `post.pinned` / `post.unpinned` on the post's audience.

import { api } from './api.js';
import { h, toast } from './dom.js';
import { renderItem } from './items.js';
import * as live from './live.js';
import { session } from './session.js';

const savedIds = new Set(); // posts the reader saved, as far as this page knows
const pinnedIds = new Set(); // posts pinned in a place shown on this page
const savedListeners = new Set();

/** fn(postId, saved) whenever a post is saved or unsaved, here or in another tab. */
export function onSavedChange(fn) {
  savedListeners.add(fn);
  return () => savedListeners.delete(fn);
}

function setSaved(postId, saved) {
  if (saved) savedIds.add(postId);
  else savedIds.delete(postId);
  for (const button of document.querySelectorAll(`[data-save-for="${postId}"]`)) drawSave(button, saved);
  for (const fn of [...savedListeners]) fn(postId, saved);
}

function drawSave(button, saved) {
  button.textContent = saved ? 'Saved' : 'Save';
  button.setAttribute('aria-pressed', String(saved));
  button.title = saved ? 'Remove from your saved items' : 'Save for later (only you see it)';
}

/** The save toggle of an item. A view from a REST answer says whether it is saved; one that came live does not. */
export function saveToggle(post) {
  if (post.saved === true) savedIds.add(post.id);
  else if (post.saved === false) savedIds.delete(post.id);
  const button = h('button', { type: 'button', class: 'link small save-toggle', dataset: { saveFor: String(post.id) } });
  drawSave(button, savedIds.has(post.id));
  button.addEventListener('click', async () => {
    const saving = !savedIds.has(post.id);
    button.disabled = true;
    try {
      if (saving) await api.put(session.orgPath(`/posts/${post.id}/saved`));
      else await api.del(session.orgPath(`/posts/${post.id}/saved`));
      setSaved(post.id, saving);
    } catch (err) {
      toast(err.message, 'error');
    } finally {
      button.disabled = false;
    }
  });
  return button;
}

function drawPin(button, pinned) {
  button.textContent = pinned ? 'Unpin' : 'Pin';
  button.setAttribute('aria-pressed', String(pinned));
}

/** Whether the reader may pin this post: admins on the org feed, a group's owner or an admin in a group. */
async function mayPin(post) {
  if (post.kind === 'status') return session.org.isAdmin;
  if (post.kind !== 'group' || !post.group) return false;
  if (session.org.isAdmin) return true;
  const groups = await session.groups();
  return groups.some((g) => g.id === post.group.id && g.created_by === session.org.userId);
}

/** The pin button of an item, shown only to those who may pin it. */
export function pinToggle(post) {
  const button = h('button', { type: 'button', class: 'link small pin-toggle', hidden: true, dataset: { pinFor: String(post.id) } });
  drawPin(button, pinnedIds.has(post.id));
  mayPin(post).then((yes) => { button.hidden = !yes; }).catch(() => {});
  button.addEventListener('click', async () => {
    const pinning = !pinnedIds.has(post.id);
    button.disabled = true;
    try {
      if (pinning) await api.put(session.orgPath(`/posts/${post.id}/pin`));
      else await api.del(session.orgPath(`/posts/${post.id}/pin`));
      setPinned(post.id, pinning); // the pinned section itself follows the live event
    } catch (err) {
      toast(err.code === 'too_many_pins' ? 'Five posts are pinned here already: unpin one first.' : err.message, 'error');
    } finally {
      button.disabled = false;
    }
  });
  return button;
}

function setPinned(postId, pinned) {
  if (pinned) pinnedIds.add(postId);
  else pinnedIds.delete(postId);
  for (const button of document.querySelectorAll(`[data-pin-for="${postId}"]`)) drawPin(button, pinned);
}

/**
 * The pinned posts at the top of a feed: `groupId` null for the org feed, a group's id for its feed.
 * fill(pinned) takes the `pinned` of the feed's first page; live pins and unpins update it.
 */
export function pinnedSection(groupId, scope) {
  const list = h('div', { class: 'pinned-list' });
  const el = h('section', { class: 'pinned-posts', 'aria-label': 'Pinned posts', hidden: true },
    h('h2', { class: 'pinned-title' }, 'Pinned'), list);
  const shown = () => { el.hidden = list.children.length === 0; };

  function add(post, pin, atTop) {
    list.querySelector(`:scope > [data-post-id="${post.id}"]`)?.remove();
    pinnedIds.add(post.id);
    const item = renderItem(post);
    item.classList.add('pinned');
    const by = pin?.pinned_by?.name ? ` by ${pin.pinned_by.name}` : '';
    item.querySelector('.item-head')?.prepend(h('span', { class: 'badge pin-badge', title: `Pinned${by}` }, '📌 Pinned'));
    if (atTop) list.prepend(item);
    else list.append(item);
    setPinned(post.id, true);
    shown();
  }

  function remove(postId) {
    list.querySelector(`:scope > [data-post-id="${postId}"]`)?.remove();
    setPinned(postId, false);
    shown();
  }

  function fill(pinned) {
    for (const item of [...list.children]) setPinned(Number(item.dataset.postId), false);
    list.replaceChildren();
    for (const post of pinned || []) add(post, post.pin, false);
    shown();
  }

  const here = (payload) => (payload.group_id ?? null) === (groupId ?? null);
  scope.add(live.onEvent((data) => {
    const p = data.payload;
    if (data.type === 'post.pinned' && here(p)) add(p.post, p.pin, true);
    else if (data.type === 'post.unpinned' && here(p)) remove(p.post_id);
    else if (data.type === 'post.deleted') remove(p.post_id);
  }));
  // The list's item was removed by `post.deleted` already (items.js removes every copy).
  scope.add(() => { for (const item of [...list.children]) pinnedIds.delete(Number(item.dataset.postId)); });
  return { el, fill };
}

// Another tab of the same person saved or unsaved a post: every toggle on this page follows.
live.onEvent((data) => {
  if (data.type === 'post.saved') setSaved(data.payload.post_id, true);
  else if (data.type === 'post.unsaved') setSaved(data.payload.post_id, false);
});
