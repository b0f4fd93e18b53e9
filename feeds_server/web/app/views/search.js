// Search results: the hits of the query typed in the top bar's search box, best first, each with
// its excerpt (matched words marked), its type and a link to its post. Filters are typed in the
// query itself (from:me in:Sales type:comment has:file before:2026-03-01, docs/api.md "Search").

import { api } from '../api.js';
import { h, timeAgo } from '../dom.js';
import { session } from '../session.js';

const TYPES = { status: 'Post', comment: 'Comment', message: 'Private message', record: 'Record update' };

/** The excerpt's parts as text nodes, the matched words in <mark>: never parsed as HTML. */
function excerpt(parts) {
  return h('p', { class: 'search-excerpt' }, parts.map((p) => (p.hit ? h('mark', {}, p.text) : p.text)));
}

function hit(item, slug) {
  const shown = item.comment || item.post;
  const where = item.post.group ? ` in ${item.post.group.name}` : item.post.module ? ` · ${item.post.module}` : '';
  return h('li', { class: 'search-hit', dataset: { type: item.type, postId: String(item.post.id) } },
    h('div', { class: 'search-meta' },
      h('span', { class: 'search-type' }, TYPES[item.type] || item.type),
      h('span', {}, (shown.author ? shown.author.name : 'CRM') + where),
      h('time', { datetime: shown.created_at }, timeAgo(shown.created_at))),
    h('a', { class: 'search-link', href: `#/org/${encodeURIComponent(slug)}/post/${item.post.id}` }, excerpt(item.excerpt)));
}

export async function renderSearch(main, { slug, query }) {
  const q = (query.get('q') || '').trim();
  const list = h('ol', { class: 'search-hits', 'aria-live': 'polite' });
  const more = h('button', { type: 'button', class: 'secondary', hidden: true }, 'More results');
  const status = h('p', { class: 'muted' });
  main.append(
    h('div', { class: 'page-head' }, h('h1', {}, 'Search'), q ? h('span', { class: 'muted' }, `Results for ${q}`) : null),
    h('p', { class: 'hint' }, 'Words match in English and French, accents ignored. "Exact phrases" in quotes. Filters: from:me in:Group module:Deals type:comment has:file before:2026-03-01 after:2026-01-01.'),
    status, list, more);
  if (!q) {
    status.textContent = 'Type words or filters in the search box above.';
    return;
  }
  let cursor = null;
  async function load() {
    more.disabled = true;
    try {
      const page = await api.get(session.orgPath('/search'), { q, cursor });
      for (const item of page.items) list.append(hit(item, slug));
      cursor = page.next_cursor;
      more.hidden = !cursor;
      status.textContent = list.children.length ? '' : 'Nothing found.';
    } catch (err) {
      status.textContent = err.message;
      status.classList.add('error');
    } finally {
      more.disabled = false;
    }
  }
  more.addEventListener('click', load);
  await load();
}
