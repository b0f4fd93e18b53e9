// The reader's saved items: posts they bookmarked and can still see, newest saved first. Saving or
// unsaving here or in another tab updates the list live.

import { api } from '../api.js';
import { h } from '../dom.js';
import { feedList } from '../feedlist.js';
import { removeItem } from '../items.js';
import { onSavedChange } from '../marks.js';
import { session } from '../session.js';

export async function renderSaved(main, { scope }) {
  const feed = feedList({
    scope,
    emptyText: 'Nothing saved yet. Use “Save” on any post to keep it here; only you see this list.',
    fetchPage: (cursor) => api.get(session.orgPath('/saved'), { cursor }),
    accepts: () => false,
  });
  scope.add(onSavedChange(async (postId, saved) => {
    if (!saved) {
      removeItem(postId);
      return;
    }
    try {
      const { post } = await api.get(session.orgPath(`/posts/${postId}`));
      feed.prepend(post);
    } catch { /* no longer visible: it is not listed */ }
  }));
  main.append(
    h('div', { class: 'page-head' }, h('h1', {}, 'Saved'), h('span', { class: 'muted' }, 'Only you see your saved items')),
    feed.el);
  await feed.reload();
}
