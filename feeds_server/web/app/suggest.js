// A keyboard-friendly suggestion list under a text field (the ARIA combobox pattern): arrows move,
// Enter or Tab picks, Escape closes. Used for @mentions and for picking a colleague.

import { clear, h, uid } from './dom.js';

/**
 * attachSuggest(input, {query, fetch, pick}):
 *   query()        → the text to look up, or null when no list should show
 *   fetch(text)    → Promise of [{label, kind, detail, value}]
 *   pick(option)   → called with the chosen option
 */
export function attachSuggest(input, { query, fetch, pick }) {
  const list = h('ul', { class: 'suggest', role: 'listbox', id: uid('suggest'), hidden: true });
  input.setAttribute('role', 'combobox');
  input.setAttribute('aria-autocomplete', 'list');
  input.setAttribute('aria-controls', list.id);
  input.setAttribute('aria-expanded', 'false');
  let options = [];
  let active = -1;
  let timer = null;
  let lastAsked = 0;

  function close() {
    list.hidden = true;
    options = [];
    active = -1;
    input.setAttribute('aria-expanded', 'false');
    input.removeAttribute('aria-activedescendant');
  }

  function highlight(index) {
    active = index;
    [...list.children].forEach((li, i) => li.setAttribute('aria-selected', String(i === index)));
    if (index >= 0) input.setAttribute('aria-activedescendant', list.children[index].id);
  }

  function show(found) {
    clear(list);
    options = found;
    if (!found.length) {
      close();
      return;
    }
    found.forEach((option, i) => {
      const li = h('li', { role: 'option', id: `${list.id}-${i}`, 'aria-selected': 'false', dataset: { kind: option.kind } },
        h('span', { class: 'suggest-label' }, option.label),
        h('span', { class: ['suggest-kind', option.kind] }, option.detail || option.kind));
      // mousedown, not click: the field keeps focus.
      li.addEventListener('mousedown', (event) => {
        event.preventDefault();
        choose(i);
      });
      list.append(li);
    });
    list.hidden = false;
    input.setAttribute('aria-expanded', 'true');
    highlight(0);
  }

  function choose(index) {
    const option = options[index];
    close();
    if (option) pick(option);
  }

  function update() {
    clearTimeout(timer);
    const text = query();
    if (text === null) {
      close();
      return;
    }
    const asked = ++lastAsked;
    timer = setTimeout(async () => {
      try {
        const found = await fetch(text);
        if (asked === lastAsked) show(found);
      } catch {
        close();
      }
    }, 120);
  }

  input.addEventListener('input', update);
  input.addEventListener('click', update);
  input.addEventListener('blur', () => setTimeout(close, 100));
  input.addEventListener('keydown', (event) => {
    if (list.hidden) return;
    if (event.key === 'ArrowDown') {
      event.preventDefault();
      highlight((active + 1) % options.length);
    } else if (event.key === 'ArrowUp') {
      event.preventDefault();
      highlight((active - 1 + options.length) % options.length);
    } else if (event.key === 'Enter' || event.key === 'Tab') {
      if (active >= 0) {
        event.preventDefault();
        choose(active);
      }
    } else if (event.key === 'Escape') {
      event.preventDefault();
      close();
    }
  });
  return { list, close };
}

/**
 * A field that picks people by name into a list of chips (a new group's people, a rule's named
 * followers). `search(text)` → Promise of [{id, name, email}]; `initial` is a Map id → name.
 * Returns {el, ids()}.
 */
export function peoplePicker(label, search, initial = new Map()) {
  const input = h('input', { type: 'text', placeholder: 'Type a name', autocomplete: 'off', id: uid('people') });
  const people = new Map(initial);
  const chips = h('ul', { class: 'chips', 'aria-label': `${label}: chosen` });
  const renderChips = () => chips.replaceChildren(...[...people].map(([id, name]) => h('li', { class: 'chip' }, name,
    h('button', { type: 'button', class: 'link small', 'aria-label': `Remove ${name}`, onclick: () => { people.delete(id); renderChips(); input.focus(); } }, '×'))));
  const suggest = attachSuggest(input, {
    query: () => input.value.trim() || null,
    fetch: async (text) => (await search(text)).map((u) => ({ label: u.name, kind: 'user', detail: u.email, value: u.id })),
    pick: (option) => {
      people.set(option.value, option.label);
      input.value = '';
      renderChips();
    },
  });
  renderChips();
  const el = h('div', { class: 'field people-picker' }, h('label', { for: input.id }, label), input, suggest.list, chips);
  return { el, ids: () => [...people.keys()] };
}
