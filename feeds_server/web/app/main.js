// The app shell: sign-in state, the top bar (org switcher, navigation, bell, connection state) and
// a hash router. Links look like #/org/acme/feed, so the server serves one page for everything and
// emailed links (#/org/acme/post/42, #/invitation/<token>, #/verify-email/<token>) open the right view.

import { api, auth, whenSignedOut } from './api.js';
import { clear, h, icon, toast } from './dom.js';
import * as live from './live.js';
import { forgetPush, unsubscribeBrowser } from './push.js';
import { session } from './session.js';
import { renderForgotPassword, renderResetPassword, renderSignIn, renderSignUp, renderVerifyEmail } from './views/auth.js';
import { renderAdmin } from './views/admin.js';
import { renderGroup, renderGroups } from './views/groups.js';
import { renderInvitationLink, renderOrgs, switcherLabel, watchOrgCounts } from './views/orgs.js';
import { renderNotifications } from './views/notifications.js';
import { renderPost, renderWall } from './views/wall.js';
import { renderRecord, renderRecords } from './views/records.js';
import { renderRules } from './views/rules.js';
import { renderSaved } from './views/saved.js';
import { renderSearch } from './views/search.js';

const main = document.getElementById('main');
const top = document.getElementById('top');
const banner = document.getElementById('banner');

let scope = null;
let unread = 0;

/** Disposers of the current view (live listeners, observers), run when the route changes. */
function newScope() {
  const disposers = [];
  return {
    add(fn) { disposers.push(fn); },
    dispose() { for (const fn of disposers.splice(0)) fn(); },
  };
}

function parseHash() {
  const raw = location.hash.replace(/^#\/?/, '');
  const [path, query = ''] = raw.split('?');
  return { parts: path.split('/').filter(Boolean).map(decodeURIComponent), query: new URLSearchParams(query) };
}

export function go(hash) {
  if (location.hash === hash) route();
  else location.hash = hash;
}

const ORG_VIEWS = {
  feed: renderWall,
  post: renderPost,
  groups: renderGroups,
  group: renderGroup,
  records: renderRecords,
  record: renderRecord,
  notifications: renderNotifications,
  rules: renderRules,
  saved: renderSaved,
  search: renderSearch,
  admin: renderAdmin,
};

async function route() {
  scope?.dispose();
  scope = newScope();
  const current = scope;
  const { parts, query } = parseHash();
  const [first, second, third, fourth] = parts;

  // Links of account emails work signed in or not.
  const ACCOUNT_LINKS = { 'verify-email': renderVerifyEmail, 'reset-password': renderResetPassword };
  if (ACCOUNT_LINKS[first] && second) {
    live.disconnect();
    renderTop();
    return show(ACCOUNT_LINKS[first], { token: second });
  }
  if (!auth.token) {
    live.disconnect();
    renderTop();
    if (first === 'signup') return show(renderSignUp, { query });
    if (first === 'forgot-password') return show(renderForgotPassword, { query });
    // Opening an org's address signs in to that org (F-ORG-4).
    return show(renderSignIn, { query, orgSlug: first === 'org' ? second : query.get('org'), next: location.hash });
  }
  if (!session.me) {
    try {
      await session.loadMe();
    } catch (err) {
      if (current !== scope) return undefined;
      if (err.status === 401) return signedOut();
      return showError(err);
    }
  }
  if (current !== scope) return undefined;

  if (first === 'invitation' && second) {
    live.disconnect();
    renderTop();
    return show(renderInvitationLink, { token: second });
  }
  if (first !== 'org' || !second) {
    if (first !== 'orgs') {
      const target = session.homeSlug();
      if (target) return go(`#/org/${encodeURIComponent(target)}/feed`);
    }
    live.disconnect();
    session.org = null;
    renderTop();
    return show(renderOrgs, {});
  }

  const slug = second;
  if (!session.org || session.org.slug !== slug) {
    try {
      await session.openOrg(slug);
    } catch (err) {
      if (current !== scope) return undefined;
      live.disconnect();
      session.org = null;
      renderTop();
      return showError(err, slug);
    }
    if (current !== scope) return undefined;
    live.connect(slug);
    refreshUnread();
  }
  renderTop(third || 'feed');
  const view = ORG_VIEWS[third || 'feed'];
  if (!view) return showError({ message: 'There is no such page.' }, slug);
  return show(view, { slug, id: fourth, query });
}

async function show(view, ctx) {
  const mine = scope;
  const target = clear(main);
  try {
    await view(target, { ...ctx, scope: mine, go });
  } catch (err) {
    if (mine !== scope) return;
    console.error(err);
    showError(err, ctx.slug);
  }
}

function showError(err, slug) {
  clear(main);
  const text = err.code === 'feeds_tab_required'
    ? 'Your profile in this org does not include the Feeds tab. Ask an admin if you need it.'
    : err.message || 'Something went wrong.';
  main.append(h('section', { class: 'panel narrow' },
    h('h1', {}, err.status === 404 ? 'Not found' : 'Cannot show this page'),
    h('p', { class: 'error', role: 'alert' }, text),
    h('p', {}, h('a', { href: slug ? `#/org/${encodeURIComponent(slug)}/feed` : '#/orgs' }, slug ? 'Back to the feed' : 'Your orgs'))));
}

// Live changes to the count seen so far: a read of the count that one overtook is stale.
let unreadChanges = 0;

async function refreshUnread(tries = 3) {
  if (!session.org) return;
  const slug = session.org.slug;
  const seen = unreadChanges;
  try {
    const { unread: count } = await api.get(`/orgs/${encodeURIComponent(slug)}/notifications/unread-count`);
    if (!session.org || session.org.slug !== slug) return;
    // A notification that arrived live while the count was read may or may not be in it: read again
    // (it is committed before it is published, so the next read has it).
    if (unreadChanges !== seen && tries > 1) return refreshUnread(tries - 1);
    setUnread(count);
  } catch { /* the bell keeps its number */ }
}

function setUnread(count) {
  unread = Math.max(0, count);
  const badge = document.getElementById('bell-count');
  if (!badge) return;
  badge.textContent = String(unread);
  badge.hidden = unread === 0;
  document.getElementById('bell').setAttribute('aria-label', `Notifications: ${unread} unread`);
}

// The bell counts live, whatever page is open.
live.onEvent((data) => {
  if (data.type === 'notifications.created') {
    unreadChanges += 1;
    // A merged burst comes again with the same id (data.count > 1): it is counted already.
    setUnread(unread + data.payload.notifications.filter((n) => !(n.data?.count > 1)).length);
  } else if (data.type === 'notifications.read') {
    unreadChanges += 1;
    setUnread(data.payload.unread);
  } else if (data.type === 'live.reload') refreshUnread();
  else if (data.type === 'live.resumed') {
    const n = data.count;
    if (data.reloaded) toast('Back online. Too much happened while you were away to replay, so the page was reloaded.');
    else toast(n ? `Back online: ${n} update${n === 1 ? '' : 's'} from while you were offline ${n === 1 ? 'is' : 'are'} marked below.` : 'Back online. You missed nothing.');
  }
});

const STATUS_TEXT = {
  off: '',
  connecting: 'Connecting…',
  live: 'Live',
  reconnecting: 'Reconnecting…',
  offline: 'Offline',
  unavailable: 'Real-time unavailable',
};

function drawStatus(state) {
  const pill = document.getElementById('live-status');
  if (!pill) return;
  pill.dataset.state = state.status;
  pill.textContent = STATUS_TEXT[state.status] || '';
  pill.title = state.detail || (state.status === 'live' ? 'Updates arrive as they happen' : '');
  pill.hidden = state.status === 'off';
}

live.onStatus((state) => {
  drawStatus(state);
  if (state.status === 'unavailable' || (state.status === 'offline' && state.detail)) {
    banner.textContent = state.status === 'unavailable' ? `Real-time is unavailable. ${state.detail}` : state.detail;
    banner.hidden = false;
  } else if (state.status === 'reconnecting') {
    banner.textContent = 'Connection lost. Reconnecting… what you miss meanwhile will be shown when it is back.';
    banner.hidden = false;
  } else {
    banner.hidden = true;
  }
});

function navLink(slug, page, label, active) {
  return h('a', { href: `#/org/${encodeURIComponent(slug)}/${page}`, class: active ? 'active' : null, 'aria-current': active ? 'page' : null }, label);
}

/** The search box: words and filters (from:me in:Sales type:comment …) open the results view. */
function searchBox(slug, page) {
  const input = h('input', { type: 'search', id: 'search-q', name: 'q', placeholder: 'Search', 'aria-label': 'Search posts, messages and comments',
    value: page === 'search' ? parseHash().query.get('q') || '' : '' });
  const form = h('form', { class: 'search-box', role: 'search' }, input);
  form.addEventListener('submit', (e) => {
    e.preventDefault();
    const q = input.value.trim();
    if (q) go(`#/org/${encodeURIComponent(slug)}/search?q=${encodeURIComponent(q)}`);
  });
  return form;
}

function renderTop(page) {
  clear(top);
  if (!auth.token || !session.me) {
    top.hidden = true;
    return;
  }
  top.hidden = false;
  const org = session.org;
  const left = h('div', { class: 'topbar-left' }, h('a', { class: 'brand', href: '#/' }, 'Feeds'));
  if (session.me.orgs.length) {
    const select = h('select', { id: 'org-switch', 'aria-label': 'Switch org' },
      !org ? h('option', { value: '' }, 'Choose an org…') : null,
      session.me.orgs.map((m) => h('option', { value: m.org.slug, selected: org && m.org.slug === org.slug }, switcherLabel(m, org?.slug))));
    // Switching orgs needs no new sign-in; it opens a connection for the other org (F-ORG-6).
    select.addEventListener('change', () => { if (select.value) go(`#/org/${encodeURIComponent(select.value)}/feed`); });
    left.append(select);
  }
  const nav = h('nav', { class: 'topnav', 'aria-label': 'Main' });
  if (org) {
    nav.append(
      navLink(org.slug, 'feed', 'Feed', page === 'feed' || page === 'post'),
      navLink(org.slug, 'groups', 'Groups', page === 'groups' || page === 'group'),
      navLink(org.slug, 'saved', 'Saved', page === 'saved'),
      navLink(org.slug, 'records', 'Records', page === 'records' || page === 'record'),
      navLink(org.slug, 'rules', 'Rules', page === 'rules'),
      org.isAdmin ? navLink(org.slug, 'admin', 'Admin', page === 'admin') : '',
    );
  }
  const invites = session.me.invitations.length;
  const right = h('div', { class: 'topbar-right' },
    org ? searchBox(org.slug, page) : null,
    h('span', { id: 'live-status', class: 'live', hidden: true }),
    org ? h('a', { id: 'bell', class: ['bell', page === 'notifications' && 'active'], href: `#/org/${encodeURIComponent(org.slug)}/notifications`, 'aria-label': 'Notifications' },
      icon('bell'), h('span', { id: 'bell-count', class: 'count', hidden: true }, '0')) : null,
    h('a', { href: '#/orgs', class: 'orgs-link' }, 'Your orgs', invites ? h('span', { class: 'count', title: 'Pending invitations' }, String(invites)) : null),
    h('span', { class: 'me', title: session.me.user.email }, session.me.user.name),
    h('button', { type: 'button', class: 'link', onclick: signOut }, 'Sign out'));
  top.append(left, nav, right);
  setUnread(unread);
  drawStatus(live.state);
}

async function signOut() {
  await forgetPush().catch(() => { /* signing out goes on whatever happens to push */ });
  // The request takes the token with it before this side forgets it.
  api.post('/auth/signout').catch(() => { /* signed out on this side anyway */ });
  signedOut();
}

function signedOut() {
  unsubscribeBrowser().catch(() => { /* nothing to unsubscribe, or the browser refused */ });
  auth.token = null;
  session.clear();
  live.disconnect();
  unread = 0;
  go('#/signin');
}

whenSignedOut(() => {
  toast('Your sign-in has ended. Please sign in again.', 'error');
  signedOut();
});

watchOrgCounts();
session.onChange(() => renderTop(parseHash().parts[2] || (session.org ? 'feed' : undefined)));
window.addEventListener('hashchange', route);
route();
