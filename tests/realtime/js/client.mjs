// A Centrifuge JS SDK client driven over stdin/stdout by tests/realtime/test_js_sdk.py.
// argv: <ws url> <http base url> <bearer token> <org slug>
// stdin lines: "disconnect" | "connect" | "exit"; stdout: one JSON object per event.
import { Centrifuge } from 'centrifuge';
import WebSocket from 'ws';
import readline from 'node:readline';

const [wsUrl, httpBase, bearer, slug] = process.argv.slice(2);

async function getToken() {
  const r = await fetch(`${httpBase}/api/v1/orgs/${slug}/realtime/token`, {
    method: 'POST',
    headers: { authorization: `Bearer ${bearer}` },
  });
  if (!r.ok) throw new Error(`token request failed: ${r.status}`);
  return (await r.json()).token;
}

const out = (obj) => process.stdout.write(JSON.stringify(obj) + '\n');
const client = new Centrifuge(wsUrl, { websocket: WebSocket, getToken, minReconnectDelay: 50, maxReconnectDelay: 500 });
client.on('connected', (ctx) => out({ event: 'connected', client: ctx.client }));
client.on('disconnected', (ctx) => out({ event: 'disconnected', code: ctx.code }));
client.on('publication', (ctx) => out({ event: 'publication', channel: ctx.channel, offset: ctx.offset, data: ctx.data }));
client.on('subscribed', (ctx) => out({ event: 'subscribed', channel: ctx.channel, recovered: ctx.recovered, wasRecovering: ctx.wasRecovering }));
client.on('error', (ctx) => out({ event: 'error', message: String(ctx.error && ctx.error.message) }));
client.connect();

const rl = readline.createInterface({ input: process.stdin });
rl.on('line', (line) => {
  const cmd = line.trim();
  if (cmd === 'disconnect') client.disconnect();
  else if (cmd === 'connect') client.connect();
  else if (cmd === 'exit') { client.disconnect(); process.exit(0); }
});
