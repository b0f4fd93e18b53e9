// Notifications (F-NOTIF-1): mentions, messages, record changes and more, live, each with why it
// reached the reader and the action that stops that; marked read one by one or all at once. And the
// settings page (#/org/<slug>/notifications/settings): what reaches the reader on which channel,
// snooze, quiet hours, time zone, digest, dormancy notices, the merge window, and the mutes.

import { api } from '../api.js';
import { errorBox, field, formatDate, h, timeAgo, toast, uid } from '../dom.js';
import { MAX_DORMANT_DAYS, MIN_DORMANT_DAYS } from '../limits.js';
import * as live from '../live.js';
import { mutesPanel } from '../mutes.js';
import { renderPushSettings } from '../push.js';
import { reasonLine } from '../reasons.js';
import { session } from '../session.js';

const CHANGE = { created: 'created', edited: 'changed', deleted: 'deleted', note_added: 'added a note to' };
const CHANGE_PASSIVE = { created: 'created', edited: 'changed', deleted: 'deleted', note_added: 'given a note' };
const VIA = { user: 'mentioned you', role: 'mentioned your role', group: 'mentioned a group you are in' };

const settingsPath = () => `/orgs/${encodeURIComponent(session.org.slug)}/notification-settings`;

/** The field names a merged burst of record changes touched, in order, once each. */
function changedFields(changes) {
  const names = [];
  for (const c of changes || []) {
    const fields = Array.isArray(c?.fields) ? c.fields : [c];
    for (const f of fields) {
      const name = typeof f === 'string' ? f : f?.field;
      if (name && !names.includes(name)) names.push(name);
    }
  }
  return names;
}

async function describe(n) {
  const data = n.data || {};
  if (n.kind === 'mention') {
    const actor = await session.userName(n.actor_id);
    return { title: `${actor} ${VIA[data.via] || 'mentioned you'}`, excerpt: data.excerpt || '' };
  }
  if (n.kind === 'private_message') {
    const actor = await session.userName(n.actor_id);
    return { title: `${actor} sent you a private message`, excerpt: data.excerpt || '' };
  }
  if (n.kind === 'group_post') {
    const actor = await session.userName(n.actor_id);
    const group = data.group?.name || n.reason?.group_name;
    return { title: group ? `${actor} posted in ${group}` : `${actor} posted in one of your groups`, excerpt: data.excerpt || '' };
  }
  if (n.kind === 'reaction') {
    // One per item, updated as more people react (docs/api.md, "Reactions").
    const actor = await session.userName(n.actor_id);
    const others = (data.people || 1) - 1;
    const who = others > 0 ? `${actor} and ${others} other${others === 1 ? '' : 's'}` : actor;
    const counts = (data.reactions || []).map((r) => `${r.emoji} ${r.count}`).join('  ');
    return { title: `${who} reacted ${data.emoji || ''} to your ${n.comment_id ? 'comment' : 'post'}`, excerpt: [data.excerpt, counts].filter(Boolean).join(' · ') };
  }
  const record = data.record || {};
  const what = `${record.module || ''} record “${record.name || ''}”`;
  if (n.kind === 'record_dormant') {
    const days = data.days || data.dormant_days;
    return { title: days ? `${what} has had no activity for ${days} days` : `${what} has gone quiet`, excerpt: '' };
  }
  // Without a reason (notifications written before reasons existed), the excerpt says it.
  const why = n.reason ? '' : n.kind === 'record_owned' ? 'You own it.' : 'You follow it.';
  const count = data.count || 1;
  if (count > 1) {
    const fields = changedFields(data.changes);
    const excerpt = [fields.length ? `Changed: ${fields.join(', ')}` : '', why].filter(Boolean).join(' · ');
    if (!n.actor_id) return { title: `${what} changed ${count} times`, excerpt };
    return { title: `${await session.userName(n.actor_id)} changed ${what} ${count} times`, excerpt };
  }
  if (!n.actor_id) return { title: `${what} was ${CHANGE_PASSIVE[data.change] || 'changed'}`, excerpt: why };
  const actor = await session.userName(n.actor_id);
  return { title: `${actor} ${CHANGE[data.change] || 'changed'} ${what}`, excerpt: why };
}

export async function renderNotifications(main, ctx) {
  if (ctx.id === 'settings') return renderSettings(main, ctx);
  const { scope, go } = ctx;
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
    const why = reasonLine(n.reason, { record: n.data?.record, group: n.data?.group, postId: n.post_id });
    el.append(h('span', { class: 'dot', 'aria-label': n.read_at ? null : 'unread' }),
      h('div', { class: 'notification-body' }, open, why),
      timeAgo(n.updated_at || n.created_at));
    return el;
  }

  async function load() {
    const page = await api.get(`/orgs/${encodeURIComponent(slug)}/notifications`, { before, limit: 25 });
    for (const n of page.notifications) {
      if (!list.querySelector(`[data-notification-id="${n.id}"]`)) list.append(await row(n));
    }
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
      // Oldest first: each goes on top of the one before. A merged burst comes again with the same
      // id: it replaces the entry in place.
      for (const n of data.payload.notifications) {
        const fresh = await row(n);
        const old = list.querySelector(`[data-notification-id="${n.id}"]`);
        if (old) old.replaceWith(fresh);
        else list.prepend(fresh);
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
    h('div', { class: 'page-head' }, h('h1', {}, 'Notifications'), h('span', { class: 'spacer' }),
      h('a', { href: `#/org/${encodeURIComponent(slug)}/notifications/settings`, class: 'settings-link' }, 'Settings'), readAll),
    h('section', { class: 'panel' }, list, empty, more),
    await emailSettings());
  await load();
  return undefined;
}

async function emailSettings() {
  const { settings } = await api.get(settingsPath());
  const box = h('input', { type: 'checkbox', id: uid('emails'), checked: settings.mention_emails });
  box.addEventListener('change', async () => {
    try {
      await api.patch(settingsPath(), { mention_emails: box.checked });
      toast(box.checked ? 'Mention emails are on.' : 'Mention emails are off.');
    } catch (err) {
      box.checked = !box.checked;
      toast(err.message, 'error');
    }
  });
  return h('section', { class: 'panel' }, h('h2', {}, 'Email'),
    h('div', { class: 'field check' }, box, h('label', { for: box.id }, 'Email me when someone mentions me or a group I am in')),
    h('p', { class: 'muted small' }, 'Push, digests, quiet hours, snooze and mutes: ',
      h('a', { href: `#/org/${encodeURIComponent(session.org.slug)}/notifications/settings` }, 'all notification settings'), '.'));
}

// --- the settings page ---------------------------------------------------------------------------

const KIND_LABELS = {
  mention: 'Mentions of me, my role or a group I am in',
  private_message: 'Private messages to me',
  group_post: 'New posts in my groups',
  record_owned: 'Changes to records I own',
  record_followed: 'Changes to records I follow',
  reaction: 'Reactions to my posts and comments',
  record_dormant: 'Records I own or follow going quiet',
};
const CHANNEL_LABELS = { in_app: 'In the app', email: 'Email', push: 'Push' };
const CHANNELS = ['in_app', 'email', 'push'];
const WEEKDAYS = ['Monday', 'Tuesday', 'Wednesday', 'Thursday', 'Friday', 'Saturday', 'Sunday']; // 0 = Monday
const MAX_MERGE_SECONDS = 3600;
const MORNING_HOUR = 8;

function timeZones() {
  let zones = [];
  try {
    zones = Intl.supportedValuesOf('timeZone');
  } catch { /* an older browser: UTC only */ }
  return zones.includes('UTC') ? zones : ['UTC', ...zones];
}

/** Milliseconds `zone` is ahead of UTC at the instant `ms`. */
function zoneOffset(ms, zone) {
  const parts = Object.fromEntries(new Intl.DateTimeFormat('en-US', {
    timeZone: zone, hourCycle: 'h23', year: 'numeric', month: 'numeric', day: 'numeric', hour: 'numeric', minute: 'numeric', second: 'numeric',
  }).formatToParts(new Date(ms)).map((p) => [p.type, Number(p.value)]));
  return Date.UTC(parts.year, parts.month - 1, parts.day, parts.hour, parts.minute, parts.second) - Math.floor(ms / 1000) * 1000;
}

/** The instant a wall-clock time (y, m 0-based, d, H, M) names in `zone`. */
function zonedInstant(y, m, d, hour, minute, zone) {
  const wall = Date.UTC(y, m, d, hour, minute);
  let ms = wall - zoneOffset(wall, zone);
  ms = wall - zoneOffset(ms, zone); // once more, for a day whose offset changes
  return new Date(ms);
}

/** Today's date in `zone`, as [y, m 0-based, d]. */
function todayIn(zone) {
  const p = Object.fromEntries(new Intl.DateTimeFormat('en-US', { timeZone: zone, year: 'numeric', month: 'numeric', day: 'numeric' })
    .formatToParts(new Date()).map((x) => [x.type, Number(x.value)]));
  return [p.year, p.month - 1, p.day];
}

function formatIn(iso, zone) {
  try {
    return new Intl.DateTimeFormat(undefined, { dateStyle: 'medium', timeStyle: 'short', timeZone: zone }).format(new Date(iso));
  } catch {
    return formatDate(iso);
  }
}

const twoDigits = (n) => String(n).padStart(2, '0');

export async function renderSettings(main) {
  const slug = encodeURIComponent(session.org.slug);
  const head = h('div', { class: 'page-head' }, h('h1', {}, 'Notification settings'), h('span', { class: 'spacer' }),
    h('a', { href: `#/org/${slug}/notifications` }, 'Back to notifications'));
  const body = h('div', { class: 'settings' });
  main.append(head, body);
  const mutes = mutesPanel();
  let settings = (await api.get(settingsPath())).settings;
  const snooze = snoozePanel(() => settings, (next) => { settings = next; });
  const form = settingsForm(() => settings, (next) => { settings = next; snooze.draw(); });
  // Desktop notifications (the browser's push subscription) fill #push-settings.
  body.append(form.el, snooze.el, h('div', { id: 'push-settings' }, renderPushSettings(session.org.slug)), mutes.el);
  await mutes.reload();
}

function snoozePanel(get, set) {
  const state = h('p', { id: 'snooze-state', role: 'status' });
  const error = errorBox();
  const until = h('input', { type: 'datetime-local', id: uid('snooze') });
  const offButton = h('button', { type: 'button', class: 'small' }, 'Turn snooze off');

  async function save(value) {
    error.show(null);
    try {
      set((await api.patch(settingsPath(), { snooze_until: value })).settings);
      draw();
      toast(value ? 'Snoozed.' : 'Snooze is off.');
    } catch (err) {
      error.show(err);
    }
  }

  function draw() {
    const s = get();
    const zone = s.effective_time_zone || 'UTC';
    const on = s.snooze_until && new Date(s.snooze_until) > new Date();
    state.textContent = on ? `Snoozed until ${formatIn(s.snooze_until, zone)} (${zone}): no email and no push until then; the app still lists everything.` : 'Not snoozed.';
    offButton.hidden = !on;
  }

  const hour = h('button', { type: 'button', class: 'small' }, 'For 1 hour');
  hour.addEventListener('click', () => save(new Date(Date.now() + 3600_000).toISOString()));
  const morning = h('button', { type: 'button', class: 'small' }, 'Until tomorrow morning');
  morning.addEventListener('click', () => {
    const zone = get().effective_time_zone || 'UTC';
    const [y, m, d] = todayIn(zone);
    save(zonedInstant(y, m, d + 1, MORNING_HOUR, 0, zone).toISOString());
  });
  const chosen = h('button', { type: 'button', class: 'small' }, 'Snooze until then');
  chosen.addEventListener('click', () => {
    const match = /^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2})/.exec(until.value);
    if (!match) {
      error.show({ message: 'Pick a date and a time first.' });
      return;
    }
    const [, y, mo, d, hh, mm] = match.map(Number);
    save(zonedInstant(y, mo - 1, d, hh, mm, get().effective_time_zone || 'UTC').toISOString());
  });
  offButton.addEventListener('click', () => save(null));
  draw();
  const el = h('section', { class: 'panel', 'aria-labelledby': 'snooze-heading' },
    h('h2', { id: 'snooze-heading' }, 'Snooze'), state,
    h('div', { class: 'row wrap' }, hour, morning, offButton),
    h('div', { class: 'row wrap' }, field('Until', until, 'In your notification time zone.'), chosen),
    error);
  return { el, draw };
}

function settingsForm(get, set) {
  const boxes = new Map(); // "kind.channel" → checkbox
  const table = h('table', { class: 'channel-matrix' },
    h('caption', {}, 'What reaches you, and how'),
    h('thead', {}, h('tr', {}, h('th', { scope: 'col' }, 'What'), CHANNELS.map((c) => h('th', { scope: 'col' }, CHANNEL_LABELS[c])))));
  const tbody = h('tbody');
  table.append(tbody);

  const quietOn = h('input', { type: 'checkbox', id: uid('quiet') });
  const quietStart = h('input', { type: 'time', 'aria-label': 'Quiet hours start' });
  const quietEnd = h('input', { type: 'time', 'aria-label': 'Quiet hours end' });
  const zone = h('select', {});
  const digest = h('select', {}, h('option', { value: 'off' }, 'Off'), h('option', { value: 'daily' }, 'Daily'), h('option', { value: 'weekly' }, 'Weekly'));
  const digestHour = h('select', {}, Array.from({ length: 24 }, (_, i) => h('option', { value: String(i) }, `${twoDigits(i)}:00`)));
  const digestDay = h('select', {}, WEEKDAYS.map((name, i) => h('option', { value: String(i) }, name)));
  const dayField = field('On', digestDay);
  const dormantOn = h('input', { type: 'checkbox', id: uid('dormant') });
  const dormantDays = h('input', { type: 'number', min: MIN_DORMANT_DAYS, max: MAX_DORMANT_DAYS, step: 1, required: true });
  const merge = h('input', { type: 'number', min: 0, max: MAX_MERGE_SECONDS, step: 1, required: true });
  const error = errorBox();
  const submit = h('button', { type: 'submit', class: 'primary' }, 'Save settings');

  digest.addEventListener('change', () => { dayField.hidden = digest.value !== 'weekly'; });
  quietOn.addEventListener('change', () => { quietStart.disabled = quietEnd.disabled = !quietOn.checked; });
  dormantOn.addEventListener('change', () => { dormantDays.disabled = !dormantOn.checked; });

  function fill(s) {
    tbody.replaceChildren();
    boxes.clear();
    for (const [kind, channels] of Object.entries(s.channels || {})) {
      if (kind === 'digest') continue; // chosen by its frequency below
      const label = KIND_LABELS[kind] || kind;
      tbody.append(h('tr', { dataset: { kind } }, h('th', { scope: 'row' }, label), CHANNELS.map((channel) => {
        if (!(channel in channels)) return h('td', { class: 'na', title: 'Not offered' }, '—');
        const box = h('input', { type: 'checkbox', checked: channels[channel], 'aria-label': `${label}: ${CHANNEL_LABELS[channel]}`, dataset: { kind, channel } });
        boxes.set(`${kind}.${channel}`, box);
        return h('td', {}, box);
      })));
    }
    quietOn.checked = Boolean(s.quiet_hours);
    quietStart.value = s.quiet_hours?.start || '22:00';
    quietEnd.value = s.quiet_hours?.end || '07:00';
    quietStart.disabled = quietEnd.disabled = !quietOn.checked;
    const orgZone = session.org.timeZone || 'UTC';
    zone.replaceChildren(h('option', { value: '' }, `The org's (${orgZone})`),
      ...timeZones().map((z) => h('option', { value: z }, z)));
    zone.value = s.time_zone || '';
    digest.value = s.digest?.frequency || 'off';
    digestHour.value = String(s.digest?.hour ?? MORNING_HOUR);
    digestDay.value = String(s.digest?.weekday ?? 0);
    dayField.hidden = digest.value !== 'weekly';
    dormantOn.checked = s.dormant_days !== null && s.dormant_days !== undefined;
    dormantDays.value = String(s.dormant_days ?? 30);
    dormantDays.disabled = !dormantOn.checked;
    merge.value = String(s.record_merge_seconds ?? 60);
  }

  function read() {
    const channels = {};
    for (const box of boxes.values()) (channels[box.dataset.kind] ??= {})[box.dataset.channel] = box.checked;
    return {
      channels,
      quiet_hours: quietOn.checked ? { start: quietStart.value, end: quietEnd.value } : null,
      time_zone: zone.value || null,
      digest: { frequency: digest.value, hour: Number(digestHour.value), weekday: Number(digestDay.value) },
      dormant_days: dormantOn.checked ? Number(dormantDays.value) : null,
      record_merge_seconds: Number(merge.value),
    };
  }

  const form = h('form', { class: 'stack', id: 'notification-settings', novalidate: true },
    h('section', { class: 'panel' }, h('h2', {}, 'Channels'), table,
      h('p', { class: 'muted small' }, 'A mention through your role is shown in the app only. Push needs desktop notifications turned on in this browser (below).')),
    h('section', { class: 'panel' }, h('h2', {}, 'When'),
      h('div', { class: 'field check' }, quietOn, h('label', { for: quietOn.id }, 'Quiet hours: hold email and push from')),
      h('div', { class: 'row wrap' }, quietStart, h('span', {}, 'to'), quietEnd),
      field('Time zone', zone, 'For quiet hours, snooze and the digest.'),
      h('div', { class: 'row wrap' }, field('Digest email', digest), field('At', digestHour), dayField),
      h('div', { class: 'field check' }, dormantOn, h('label', { for: dormantOn.id }, 'Tell me when a record I own or follow has had no activity for')),
      field('Days', dormantDays, `${MIN_DORMANT_DAYS} to ${MAX_DORMANT_DAYS} days; one notification each time a record crosses it.`),
      field('Merge changes to one record within (seconds)', merge, `One notification lists them; 0 sends one per change, at most ${MAX_MERGE_SECONDS}.`)),
    error, h('div', { class: 'row' }, submit));
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    error.show(null);
    submit.disabled = true;
    try {
      const next = (await api.patch(settingsPath(), read())).settings;
      set(next);
      fill(next);
      toast('Notification settings saved.');
    } catch (err) {
      error.show(err);
    } finally {
      submit.disabled = false;
    }
  });
  fill(get());
  return { el: form };
}
