// Auto-follow rules (F-FOLLOW-4 … F-FOLLOW-7): the rules created by me and shared with me, and an
// editor with a criteria builder (rules/README.md) and a preview of what a rule would match.

import { api } from '../api.js';
import { confirmButton, errorBox, field, formatNumber, h, toast, uid } from '../dom.js';
import { MAX_RULES_PER_MODULE_PER_CREATOR } from '../limits.js';
import { session } from '../session.js';
import { peoplePicker } from '../suggest.js';

const TYPES = ['number', 'text', 'date', 'boolean', 'picklist'];
const OPS = {
  number: ['eq', 'neq', 'gt', 'gte', 'lt', 'lte', 'between', 'in', 'not_in', 'is_empty', 'is_not_empty'],
  text: ['eq', 'neq', 'contains', 'starts_with', 'ends_with', 'in', 'not_in', 'is_empty', 'is_not_empty'],
  date: ['eq', 'neq', 'gt', 'gte', 'lt', 'lte', 'between', 'in', 'not_in', 'is_empty', 'is_not_empty'],
  boolean: ['eq', 'neq', 'is_empty', 'is_not_empty'],
  picklist: ['eq', 'neq', 'in', 'not_in', 'is_empty', 'is_not_empty'],
};
const OP_LABELS = {
  eq: 'is', neq: 'is not', gt: 'greater than', gte: 'at least', lt: 'less than', lte: 'at most', between: 'between',
  in: 'is one of', not_in: 'is none of', contains: 'contains', starts_with: 'starts with', ends_with: 'ends with',
  is_empty: 'is empty', is_not_empty: 'is not empty',
};
const MODULES = ['Accounts', 'Contacts', 'Deals', 'Leads'];

// The editor's model: groups {kind:'group', mode:'and'|'or', negate, children} and conditions
// {kind:'cond', negate, field, type, op, value}; `not` becomes a flag on the node it wraps.
export function fromJson(json) {
  if (json && json.not !== undefined) {
    const node = fromJson(json.not);
    node.negate = !node.negate;
    return node;
  }
  if (json && (json.and || json.or)) {
    const mode = json.and ? 'and' : 'or';
    return { kind: 'group', mode, negate: false, children: json[mode].map(fromJson) };
  }
  return { kind: 'cond', negate: false, field: json?.field || '', type: json?.type || 'number', op: json?.op || 'gt', value: json?.value ?? '' };
}

function readValue(type, raw) {
  if (type === 'number') {
    const n = Number(raw);
    return raw === '' || Number.isNaN(n) ? raw : n;
  }
  if (type === 'boolean') return raw === true || raw === 'true';
  return raw;
}

export function toJson(node) {
  let out;
  if (node.kind === 'group') {
    out = { [node.mode]: node.children.map(toJson) };
  } else {
    out = { field: node.field.trim(), type: node.type, op: node.op };
    if (node.op === 'between') {
      const [low, high] = Array.isArray(node.value) ? node.value : ['', ''];
      out.value = [readValue(node.type, low), readValue(node.type, high)];
    } else if (node.op === 'in' || node.op === 'not_in') {
      const items = Array.isArray(node.value) ? node.value : String(node.value).split(',');
      out.value = items.map((v) => String(v).trim()).filter(Boolean).map((v) => readValue(node.type, v));
    } else if (node.op !== 'is_empty' && node.op !== 'is_not_empty') {
      out.value = readValue(node.type, node.value);
    }
  }
  return node.negate ? { not: out } : out;
}

function newCondition() {
  return { kind: 'cond', negate: false, field: '', type: 'number', op: 'gt', value: '' };
}

/** The criteria builder; `get()` gives the criteria JSON. */
function criteriaEditor(initial) {
  let root = fromJson(initial || { and: [newCondition()] });
  if (root.kind !== 'group') root = { kind: 'group', mode: 'and', negate: false, children: [root] };
  const el = h('div', { class: 'criteria' });
  let focusKey = null;

  function rerender(key) {
    focusKey = key;
    el.replaceChildren(renderGroup(root, null, 'r'));
    if (focusKey) el.querySelector(`[data-key="${focusKey}"]`)?.focus();
  }

  function notBox(node, key) {
    const box = h('input', { type: 'checkbox', id: uid('not'), checked: node.negate, dataset: { key: `${key}-not` } });
    box.addEventListener('change', () => { node.negate = box.checked; });
    return h('span', { class: 'not' }, box, h('label', { for: box.id }, 'not'));
  }

  function removeButton(parent, node, key) {
    if (!parent) return null;
    return h('button', { type: 'button', class: 'link small danger', 'aria-label': 'Remove this line', dataset: { key: `${key}-rm` },
      onclick: () => {
        parent.children.splice(parent.children.indexOf(node), 1);
        if (!parent.children.length) parent.children.push(newCondition());
        rerender(null);
      } }, 'Remove');
  }

  function valueInputs(node, key) {
    if (node.op === 'is_empty' || node.op === 'is_not_empty') return null;
    const inputType = node.type === 'number' ? 'number' : node.type === 'date' ? 'date' : 'text';
    const make = (value, label, onInput, k) => {
      if (node.type === 'boolean' && node.op !== 'in' && node.op !== 'not_in') {
        const select = h('select', { 'aria-label': label, dataset: { key: k } },
          h('option', { value: 'true', selected: String(value) === 'true' }, 'true'),
          h('option', { value: 'false', selected: String(value) === 'false' }, 'false'));
        onInput(select.value);
        select.addEventListener('change', () => onInput(select.value));
        return select;
      }
      const input = h('input', { type: inputType, 'aria-label': label, value: value ?? '', step: inputType === 'number' ? 'any' : null, dataset: { key: k } });
      input.addEventListener('input', () => onInput(input.value));
      return input;
    };
    if (node.op === 'between') {
      if (!Array.isArray(node.value)) node.value = ['', ''];
      return h('span', { class: 'between' },
        make(node.value[0], 'From', (v) => { node.value[0] = v; }, `${key}-lo`), ' and ',
        make(node.value[1], 'To', (v) => { node.value[1] = v; }, `${key}-hi`));
    }
    if (node.op === 'in' || node.op === 'not_in') {
      const text = Array.isArray(node.value) ? node.value.join(', ') : String(node.value ?? '');
      const input = h('input', { type: 'text', 'aria-label': 'Values, separated by commas', placeholder: 'a, b, c', value: text, dataset: { key: `${key}-v` } });
      node.value = text;
      input.addEventListener('input', () => { node.value = input.value; });
      return input;
    }
    if (Array.isArray(node.value)) node.value = node.value[0] ?? '';
    return make(node.value, 'Value', (v) => { node.value = v; }, `${key}-v`);
  }

  function renderCondition(node, parent, key) {
    const fieldInput = h('input', { type: 'text', 'aria-label': 'Field', placeholder: 'Field, e.g. Amount', value: node.field, dataset: { key: `${key}-f` } });
    fieldInput.addEventListener('input', () => { node.field = fieldInput.value; });
    const type = h('select', { 'aria-label': 'Type', dataset: { key: `${key}-t` } }, TYPES.map((t) => h('option', { value: t, selected: t === node.type }, t)));
    type.addEventListener('change', () => {
      node.type = type.value;
      if (!OPS[node.type].includes(node.op)) node.op = OPS[node.type][0];
      rerender(`${key}-t`);
    });
    const op = h('select', { 'aria-label': 'Operator', dataset: { key: `${key}-o` } }, OPS[node.type].map((o) => h('option', { value: o, selected: o === node.op }, OP_LABELS[o])));
    op.addEventListener('change', () => {
      node.op = op.value;
      rerender(`${key}-o`);
    });
    return h('div', { class: 'condition' }, notBox(node, key), fieldInput, type, op, valueInputs(node, key), removeButton(parent, node, key));
  }

  function renderGroup(node, parent, key) {
    const mode = h('select', { 'aria-label': 'Match', dataset: { key: `${key}-m` } },
      h('option', { value: 'and', selected: node.mode === 'and' }, 'all of'),
      h('option', { value: 'or', selected: node.mode === 'or' }, 'any of'));
    mode.addEventListener('change', () => { node.mode = mode.value; });
    const children = node.children.map((child, i) => (child.kind === 'group'
      ? renderGroup(child, node, `${key}-${i}`)
      : renderCondition(child, node, `${key}-${i}`)));
    const addCondition = h('button', { type: 'button', class: 'small', dataset: { key: `${key}-ac` },
      onclick: () => { node.children.push(newCondition()); rerender(`${key}-${node.children.length - 1}-f`); } }, '+ Condition');
    const addGroup = h('button', { type: 'button', class: 'small', dataset: { key: `${key}-ag` },
      onclick: () => { node.children.push({ kind: 'group', mode: 'or', negate: false, children: [newCondition()] }); rerender(`${key}-${node.children.length - 1}-m`); } }, '+ Group');
    return h('fieldset', { class: 'criteria-group' },
      h('legend', {}, parent ? notBox(node, key) : null, ' Match ', mode, ' these'),
      h('div', { class: 'children' }, children),
      h('div', { class: 'row' }, addCondition, addGroup, removeButton(parent, node, key)));
  }

  rerender(null);
  return { el, get: () => toJson(root) };
}

function multiSelect(label, options, selected) {
  const select = h('select', { multiple: true, size: Math.min(5, Math.max(2, options.length)) },
    options.map((o) => h('option', { value: o.id, selected: selected.includes(o.id) }, o.name)));
  return { el: field(label, select), get: () => [...select.selectedOptions].map((o) => Number(o.value)) };
}

async function followersEditor(followers) {
  const f = { creator: true, record_creator: false, owner_superior_role: false, users: [], roles: [], groups: [], territories: [], ...(followers || {}) };
  const check = (key, label) => {
    const box = h('input', { type: 'checkbox', id: uid('fo'), checked: f[key] });
    return { key, box, el: h('div', { class: 'field check' }, box, h('label', { for: box.id }, label)) };
  };
  const creator = check('creator', 'Me (the rule’s creator)');
  if (!session.org.isAdmin) {
    return {
      el: h('fieldset', {}, h('legend', {}, 'Followers'), creator.el, h('p', { class: 'muted small' }, 'Only admins can make others follow.')),
      get: () => ({ creator: creator.box.checked }),
    };
  }
  const recordCreator = check('record_creator', 'The record’s creator');
  const superior = check('owner_superior_role', 'The owner’s superior role (the role directly above the owner’s)');
  const [groups, roles, territories] = await Promise.all([
    session.groups().catch(() => []),
    session.roles().catch(() => []),
    api.get(session.orgPath('/territories')).then((r) => r.territories).catch(() => []),
  ]);
  const named = new Map(await Promise.all(f.users.map(async (id) => [id, await session.userName(id)])));
  const users = peoplePicker('People', (text) => session.searchMembers(text, 8), named);
  const g = multiSelect('Groups', groups, f.groups);
  const r = multiSelect('Roles', roles, f.roles);
  const t = multiSelect('Territories (and those below them)', territories, f.territories);
  return {
    el: h('fieldset', {}, h('legend', {}, 'Followers'), creator.el, recordCreator.el, superior.el, users.el, h('div', { class: 'row wrap' }, g.el, r.el, t.el)),
    get: () => ({
      creator: creator.box.checked, record_creator: recordCreator.box.checked, owner_superior_role: superior.box.checked,
      users: users.ids(), groups: g.get(), roles: r.get(), territories: t.get(),
    }),
  };
}

function previewTable(result) {
  const rows = result.matches.map((m) => h('tr', {},
    h('td', {}, h('a', { href: `#/org/${encodeURIComponent(session.org.slug)}/record/${m.record.id}` }, m.record.name)),
    h('td', {}, m.record.crm_id),
    h('td', {}, m.followers.map((f) => f.name || `#${f.id}`).join(', ') || '—')));
  return h('div', { class: 'preview' },
    h('p', {}, h('strong', {}, result.criteria_text), ' — ',
      `${formatNumber(result.matched)} of ${formatNumber(result.scanned)} records match${result.complete ? '' : ' (of the most recently active)'}.`),
    rows.length
      ? h('table', {}, h('thead', {}, h('tr', {}, h('th', { scope: 'col' }, 'Record'), h('th', { scope: 'col' }, 'CRM id'), h('th', { scope: 'col' }, 'Would be followed by'))), h('tbody', {}, rows))
      : h('p', { class: 'muted' }, 'No current record matches.'));
}

async function ruleEditor(rule, onSaved, onCancel) {
  const name = h('input', { type: 'text', required: true, maxlength: 200, value: rule?.name || '' });
  const listId = uid('modules');
  const module = h('input', { type: 'text', required: true, maxlength: 64, list: listId, value: rule?.module || 'Deals', disabled: Boolean(rule) });
  const description = h('textarea', { rows: 2, maxlength: 2000, value: rule?.description || '' });
  const criteria = criteriaEditor(rule?.criteria);
  const followers = await followersEditor(rule?.followers);
  const error = errorBox();
  const preview = h('div', { class: 'preview-box', 'aria-live': 'polite' });
  const previewButton = h('button', { type: 'button' }, 'Preview');
  const save = h('button', { type: 'submit', class: 'primary' }, rule ? 'Save changes' : 'Create rule');
  const cancel = h('button', { type: 'button', onclick: onCancel }, 'Cancel');

  previewButton.addEventListener('click', async () => {
    error.show(null);
    previewButton.disabled = true;
    try {
      const result = await api.post(session.orgPath('/rules/preview'), { module: module.value.trim(), criteria: criteria.get(), followers: followers.get() });
      preview.replaceChildren(previewTable(result));
    } catch (err) {
      error.show(err);
      preview.replaceChildren();
    } finally {
      previewButton.disabled = false;
    }
  });

  const form = h('form', { class: 'stack rule-editor' },
    h('h2', {}, rule ? `Edit “${rule.name}”` : 'New rule'),
    h('div', { class: 'row wrap' }, field('Name', name), field('Module', module), h('datalist', { id: listId }, MODULES.map((m) => h('option', { value: m })))),
    field('Description', description),
    h('div', { class: 'field' }, h('span', { class: 'label' }, 'Criteria'), criteria.el),
    followers.el,
    error,
    h('div', { class: 'row' }, previewButton, save, cancel),
    preview);
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    error.show(null);
    save.disabled = true;
    const body = { name: name.value.trim(), criteria: criteria.get(), followers: followers.get(), description: description.value };
    try {
      if (rule) await api.patch(session.orgPath(`/rules/${rule.id}`), body);
      else await api.post(session.orgPath('/rules'), { ...body, module: module.value.trim() });
      onSaved();
    } catch (err) {
      error.show(err);
    } finally {
      save.disabled = false;
    }
  });
  return form;
}

function followerSummary(f) {
  const parts = [];
  if (f.creator) parts.push('creator');
  if (f.record_creator) parts.push('record creator');
  if (f.owner_superior_role) parts.push('owner’s superior role');
  for (const key of ['users', 'roles', 'groups', 'territories']) if (f[key]?.length) parts.push(`${f[key].length} ${key}`);
  return parts.join(', ');
}

export async function renderRules(main, { id } = {}) {
  const mine = h('ul', { class: 'rule-list' });
  const shared = h('ul', { class: 'rule-list' });
  const editorSlot = h('section', { class: 'panel', hidden: true });
  const newButton = h('button', { type: 'button', class: 'primary' }, 'New rule');

  async function openEditor(rule) {
    editorSlot.replaceChildren(await ruleEditor(rule, async () => {
      editorSlot.hidden = true;
      toast(rule ? 'Rule saved.' : 'Rule created.');
      await fill();
    }, () => { editorSlot.hidden = true; newButton.focus(); }));
    editorSlot.hidden = false;
    editorSlot.querySelector('input')?.focus();
  }

  function ruleRow(rule, own) {
    return h('li', { class: 'rule', dataset: { ruleId: String(rule.id) } },
      h('div', {},
        h('strong', {}, rule.name), ' ', h('span', { class: 'badge module' }, rule.module),
        h('div', { class: 'criteria-text' }, rule.criteria_text),
        h('div', { class: 'muted small' }, `Followers: ${followerSummary(rule.followers)}`, rule.description ? ` · ${rule.description}` : '')),
      own ? h('div', { class: 'row' },
        h('button', { type: 'button', class: 'small', onclick: () => openEditor(rule) }, 'Edit'),
        confirmButton('Delete', 'Delete rule', async () => {
          try {
            await api.del(session.orgPath(`/rules/${rule.id}`));
            await fill();
          } catch (err) {
            toast(err.message, 'error');
          }
        })) : null);
  }

  async function fill() {
    const data = await api.get(session.orgPath('/rules'));
    mine.replaceChildren(...data.created_by_me.map((r) => ruleRow(r, true)));
    if (!data.created_by_me.length) mine.append(h('li', { class: 'muted' }, 'You have created no rules.'));
    shared.replaceChildren(...data.shared_with_me.map((r) => ruleRow(r, false)));
    if (!data.shared_with_me.length) shared.append(h('li', { class: 'muted' }, 'No rule of someone else makes you follow records.'));
    return data;
  }

  newButton.addEventListener('click', () => openEditor(null));
  main.append(
    h('div', { class: 'page-head' }, h('h1', {}, 'Auto-follow rules'), h('span', { class: 'spacer' }), newButton),
    h('p', { class: 'muted' }, `When a record is created or edited and matches a rule, the rule’s followers follow it. At most ${MAX_RULES_PER_MODULE_PER_CREATOR} rules per module for each creator.`),
    editorSlot,
    h('section', { class: 'panel' }, h('h2', {}, 'Created by me'), mine),
    h('section', { class: 'panel' }, h('h2', {}, 'Shared with me'), shared));
  const data = await fill();
  // #/org/<slug>/rules/<id> (a notification's "Edit the rule"): its editor, or its row when shared.
  const wanted = id && data.created_by_me.find((r) => String(r.id) === id);
  if (wanted) await openEditor(wanted);
  else if (id) main.querySelector(`[data-rule-id="${CSS.escape(id)}"]`)?.classList.add('highlight');
}
