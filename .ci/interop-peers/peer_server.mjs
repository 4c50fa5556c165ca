// Echo server built on Node's `ws` package, for interop tests.
//
// Usage: node peer_server.mjs PORT [TIMEOUT_SECS]
//
// Same contract as peer_server.py: echo; /reject -> 403; /close -> close
// 4001 "bye"; /last-close -> "<code> <reason>" of the last close a client
// sent; text send-fragmented / send-fragmented-binary / ping-me / ping-count?.
import http from 'node:http';
import { WebSocketServer } from 'ws';

const port = Number(process.argv[2]);
const timeout = Number(process.argv[3] ?? 120);
let lastClose = null;
const open = new Set();

const server = http.createServer((req, res) => {
  res.writeHead(426, { 'Content-Type': 'text/plain' });
  res.end('websocket only\n');
});
// permessage-deflate is off by default on ws servers; turn it on so our
// client's offer is accepted.
const wss = new WebSocketServer({ noServer: true, maxPayload: 16 << 20, perMessageDeflate: true });

server.on('upgrade', (req, socket, head) => {
  const path = new URL(req.url, 'http://localhost').pathname;
  console.log(`peer_server.mjs: GET ${path}`);
  if (path === '/reject') {
    socket.end('HTTP/1.1 403 Forbidden\r\nContent-Type: text/plain\r\nContent-Length: 10\r\nConnection: close\r\n\r\nforbidden\n');
    return;
  }
  wss.handleUpgrade(req, socket, head, (ws) => onConnection(ws, path));
});

async function onConnection(ws, path) {
  if (path === '/close') {
    ws.close(4001, 'bye');
    return;
  }
  if (path === '/last-close') {
    // Let connections that are finishing their close handshake record it.
    for (let i = 0; i < 200 && open.size > 0; i++) {
      await new Promise((r) => setTimeout(r, 10));
    }
    ws.send(lastClose ?? 'none');
    ws.close(1000);
    return;
  }
  open.add(ws);
  let pings = 0;
  ws.on('ping', () => { pings += 1; });
  ws.on('close', (code, reason) => {
    lastClose = `${code} ${reason.toString()}`;
    open.delete(ws);
  });
  ws.on('error', (e) => console.log(`peer_server.mjs: connection error: ${e.message}`));
  ws.on('message', (data, isBinary) => {
    const text = isBinary ? null : data.toString();
    if (text === 'send-fragmented') {
      ws.send('alpha-', { fin: false });
      ws.send('beta-', { fin: false });
      ws.send('gamma', { fin: true });
    } else if (text === 'send-fragmented-binary') {
      const all = Buffer.from([...Array(256).keys()]);
      ws.send(all.subarray(0, 100), { binary: true, fin: false });
      ws.send(all.subarray(100, 200), { binary: true, fin: false });
      ws.send(all.subarray(200), { binary: true, fin: true });
    } else if (text === 'ping-me') {
      const timer = setTimeout(() => { ws.off('pong', onPong); ws.send('pong-missing'); }, 5000);
      const onPong = (payload) => {
        if (payload.toString() !== 'peer-ping') return;
        clearTimeout(timer);
        ws.off('pong', onPong);
        ws.send('pong-ok');
      };
      ws.on('pong', onPong);
      ws.ping(Buffer.from('peer-ping'));
    } else if (text === 'ping-count?') {
      ws.send(`pings=${pings}`);
    } else {
      ws.send(data, { binary: isBinary });
    }
  });
}

server.listen(port, '127.0.0.1', () => console.log(`listening on 127.0.0.1:${port}`));
setTimeout(() => {
  console.log(`peer_server.mjs: timeout after ${timeout} s, exiting`);
  process.exit(0);
}, timeout * 1000).unref();
process.on('SIGTERM', () => process.exit(0));
process.on('SIGINT', () => process.exit(0));
