// Desktop notifications through Web Push (docs/notifications.md, "Web Push"): the service worker
// (/sw.js) shows what the server pushes while the person has no page of the org open.
//
// The browser asks for permission only when the person clicks "Turn on" — never on load: a prompt
// nobody asked for is usually refused, and a refusal cannot be asked again. One browser has one push
// subscription (per service worker); each org the person turns it on in stores that same endpoint,
// so turning it off in one org keeps the browser subscribed while another org still uses it.

import { api } from './api.js';
import { h, toast } from './dom.js';
import { session } from './session.js';

const WORKER_URL = '/sw.js';

/** Whether this browser can receive Web Push at all (it needs a secure context: https or localhost). */
export function pushSupported() {
  return window.isSecureContext && 'serviceWorker' in navigator && 'PushManager' in window && 'Notification' in window;
}

function base64urlToBytes(value) {
  const b64 = value.replace(/-/g, '+').replace(/_/g, '/').padEnd(Math.ceil(value.length / 4) * 4, '=');
  return Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
}

function sameBytes(buffer, bytes) {
  if (!buffer) return false;
  const a = new Uint8Array(buffer);
  return a.length === bytes.length && a.every((b, i) => b === bytes[i]);
}

const orgPath = (slug, path = '') => `/orgs/${encodeURIComponent(slug)}/push-subscriptions${path}`;

/** The service worker's registration, registering it first if needed (no prompt: that comes later). */
export async function registration() {
  const existing = await navigator.serviceWorker.getRegistration('/');
  if (existing) return existing;
  await navigator.serviceWorker.register(WORKER_URL, { scope: '/' });
  return navigator.serviceWorker.ready;
}

/** This org's stored subscription for this browser's endpoint, or null. */
async function serverSubscription(slug, endpoint) {
  if (!endpoint) return null;
  const { subscriptions } = await api.get(orgPath(slug));
  return subscriptions.find((s) => s.endpoint === endpoint) || null;
}

/**
 * Where things stand for `slug` in this browser: 'unsupported', 'unavailable' (the server sends no
 * pushes: it has no VAPID subject), 'blocked' (permission denied),
 * 'on' (the browser is subscribed and the org has its endpoint) or 'off'.
 */
export async function pushState(slug) {
  if (!pushSupported()) return { state: 'unsupported' };
  const { enabled } = await api.get('/push/public-key');
  if (enabled === false) return { state: 'unavailable' };
  if (Notification.permission === 'denied') return { state: 'blocked' };
  const reg = await navigator.serviceWorker.getRegistration('/');
  const sub = reg ? await reg.pushManager.getSubscription() : null;
  const stored = sub && Notification.permission === 'granted' ? await serverSubscription(slug, sub.endpoint) : null;
  return { state: stored ? 'on' : 'off', subscription: stored };
}

/** Ask for permission (call it from a click), subscribe this browser and give the org its endpoint. */
export async function enablePush(slug) {
  if (!pushSupported()) throw new Error('This browser cannot show desktop notifications.');
  const permission = await Notification.requestPermission();
  if (permission !== 'granted') {
    throw new Error(permission === 'denied'
      ? 'Notifications are blocked for this site. Allow them in the browser’s site settings, then try again.'
      : 'Notifications were not allowed.');
  }
  const reg = await registration();
  const { public_key: publicKey } = await api.get('/push/public-key');
  const key = base64urlToBytes(publicKey);
  let sub = await reg.pushManager.getSubscription();
  if (sub && !sameBytes(sub.options && sub.options.applicationServerKey, key)) {
    // The server's key changed: the old subscription can no longer be used.
    await sub.unsubscribe();
    sub = null;
  }
  if (!sub) {
    try {
      sub = await reg.pushManager.subscribe({ userVisibleOnly: true, applicationServerKey: key });
    } catch (err) {
      throw new Error(`The browser could not subscribe to push messages (${err.message || err.name}). Private windows often cannot.`);
    }
  }
  const { subscription } = await api.post(orgPath(slug), sub.toJSON());
  return subscription;
}

/** Stop pushes of `slug` to this browser; unsubscribe the browser when no other org uses it. */
export async function disablePush(slug) {
  const reg = await navigator.serviceWorker.getRegistration('/');
  const sub = reg ? await reg.pushManager.getSubscription() : null;
  if (!sub) return;
  const stored = await serverSubscription(slug, sub.endpoint);
  if (stored) await api.del(orgPath(slug, `/${stored.id}`));
  const others = ((session.me && session.me.orgs) || []).map((m) => m.org.slug).filter((s) => s !== slug);
  for (const other of others) {
    try {
      if (await serverSubscription(other, sub.endpoint)) return;
    } catch { /* an org that cannot be read now does not keep the browser subscribed */ }
  }
  await sub.unsubscribe();
}

/**
 * On sign-out: this browser may be shared, so it stops receiving the person's pushes — each org's
 * subscription of it is deleted (with the token, before it is revoked) and the browser unsubscribed.
 * Bounded in time: signing out never waits on a slow server for long.
 */
export async function forgetPush(timeoutMs = 3000) {
  if (!pushSupported() || Notification.permission !== 'granted') return;
  const reg = await navigator.serviceWorker.getRegistration('/');
  const sub = reg ? await reg.pushManager.getSubscription() : null;
  if (!sub) return;
  const slugs = ((session.me && session.me.orgs) || []).map((m) => m.org.slug);
  const deleted = Promise.allSettled(slugs.map(async (slug) => {
    const stored = await serverSubscription(slug, sub.endpoint);
    if (stored) await api.del(orgPath(slug, `/${stored.id}`));
  }));
  await Promise.race([deleted, new Promise((resolve) => { setTimeout(resolve, timeoutMs); })]);
  await sub.unsubscribe();
}

/**
 * Whenever this browser's sign-in ends — signed out, expired, revoked, the account deleted — it
 * stops receiving pushes, even when the server could not be told: no later person on a shared
 * browser sees the previous one's. The server's rows go when the push service answers 404/410.
 */
export async function unsubscribeBrowser() {
  if (!pushSupported()) return;
  const reg = await navigator.serviceWorker.getRegistration('/');
  const sub = reg ? await reg.pushManager.getSubscription() : null;
  if (sub) await sub.unsubscribe();
}

const STATE_TEXT = {
  unsupported: 'This browser cannot show desktop notifications (they need a secure connection and a browser with Web Push).',
  unavailable: 'Desktop notifications are not set up on this server yet (its operator sets FEEDS_VAPID_SUBJECT).',
  blocked: 'Notifications are blocked for this site. Allow them in the browser’s site settings to turn them on.',
  on: 'On: this browser shows a desktop notification when something reaches you here while Feeds is closed.',
  off: 'Off for this browser.',
};

/** The "Desktop notifications" block of the notification settings. */
export function renderPushSettings(slug) {
  const status = h('p', { class: 'muted push-state', 'aria-live': 'polite' }, 'Checking…');
  const button = h('button', { type: 'button', class: 'small', hidden: true });
  const box = h('section', { class: 'panel push-settings', dataset: { state: 'checking' } },
    h('h2', {}, 'Desktop notifications'), status, button);

  function show(state) {
    box.dataset.state = state;
    status.textContent = STATE_TEXT[state];
    button.hidden = state === 'unsupported' || state === 'blocked' || state === 'unavailable';
    button.textContent = state === 'on' ? 'Turn off' : 'Turn on';
  }

  async function refresh() {
    try {
      show((await pushState(slug)).state);
    } catch (err) {
      show('off');
      toast(err.message, 'error');
    }
  }

  button.addEventListener('click', async () => {
    button.disabled = true;
    try {
      if (box.dataset.state === 'on') {
        await disablePush(slug);
        toast('Desktop notifications are off for this browser.');
      } else {
        await enablePush(slug);
        toast('Desktop notifications are on for this browser.');
      }
    } catch (err) {
      toast(err.message, 'error');
    } finally {
      button.disabled = false;
      await refresh();
    }
  });

  refresh();
  return box;
}

// A click on a notification while a page is open: the worker asks that page to go where it points.
if ('serviceWorker' in navigator) {
  navigator.serviceWorker.addEventListener('message', (event) => {
    const data = event.data || {};
    if (data.type !== 'feeds.open' || typeof data.url !== 'string') return;
    const url = new URL(data.url, window.location.origin);
    if (url.origin === window.location.origin) window.location.assign(url.href);
  });
}
