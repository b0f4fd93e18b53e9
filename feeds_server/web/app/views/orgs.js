// "Your orgs": the orgs of this login with the default one (F-ORG-7), pending invitations to accept or
// decline (F-ORG-5), a new org (F-ORG-3); and the page an invitation email's link opens.

import { api } from '../api.js';
import { errorBox, field, formatDate, h, toast } from '../dom.js';
import * as live from '../live.js';
import { session } from '../session.js';

// Unread notifications per org (counts only: nothing of their content crosses orgs). Read from
// GET /me (each org's `unread`), kept current by the `$counts` publications of the open org's
// connection (docs/realtime.md), and read again on each (re)connection and when the window
// regains focus.
const unreadBySlug = new Map();
const FOCUS_REFRESH_MS = 2000;
let lastRefresh = 0;

function rememberCounts(me) {
  if (me) lastRefresh = Date.now();
  for (const m of me?.orgs || []) {
    const n = m.unread ?? m.org?.unread;
    if (typeof n === 'number') unreadBySlug.set(m.org.slug, n);
  }
}

/** An org's unread count as last heard, 0 when unknown. */
export function orgUnread(slug) {
  return unreadBySlug.get(slug) || 0;
}

/** The switcher's words for an org: its name, "(default)", and the unread count of another org. */
export function switcherLabel(m, openSlug) {
  const name = m.is_default ? `${m.org.name} (default)` : m.org.name;
  const n = m.org.slug === openSlug ? 0 : orgUnread(m.org.slug);
  return n ? `${name} · ${n} unread` : name;
}

/** Rewrite the counts where they show (the switcher's options, the orgs page) without a redraw. */
function paintCounts() {
  const openSlug = session.org?.slug;
  for (const m of session.me?.orgs || []) {
    const option = document.querySelector(`#org-switch option[value="${CSS.escape(m.org.slug)}"]`);
    if (option) option.textContent = switcherLabel(m, openSlug);
    const badge = document.querySelector(`.org-unread[data-org="${CSS.escape(m.org.slug)}"]`);
    if (badge) {
      const n = orgUnread(m.org.slug);
      badge.textContent = `${n} unread`;
      badge.hidden = n === 0;
    }
  }
}

async function refreshCounts() {
  if (!session.me || Date.now() - lastRefresh < FOCUS_REFRESH_MS) return;
  lastRefresh = Date.now();
  try {
    rememberCounts(await api.get('/me'));
    paintCounts();
  } catch { /* the counts keep their numbers */ }
}

/** A counts publication: `{org, unread}` as it is or as the payload of an event. */
function countOf(data) {
  const p = data?.payload && typeof data.payload === 'object' ? data.payload : data;
  if (!p || typeof p.org !== 'string' || typeof p.unread !== 'number') return null;
  return { slug: p.org, unread: p.unread, at: typeof p.at === 'number' ? p.at : 0 };
}

// The `at` of the latest count applied per org: publications from two nodes may arrive out of order.
const countAt = new Map();

/** Keep the per-org counts current for the whole life of the page (called once). */
export function watchOrgCounts() {
  session.onChange(() => rememberCounts(session.me));
  live.onEvent((data) => {
    const count = countOf(data);
    if (count && count.at >= (countAt.get(count.slug) || 0)) {
      countAt.set(count.slug, count.at);
      unreadBySlug.set(count.slug, Math.max(0, count.unread));
      paintCounts();
    }
  });
  // Counts have no history: each (re)connection reads them again.
  live.onStatus((state) => { if (state.status === 'live') refreshCounts(); });
  window.addEventListener('focus', refreshCounts);
  document.addEventListener('visibilitychange', () => { if (document.visibilityState === 'visible') refreshCounts(); });
}

export function renderOrgs(main, { go }) {
  const me = session.me;
  const section = h('section', { class: 'panel' });
  main.append(section);
  section.append(h('h1', {}, 'Your orgs'));
  if (!me.user.email_verified) section.append(verificationNotice(me.user.email));

  if (me.needs_default_org) {
    section.append(h('p', { class: 'notice', role: 'alert' },
      me.orgs.length
        ? 'Your default org is no longer available to you. Pick the org Feeds should open when you sign in.'
        : 'You are in no org right now. Accept an invitation or create an org to start.'));
  }

  if (me.orgs.length) {
    const list = h('ul', { class: 'org-list' });
    for (const m of me.orgs) {
      const makeDefault = h('button', { type: 'button', class: 'small' }, 'Make default');
      makeDefault.addEventListener('click', async () => {
        makeDefault.disabled = true;
        try {
          await api.put('/me/default-org', { org_slug: m.org.slug });
          await session.loadMe();
          toast(`${m.org.name} is now your default org.`);
          go('#/orgs');
        } catch (err) {
          toast(err.message, 'error');
          makeDefault.disabled = false;
        }
      });
      list.append(h('li', { class: 'org-row' },
        h('div', {},
          h('a', { href: `#/org/${encodeURIComponent(m.org.slug)}/feed`, class: 'org-name' }, m.org.name),
          m.is_default ? h('span', { class: 'badge' }, 'Default') : null,
          h('span', { class: 'count org-unread', dataset: { org: m.org.slug }, hidden: !orgUnread(m.org.slug) }, `${orgUnread(m.org.slug)} unread`),
          h('div', { class: 'muted small' }, `${m.org.slug} · ${m.profile.name}${m.role ? ` · ${m.role.name}` : ''} · ${m.org.edition}`)),
        m.is_default ? null : makeDefault));
    }
    section.append(list);
  }

  section.append(invitationsPanel(go));
  main.append(createOrgPanel(go));
}

function invitationsPanel(go) {
  const invitations = session.me.invitations;
  const wrap = h('div', { class: 'invitations' }, h('h2', {}, 'Invitations'));
  if (!invitations.length) {
    wrap.append(h('p', { class: 'muted' }, 'No pending invitations.'));
    return wrap;
  }
  const list = h('ul', { class: 'org-list' });
  for (const inv of invitations) {
    const accept = h('button', { type: 'button', class: 'primary small' }, 'Accept');
    const decline = h('button', { type: 'button', class: 'small' }, 'Decline');
    const answer = async (verb) => {
      accept.disabled = decline.disabled = true;
      try {
        const result = await api.post(`/me/invitations/${inv.id}/${verb}`);
        await session.loadMe();
        if (verb === 'accept') {
          toast(`You joined ${inv.org.name}.`);
          go(`#/org/${encodeURIComponent(result.org.slug)}/feed`);
        } else {
          toast(`You declined the invitation to ${inv.org.name}.`);
          go('#/orgs');
        }
      } catch (err) {
        toast(err.message, 'error');
        accept.disabled = decline.disabled = false;
      }
    };
    accept.addEventListener('click', () => answer('accept'));
    decline.addEventListener('click', () => answer('decline'));
    list.append(h('li', { class: 'org-row', dataset: { invitation: String(inv.id) } },
      h('div', {}, h('strong', {}, inv.org.name), h('div', { class: 'muted small' }, `Expires ${formatDate(inv.expires_at)}`)),
      h('div', { class: 'row' }, accept, decline)));
  }
  wrap.append(list);
  return wrap;
}

function timeZones() {
  let zones = [];
  try {
    zones = Intl.supportedValuesOf('timeZone');
  } catch { /* an older browser: UTC only */ }
  return zones.includes('UTC') ? zones : ['UTC', ...zones];
}

function createOrgPanel(go) {
  const name = h('input', { type: 'text', required: true, maxlength: 200 });
  const slug = h('input', { type: 'text', required: true, pattern: '[a-z0-9][a-z0-9-]{1,61}[a-z0-9]', maxlength: 63 });
  const here = Intl.DateTimeFormat().resolvedOptions().timeZone || 'UTC';
  const zone = h('select', {}, timeZones().map((z) => h('option', { value: z, selected: z === here }, z)));
  const sample = h('input', { type: 'checkbox', id: 'sample-data' });
  const error = errorBox();
  const submit = h('button', { type: 'submit', class: 'primary' }, 'Create org');
  let slugTouched = false;
  slug.addEventListener('input', () => { slugTouched = true; });
  name.addEventListener('input', () => {
    if (!slugTouched) slug.value = name.value.toLowerCase().normalize('NFKD').replace(/[^a-z0-9]+/g, '-').replace(/^-+|-+$/g, '').slice(0, 63);
  });
  const form = h('form', { class: 'stack' },
    field('Company name', name),
    field('Access URL slug', slug, 'Lowercase letters, digits and dashes; unique on this server.'),
    field('Time zone', zone),
    h('div', { class: 'field check' }, sample, h('label', { for: 'sample-data' }, 'Load sample data (people, groups, records, posts, a rule)')),
    error, submit);
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    error.show(null);
    submit.disabled = true;
    try {
      const { org } = await api.post('/orgs', { name: name.value.trim(), slug: slug.value.trim(), time_zone: zone.value, load_sample_data: sample.checked });
      await session.loadMe();
      go(`#/org/${encodeURIComponent(org.slug)}/feed`);
    } catch (err) {
      error.show(err);
    } finally {
      submit.disabled = false;
    }
  });
  return h('section', { class: 'panel' }, h('h2', {}, 'Create an org'), form);
}

/** #/invitation/<token>: the link of an invitation email (the only way into IP-restricted orgs). */
/** Until the address is confirmed, invitations sent to it do not show (only their emailed links work). */
function verificationNotice(email) {
  const again = h('button', { type: 'button', class: 'small' }, 'Send the link again');
  again.addEventListener('click', async () => {
    again.disabled = true;
    try {
      await api.post('/me/verification-email');
      toast(`A new link is on its way to ${email}.`);
    } catch (err) {
      toast(err.message, 'error');
      again.disabled = false;
    }
  });
  return h('p', { class: 'notice', role: 'status', id: 'verification-pending' },
    `Confirm your email address: open the link we sent to ${email}. Invitations sent to it show here once you do. `, again);
}

export function renderInvitationLink(main, { token, go }) {
  const error = errorBox();
  const accept = h('button', { type: 'button', class: 'primary' }, 'Accept');
  const decline = h('button', { type: 'button' }, 'Decline');
  const answer = async (verb) => {
    accept.disabled = decline.disabled = true;
    error.show(null);
    try {
      const result = await api.post(`/invitations/${verb}`, { token });
      await session.loadMe();
      if (verb === 'accept') go(`#/org/${encodeURIComponent(result.org.slug)}/feed`);
      else {
        toast('Invitation declined.');
        go('#/orgs');
      }
    } catch (err) {
      error.show(err);
      accept.disabled = decline.disabled = false;
    }
  };
  accept.addEventListener('click', () => answer('accept'));
  decline.addEventListener('click', () => answer('decline'));
  main.append(h('section', { class: 'panel narrow' },
    h('h1', {}, 'You have been invited'),
    h('p', {}, `Signed in as ${session.me.user.email}. Accepting adds the org to your orgs; you keep the others.`),
    error, h('div', { class: 'row' }, accept, decline)));
}
