// The real-time connection (docs/realtime.md): one Centrifuge client per open org, from the official
// SDK served at /vendor/centrifuge.js. The server subscribes the connection to every channel the user
// may read; the SDK remembers each channel's offset and, after a network loss, reconnects by itself
// and asks the server to recover what was missed. Views subscribe here with `onEvent`.

import { api } from './api.js';

const MAX_REMEMBERED = 5000;

const eventListeners = new Set();
const statusListeners = new Set();

let sdkPromise = null;
let client = null;
let openSlug = null;
let everConnected = false;
let resume = null;
let seenSeqs = new Set();
let seenOrder = [];

export const state = { status: 'off', detail: '' };

/** fn(data, {missed}) for each publication, once per event even when it came on two channels. */
export function onEvent(fn) {
  eventListeners.add(fn);
  return () => eventListeners.delete(fn);
}

/** fn(state) whenever the connection's state changes; also called at once. */
export function onStatus(fn) {
  statusListeners.add(fn);
  fn(state);
  return () => statusListeners.delete(fn);
}

function setStatus(status, detail = '') {
  state.status = status;
  state.detail = detail;
  for (const fn of statusListeners) fn(state);
}

function emit(data, meta) {
  for (const fn of [...eventListeners]) {
    try {
      fn(data, meta);
    } catch (err) {
      console.error('live event handler failed', err);
    }
  }
}

function loadSdk() {
  sdkPromise ??= import('/vendor/centrifuge.js').catch(() => null);
  return sdkPromise;
}

function remember(seq) {
  if (seenSeqs.has(seq)) return false;
  seenSeqs.add(seq);
  seenOrder.push(seq);
  if (seenOrder.length > MAX_REMEMBERED) seenSeqs.delete(seenOrder.shift());
  return true;
}

/** Open the connection of one org, closing the one of another org (F-ORG-6). */
export async function connect(slug) {
  if (openSlug === slug) return;
  disconnect();
  openSlug = slug;
  setStatus('connecting');
  const sdk = await loadSdk();
  if (openSlug !== slug) return;
  if (!sdk) {
    setStatus('unavailable', 'The real-time client is not installed on this server, so updates appear only when you reload.');
    return;
  }
  const url = `${location.protocol === 'https:' ? 'wss' : 'ws'}://${location.host}/connection/websocket`;
  const c = new sdk.Centrifuge(url, {
    getToken: async () => {
      try {
        return (await api.post(`/orgs/${encodeURIComponent(slug)}/realtime/token`)).token;
      } catch (err) {
        // Signed out, removed from the org or no Feeds tab: retrying cannot help.
        if ([401, 403, 404].includes(err.status)) throw new sdk.UnauthorizedError(err.message);
        throw err;
      }
    },
    minReconnectDelay: 250,
    maxReconnectDelay: 8000,
  });
  client = c;
  c.on('connecting', () => setStatus(everConnected ? 'reconnecting' : 'connecting'));
  c.on('connected', () => {
    if (everConnected) {
      // Recovered publications follow this event synchronously; count them, then tell the user.
      resume = { count: 0, reload: false };
      setTimeout(finishResume, 0);
    }
    everConnected = true;
    setStatus('live');
  });
  c.on('disconnected', (ctx) => setStatus('offline', disconnectReason(ctx.code)));
  c.on('subscribed', (ctx) => {
    if (ctx.wasRecovering && !ctx.recovered) {
      if (resume) resume.reload = true;
      else emit({ type: 'live.reload' }, { missed: true });
    }
  });
  c.on('publication', (ctx) => {
    const data = ctx.data;
    // An org's unread count (docs/realtime.md): a number only, no sequence and no replay.
    if (data && typeof data.seq !== 'number' && typeof data.org === 'string' && typeof data.unread === 'number') {
      emit({ type: 'org.unread', payload: { org: data.org, unread: data.unread } }, { missed: false });
      return;
    }
    if (!data || typeof data.seq !== 'number' || !remember(data.seq)) return;
    if (resume && data.type !== 'notifications.read') resume.count += 1;
    emit(data, { missed: Boolean(resume) });
  });
  c.connect();
}

function finishResume() {
  const done = resume;
  resume = null;
  if (!done) return;
  if (done.reload) {
    emit({ type: 'live.reload' }, { missed: true });
    emit({ type: 'live.resumed', count: done.count, reloaded: true }, { missed: true });
  } else {
    emit({ type: 'live.resumed', count: done.count, reloaded: false }, { missed: true });
  }
}

function disconnectReason(code) {
  if (code === 3503) return 'You were removed from this org.';
  if (code === 3507) return 'Your profile no longer has the Feeds tab.';
  if (code === 3500 || code === 3501) return 'The connection was refused; sign in again.';
  return '';
}

export function disconnect() {
  if (client) {
    client.removeAllListeners();
    client.disconnect();
  }
  client = null;
  openSlug = null;
  everConnected = false;
  resume = null;
  seenSeqs = new Set();
  seenOrder = [];
  setStatus('off');
}
