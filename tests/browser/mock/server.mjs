// A development aid, not part of the test: serves the console page by ../../../shells/orchestrator/console/API.md
// in front of an existing `cropscode dev` (one without the console), so the page can be worked on before the
// real server side exists. HTTP calls go to the real orchestrator's endpoint (with the long poll and "async"
// emulated); terminals are `docker exec -it` under `script` (a PTY), so resize is not passed on, and
// /test/drop-worker-connections only pretends (it sends `reattaching` then `opened`).
//
//   node tests/browser/mock/server.mjs [path/to/cropscode]   → prints http://127.0.0.1:PORT/#key=…
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import http from 'node:http';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { WebSocketServer } from 'ws';

const here = dirname(fileURLToPath(import.meta.url));
const dist = join(here, '../../../shells/orchestrator/console/dist');
const binary = process.argv[2] ?? join(here, '../../../target/debug/cropscode');
const secret = randomBytes(32).toString('hex');

const dev = spawn(binary, ['dev', '--port', '0', '--http-port', '0'], {
  env: { ...process.env, CONTAINER_ENGINE: 'docker', HEARTBEAT_INTERVAL: '5s' }, stdio: ['ignore', 'pipe', 'inherit'],
});
const upstream = await new Promise((resolve) => {
  let out = '';
  dev.stdout.on('data', (d) => {
    out += d;
    const m = /orchestrator \(HTTP\)\s+(http:\/\/\S+)/.exec(out);
    if (m) resolve(m[1]);
  });
});
process.on('exit', () => dev.kill());
for (const s of ['SIGINT', 'SIGTERM']) process.on(s, () => process.exit(0));

const types = { '.js': 'text/javascript; charset=utf-8', '.css': 'text/css; charset=utf-8', '.html': 'text/html; charset=utf-8' };
const json = (res, status, body) => { res.writeHead(status, { 'Content-Type': 'application/json' }); res.end(JSON.stringify(body)); };
let port;
const allowedHost = (h) => h === `127.0.0.1:${port}` || h === `localhost:${port}`;
const allowedOrigin = (o) => o === undefined || o === `http://127.0.0.1:${port}` || o === `http://localhost:${port}`;

let asyncIds = 0;
const server = http.createServer(async (req, res) => {
  if (!allowedHost(req.headers.host) || !allowedOrigin(req.headers.origin)) return json(res, 403, { error: 'forbidden' });
  const url = new URL(req.url, 'http://x');
  if (req.method === 'GET' && (url.pathname === '/' || url.pathname.startsWith('/assets/'))) {
    const name = url.pathname === '/' ? 'index.html' : url.pathname.slice(8);
    try {
      const body = readFileSync(join(dist, name.replace(/[/\\]/g, '')));
      res.writeHead(200, { 'Content-Type': types[name.slice(name.lastIndexOf('.'))] ?? 'application/octet-stream', 'Cache-Control': 'no-store',
        'Content-Security-Policy': "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'" });
      return res.end(body);
    } catch { return json(res, 404, { error: 'no such asset' }); }
  }
  if (req.headers.authorization !== `Bearer ${secret}`) return json(res, 401, { error: 'unauthorized' });
  if (req.method === 'POST' && !/^application\/json\s*(;|$)/.test(req.headers['content-type'] ?? '')) return json(res, 415, { error: 'json only' });
  let body = '';
  for await (const chunk of req) body += chunk;
  if (url.pathname === '/test/drop-worker-connections') {
    for (const t of terms.values()) { t.send({ op: 'reattaching', term: t.id, reason: 'mock drop' }); setTimeout(() => t.send({ op: 'opened', term: t.id, sessionId: 'mock', channel: 1, resumed: true, offset: t.out, inputOffset: t.in }), 1500); }
    return json(res, 200, { dropped: 1 });
  }
  if (url.pathname === '/events') {
    const wait = Math.min(Number(url.searchParams.get('waitMs') ?? 0), 30000);
    const deadline = Date.now() + wait;
    for (;;) {
      const r = await fetch(`${upstream}/events?since=${url.searchParams.get('since') ?? 0}`).then((x) => x.json());
      if (r.events.length || Date.now() >= deadline) return json(res, 200, r);
      await new Promise((ok) => setTimeout(ok, 300));
    }
  }
  if (req.method === 'POST' && url.pathname.endsWith('/commands')) {
    const cmd = JSON.parse(body);
    if (cmd.async) {
      const id = `m-${++asyncIds}-${Date.now()}`;
      delete cmd.async;
      fetch(upstream + url.pathname, { method: 'POST', body: JSON.stringify({ ...cmd, id }) }).catch(() => {});
      return json(res, 202, { id });
    }
  }
  const r = await fetch(upstream + url.pathname + url.search, { method: req.method, body: req.method === 'POST' ? body : undefined });
  json(res, r.status, await r.json());
});

const terms = new Map();
const wss = new WebSocketServer({ noServer: true, handleProtocols: (p) => (p.has('cropscode-console') ? 'cropscode-console' : false) });
server.on('upgrade', (req, sock, head) => {
  const protocols = (req.headers['sec-websocket-protocol'] ?? '').split(',').map((s) => s.trim());
  if (!allowedHost(req.headers.host) || !allowedOrigin(req.headers.origin)) { sock.end('HTTP/1.1 403 Forbidden\r\n\r\n'); return; }
  if (!protocols.includes(`key.${secret}`)) { sock.end('HTTP/1.1 401 Unauthorized\r\n\r\n'); return; }
  wss.handleUpgrade(req, sock, head, (ws) => {
    ws.on('message', (raw) => {
      const m = JSON.parse(raw);
      let t = terms.get(m.term);
      if (m.op === 'open') {
        const proc = spawn('script', ['-qfc', `docker exec -it -e TERM=xterm-256color ${m.containerId} /bin/sh`, '/dev/null'], { env: { ...process.env, COLUMNS: String(m.cols), LINES: String(m.rows) } });
        t = { id: m.term, ws, proc, out: 0, in: 0, send: (x) => t.ws.readyState === 1 && t.ws.send(JSON.stringify(x)) };
        terms.set(m.term, t);
        proc.stdout.on('data', (d) => { t.send({ op: 'data', term: t.id, offset: t.out, data: d.toString('base64') }); t.out += d.length; });
        proc.on('exit', (code) => { t.send({ op: 'end', term: t.id, reason: t.closing ? 'closed' : 'exited', exitCode: code }); terms.delete(t.id); });
        t.send({ op: 'opened', term: t.id, sessionId: 'mock', channel: 1, resumed: false, offset: 0, inputOffset: 0 });
      } else if (!t) {
        ws.send(JSON.stringify({ op: 'error', term: m.term, code: 'not_found', message: 'no such terminal' }));
      } else if (m.op === 'attach') {
        t.ws = ws; // the mock keeps no buffer: bytes since the drop are reported lost
        t.send({ op: 'opened', term: t.id, sessionId: 'mock', channel: 1, resumed: true, offset: t.out, inputOffset: t.in });
        if (m.offset < t.out) t.send({ op: 'lost', term: t.id, offset: m.offset, lostBytes: t.out - m.offset });
      } else if (m.op === 'input') {
        const data = Buffer.from(m.data);
        const skip = t.in - m.offset;
        if (skip < data.length) { t.proc.stdin.write(data.subarray(Math.max(0, skip))); t.in = m.offset + data.length; }
      } else if (m.op === 'close') {
        t.closing = true;
        t.proc.kill('SIGHUP');
      }
    });
  });
});
server.listen(Number(process.env.MOCK_PORT ?? 0), '127.0.0.1', () => {
  port = server.address().port;
  console.log(`console (mock): http://127.0.0.1:${port}/#key=${secret}`);
});
