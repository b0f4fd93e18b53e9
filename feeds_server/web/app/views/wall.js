// The feed wall (F-FEED-1, F-FEED-2): composer, filters by module and time period, the live feed;
// and the page of one post (where emailed links lead).

import { api } from '../api.js';
import { composer } from '../composer.js';
import { field, h, uid } from '../dom.js';
import { feedList } from '../feedlist.js';
import { addComment, removeComment, renderItem } from '../items.js';
import * as live from '../live.js';
import { session } from '../session.js';

const COMMON_MODULES = ['Leads', 'Contacts', 'Accounts', 'Deals'];

const PERIODS = [
  ['any', 'Any time'],
  ['today', 'Today'],
  ['7', 'Last 7 days'],
  ['30', 'Last 30 days'],
  ['custom', 'Between dates…'],
];

function startOfDay(date) {
  const d = new Date(date);
  d.setHours(0, 0, 0, 0);
  return d;
}

/** The {from, to} of a period choice, as instants with an offset (the API needs one). */
export function periodBounds(choice, fromDate, toDate) {
  if (choice === 'today') return { from: startOfDay(new Date()).toISOString() };
  if (choice === '7' || choice === '30') {
    const d = startOfDay(new Date());
    d.setDate(d.getDate() - Number(choice) + 1);
    return { from: d.toISOString() };
  }
  if (choice === 'custom') {
    const out = {};
    if (fromDate) out.from = new Date(`${fromDate}T00:00:00`).toISOString();
    if (toDate) {
      const end = new Date(`${toDate}T00:00:00`);
      end.setDate(end.getDate() + 1); // the whole last day
      out.to = end.toISOString();
    }
    return out;
  }
  return {};
}

async function moduleNames() {
  const names = new Set(COMMON_MODULES);
  if (session.org.isAdmin) {
    try {
      for (const m of (await api.get(session.orgPath('/feed-modules'))).modules) if (m.enabled) names.add(m.module);
    } catch { /* the common ones will do */ }
  }
  return [...names].sort();
}

export async function renderWall(main, { scope }) {
  const filters = { module: '', period: 'any', from: '', to: '' };
  const listId = uid('modules');
  const moduleInput = h('input', { type: 'text', list: listId, placeholder: 'All modules', autocomplete: 'off', class: 'module-filter' });
  const datalist = h('datalist', { id: listId });
  const period = h('select', { class: 'period-filter' }, PERIODS.map(([value, label]) => h('option', { value }, label)));
  const fromInput = h('input', { type: 'date' });
  const toInput = h('input', { type: 'date' });
  const custom = h('div', { class: 'row custom-period', hidden: true }, field('From', fromInput), field('To', toInput));
  const clearButton = h('button', { type: 'button', class: 'link small', hidden: true }, 'Clear filters');

  const bounds = () => periodBounds(filters.period, filters.from, filters.to);
  const feed = feedList({
    scope,
    emptyText: 'Nothing here yet. Post the first update!',
    pinPlace: null,
    fetchPage: (cursor) => api.get(session.orgPath('/feed'), { module: filters.module, ...bounds(), cursor }),
    accepts: (post) => {
      if (filters.module && post.module !== filters.module) return false;
      const { to } = bounds();
      return !to || new Date(post.created_at) < new Date(to);
    },
  });

  function apply() {
    filters.module = moduleInput.value.trim();
    filters.period = period.value;
    filters.from = fromInput.value;
    filters.to = toInput.value;
    custom.hidden = filters.period !== 'custom';
    clearButton.hidden = !filters.module && filters.period === 'any';
    feed.reload();
  }

  let typing = null;
  moduleInput.addEventListener('input', () => {
    clearTimeout(typing);
    typing = setTimeout(apply, 300);
  });
  for (const input of [period, fromInput, toInput]) input.addEventListener('change', apply);
  clearButton.addEventListener('click', () => {
    moduleInput.value = '';
    period.value = 'any';
    fromInput.value = toInput.value = '';
    apply();
  });

  const filterBar = h('form', { class: 'filters', role: 'search', 'aria-label': 'Filter the feed', onsubmit: (e) => { e.preventDefault(); apply(); } },
    field('Module', moduleInput), datalist, field('Period', period), custom, clearButton);

  main.append(
    h('div', { class: 'page-head' }, h('h1', {}, 'Feed'), h('span', { class: 'muted' }, session.org.name)),
    composer({ onPosted: (post) => feed.prepend(post) }),
    filterBar,
    feed.el);
  moduleNames().then((names) => datalist.replaceChildren(...names.map((n) => h('option', { value: n }))));
  await feed.reload();
}

export async function renderPost(main, { id, scope }) {
  const postId = Number(id);
  const { post } = await api.get(session.orgPath(`/posts/${postId}`));
  const holder = h('div', { class: 'feed single' }, renderItem(post, { expanded: true }));
  main.append(h('div', { class: 'page-head' }, h('h1', {}, 'Post'), h('a', { href: `#/org/${encodeURIComponent(session.org.slug)}/feed` }, '← Back to the feed')), holder);
  scope.add(live.onEvent((data) => {
    const p = data.payload;
    if (data.type === 'post.deleted' && p.post_id === postId) {
      holder.replaceChildren(h('p', { class: 'panel muted' }, 'This post was deleted.'));
    } else if (data.type === 'comment.created' && p.post_id === postId) {
      addComment(postId, p.comment);
    } else if (data.type === 'comment.deleted' && p.post_id === postId) {
      removeComment(postId, p.comment_id);
    }
  }));
}
