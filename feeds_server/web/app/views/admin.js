// Admin: the org-wide feed module preferences (F-FEED-5). Unticked modules vanish from every feed.

import { api } from '../api.js';
import { errorBox, h, toast, uid } from '../dom.js';
import { session } from '../session.js';

export async function renderAdmin(main) {
  if (!session.org.isAdmin) {
    main.append(h('p', { class: 'panel error' }, 'Only the org’s admins can open this page.'));
    return;
  }
  const { modules } = await api.get(session.orgPath('/feed-modules'));
  const boxes = new Map();
  const list = h('ul', { class: 'module-list' });
  const error = errorBox();
  const save = h('button', { type: 'submit', class: 'primary' }, 'Save');
  const newModule = h('input', { type: 'text', id: uid('module'), placeholder: 'e.g. Subscriptions', maxlength: 64 });

  function addRow(name, enabled) {
    const box = h('input', { type: 'checkbox', id: uid('mod'), checked: enabled });
    boxes.set(name, { box, was: enabled });
    list.append(h('li', {}, box, h('label', { for: box.id }, name)));
  }
  for (const m of modules) addRow(m.module, m.enabled);
  if (!modules.length) list.append(h('li', { class: 'muted' }, 'No module has reported records yet.'));

  const addButton = h('button', { type: 'button', class: 'small' }, 'Add');
  addButton.addEventListener('click', () => {
    const name = newModule.value.trim();
    if (!name || boxes.has(name)) return;
    addRow(name, true);
    newModule.value = '';
  });

  const form = h('form', { class: 'stack' },
    h('p', { class: 'muted' }, 'Updates of the ticked modules appear in feeds. Unticking a module hides its updates from everyone, live and in history; ticking it again shows them again.'),
    list,
    h('div', { class: 'row' }, h('label', { for: newModule.id }, 'Another module'), newModule, addButton),
    error, save);
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    error.show(null);
    const changes = {};
    for (const [name, { box, was }] of boxes) if (box.checked !== was) changes[name] = box.checked;
    if (!Object.keys(changes).length) {
      toast('Nothing changed.');
      return;
    }
    save.disabled = true;
    try {
      const result = await api.put(session.orgPath('/feed-modules'), { modules: changes });
      for (const m of result.modules) {
        const row = boxes.get(m.module);
        if (row) row.was = m.enabled;
      }
      toast('Feed modules saved.');
    } catch (err) {
      error.show(err);
    } finally {
      save.disabled = false;
    }
  });

  main.append(
    h('div', { class: 'page-head' }, h('h1', {}, 'Admin'), h('span', { class: 'muted' }, session.org.name)),
    h('section', { class: 'panel' }, h('h2', {}, 'Feed modules'), form),
    h('section', { class: 'panel' }, h('h2', {}, 'Auto-follow rules'),
      h('p', {}, 'Rules, their criteria and the preview of what they match are on the ',
        h('a', { href: `#/org/${encodeURIComponent(session.org.slug)}/rules` }, 'Rules page'), '. As an admin you may add more followers to a rule than yourself.')));
}
