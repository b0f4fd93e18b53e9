// Records: "Followed by me" (F-FOLLOW-9), dormant records with a 1–180 day slider (F-FOLLOW-8), and a
// record's card with the Follow button (F-FOLLOW-2, F-FEED-4).

import { api } from '../api.js';
import { errorBox, field, formatValue, h, timeAgo, toast, uid } from '../dom.js';
import { MAX_DORMANT_DAYS, MIN_DORMANT_DAYS } from '../limits.js';
import { session } from '../session.js';

const orgHref = (path) => `#/org/${encodeURIComponent(session.org.slug)}${path}`;
const MODULES = ['Accounts', 'Contacts', 'Deals', 'Leads'];

function followButton(record, onChange) {
  const button = h('button', { type: 'button', class: record.following ? 'small' : 'primary small', 'aria-pressed': String(record.following) },
    record.following ? 'Unfollow' : 'Follow');
  button.addEventListener('click', async () => {
    button.disabled = true;
    try {
      if (record.following) await api.del(session.orgPath(`/records/${record.id}/follow`));
      else await api.put(session.orgPath(`/records/${record.id}/follow`));
      record.following = !record.following;
      button.textContent = record.following ? 'Unfollow' : 'Follow';
      button.className = record.following ? 'small' : 'primary small';
      button.setAttribute('aria-pressed', String(record.following));
      onChange?.(record);
    } catch (err) {
      toast(err.message, 'error');
    } finally {
      button.disabled = false;
    }
  });
  return button;
}

function recordRow(record, onChange) {
  return h('li', { class: 'record-row', dataset: { recordId: String(record.id) } },
    h('div', { class: 'record-main' },
      h('span', { class: 'badge module' }, record.module),
      h('a', { href: orgHref(`/record/${record.id}`), class: 'record-name' }, record.name),
      record.deleted ? h('span', { class: 'badge private' }, 'Deleted in the CRM') : null,
      h('div', { class: 'muted small' },
        record.owner ? `Owner ${record.owner.name || 'unknown'} · ` : '',
        'last update ', record.last_activity_at ? timeAgo(record.last_activity_at) : 'never')),
    record.deleted ? null : followButton(record, onChange));
}

/** A paged list of records from `path` with `query`; returns {el, reload(query)}. */
function recordList(path, emptyText, onChange) {
  const list = h('ul', { class: 'record-list', 'aria-live': 'polite' });
  const more = h('button', { type: 'button', class: 'load-more', hidden: true }, 'Load more');
  const status = h('p', { class: 'muted' });
  let query = {};
  let cursor = null;
  let generation = 0;

  async function load() {
    const mine = generation;
    more.disabled = true;
    try {
      const page = await api.get(session.orgPath(path), { ...query, cursor, limit: 25 });
      if (mine !== generation) return;
      list.append(...page.records.map((r) => recordRow(r, onChange)));
      cursor = page.next_cursor;
      more.hidden = !cursor;
      status.textContent = list.children.length ? '' : emptyText;
    } catch (err) {
      if (mine === generation) status.textContent = err.message;
    } finally {
      more.disabled = false;
    }
  }
  more.addEventListener('click', load);
  return {
    el: h('div', {}, list, more, status),
    reload(q) {
      generation += 1;
      query = q;
      cursor = null;
      list.replaceChildren();
      status.textContent = 'Loading…';
      return load();
    },
  };
}

function moduleFilter(onChange) {
  const id = uid('modules');
  const input = h('input', { type: 'text', list: id, placeholder: 'All modules', autocomplete: 'off' });
  let timer = null;
  input.addEventListener('input', () => {
    clearTimeout(timer);
    timer = setTimeout(onChange, 300);
  });
  return { input, el: h('span', {}, field('Module', input), h('datalist', { id }, MODULES.map((m) => h('option', { value: m })))) };
}

export async function renderRecords(main, { query }) {
  const tabs = [['followed', 'Followed by me'], ['dormant', 'Dormant records']];
  let current = query.get('tab') === 'dormant' ? 'dormant' : 'followed';
  const tabButtons = tabs.map(([key, label]) => h('button', { type: 'button', role: 'tab', id: `tab-${key}`, 'aria-controls': `panel-${key}` }, label));
  const tablist = h('div', { role: 'tablist', class: 'tabs', 'aria-label': 'Records' }, tabButtons);

  // Followed by me.
  const followedModule = moduleFilter(() => followed.reload({ module: followedModule.input.value.trim() }));
  const followed = recordList('/followed-records', 'You follow no records yet. Open a record and press Follow.', (r) => {
    if (!r.following) main.querySelector(`#panel-followed [data-record-id="${r.id}"]`)?.remove();
  });
  const followedPanel = h('section', { role: 'tabpanel', id: 'panel-followed', 'aria-labelledby': 'tab-followed', class: 'panel' },
    h('div', { class: 'filters' }, followedModule.el), followed.el);

  // Dormant records.
  const slider = h('input', { type: 'range', min: MIN_DORMANT_DAYS, max: MAX_DORMANT_DAYS, step: 1, value: 30, id: uid('days') });
  const output = h('output', { for: slider.id, class: 'days' }, '30 days');
  const dormantModule = moduleFilter(() => reloadDormant());
  const dormant = recordList('/dormant-records', 'No dormant records: everything you own or follow moved recently.');
  const reloadDormant = () => dormant.reload({ days: slider.value, module: dormantModule.input.value.trim() });
  let timer = null;
  slider.addEventListener('input', () => {
    output.textContent = `${slider.value} day${slider.value === '1' ? '' : 's'}`;
    clearTimeout(timer);
    timer = setTimeout(reloadDormant, 250);
  });
  const dormantPanel = h('section', { role: 'tabpanel', id: 'panel-dormant', 'aria-labelledby': 'tab-dormant', class: 'panel' },
    h('div', { class: 'filters' },
      h('div', { class: 'field slider' },
        h('label', { for: slider.id }, `No update for at least (${MIN_DORMANT_DAYS}–${MAX_DORMANT_DAYS} days)`),
        h('div', { class: 'row' }, slider, output)),
      dormantModule.el),
    dormant.el);

  function select(key, focus = false) {
    current = key;
    tabButtons.forEach((b, i) => {
      const on = tabs[i][0] === key;
      b.setAttribute('aria-selected', String(on));
      b.tabIndex = on ? 0 : -1;
      if (on && focus) b.focus();
    });
    followedPanel.hidden = key !== 'followed';
    dormantPanel.hidden = key !== 'dormant';
    if (key === 'followed') followed.reload({ module: followedModule.input.value.trim() });
    else reloadDormant();
  }
  tabButtons.forEach((b, i) => b.addEventListener('click', () => select(tabs[i][0])));
  tablist.addEventListener('keydown', (event) => {
    if (event.key !== 'ArrowRight' && event.key !== 'ArrowLeft') return;
    select(current === 'followed' ? 'dormant' : 'followed', true);
  });

  main.append(h('div', { class: 'page-head' }, h('h1', {}, 'Records')), tablist, followedPanel, dormantPanel);
  select(current);
}

export async function renderRecord(main, { id }) {
  const { record, follow } = await api.get(session.orgPath(`/records/${Number(id)}`));
  main.append(
    h('div', { class: 'page-head' }, h('h1', {}, record.name), h('a', { href: orgHref('/records') }, '← Records')),
    h('section', { class: 'panel record-page' },
      h('div', { class: 'record-main' },
        h('span', { class: 'badge module' }, record.module),
        h('span', { class: 'muted' }, ` CRM id ${record.crm_id}`),
        record.deleted ? h('span', { class: 'badge private' }, 'Deleted in the CRM') : null),
      h('dl', { class: 'key-fields' },
        h('dt', {}, 'Owner'), h('dd', {}, record.owner?.name || '—'),
        h('dt', {}, 'Last update'), h('dd', {}, record.last_activity_at ? timeAgo(record.last_activity_at) : '—'),
        record.key_fields.map((f) => [h('dt', {}, f.field), h('dd', {}, formatValue(f.value))])),
      record.deleted ? null : followRow(record, follow)));
}

function followRow(record, follow) {
  const hint = h('span', { class: 'muted small' });
  const say = () => {
    hint.textContent = record.following ? 'You get its changes in your feed.' : 'Follow it to get its changes in your feed.';
  };
  const fields = fieldsControl(record, follow?.fields ?? null);
  const changed = () => {
    say();
    fields.reset(record.following);
  };
  say();
  fields.reset(record.following);
  return h('div', { class: 'follow-row' }, h('div', { class: 'row' }, followButton(record, changed), fields.button, hint), fields.panel);
}

const fieldsLabel = (chosen) => `Fields: ${chosen ? chosen.join(', ') : 'All fields'}`;

/**
 * Which fields' edits reach the follower: "All fields" or some of the record's known ones.
 * Known are the card's key fields plus those the follow already names (the page has no other list).
 */
function fieldsControl(record, initial) {
  let chosen = initial;
  const button = h('button', { type: 'button', class: 'small follow-fields', 'aria-expanded': 'false' });
  const panelId = uid('follow-fields');
  button.setAttribute('aria-controls', panelId);
  const all = h('input', { type: 'checkbox', id: uid('all') });
  const names = [...new Set([...record.key_fields.map((f) => f.field), ...(initial || [])])];
  const boxes = names.map((name) => ({ name, input: h('input', { type: 'checkbox', id: uid('fld'), value: name }) }));
  const error = errorBox();
  const save = h('button', { type: 'submit', class: 'primary small' }, 'Save');
  const cancel = h('button', { type: 'button', class: 'small' }, 'Cancel');
  const form = h('form', { class: 'panel follow-fields-panel', id: panelId, hidden: true },
    h('fieldset', {},
      h('legend', {}, 'Edits of these fields reach your feed'),
      h('div', { class: 'field-check' }, all, h('label', { for: all.id }, 'All fields')),
      boxes.map((b) => h('div', { class: 'field-check' }, b.input, h('label', { for: b.input.id }, b.name)))),
    error,
    h('div', { class: 'row' }, save, cancel));

  const fill = () => {
    all.checked = !chosen;
    boxes.forEach((b) => { b.input.checked = !!chosen && chosen.includes(b.name); });
    error.show(null);
  };
  const open = (on) => {
    form.hidden = !on;
    button.setAttribute('aria-expanded', String(on));
    if (on) fill();
  };
  all.addEventListener('change', () => { if (all.checked) boxes.forEach((b) => { b.input.checked = false; }); });
  boxes.forEach((b) => b.input.addEventListener('change', () => { if (b.input.checked) all.checked = false; }));
  button.addEventListener('click', () => open(form.hidden));
  cancel.addEventListener('click', () => { open(false); button.focus(); });
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    const picked = boxes.filter((b) => b.input.checked).map((b) => b.name);
    if (!all.checked && !picked.length) {
      error.show(new Error('Choose at least one field, or All fields.'));
      return;
    }
    save.disabled = true;
    try {
      const answer = await api.put(session.orgPath(`/records/${record.id}/follow`), { fields: all.checked ? null : picked });
      chosen = answer.follow?.fields ?? null;
      button.textContent = fieldsLabel(chosen);
      open(false);
      toast('Saved.');
    } catch (err) {
      error.show(err);
    } finally {
      save.disabled = false;
    }
  });
  return {
    button,
    panel: form,
    /** Shown only while following; a new follow hears of every field. */
    reset(following) {
      if (!following) chosen = null;
      button.hidden = !following;
      button.textContent = fieldsLabel(chosen);
      if (!following) open(false);
    },
  };
}
