// Mutes (docs/notifications.md): a record, a group or a post's comment thread that no longer notifies
// the reader. The feed still shows everything; only notifications stop. The list names each target
// with the label the API gives, else by asking for it.

import { api } from './api.js';
import { h, timeAgo, toast } from './dom.js';
import { session } from './session.js';

const KIND_WORDS = { record: 'Record', group: 'Group', post: 'Thread' };

export function mute(kind, id) {
  return api.put(session.orgPath(`/mutes/${kind}/${encodeURIComponent(id)}`));
}

export function unmute(kind, id) {
  return api.del(session.orgPath(`/mutes/${kind}/${encodeURIComponent(id)}`));
}

export async function listMutes() {
  return (await api.get(session.orgPath('/mutes'))).mutes;
}

/** A mute as {kind, id, label, created_at}, whichever names the API gives its target. */
function normal(m) {
  return { kind: m.target_kind ?? m.kind, id: m.target_id ?? m.id, label: m.label ?? null, created_at: m.created_at };
}

const HREFS = { record: 'record', group: 'group', post: 'post' };

/** What to call a muted target, and where it lives; a target gone or hidden meanwhile keeps its id. */
async function describeTarget(m) {
  const slug = encodeURIComponent(session.org.slug);
  if (m.label) {
    const name = m.kind === 'post' ? `“${m.label}${m.label.length >= 80 ? '…' : ''}”` : m.label;
    return { name, href: HREFS[m.kind] ? `#/org/${slug}/${HREFS[m.kind]}/${m.id}` : null };
  }
  try {
    if (m.kind === 'record') {
      const { record } = await api.get(session.orgPath(`/records/${m.id}`));
      return { name: record.name, href: `#/org/${slug}/record/${m.id}` };
    }
    if (m.kind === 'group') {
      const group = (await session.groups()).find((g) => g.id === m.id);
      if (group) return { name: group.name, href: `#/org/${slug}/group/${m.id}` };
    }
    if (m.kind === 'post') {
      const { post } = await api.get(session.orgPath(`/posts/${m.id}`));
      const body = post.body.length > 80 ? `${post.body.slice(0, 80)}…` : post.body;
      return { name: `“${body}”`, href: `#/org/${slug}/post/${m.id}` };
    }
  } catch { /* deleted or no longer visible: named by its id below */ }
  return { name: `#${m.id}`, href: null };
}

/** The reader's mutes, each with Unmute; `reload()` reads them again. */
export function mutesPanel() {
  const list = h('ul', { class: 'mute-list', id: 'mute-list' });
  const empty = h('p', { class: 'muted', hidden: true }, 'Nothing is muted. Mute a record, a group or a thread from the line that says why a notification reached you.');
  const el = h('section', { class: 'panel', 'aria-labelledby': 'mutes-heading' },
    h('h2', { id: 'mutes-heading' }, 'Muted'), list, empty);

  async function row(raw) {
    const m = normal(raw);
    const { name, href } = await describeTarget(m);
    const kind = KIND_WORDS[m.kind] || m.kind;
    const label = `${kind}: ${name}`;
    const button = h('button', { type: 'button', class: 'small', 'aria-label': `Unmute ${label}` }, 'Unmute');
    const li = h('li', { class: 'mute-row', dataset: { muteKind: m.kind, muteId: String(m.id) } },
      h('div', {}, h('span', { class: 'badge' }, kind), ' ', href ? h('a', { href }, name) : h('span', {}, name),
        h('span', { class: 'muted small' }, ' · muted '), timeAgo(m.created_at)),
      button);
    button.addEventListener('click', async () => {
      button.disabled = true;
      try {
        await unmute(m.kind, m.id);
        li.remove();
        empty.hidden = list.children.length > 0;
        toast(`${label} is no longer muted.`);
      } catch (err) {
        button.disabled = false;
        toast(err.message, 'error');
      }
    });
    return li;
  }

  async function reload() {
    const mutes = await listMutes();
    const rows = await Promise.all(mutes.map(row));
    list.replaceChildren(...rows);
    empty.hidden = rows.length > 0;
  }

  return { el, reload };
}
