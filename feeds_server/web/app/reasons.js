// Why an item or a notification reached the reader (docs/notifications.md, "Why you got it"): the
// server sends a structured reason; this words it and offers the one "stop" action that matches it —
// unfollow the record, mute the record, group or thread, or edit the rule that made the follow.
// Names come from the server and go in as text only.

import { api } from './api.js';
import { h, toast } from './dom.js';
import { mute } from './mutes.js';
import { session } from './session.js';

const quoted = (name) => `“${name}”`;

/**
 * The reference an action needs, from the reason first, else from what it is shown on: a record
 * item's or record notification's `data.record`, a post's group, the post itself.
 */
function refs(reason, { record, group, postId } = {}) {
  return {
    recordId: reason.record_id ?? record?.id ?? null,
    recordName: reason.record_name ?? record?.name ?? null,
    groupId: reason.group_id ?? group?.id ?? null,
    groupName: reason.group_name ?? group?.name ?? null,
    postId: postId ?? null,
  };
}

/** The reason in a sentence ("Because you follow “Deal X” through rule “High-value deals”"). */
export function reasonText(reason, context = {}) {
  if (!reason || !reason.code) return '';
  const r = refs(reason, context);
  const record = r.recordName ? quoted(r.recordName) : 'this record';
  const group = r.groupName ? quoted(r.groupName) : 'a group';
  switch (reason.code) {
    case 'mentioned':
      return 'You were mentioned';
    case 'mentioned_via_role':
      return reason.role_name ? `You were mentioned through the ${reason.role_name} role` : 'You were mentioned through your role';
    case 'mentioned_via_group':
      return `You were mentioned through group ${group}`;
    case 'owner':
      return `Because you own ${record}`;
    case 'follower_manual':
      return `Because you follow ${record}`;
    case 'follower_rule':
      return reason.rule_name ? `Because you follow ${record} through rule ${quoted(reason.rule_name)}` : `Because a rule makes you follow ${record}`;
    case 'group_member':
      return `You're in group ${group}`;
    case 'participant':
      return "You're part of this conversation";
    default:
      return '';
  }
}

/**
 * The stop actions of a reason: {label, title, run} (a request, then `done` is said) or {label, href}.
 * A direct mention always gets through, so it offers none (the settings page turns its channels off).
 */
export function stopActions(reason, context = {}) {
  if (!reason || !reason.code) return [];
  const r = refs(reason, context);
  const slug = encodeURIComponent(session.org.slug);
  const muteRecord = r.recordId && {
    label: 'Mute record', title: `Mute ${r.recordName ? quoted(r.recordName) : 'this record'}: no more notifications of its changes`,
    run: () => mute('record', r.recordId), done: 'Record muted.',
  };
  const muteGroup = r.groupId && {
    label: 'Mute group', title: `Mute group ${r.groupName ? quoted(r.groupName) : ''}: no notifications of its posts or mentions through it`,
    run: () => mute('group', r.groupId), done: 'Group muted.',
  };
  const muteThread = r.postId && {
    label: 'Mute thread', title: 'Mute this thread: no notifications of its comments, except when you are mentioned by name',
    run: () => mute('post', r.postId), done: 'Thread muted.',
  };
  switch (reason.code) {
    case 'mentioned':
      return []; // a direct mention always gets through: no mute stops it
    case 'mentioned_via_role':
    case 'participant':
      return [muteThread].filter(Boolean);
    case 'mentioned_via_group':
    case 'group_member':
      return [muteGroup].filter(Boolean);
    case 'owner':
      return [muteRecord].filter(Boolean);
    case 'follower_manual':
      return [r.recordId && {
        label: 'Unfollow', title: `Unfollow ${r.recordName ? quoted(r.recordName) : 'this record'}`,
        run: () => api.del(session.orgPath(`/records/${r.recordId}/follow`)), done: 'Unfollowed.',
      }].filter(Boolean);
    case 'follower_rule':
      return [
        reason.rule_id && { label: 'Edit the rule', title: `Edit rule ${quoted(reason.rule_name || '')}`, href: `#/org/${slug}/rules/${encodeURIComponent(reason.rule_id)}` },
        muteRecord,
      ].filter(Boolean);
    default:
      return [];
  }
}

function actionControl(action, line) {
  if (action.href) return h('a', { href: action.href, class: 'small', title: action.title || null }, action.label);
  const button = h('button', { type: 'button', class: 'link small', title: action.title || null }, action.label);
  button.addEventListener('click', async (event) => {
    event.preventDefault();
    event.stopPropagation();
    button.disabled = true;
    try {
      await action.run();
      const said = h('span', { class: 'stopped', role: 'status' }, action.done);
      for (const el of line.querySelectorAll('.stop')) el.remove();
      line.append(' · ', said);
    } catch (err) {
      button.disabled = false;
      toast(err.message, 'error');
    }
  });
  return button;
}

/**
 * `<p class="reason">` with the sentence and its stop actions, or null when there is no reason
 * (an org-wide post, or an item that arrived live: its reason is per reader and comes with the feed).
 */
export function reasonLine(reason, context = {}) {
  const text = reasonText(reason, context);
  if (!text) return null;
  const line = h('p', { class: 'reason', dataset: { reason: reason.code } }, h('span', { class: 'reason-text' }, text));
  for (const action of stopActions(reason, context)) line.append(h('span', { class: 'stop' }, ' · ', actionControl(action, line)));
  return line;
}
