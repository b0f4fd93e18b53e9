// The service worker: shows a desktop notification for each Web Push message the server sends
// (docs/notifications.md, "Web Push") and opens the app where it points when clicked.
//
// The payload is small JSON: {title, body, url, tag, kind, org, notification_id}. Anything else that
// arrives (no data, not JSON, wrong types) still shows a generic notification: a push event that
// shows nothing makes browsers warn the person and may revoke the permission.

const GENERIC_TITLE = 'Feeds';
const GENERIC_BODY = 'You have a new notification.';
const MAX_TITLE = 200;
const MAX_BODY = 1000;
const MAX_TAG = 200;

function text(value, max) {
  return typeof value === 'string' ? value.slice(0, max) : '';
}

/** A same-origin URL, or the app's start page: a push must never send the person elsewhere. */
function sameOriginUrl(value) {
  try {
    const url = new URL(typeof value === 'string' ? value : '/', self.location.origin);
    if (url.origin === self.location.origin) return url.href;
  } catch { /* not a URL */ }
  return new URL('/', self.location.origin).href;
}

function parse(event) {
  if (!event.data) return {};
  try {
    const data = event.data.json();
    return data && typeof data === 'object' && !Array.isArray(data) ? data : {};
  } catch {
    return {};
  }
}

self.addEventListener('install', () => {
  self.skipWaiting();
});

self.addEventListener('activate', (event) => {
  event.waitUntil(self.clients.claim());
});

self.addEventListener('push', (event) => {
  const data = parse(event);
  const title = text(data.title, MAX_TITLE);
  const options = {
    body: text(data.body, MAX_BODY) || (title ? '' : GENERIC_BODY),
    data: {
      url: sameOriginUrl(data.url),
      kind: text(data.kind, 50),
      org: text(data.org, 100),
      notificationId: Number.isSafeInteger(data.notification_id) ? data.notification_id : null,
    },
    icon: '/app/favicon.svg',
  };
  const tag = text(data.tag, MAX_TAG);
  if (tag) {
    options.tag = tag;
    // The same tag again replaces the earlier one (a merged burst): let it alert once more.
    options.renotify = true;
  }
  event.waitUntil(self.registration.showNotification(title || GENERIC_TITLE, options));
});

/** Bring the app to `url`: an open page of it moves there (push.js), else a new window opens. */
async function openApp(url) {
  const windows = await self.clients.matchAll({ type: 'window', includeUncontrolled: true });
  const open = windows.find((client) => new URL(client.url).origin === self.location.origin);
  if (!open) return self.clients.openWindow(url);
  // The page moves itself: a hash change keeps it running where a navigation would reload it.
  if (open.url !== url) open.postMessage({ type: 'feeds.open', url });
  return open.focus();
}

self.addEventListener('notificationclick', (event) => {
  event.notification.close();
  event.waitUntil(openApp(sameOriginUrl(event.notification.data && event.notification.data.url)));
});
