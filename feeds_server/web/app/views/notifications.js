// Notifications (F-NOTIF-1): mentions and changes to one's records, live, marked read one by one or
// all at once; and the member's email setting for mentions (F-NOTIF-2).

import { api } from '../api.js';
import { h, timeAgo, toast, uid } from '../dom.js';
import * as live from '../live.js';
import { session } from '../session.js';

const CHANGE = { created: 'created', edited: 'changed', deleted: 'deleted', note_added: 'added a note to' };
const CHANGE_PASSIVE = { created: 'created', edited: 'changed', deleted: 'deleted', note_added: 'given a note' };
const VIA = { user: 'mentioned you', role: 'mentioned your role', group: 'mentioned a group you are in' };

async function describe(n) {
  if (n.kind === 'mention') {
    const actor = await session.userName(n.actor_id);
    return { title: `${actor} ${VIA[n.data.via] || 'mentioned you'}`, excerpt: n.data.excerpt || '' };
  }
  if (n.kind === 'reaction') {
    // One per item, updated as more people react (docs/api.md, "Reactions").
    const actor = await session.userName(n.actor_id);
    const others = (n.data.people || 1) - 1;
    const who = others > 0 ? `${actor} and ${others} other${others === 1 ? '' : 's'}` : actor;
    const counts = (n.data.reactions || []).map((r) => `${r.emoji} ${r.count}`).join('  ');
    return { title: `${who} reacted ${n.data.emoji || ''} to your ${n.comment_id ? 'comment' : 'post'}`, excerpt: [n.data.excerpt, counts].filter(Boolean).join(' · ') };
  }
  const record = n.data.record || {};
  const what = `${record.module || ''} record “${record.name || ''}”`;
  const why = n.kind === 'record_owned' ? 'You own it.' : 'You follow it.';
  if (!n.actor_id) return { title: `${what} was ${CHANGE_PASSIVE[n.data.change] || 'changed'}`, excerpt: why };
  const actor = await session.userName(n.actor_id);
  return { title: `${actor} ${CHANGE[n.data.change] || 'changed'} ${what}`, excerpt: why };
}

export async function renderNotifications(main, { scope, go }) {
  const slug = session.org.slug;
  const list = h('ul', { class: 'notifications', 'aria-live': 'polite' });
  const more = h('button', { type: 'button', class: 'load-more', hidden: true }, 'Load older');
  const readAll = h('button', { type: 'button', class: 'small' }, 'Mark all as read');
  const empty = h('p', { class: 'muted', hidden: true }, 'No notifications yet. You will hear here when someone mentions you or a record you follow changes.');
  let before = null;

  async function row(n) {
    const { title, excerpt } = await describe(n);
    const el = h('li', { class: ['notification', !n.read_at && 'unread'], dataset: { notificationId: String(n.id) } });
    const open = h('a', { href: n.post_id ? `#/org/${encodeURIComponent(slug)}/post/${n.post_id}` : `#/org/${encodeURIComponent(slug)}/notifications` },
      h('span', { class: 'title' }, title), excerpt ? h('span', { class: 'excerpt' }, excerpt) : null);
    open.addEventListener('click', (event) => {
      if (!el.classList.contains('unread')) return;
      event.preventDefault();
      api.post(`/orgs/${encodeURIComponent(slug)}/notifications/${n.id}/read`).catch(() => {}).finally(() => go(open.getAttribute('href')));
    });
    el.append(h('span', { class: 'dot', 'aria-label': n.read_at ? null : 'unread' }), open, timeAgo(n.created_at));
    return el;
  }

  async function load() {
    const page = await api.get(`/orgs/${encodeURIComponent(slug)}/notifications`, { before, limit: 25 });
    for (const n of page.notifications) list.append(await row(n));
    before = page.next_before;
    more.hidden = !before;
    empty.hidden = list.children.length > 0;
  }

  more.addEventListener('click', () => load().catch((err) => toast(err.message, 'error')));
  readAll.addEventListener('click', async () => {
    try {
      await api.post(`/orgs/${encodeURIComponent(slug)}/notifications/read-all`);
      for (const el of list.querySelectorAll('.unread')) el.classList.remove('unread');
    } catch (err) {
      toast(err.message, 'error');
    }
  });

  scope.add(live.onEvent(async (data) => {
    if (data.type === 'notifications.created') {
      // Oldest first: each goes on top of the one before.
      for (const n of data.payload.notifications) {
        if (list.querySelector(`[data-notification-id="${n.id}"]`)) continue;
        list.prepend(await row(n));
        empty.hidden = true;
      }
    } else if (data.type === 'notifications.updated') {
      const n = data.payload.notification;
      const old = list.querySelector(`[data-notification-id="${n.id}"]`);
      if (old) old.replaceWith(await row(n));
    } else if (data.type === 'notifications.read') {
      const id = data.payload.id;
      const read = id ? list.querySelectorAll(`[data-notification-id="${id}"]`) : list.querySelectorAll('.unread');
      for (const el of read) el.classList.remove('unread');
    } else if (data.type === 'live.reload') {
      list.replaceChildren();
      before = null;
      load().catch(() => {});
    }
  }));

  main.append(
    h('div', { class: 'page-head' }, h('h1', {}, 'Notifications'), h('span', { class: 'spacer' }), readAll),
    h('section', { class: 'panel' }, list, empty, more),
    await emailSettings(slug));
  await load();
}

async function emailSettings(slug) {
  const { settings } = await api.get(`/orgs/${encodeURIComponent(slug)}/notification-settings`);
  const box = h('input', { type: 'checkbox', id: uid('emails'), checked: settings.mention_emails });
  box.addEventListener('change', async () => {
    try {
      await api.patch(`/orgs/${encodeURIComponent(slug)}/notification-settings`, { mention_emails: box.checked });
      toast(box.checked ? 'Mention emails are on.' : 'Mention emails are off.');
    } catch (err) {
      box.checked = !box.checked;
      toast(err.message, 'error');
    }
  });
  return h('section', { class: 'panel' }, h('h2', {}, 'Email'),
    h('div', { class: 'field check' }, box, h('label', { for: box.id }, 'Email me when someone mentions me or a group I am in')));
}
