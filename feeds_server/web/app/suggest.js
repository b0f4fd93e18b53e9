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
