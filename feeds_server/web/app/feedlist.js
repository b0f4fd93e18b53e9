// A feed on a page (the wall, a group page): pages by cursor as the reader scrolls (F-FEED-2), and
// live changes from the connection: new items on top, deletions and comments where they belong.

import { h } from './dom.js';
import { addComment, removeComment, removeItem, renderItem } from './items.js';
import * as live from './live.js';
import { pinnedSection } from './marks.js';

/**
 * feedList({fetchPage, accepts, emptyText, scope}):
 *   fetchPage(cursor) → Promise<{items, next_cursor}>
 *   accepts(post)     → whether a post that arrives live belongs in this list
 *   pinPlace          → null: show the org feed's pinned posts on top; a group id: that group's
 *                       (from the first page's `pinned`); left out: no pinned posts
 */
export function feedList({ fetchPage, accepts, emptyText, scope, pinPlace }) {
  const list = h('div', { class: 'feed', 'aria-live': 'polite', 'aria-busy': 'false' });
  const status = h('p', { class: 'feed-end muted' });
  const more = h('button', { type: 'button', class: 'load-more', hidden: true }, 'Load older posts');
  const sentinel = h('div', { class: 'sentinel', 'aria-hidden': 'true' });
  const pins = pinPlace === undefined ? null : pinnedSection(pinPlace, scope);
  const el = h('section', { class: 'feed-wrap', 'aria-label': 'Feed' }, pins?.el, list, more, status, sentinel);
  let cursor = null;
  let done = false;
  let loading = false;
  let generation = 0;

  const has = (id) => list.querySelector(`:scope > [data-post-id="${id}"]`) !== null;

  async function loadMore() {
    if (loading || done) return;
    loading = true;
    const mine = generation;
    list.setAttribute('aria-busy', 'true');
    status.textContent = 'Loading…';
    try {
      const page = await fetchPage(cursor);
      if (mine !== generation) return;
      if (pins && page.pinned) pins.fill(page.pinned);
      for (const post of page.items) if (!has(post.id)) list.append(renderItem(post));
      cursor = page.next_cursor;
      done = !cursor;
      status.textContent = done ? (list.children.length ? 'You are all caught up.' : emptyText) : '';
      more.hidden = done;
    } catch (err) {
      if (mine !== generation) return;
      status.textContent = err.message;
      more.hidden = false;
    } finally {
      if (mine === generation) {
        loading = false;
        list.setAttribute('aria-busy', 'false');
      }
    }
    // A tall screen may show the sentinel still: keep filling it.
    if (!done && isVisible(sentinel)) loadMore();
  }

  function reload() {
    generation += 1;
    list.replaceChildren();
    cursor = null;
    done = false;
    loading = false;
    status.textContent = '';
    return loadMore();
  }

  /** Show a post made here at once, without waiting for the live copy (which then changes nothing). */
  function prepend(post, missed = false) {
    if (has(post.id)) return;
    list.prepend(renderItem(post, { missed }));
    if (status.textContent === emptyText) status.textContent = 'You are all caught up.';
  }

  more.addEventListener('click', loadMore);
  const observer = new IntersectionObserver((entries) => {
    if (entries.some((e) => e.isIntersecting)) loadMore();
  }, { rootMargin: '400px' });
  observer.observe(sentinel);
  scope.add(() => observer.disconnect());

  scope.add(live.onEvent((data, meta) => {
    const p = data.payload;
    switch (data.type) {
      case 'post.created':
        if (accepts(p.post)) prepend(p.post, meta.missed);
        break;
      case 'post.deleted':
        removeItem(p.post_id);
        break;
      case 'comment.created':
        addComment(p.post_id, p.comment);
        if (meta.missed) document.querySelector(`[data-comment-id="${p.comment.id}"]`)?.classList.add('missed');
        break;
      case 'comment.deleted':
        removeComment(p.post_id, p.comment_id);
        break;
      case 'feed_modules.updated':
      case 'live.reload':
        reload();
        break;
      default:
    }
  }));

  return { el, reload, prepend };
}

function isVisible(el) {
  const rect = el.getBoundingClientRect();
  return rect.top < window.innerHeight + 400;
}
