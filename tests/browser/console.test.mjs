// End-to-end test of the `cropscode dev` console in Debian's headless Chromium (Playwright from npm,
// playwright-core, pinned in package-lock.json). It starts the built `cropscode dev` against the machine's
// real engine, drives the page like a person would, and reads the terminal from xterm's buffer through the
// page's `window.__console` hook. The contract it checks is shells/orchestrator/console/API.md.
//
//   node --test tests/browser/console.test.mjs      (tests/run does this after `cargo build -p cropscode`)
//
// Environment: CROPSCODE_BIN (default target/debug/cropscode), CHROMIUM (default /usr/bin/chromium),
// CONSOLE_TEST_IMAGE (default cropscode-test/busybox:latest, made by tests/env/prepare.sh).
// Output: target/browser/console.png (a screenshot for a person), dev.log, and failure.png on a failure.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { createWriteStream, mkdirSync } from 'node:fs';
import http from 'node:http';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

const root = join(dirname(fileURLToPath(import.meta.url)), '../..');
const out = join(root, 'target/browser');
const BIN = process.env.CROPSCODE_BIN ?? join(root, 'target/debug/cropscode');
const IMAGE = process.env.CONSOLE_TEST_IMAGE ?? 'cropscode-test/busybox:latest';
const TENANT = 'browser';
const NAME = `e2e-${process.pid}`;

let dev; // the cropscode dev process
let consoleUrl; // http://127.0.0.1:PORT/#key=SECRET
let base; // http://127.0.0.1:PORT
let secret;
let port;
let browser;
let page;
let workerId;
let term; // the terminal's client id
let devOutput = '';

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

async function until(what, fn, timeoutMs = 20000, everyMs = 100) {
  const deadline = Date.now() + timeoutMs;
  let last;
  for (;;) {
    try {
      last = await fn();
      if (last) return last;
    } catch (error) {
      last = error;
    }
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what} (last: ${last?.message ?? JSON.stringify(last)})`);
    await sleep(everyMs);
  }
}

/** A raw HTTP request (node:http lets a test set Host and Origin as a hostile page's browser would). */
function raw({ method = 'GET', path, headers = {}, body }) {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port, method, path, headers });
    req.on('response', (res) => {
      let text = '';
      res.on('data', (d) => { text += d; });
      res.on('end', () => resolve({ status: res.statusCode, headers: res.headers, text }));
    });
    req.on('upgrade', (res, socket) => { socket.destroy(); resolve({ status: res.statusCode, headers: res.headers, upgraded: true }); });
    req.on('error', reject);
    req.end(body);
  });
}

function wsUpgrade(headers) {
  return raw({
    path: '/console/ws',
    headers: {
      Connection: 'Upgrade', Upgrade: 'websocket', 'Sec-WebSocket-Version': '13',
      'Sec-WebSocket-Key': randomBytes(16).toString('base64'), ...headers,
    },
  });
}

/** A command through the API, as the page sends it; returns the result (throws on ok: false). */
async function command(type, params, timeoutMs = 60000) {
  const response = await fetch(`${base}/workers/${workerId}/commands`, {
    method: 'POST',
    headers: { Authorization: `Bearer ${secret}`, 'Content-Type': 'application/json' },
    body: JSON.stringify({ type, params, timeoutMs }),
  });
  const frame = await response.json();
  if (!frame.ok) throw new Error(`${type}: HTTP ${response.status} ${JSON.stringify(frame.error ?? frame)}`);
  return frame.result;
}

const stats = () => page.evaluate((id) => window.__console.stats(id), term);
const text = () => page.evaluate((id) => window.__console.text(id), term);
const lines = async () => (await text()).split('\n');

/** Types into the focused terminal (keyboard events, so through xterm's onData like a person's). */
async function type(line) {
  await page.keyboard.type(line);
  await page.keyboard.press('Enter');
}

before(async () => {
  mkdirSync(out, { recursive: true });
  const log = createWriteStream(join(out, 'dev.log'));
  // CONSOLE_MOCK=1: against mock/server.mjs (a development aid) instead of the real console.
  const [cmd, args] = process.env.CONSOLE_MOCK
    ? [process.execPath, [join(root, 'tests/browser/mock/server.mjs'), BIN]]
    : [BIN, ['dev', '--port', '0', '--http-port', '0', '--heartbeat-interval', '2s']];
  dev = spawn(cmd, args, {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, RUST_BACKTRACE: '1' },
  });
  dev.stdout.on('data', (d) => { devOutput += d; log.write(d); });
  dev.stderr.on('data', (d) => { devOutput += d; log.write(d); });
  consoleUrl = await until('the console URL in the output of cropscode dev', () => {
    if (dev.exitCode !== null) throw new Error(`cropscode dev exited with ${dev.exitCode}:\n${devOutput}`);
    return /(http:\/\/127\.0\.0\.1:\d+\/#key=[0-9a-f]+)/.exec(devOutput)?.[1];
  }, 60000);
  const url = new URL(consoleUrl);
  base = url.origin;
  port = Number(url.port);
  secret = url.hash.slice('#key='.length);
  assert.equal(secret.length, 64, 'a 256-bit secret');

  browser = await chromium.launch({
    executablePath: process.env.CHROMIUM ?? '/usr/bin/chromium',
    args: ['--no-sandbox', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run'],
  });
  page = await browser.newPage({ viewport: { width: 1400, height: 900 } });
  page.on('pageerror', (error) => { devOutput += `\n[page error] ${error.message}\n`; });
});

/** Runs a test body; on a failure, keeps a screenshot and the end of dev's output for a person. */
function shot(fn) {
  return async (t) => {
    try {
      await fn(t);
    } catch (error) {
      await page?.screenshot({ path: join(out, 'failure.png') }).catch(() => {});
      t.diagnostic(`screenshot: target/browser/failure.png; cropscode dev said:\n${devOutput.slice(-3000)}`);
      throw error;
    }
  };
}

after(async () => {
  if (workerId) await command('container.remove', { containerId: NAME, tenant: TENANT, force: true }).catch(() => {});
  await browser?.close().catch(() => {});
  if (dev && dev.exitCode === null) {
    dev.kill('SIGINT');
    await Promise.race([new Promise((resolve) => dev.once('exit', resolve)), sleep(5000)]);
    if (dev.exitCode === null) dev.kill('SIGKILL');
  }
});

test('the page, its assets and the API refuse other origins, hosts and content types', shot(async () => {
  const index = await raw({ path: '/' });
  assert.equal(index.status, 200);
  assert.match(index.headers['content-type'], /^text\/html/);
  assert.match(index.headers['content-security-policy'] ?? '', /default-src 'none'/);
  const js = await raw({ path: '/assets/xterm.js' });
  assert.equal(js.status, 200);
  assert.match(js.headers['content-type'], /^text\/javascript/);
  assert.notEqual((await raw({ path: '/assets/../Cargo.toml' })).status, 200);

  const commandPath = '/workers/w-1/commands';
  const body = JSON.stringify({ type: 'container.list-all', params: {} });
  // What a hostile page can send without a preflight: a cross-origin text/plain POST, no bearer.
  const hostile = await raw({ method: 'POST', path: commandPath, body,
    headers: { Origin: 'http://evil.example', 'Content-Type': 'text/plain' } });
  assert.equal(hostile.status, 403, hostile.text);
  assert.equal(hostile.headers['access-control-allow-origin'], undefined);
  // The same with the secret (it cannot have it, but the Origin alone must be enough).
  const withKey = await raw({ method: 'POST', path: commandPath, body,
    headers: { Origin: 'http://evil.example', 'Content-Type': 'text/plain', Authorization: `Bearer ${secret}` } });
  assert.equal(withKey.status, 403, withKey.text);
  // Same origin, right secret, wrong type.
  const plain = await raw({ method: 'POST', path: commandPath, body,
    headers: { Origin: base, 'Content-Type': 'text/plain', Authorization: `Bearer ${secret}` } });
  assert.equal(plain.status, 415, plain.text);
  // No secret, or a wrong one.
  assert.equal((await raw({ path: '/workers' })).status, 401);
  assert.equal((await raw({ path: '/workers', headers: { Authorization: `Bearer ${'0'.repeat(64)}` } })).status, 401);
  // DNS rebinding: a foreign Host name, even with the secret.
  assert.equal((await raw({ path: '/workers', headers: { Host: `evil.example:${port}`, Authorization: `Bearer ${secret}` } })).status, 403);
  // Reads from another origin.
  assert.equal((await raw({ path: '/events?since=0', headers: { Origin: 'http://evil.example', Authorization: `Bearer ${secret}` } })).status, 403);
  assert.equal((await raw({ method: 'OPTIONS', path: commandPath, headers: { Origin: 'http://evil.example' } })).status >= 400, true);
  // The secret works.
  assert.equal((await raw({ path: '/workers', headers: { Authorization: `Bearer ${secret}` } })).status, 200);

  // WebSocket: another origin (with the key) is refused; no key is refused; the page's own is accepted.
  const key = `cropscode-console, key.${secret}`;
  const foreign = await wsUpgrade({ Origin: 'http://evil.example', 'Sec-WebSocket-Protocol': key });
  assert.equal(foreign.upgraded, undefined);
  assert.equal(foreign.status, 403);
  const keyless = await wsUpgrade({ Origin: base, 'Sec-WebSocket-Protocol': 'cropscode-console' });
  assert.equal(keyless.upgraded, undefined);
  assert.equal(keyless.status, 401);
  const own = await wsUpgrade({ Origin: base, 'Sec-WebSocket-Protocol': key });
  assert.equal(own.status, 101);
  assert.equal(own.headers['sec-websocket-protocol'], 'cropscode-console', 'the key is never echoed');
}));

test('a shell in a container, in xterm.js: type, resize, resume after dropped connections, close', { timeout: 240000 }, shot(async () => {
  await page.goto(consoleUrl);
  assert.equal(await page.evaluate(() => location.hash), '', 'the key is removed from the address bar');
  assert.equal(await page.evaluate(() => sessionStorage.getItem('cropscode.key')), secret);
  await page.waitForSelector('[data-worker] .pill.ok', { timeout: 60000 });
  workerId = await page.getAttribute('[data-worker]', 'data-worker');

  // Create and start a container from the page's form.
  await page.fill('#create-form [name=image]', IMAGE);
  await page.fill('#create-form [name=tenant]', TENANT);
  await page.fill('#create-form [name=name]', NAME);
  await page.fill('#create-form [name=command]', 'sleep infinity');
  await page.click('#create-form button[type=submit]');
  await page.waitForSelector(`tr[data-container="${NAME}"] .state.running`, { timeout: 60000 });

  // A shell in a tab.
  await page.click(`tr[data-container="${NAME}"] button.primary`);
  term = await until('a terminal tab', () => page.evaluate(() => window.__console.active()));
  await until('the terminal to open', async () => (await stats()).state === 'open', 30000);
  await page.click(`.pane[data-term="${term}"]`);

  await type('echo $((6*7))');
  await until('42 in the terminal', async () => (await lines()).includes('42'));

  // Resize the window: the fit addon resizes xterm, the page sends `resize`, `stty size` inside follows.
  const before = await stats();
  await page.setViewportSize({ width: 1000, height: 640 });
  const sized = await until('xterm to follow the window', async () => {
    const s = await stats();
    return (s.cols !== before.cols || s.rows !== before.rows) && s;
  });
  const MOCK = Boolean(process.env.CONSOLE_MOCK); // the mock's terminals cannot be resized
  if (!MOCK) await until(`stty size = ${sized.rows} ${sized.cols}`, async () => {
    await type('stty size');
    await sleep(500);
    const all = await lines();
    return all.slice(-3).includes(`${sized.rows} ${sized.cols}`);
  }, 15000, 0);
  await page.setViewportSize({ width: 1400, height: 900 });

  // Output that keeps coming while the orchestrator-to-worker WebSocket is killed, then while the
  // browser's own socket drops: every line exactly once, in order, no byte lost.
  for (const [label, drop] of [
    ['the worker connection', async () => {
      const r = await fetch(`${base}/test/drop-worker-connections`, { method: 'POST',
        headers: { Authorization: `Bearer ${secret}`, 'Content-Type': 'application/json' }, body: '{}' });
      const answer = await r.text();
      assert.equal(r.status, 200, answer);
      assert.ok(JSON.parse(answer).dropped >= 1, answer);
    }],
    ['the browser socket', () => page.evaluate(() => window.__console.dropSocket())],
  ]) {
    const tag = label.includes('worker') ? 'w' : 'b';
    await type(`i=0; while [ $i -lt 60 ]; do i=$((i+1)); echo ${tag}$i; sleep 0.1; done; echo ${tag}-end-$((60+1))`);
    await until(`${tag}5 in the terminal`, async () => (await lines()).includes(`${tag}5`));
    await drop();
    await until(`the counter to finish after dropping ${label}`, async () => (await lines()).includes(`${tag}-end-61`), 60000, 250);
    const counted = (await lines()).filter((l) => new RegExp(`^${tag}\\d+$`).test(l));
    assert.deepEqual(counted, Array.from({ length: 60 }, (_, i) => `${tag}${i + 1}`), `after dropping ${label}`);
    const s = await stats();
    assert.equal(s.lostBytes, 0, `no byte lost after dropping ${label}`);
    assert.equal(s.gapBytes, 0, `no gap after dropping ${label}`);
    assert.equal(s.state, 'open');
  }
  const w = await page.evaluate(() => window.__console.workers());
  if (!MOCK) assert.ok(w.find((x) => x.id === workerId).registrations >= 2, 'the page saw the worker reconnect');

  // An exec from the page, so the screenshot shows a little of everything.
  await page.selectOption('#exec-form [name=container]', { label: `${TENANT}/${NAME}` });
  await page.fill('#exec-form [name=command]', 'ps');
  await page.click('#exec-form button[value=exec]');
  await page.waitForSelector('#exec-output:not([hidden])');
  await until('the exec output', async () => /\[exit 0/.test(await page.textContent('#exec-output')));
  await type('clear; echo $((6*7)); uname -a; ls /');
  await sleep(800);
  await page.screenshot({ path: join(out, 'console.png') });

  // Close the tab: the session ends and nothing of it is left in the container.
  await page.click(`.tab[data-term="${term}"] .close`);
  await until('the tab to go', async () => (await page.evaluate(() => window.__console.terms())).length === 0, 15000);
  const left = await until('no shell left in the container', async () => {
    const ps = await command('container.exec', { containerId: NAME, tenant: TENANT, command: ['ps', '-o', 'pid,args'] });
    const procs = ps.stdout.trim().split('\n').slice(1).map((l) => l.trim());
    const others = procs.filter((l) => !/^1 sleep infinity$/.test(l) && !/ ps -o pid,args$/.test(l));
    const marked = await command('container.exec', { containerId: NAME, tenant: TENANT, command: ['sh', '-c',
      'for p in /proc/[0-9]*; do tr "\\0" "\\n" < $p/environ 2>/dev/null | grep -q ^CROPSCODE_SESSION= && echo $p; done; true'] });
    return others.length === 0 && marked.stdout.trim() === '' ? procs : null;
  }, 15000, 500);
  assert.ok(left.length >= 1);
}));
