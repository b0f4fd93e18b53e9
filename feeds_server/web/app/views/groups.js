// Groups: the org's groups, a new group (with `manage_groups`), and a group's page with its members
// and its feed (F-FEED-3, F-POST-4).

import { api } from '../api.js';
import { composer } from '../composer.js';
import { errorBox, field, h, toast, uid } from '../dom.js';
import { feedList } from '../feedlist.js';
import * as live from '../live.js';
import { session } from '../session.js';
import { peoplePicker } from '../suggest.js';

const orgHref = (path) => `#/org/${encodeURIComponent(session.org.slug)}${path}`;

export async function renderGroups(main, { scope, go }) {
  const list = h('ul', { class: 'group-list' });
  main.append(h('div', { class: 'page-head' }, h('h1', {}, 'Groups')), h('section', { class: 'panel' }, list));

  async function fill() {
    const groups = await session.groups(true);
    list.replaceChildren(...groups.map((g) => h('li', { class: 'group-row' },
      h('div', {},
        g.is_member ? h('a', { href: orgHref(`/group/${g.id}`), class: 'group-name' }, g.name) : h('span', { class: 'group-name' }, g.name),
        g.is_member ? h('span', { class: 'badge' }, 'Member') : null,
        g.description ? h('div', { class: 'muted small' }, g.description) : null))));
    if (!groups.length) list.append(h('li', { class: 'muted' }, 'No groups yet.'));
  }
  await fill();
  scope.add(live.onEvent((data) => {
    if (data.type.startsWith('group.') || data.type === 'live.reload') fill().catch(() => {});
  }));
  if (session.org.canManageGroups) main.append(createGroupForm(go));
}

function createGroupForm(go) {
  const name = h('input', { type: 'text', required: true, maxlength: 200 });
  const description = h('textarea', { rows: 2, maxlength: 2000 });
  const roleSelect = h('select', { multiple: true, size: 5 });
  const subordinates = h('input', { type: 'checkbox', id: uid('sub') });
  const people = peoplePicker('People', (text) => session.searchMembers(text, 8));
  const error = errorBox();

  session.roles().then((roles) => roleSelect.replaceChildren(...roles.map((r) => h('option', { value: r.id }, r.name)))).catch(() => {});

  const submit = h('button', { type: 'submit', class: 'primary' }, 'Create group');
  const form = h('form', { class: 'stack' },
    field('Name', name), field('Description', description),
    field('Roles', roleSelect, 'Everyone holding these roles is a member.'),
    h('div', { class: 'field check' }, subordinates, h('label', { for: subordinates.id }, 'Include the roles below them')),
    people.el,
    error, submit);
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    error.show(null);
    const roleKind = subordinates.checked ? 'role_and_subordinates' : 'role';
    const sources = [
      ...[...roleSelect.selectedOptions].map((o) => ({ type: roleKind, id: Number(o.value) })),
      ...people.ids().map((id) => ({ type: 'user', id })),
    ];
    submit.disabled = true;
    try {
      const { group } = await api.post(session.orgPath('/groups'), { name: name.value.trim(), description: description.value, sources });
      await session.groups(true);
      go(orgHref(`/group/${group.id}`));
    } catch (err) {
      error.show(err);
    } finally {
      submit.disabled = false;
    }
  });
  return h('section', { class: 'panel' }, h('h2', {}, 'New group'), form);
}

export async function renderGroup(main, { id, scope }) {
  const groupId = Number(id);
  const head = h('div', { class: 'group-head' });
  const members = h('ul', { class: 'members', 'aria-label': 'Members' });
  const side = h('aside', { class: 'panel side' }, h('h2', {}, 'Members'), members);

  async function fillHead() {
    const { group, members: people } = await api.get(session.orgPath(`/groups/${groupId}`));
    head.replaceChildren(
      h('h1', {}, group.name),
      group.description ? h('p', { class: 'muted' }, group.description) : null);
    members.replaceChildren(...people.map((u) => h('li', {}, h('span', {}, u.name), h('span', { class: 'muted small' }, ` ${u.email || ''}`))));
    side.querySelector('h2').textContent = `Members (${people.length})`;
    return group;
  }

  const group = await fillHead();
  const feed = feedList({
    scope,
    emptyText: 'No posts in this group yet.',
    pinPlace: groupId,
    fetchPage: (cursor) => api.get(session.orgPath(`/groups/${groupId}/feed`), { cursor }),
    accepts: (post) => post.group?.id === groupId,
  });
  main.append(
    h('div', { class: 'with-side' },
      h('div', { class: 'main-col' }, head, composer({ groupId, groupName: group.name, onPosted: (post) => feed.prepend(post) }), feed.el),
      side));
  scope.add(live.onEvent((data) => {
    if (data.type === 'group.updated' && data.payload.group_id === groupId) fillHead().catch(() => {});
    if (data.type === 'group.deleted' && data.payload.group_id === groupId) {
      toast('This group was deleted.', 'error');
      main.replaceChildren(h('p', { class: 'panel' }, 'This group was deleted. ', h('a', { href: orgHref('/groups') }, 'Back to groups')));
    }
  }));
  await feed.reload();
}
