// Emoji reactions under each post and comment (docs/api.md, "Reactions"): a chip per emoji with its
// count, the reader's own highlighted, a click toggles it; a small picker adds another (a few common
// ones, or any single emoji typed in). `reaction.changed` events carry an item's whole counts, so a
// live update simply redraws the chips; which ones are the reader's comes from REST answers only.

import { api } from './api.js';
import { h, toast } from './dom.js';
import * as live from './live.js';
import { session } from './session.js';

export const COMMON = ['👍', '❤️', '😂', '🎉', '😮', '😢', '🙏', '👀'];

const mine = new Map(); // "post:1" / "comment:2" → the reader's emojis there, as far as this page knows
const shown = new Map(); // the same keys → the last counts drawn

const keyOf = (kind, id) => `${kind}:${id}`;

function pathOf(kind, id) {
  return session.orgPath(kind === 'comment' ? `/comments/${id}/reactions` : `/posts/${id}/reactions`);
}

function fill(bar, key) {
  const counts = shown.get(key) || [];
  const my = mine.get(key) || new Set();
  bar.querySelector('.reaction-chips').replaceChildren(...counts.map(({ emoji, count }) => {
    const on = my.has(emoji);
    const chip = h('button', {
      type: 'button', class: ['reaction-chip', on && 'mine'], 'aria-pressed': String(on), dataset: { emoji },
      title: on ? 'Remove your reaction' : 'React with this too', 'aria-label': `${emoji} ${count}${on ? ', yours' : ''}`,
      onclick: () => toggle(bar.dataset.kind, Number(bar.dataset.id), emoji, !on),
    }, h('span', { class: 'emoji' }, emoji), ' ', h('span', { class: 'reaction-count' }, String(count)));
    const tell = () => showPeople(chip, bar.dataset.kind, Number(bar.dataset.id), emoji, on);
    chip.addEventListener('mouseenter', tell, { once: true });
    chip.addEventListener('focus', tell, { once: true });
    return chip;
  }));
}

const PEOPLE_SHOWN = 10;

/** Who reacted with `emoji`, read when the chip is first pointed at or focused, in its title. */
async function showPeople(chip, kind, id, emoji, on) {
  try {
    const answer = await api.get(pathOf(kind, id), { emoji, limit: PEOPLE_SHOWN });
    const names = answer.people.map((p) => p.user.name);
    const more = answer.next_after ? ' and others' : '';
    chip.title = `${names.join(', ')}${more}${on ? ' (click to remove yours)' : ''}`;
  } catch {
    // The chip keeps its plain title: the names are a courtesy, never in the way of reacting.
  }
}

/** Redraw every copy of the item on the page (the feed and the pinned posts may both show it). */
function draw(key) {
  for (const bar of document.querySelectorAll(`[data-reactions-of="${key}"]`)) fill(bar, key);
}

function apply(key, counts, myReactions) {
  shown.set(key, counts);
  if (myReactions) mine.set(key, new Set(myReactions));
  else {
    // A live update says nothing of the reader's own: drop only what no longer exists.
    const left = new Set(counts.map((c) => c.emoji));
    const my = mine.get(key);
    if (my) for (const e of [...my]) if (!left.has(e)) my.delete(e);
  }
  draw(key);
}

async function toggle(kind, id, emoji, on) {
  try {
    const answer = await api.put(pathOf(kind, id), { emoji, on });
    apply(keyOf(kind, id), answer.reactions, answer.my_reactions);
  } catch (err) {
    toast(err.message, 'error');
  }
}

function picker(bar) {
  const input = h('input', { type: 'text', class: 'reaction-input', maxlength: '32', placeholder: 'Any emoji', 'aria-label': 'Any emoji' });
  const pop = h('div', { class: 'reaction-picker', role: 'dialog', 'aria-label': 'Pick a reaction', hidden: true },
    COMMON.map((emoji) => h('button', {
      type: 'button', class: 'reaction-pick', 'aria-label': `React with ${emoji}`,
      onclick: () => { close(); toggle(bar.dataset.kind, Number(bar.dataset.id), emoji, true); },
    }, emoji)),
    h('form', {
      class: 'reaction-free',
      onsubmit: (ev) => {
        ev.preventDefault();
        const emoji = input.value.trim();
        if (!emoji) return;
        input.value = '';
        close();
        toggle(bar.dataset.kind, Number(bar.dataset.id), emoji, true);
      },
    }, input, h('button', { type: 'submit', class: 'small' }, 'Add')));
  const open = h('button', {
    type: 'button', class: 'link small reaction-add', title: 'Add a reaction', 'aria-label': 'Add a reaction', 'aria-expanded': 'false',
    onclick: () => {
      pop.hidden = !pop.hidden;
      open.setAttribute('aria-expanded', String(!pop.hidden));
      if (!pop.hidden) pop.querySelector('.reaction-pick')?.focus();
    },
  }, '☺+');
  const close = () => { pop.hidden = true; open.setAttribute('aria-expanded', 'false'); };
  pop.addEventListener('keydown', (ev) => {
    if (ev.key === 'Escape') { close(); open.focus(); }
  });
  // Leaving the bar (a click or Tab elsewhere) closes the picker.
  bar.addEventListener('focusout', (ev) => {
    if (!bar.contains(ev.relatedTarget)) close();
  });
  return [open, pop];
}

/** The reaction bar of a post (`kind` "post") or a comment. A view from a REST answer carries
 * `my_reactions`; one that came live does not, and the reader's known ones are kept. */
export function reactionBar(kind, item) {
  const key = keyOf(kind, item.id);
  const bar = h('div', { class: 'reactions', dataset: { reactionsOf: key, kind, id: String(item.id) } },
    h('div', { class: 'reaction-chips', 'aria-label': 'Reactions' }));
  bar.append(...picker(bar));
  shown.set(key, item.reactions || []);
  if (Array.isArray(item.my_reactions)) mine.set(key, new Set(item.my_reactions));
  draw(key);
  fill(bar, key);
  return bar;
}

live.onEvent((data) => {
  if (data.type !== 'reaction.changed') return;
  const p = data.payload;
  apply(p.comment_id ? keyOf('comment', p.comment_id) : keyOf('post', p.post_id), p.reactions, null);
});
