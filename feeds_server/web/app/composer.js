// Writing: the post composer and the comment box. Mentions are picked from a list and sent as
// structured tokens (`@[user:ID]`, `@[role:ID]`, `@[group:ID]`, F-POST-3); the text shows names.
// The length (code points, F-POST-2) and attachments (F-POST-7) are checked before anything is sent,
// with the server's own numbers (/app/limits.js); when the server still refuses, its message shows.

import { api } from './api.js';
import { errorBox, field, formatBytes, formatNumber, h, uid } from './dom.js';
import { MAX_FILES_PER_POST, MAX_FILES_TOTAL_BYTES, MAX_FILE_BYTES, MAX_POST_CHARS } from './limits.js';
import { session } from './session.js';
import { attachSuggest } from './suggest.js';

/** Characters as the server counts them: Unicode code points. */
export function codePoints(text) {
  let n = 0;
  for (const _ of text) n += 1; // eslint-disable-line no-unused-vars
  return n;
}

/**
 * The server's refusal as the author should read it. A mention of people outside the message's
 * audience (422 `mention_outside_audience`) names them: a mention never lets anyone see a message.
 */
export function refusal(err) {
  const users = err?.code === 'mention_outside_audience' ? err.details?.users || [] : [];
  if (!users.length) return err;
  const names = new Intl.ListFormat('en', { type: 'conjunction' }).format(users.map((u) => u.name));
  const verb = users.length === 1 ? 'is' : 'are';
  return {
    message: `${names} ${verb} not among the people who can see this message, and a mention does not let them in: `
      + 'remove the mention, or add them to the group first.',
  };
}

/** @mention autocomplete on a textarea; `body()` is the text with names turned into tokens. */
export function mentionable(textarea) {
  let chosen = [];

  function trigger() {
    const before = textarea.value.slice(0, textarea.selectionStart);
    const match = /(^|[\s(])@([^\s@[\]]{0,40}(?: [^\s@[\]]{0,40})?)$/u.exec(before);
    return match ? { text: match[2], start: before.length - match[2].length - 1 } : null;
  }

  async function fetch(text) {
    const needle = text.toLowerCase();
    const [users, roles, groups] = await Promise.all([
      session.searchMembers(text, 6),
      session.roles().catch(() => []),
      session.groups().catch(() => []),
    ]);
    const byName = (item) => item.name.toLowerCase().includes(needle);
    return [
      ...users.map((u) => ({ label: u.name, kind: 'user', detail: 'person', value: u.id })),
      ...groups.filter(byName).slice(0, 4).map((g) => ({ label: g.name, kind: 'group', detail: 'group', value: g.id })),
      ...roles.filter(byName).slice(0, 4).map((r) => ({ label: r.name, kind: 'role', detail: 'role', value: r.id })),
    ];
  }

  function pick(option) {
    const at = trigger();
    if (!at) return;
    const token = `@[${option.kind}:${option.value}]`;
    let label = `@${option.label}`;
    if (chosen.some((c) => c.label === label && c.token !== token)) label = `@${option.label} (${option.kind} ${option.value})`;
    if (!chosen.some((c) => c.label === label)) chosen.push({ label, token });
    const value = textarea.value;
    const end = textarea.selectionStart;
    textarea.value = `${value.slice(0, at.start)}${label} ${value.slice(end)}`;
    const caret = at.start + label.length + 1;
    textarea.setSelectionRange(caret, caret);
    textarea.dispatchEvent(new Event('input', { bubbles: true }));
  }

  const suggest = attachSuggest(textarea, {
    query: () => trigger()?.text ?? null,
    fetch,
    pick,
  });

  return {
    list: suggest.list,
    body() {
      let text = textarea.value;
      // Longest names first, so "@Maya Patel" is not taken for "@Maya".
      for (const { label, token } of [...chosen].sort((a, b) => b.label.length - a.label.length)) {
        text = text.split(label).join(token);
      }
      return text;
    },
    reset() {
      chosen = [];
      textarea.value = '';
      textarea.dispatchEvent(new Event('input', { bubbles: true }));
    },
  };
}

/** "12 / 31,999": the length of what will be sent, against the limit. */
function counter(getBody) {
  const el = h('span', { class: 'counter', 'aria-live': 'polite' });
  el.update = () => {
    const n = codePoints(getBody());
    el.textContent = `${formatNumber(n)} / ${formatNumber(MAX_POST_CHARS)}`;
    el.classList.toggle('over', n > MAX_POST_CHARS);
    el.title = n > MAX_POST_CHARS ? `A message must be shorter than ${formatNumber(MAX_POST_CHARS + 1)} characters.` : '';
    return n;
  };
  return el;
}

/** The problem with a set of files, or null when the server would take them. */
export function checkFiles(files) {
  if (files.length > MAX_FILES_PER_POST) return `At most ${MAX_FILES_PER_POST} files per message; you chose ${files.length}.`;
  const big = files.find((f) => f.size > MAX_FILE_BYTES);
  if (big) {
    return `“${big.name}” is too large: each file may be at most ${formatBytes(MAX_FILE_BYTES)} `
      + `(${formatNumber(MAX_FILE_BYTES)} bytes); it has ${formatNumber(big.size)}.`;
  }
  const total = files.reduce((sum, f) => sum + f.size, 0);
  if (total > MAX_FILES_TOTAL_BYTES) {
    return `The files are too large together: a message may carry at most ${formatBytes(MAX_FILES_TOTAL_BYTES)} `
      + `(${formatNumber(MAX_FILES_TOTAL_BYTES)} bytes); these have ${formatNumber(total)}.`;
  }
  return null;
}

/**
 * The post composer. `groupId` fixes the audience to one group (the group page); without it the
 * author picks: everyone, one of their groups, privately to a group or to a colleague.
 */
export function composer({ groupId = null, groupName = '', onPosted }) {
  const textarea = h('textarea', { id: uid('compose'), rows: 3, placeholder: 'Share an update… type @ to mention someone, a role or a group', class: 'compose-text' });
  const mentions = mentionable(textarea);
  const count = counter(() => mentions.body());
  const error = errorBox();
  let files = [];
  const fileInput = h('input', { type: 'file', multiple: true, class: 'file-input', id: uid('files') });
  const fileLabel = h('label', { for: fileInput.id, class: 'button small' }, 'Attach files');
  const fileList = h('ul', { class: 'file-list' });
  const fileError = h('p', { class: 'error', role: 'alert', hidden: true });
  const audience = h('select', { class: 'audience', id: uid('audience') });
  const recipientInput = h('input', { type: 'text', placeholder: 'Type a name', autocomplete: 'off' });
  const recipientField = field('Recipient', recipientInput);
  recipientField.hidden = true;
  let recipient = null;
  const submit = h('button', { type: 'submit', class: 'primary' }, 'Post');

  const recipientSuggest = attachSuggest(recipientInput, {
    query: () => (recipient && recipientInput.value === recipient.label ? null : recipientInput.value.trim()),
    fetch: async (text) => (await session.searchMembers(text, 8))
      .filter((u) => u.id !== session.org.userId)
      .map((u) => ({ label: u.name, kind: 'user', detail: u.email, value: u.id })),
    pick: (option) => {
      recipient = option;
      recipientInput.value = option.label;
      refresh();
    },
  });
  recipientField.append(recipientSuggest.list);
  recipientInput.addEventListener('input', () => {
    if (recipient && recipientInput.value !== recipient.label) recipient = null;
    refresh();
  });

  async function fillAudience() {
    audience.append(h('option', { value: 'org' }, `Everyone in ${session.org.name}`));
    const mine = (await session.groups().catch(() => [])).filter((g) => g.is_member);
    for (const g of mine) audience.append(h('option', { value: `group:${g.id}` }, `Group: ${g.name}`));
    for (const g of mine) audience.append(h('option', { value: `private-group:${g.id}` }, `Private to group: ${g.name}`));
    audience.append(h('option', { value: 'person' }, 'Private message to a colleague…'));
  }

  function renderFiles() {
    fileList.replaceChildren(...files.map((f, i) => h('li', {},
      h('span', {}, `${f.name} (${formatBytes(f.size)})`), ' ',
      h('button', { type: 'button', class: 'link small', 'aria-label': `Remove ${f.name}`, onclick: () => { files.splice(i, 1); renderFiles(); refresh(); } }, 'Remove'))));
    const problem = checkFiles(files);
    fileError.textContent = problem || '';
    fileError.hidden = !problem;
  }

  fileInput.addEventListener('change', () => {
    files = files.concat([...fileInput.files]);
    fileInput.value = '';
    renderFiles();
    refresh();
  });

  function refresh() {
    const n = count.update();
    const body = mentions.body();
    const needsRecipient = audience.value === 'person' && !recipient;
    recipientField.hidden = audience.value !== 'person';
    submit.disabled = !body.trim() || n > MAX_POST_CHARS || Boolean(checkFiles(files)) || needsRecipient;
  }

  textarea.addEventListener('input', refresh);
  audience.addEventListener('change', refresh);

  const form = h('form', { class: 'composer panel', 'aria-label': 'New post' },
    h('label', { for: textarea.id, class: 'sr-only' }, 'Write a post'),
    textarea, mentions.list,
    recipientField,
    h('div', { class: 'file-row' }, fileInput, fileLabel,
      h('small', { class: 'muted' }, `Up to ${MAX_FILES_PER_POST} files, ${formatBytes(MAX_FILE_BYTES)} each, ${formatBytes(MAX_FILES_TOTAL_BYTES)} together`)),
    fileList, fileError, error,
    h('div', { class: 'compose-bar' },
      groupId ? h('span', { class: 'muted' }, `Posting to ${groupName}`) : h('span', {}, h('label', { for: audience.id, class: 'sr-only' }, 'Audience'), audience),
      h('span', { class: 'spacer' }),
      count, submit));

  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    error.show(null);
    const message = { body: mentions.body() };
    if (groupId) message.group_id = groupId;
    const choice = audience.value;
    if (!groupId && choice.startsWith('group:')) message.group_id = Number(choice.slice(6));
    if (!groupId && choice.startsWith('private-group:')) {
      message.group_id = Number(choice.slice(14));
      message.private = true;
    }
    if (!groupId && choice === 'person') message.recipient_id = recipient.value;
    submit.disabled = true;
    try {
      let result;
      if (files.length) {
        const data = new FormData();
        data.append('message', JSON.stringify(message)); // a plain field: a file part here is refused
        for (const f of files) data.append('files', f, f.name);
        result = await api.upload(session.orgPath('/posts'), data);
      } else {
        result = await api.post(session.orgPath('/posts'), message);
      }
      mentions.reset();
      files = [];
      renderFiles();
      onPosted?.(result.post);
    } catch (err) {
      error.show(refusal(err));
    } finally {
      refresh();
    }
  });

  if (!groupId) fillAudience().then(refresh);
  refresh();
  return form;
}

/** The comment box under an item. */
export function commentBox(postId, onAdded) {
  const textarea = h('textarea', { id: uid('comment'), rows: 1, placeholder: 'Write a comment…', class: 'comment-text' });
  const mentions = mentionable(textarea);
  const count = counter(() => mentions.body());
  const error = errorBox();
  const submit = h('button', { type: 'submit', class: 'small' }, 'Send');
  const refresh = () => {
    const n = count.update();
    submit.disabled = !mentions.body().trim() || n > MAX_POST_CHARS;
    count.hidden = n < MAX_POST_CHARS * 0.9;
  };
  textarea.addEventListener('input', refresh);
  textarea.addEventListener('keydown', (event) => {
    if (event.key === 'Enter' && (event.ctrlKey || event.metaKey)) form.requestSubmit();
  });
  const form = h('form', { class: 'comment-form' },
    h('label', { for: textarea.id, class: 'sr-only' }, 'Comment'),
    textarea, mentions.list, count, submit, error);
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    error.show(null);
    submit.disabled = true;
    try {
      const { comment } = await api.post(session.orgPath(`/posts/${postId}/comments`), { body: mentions.body() });
      mentions.reset();
      onAdded(comment);
    } catch (err) {
      error.show(refusal(err));
    } finally {
      refresh();
    }
  });
  refresh();
  return { form, focus: () => textarea.focus() };
}
