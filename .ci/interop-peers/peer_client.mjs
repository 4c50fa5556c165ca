// Interop client built on Node's `ws` package: runs the scenario list
// against a wavecast echo server (examples/interop_server.rs).
//
// Usage: node peer_client.mjs ws://HOST:PORT
//
// Prints `PASS <scenario>` / `FAIL <scenario>: <why>`; exits 1 on failure.
import WebSocket from 'ws';

const STEP = 10_000;
const NAME = 'node-ws client -> wavecast server';
const base = process.argv[2].replace(/\/+$/, '');

function withTimeout(promise, ms, what) {
  let timer;
  return Promise.race([
    promise,
    new Promise((_, reject) => { timer = setTimeout(() => reject(new Error(`${what} timed out`)), ms); }),
  ]).finally(() => clearTimeout(timer));
}

// A connection with a queue of received messages and recorded pings.
class Conn {
  constructor(path) {
    this.ws = new WebSocket(base + path, { maxPayload: 16 << 20 });
    this.queue = [];
    this.waiters = [];
    this.pings = [];
    this.closed = new Promise((resolve) => {
      this.ws.on('close', (code, reason) => resolve({ code, reason: reason.toString() }));
    });
    this.ws.on('message', (data, isBinary) => {
      const msg = isBinary ? { binary: true, data: Buffer.from(data) } : { binary: false, data: data.toString() };
      const w = this.waiters.shift();
      if (w) w(msg); else this.queue.push(msg);
    });
    this.ws.on('ping', (data) => this.pings.push(data.toString()));
    this.ws.on('error', () => {});
  }

  opened() {
    return withTimeout(new Promise((resolve, reject) => {
      this.ws.once('open', resolve);
      this.ws.once('error', reject);
      this.ws.once('unexpected-response', (_req, res) => reject(new Error(`unexpected response ${res.statusCode}`)));
    }), STEP, 'connect');
  }

  recv() {
    if (this.queue.length) return Promise.resolve(this.queue.shift());
    return withTimeout(new Promise((resolve) => this.waiters.push(resolve)), STEP, 'receive');
  }

  async expect(want, binary) {
    const got = await this.recv();
    const same = got.binary === binary && (binary ? Buffer.compare(got.data, want) === 0 : got.data === want);
    if (!same) throw new Error(`expected ${describe(want, binary)}, got ${describe(got.data, got.binary)}`);
  }

  async close(code, reason) {
    this.ws.close(code, reason);
    return withTimeout(this.closed, STEP, 'close');
  }
}

function describe(data, binary) {
  if (binary) return `binary of ${data.length} bytes`;
  return data.length <= 64 ? JSON.stringify(data) : `text of ${data.length} chars`;
}

async function open(path) {
  const c = new Conn(path);
  await c.opened();
  return c;
}

function pattern(n) {
  const b = Buffer.alloc(n);
  for (let i = 0; i < n; i++) b[i] = (i * 7) % 251;
  return b;
}

function multibyteText(n) {
  const unit = 'héllo wörld ✓ 🦀 ';
  return unit.repeat(Math.ceil(n / Buffer.byteLength(unit)));
}

async function echo(data, binary) {
  const c = await open('/echo');
  c.ws.send(data, { binary });
  await c.expect(data, binary);
  await c.close(1000);
}

const scenarios = [
  ['permessage-deflate negotiated', async () => {
    // ws offers permessage-deflate by default; silently declining it must
    // fail this test.
    const c = new Conn('/echo');
    await c.opened();
    if (!c.ws.extensions.startsWith('permessage-deflate')) {
      throw new Error(`expected permessage-deflate, negotiated ${JSON.stringify(c.ws.extensions)}`);
    }
    const msg = 'compress me '.repeat(5000);
    c.ws.send(msg);
    await c.expect(msg, false);
    await c.close(1000, '');
  }],
  ['text', () => echo('hello, interop ✓', false)],
  ['binary', () => echo(Buffer.from([0, 1, 2, 0xfe, 0xff]), true)],
  ['1 MiB', async () => {
    await echo(pattern(1 << 20), true);
    await echo(multibyteText(1 << 20), false);
  }],
  ['fragmented (peer sends)', async () => {
    const c = await open('/echo');
    c.ws.send('frag-one ✓ ', { fin: false });
    c.ws.send('frag-two 🦀 ', { fin: false });
    c.ws.send('frag-three', { fin: true });
    await c.expect('frag-one ✓ frag-two 🦀 frag-three', false);
    const parts = [pattern(1000), Buffer.from([...Array(256).keys()]), Buffer.from('end')];
    parts.forEach((p, i) => c.ws.send(p, { binary: true, fin: i === parts.length - 1 }));
    await c.expect(Buffer.concat(parts), true);
    await c.close(1000);
  }],
  ['fragmented (wavecast sends)', () => echo(multibyteText(200_000), false)],
  ['ping (peer pings)', async () => {
    const c = await open('/echo');
    const pong = withTimeout(new Promise((resolve) => {
      c.ws.on('pong', (data) => { if (data.toString() === 'node-ping') resolve(); });
    }), STEP, 'pong');
    c.ws.ping(Buffer.from('node-ping'));
    await pong;
    await c.close(1000);
  }],
  ['ping (wavecast pings)', async () => {
    const c = await open('/echo');
    c.ws.send('ping-me');
    await c.expect('ping-me', false);
    if (!c.pings.includes('wavecast-ping')) throw new Error(`no ping 'wavecast-ping' seen (pings: ${JSON.stringify(c.pings)})`);
    await c.close(1000);
  }],
  ['close 4001 (peer closes)', async () => {
    const c = await open('/echo');
    const { code } = await c.close(4001, 'bye');
    if (code === 1006) throw new Error('wavecast did not answer our close frame');
    const d = await open('/last-close');
    await d.expect('4001 bye', false);
  }],
  ['close 4001 (wavecast closes)', async () => {
    const c = await open('/close');
    const { code, reason } = await withTimeout(c.closed, STEP, 'close');
    if (code !== 4001 || reason !== 'bye') throw new Error(`expected close 4001 "bye", got ${code} ${JSON.stringify(reason)}`);
  }],
  ['rejected handshake 403', async () => {
    const ws = new WebSocket(`${base}/reject`);
    const status = await withTimeout(new Promise((resolve, reject) => {
      ws.on('unexpected-response', (_req, res) => { resolve(res.statusCode); res.destroy(); });
      ws.on('open', () => reject(new Error('handshake succeeded, expected 403')));
      ws.on('error', (e) => reject(e));
    }), STEP, 'handshake');
    if (status !== 403) throw new Error(`expected 403, got ${status}`);
  }],
];

let failures = 0;
for (const [name, run] of scenarios) {
  const start = Date.now();
  try {
    await withTimeout(run(), 30_000, 'scenario');
    console.log(`PASS ${NAME}: ${name} (${Date.now() - start} ms)`);
  } catch (e) {
    failures += 1;
    console.log(`FAIL ${NAME}: ${name}: ${e.message}`);
  }
}
if (failures) {
  console.error(`peer_client.mjs: ${failures} scenario(s) failed`);
  process.exit(1);
}
process.exit(0);
