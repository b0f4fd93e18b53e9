// Building the page. Every piece of text goes in as a text node (never as HTML), so a post that
// says `<script>` shows those characters and nothing runs.

let idCounter = 0;

/** A fresh id for label/input pairs. */
export function uid(prefix = 'f') {
  idCounter += 1;
  return `${prefix}-${idCounter}`;
}

/**
 * h('button', {class: 'primary', onclick: fn}, 'Save') → an element.
 * Strings and numbers become text nodes; null, undefined and false children are skipped.
 */
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (key.startsWith('on') && typeof value === 'function') {
      el.addEventListener(key.slice(2), value);
    } else if (key === 'class') {
      el.className = Array.isArray(value) ? value.filter(Boolean).join(' ') : value;
    } else if (key === 'dataset') {
      Object.assign(el.dataset, value);
    } else if (key === 'for') {
      el.htmlFor = value;
    } else if (key === 'value' || key === 'checked' || key === 'disabled' || key === 'hidden' || key === 'selected') {
      el[key] = value;
    } else {
      el.setAttribute(key, value === true ? '' : String(value));
    }
  }
  append(el, children);
  return el;
}

export function append(el, children) {
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return el;
}

export function clear(el) {
  while (el.firstChild) el.firstChild.remove();
  return el;
}

/** A labelled form field: the label names the input for screen readers and clicks. */
export function field(label, input, hint) {
  if (!input.id) input.id = uid('in');
  const hintEl = hint ? h('small', { class: 'hint', id: `${input.id}-hint` }, hint) : null;
  if (hintEl) input.setAttribute('aria-describedby', hintEl.id);
  return h('div', { class: 'field' }, h('label', { for: input.id }, label), input, hintEl);
}

const relative = new Intl.RelativeTimeFormat(undefined, { numeric: 'auto' });
const absolute = new Intl.DateTimeFormat(undefined, { dateStyle: 'medium', timeStyle: 'short' });

/** "5 minutes ago", with the full date in a tooltip and the machine-readable time. */
export function timeAgo(iso) {
  const date = new Date(iso);
  const seconds = Math.round((date.getTime() - Date.now()) / 1000);
  const steps = [[60, 'second'], [60, 'minute'], [24, 'hour'], [7, 'day'], [4.35, 'week'], [12, 'month'], [Infinity, 'year']];
  let value = seconds;
  let text = '';
  for (const [size, unit] of steps) {
    if (Math.abs(value) < size) {
      text = Math.abs(seconds) < 45 ? 'just now' : relative.format(Math.round(value), unit);
      break;
    }
    value /= size;
  }
  return h('time', { datetime: date.toISOString(), title: absolute.format(date) }, text);
}

export function formatDate(iso) {
  return iso ? absolute.format(new Date(iso)) : '';
}

/** 1.5 KiB, 4 MiB, 4.1 MiB: one decimal, none when it is zero. */
export function formatBytes(n) {
  const [value, unit] = n < 1024 ? [n, 'B'] : n < 1024 * 1024 ? [n / 1024, 'KiB'] : [n / 1024 / 1024, 'MiB'];
  return `${Number(value.toFixed(unit === 'B' ? 0 : 1))} ${unit}`;
}

const numberFormat = new Intl.NumberFormat();
export function formatNumber(n) {
  return numberFormat.format(n);
}

/** A value of a CRM field as text: numbers with separators, objects as JSON, empty as a dash. */
export function formatValue(value) {
  if (value === null || value === undefined || value === '') return '—';
  if (typeof value === 'number') return formatNumber(value);
  if (typeof value === 'object') return JSON.stringify(value);
  return String(value);
}

const SVG = 'http://www.w3.org/2000/svg';
const ICONS = {
  bell: 'M12 3a6 6 0 0 0-6 6v3.6L4.3 15.4A1 1 0 0 0 5.2 17h13.6a1 1 0 0 0 .9-1.6L18 12.6V9a6 6 0 0 0-6-6zm-2.5 15a2.5 2.5 0 0 0 5 0z',
  clip: 'M16.5 6.5 8.4 14.6a1.5 1.5 0 0 0 2.1 2.1l8.1-8.1a3 3 0 0 0-4.2-4.2L6.3 12.5a4.5 4.5 0 0 0 6.4 6.4l6.5-6.5',
};

/** A small inline icon (decorative: the element next to it carries the words). */
export function icon(name) {
  const svg = document.createElementNS(SVG, 'svg');
  svg.setAttribute('viewBox', '0 0 24 24');
  svg.setAttribute('aria-hidden', 'true');
  svg.setAttribute('class', `icon icon-${name}`);
  const path = document.createElementNS(SVG, 'path');
  path.setAttribute('d', ICONS[name]);
  svg.append(path);
  return svg;
}

/** A small message in the corner that goes away by itself. */
export function toast(text, kind = 'info') {
  const box = document.getElementById('toasts');
  const el = h('div', { class: ['toast', kind] }, text);
  box.append(el);
  setTimeout(() => el.remove(), kind === 'error' ? 8000 : 5000);
}

/** A button that asks once more before doing something that cannot be undone. */
export function confirmButton(label, confirmLabel, action, attrs = {}) {
  const wrap = h('span', { class: 'confirm' });
  const first = h('button', { type: 'button', class: 'link small danger', ...attrs }, label);
  const yes = h('button', { type: 'button', class: 'danger small' }, confirmLabel);
  const no = h('button', { type: 'button', class: 'small' }, 'Cancel');
  const ask = h('span', { class: 'confirm-ask', hidden: true }, yes, ' ', no);
  first.addEventListener('click', () => { first.hidden = true; ask.hidden = false; yes.focus(); });
  no.addEventListener('click', () => { ask.hidden = true; first.hidden = false; first.focus(); });
  yes.addEventListener('click', async () => {
    yes.disabled = true;
    try {
      await action();
    } finally {
      yes.disabled = false;
      ask.hidden = true;
      first.hidden = false;
    }
  });
  wrap.append(first, ask);
  return wrap;
}

/** An error box inside a form; `show(err)` fills it, `show(null)` hides it. */
export function errorBox() {
  const el = h('p', { class: 'error', role: 'alert', hidden: true });
  el.show = (err) => {
    if (!err) {
      el.hidden = true;
      el.textContent = '';
      return;
    }
    el.textContent = err.message || String(err);
    el.hidden = false;
  };
  return el;
}
