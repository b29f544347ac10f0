// The cropscode console: one page, plain ES modules, no framework.
// It speaks the contract in ../API.md: the HTTP API (bearer secret) for workers, events
// and commands, and one WebSocket (/console/ws) for terminals.
import { Terminal } from './xterm.js';
import { FitAddon } from './addon-fit.js';

// ------------------------------------------------------------------ small helpers
const $ = (selector) => document.querySelector(selector);

/** h('td', {class: 'x', onclick}, 'text', child…): a DOM element; text is never parsed as HTML. */
function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (value === undefined || value === null || value === false) continue;
    if (name.startsWith('on')) el.addEventListener(name.slice(2), value);
    else el.setAttribute(name, value === true ? '' : value);
  }
  for (const child of children.flat()) {
    if (child !== undefined && child !== null) el.append(child instanceof Node ? child : String(child));
  }
  return el;
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
const enc = new TextEncoder();

function bytes(n) {
  if (n === undefined || n === null) return '?';
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) { n /= 1024; i++; }
  return `${n.toFixed(i === 0 || n >= 100 ? 0 : 1)} ${units[i]}`;
}

function ago(ms) {
  if (ms === undefined || ms === null) return '—';
  const s = Math.round(ms / 1000);
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m ${s % 60}s`;
  return `${Math.floor(s / 3600)}h ${Math.floor((s % 3600) / 60)}m`;
}

function clock(atMs) {
  const s = Math.floor(atMs / 1000);
  return `+${String(Math.floor(s / 60)).padStart(2, '0')}:${String(s % 60).padStart(2, '0')}`;
}

/** A command line as an argument vector: a JSON array, or words with '…' and "…" quoting. */
function argv(text) {
  text = text.trim();
  if (text.startsWith('[')) return JSON.parse(text);
  const out = [];
  let word = null;
  let quote = null;
  for (const c of text) {
    if (quote) {
      if (c === quote) quote = null;
      else word += c;
    } else if (c === '"' || c === "'") {
      quote = c;
      word ??= '';
    } else if (/\s/.test(c)) {
      if (word !== null) out.push(word);
      word = null;
    } else {
      word = (word ?? '') + c;
    }
  }
  if (quote) throw new Error('unclosed quote');
  if (word !== null) out.push(word);
  return out;
}

function b64decode(text) {
  const raw = atob(text);
  const out = new Uint8Array(raw.length);
  for (let i = 0; i < raw.length; i++) out[i] = raw.charCodeAt(i);
  return out;
}

let statusTimer;
function status(message, isError = false) {
  const el = $('#status');
  el.textContent = message;
  el.className = isError ? 'error' : '';
  clearTimeout(statusTimer);
  statusTimer = setTimeout(() => { el.textContent = ''; }, isError ? 15000 : 5000);
}

// ------------------------------------------------------------------ the secret
function takeKey() {
  const match = /(?:^#|&)key=([^&]+)/.exec(location.hash);
  if (match) {
    sessionStorage.setItem('cropscode.key', decodeURIComponent(match[1]));
    history.replaceState(null, '', location.pathname + location.search);
  }
  return sessionStorage.getItem('cropscode.key');
}
const key = takeKey();

// ------------------------------------------------------------------ HTTP API
class ApiError extends Error {
  constructor(message, status, code) { super(message); this.status = status; this.code = code; }
}

async function api(method, path, body) {
  const init = { method, headers: { Authorization: `Bearer ${key}` }, cache: 'no-store' };
  if (body !== undefined) {
    init.headers['Content-Type'] = 'application/json';
    init.body = JSON.stringify(body);
  }
  const response = await fetch(path, init);
  let json = null;
  try { json = await response.json(); } catch { /* not JSON */ }
  if (!response.ok) throw new ApiError(json?.error ?? `HTTP ${response.status}`, response.status);
  return json;
}

/** Frames of async commands seen before their id was known (the event feed can be faster). */
const earlyFrames = new Map();
/** id → {onProgress, resolve, reject} of async commands waiting for their result event. */
const waiting = new Map();

/** Sends a command to the selected worker and returns its result (throws on ok: false). */
async function command(type, params = {}, { timeoutMs = 120000, onProgress } = {}) {
  // The event feed may show a registered worker before the first /workers answer selects it.
  if (!state.selected) state.selected = [...state.workers.values()].find((w) => w.connected)?.id ?? null;
  const worker = state.selected;
  if (!worker) throw new Error('no worker connected');
  const path = `/workers/${encodeURIComponent(worker)}/commands`;
  if (!onProgress) return unwrap(await api('POST', path, { type, params, timeoutMs }));
  const answer = await api('POST', path, { type, params, timeoutMs, async: true });
  if (answer?.type === 'result') { // a server without "async": progress came with the result
    for (const p of answer.progress ?? []) onProgress(p.progress ?? p);
    return unwrap(answer);
  }
  return new Promise((resolve, reject) => {
    const entry = { onProgress, resolve: (frame) => { waiting.delete(answer.id); try { resolve(unwrap(frame)); } catch (e) { reject(e); } } };
    waiting.set(answer.id, entry);
    for (const frame of earlyFrames.get(answer.id) ?? []) deliver(frame);
    earlyFrames.delete(answer.id);
    setTimeout(() => { if (waiting.delete(answer.id)) reject(new Error(`${type}: no result within ${timeoutMs} ms`)); }, timeoutMs + 5000);
  });
}

function unwrap(frame) {
  if (frame.ok) return frame.result;
  const error = frame.error ?? {};
  throw new ApiError(`${error.code ?? 'error'}: ${error.message ?? 'failed'}`, 200, error.code);
}

function deliver(frame) {
  const entry = waiting.get(frame.id);
  if (!entry) {
    const list = earlyFrames.get(frame.id) ?? [];
    list.push(frame);
    earlyFrames.set(frame.id, list);
    if (earlyFrames.size > 500) earlyFrames.delete(earlyFrames.keys().next().value);
    return;
  }
  if (frame.type === 'progress') entry.onProgress(frame.progress);
  else if (frame.type === 'result') entry.resolve(frame);
}

// ------------------------------------------------------------------ state
const state = {
  workers: new Map(), // workerId → {register, info, connected, registrations, disconnects, beats: [{atMs, cpu, memUsed}]}
  connections: new Map(), // connection → workerId
  selected: null,
  containers: [],
  commandTypes: new Map(), // command id → type (from sent events)
};

function worker(id) {
  let w = state.workers.get(id);
  if (!w) {
    w = { id, register: null, info: null, connected: false, registrations: 0, disconnects: 0, beats: [] };
    state.workers.set(id, w);
  }
  return w;
}

// ------------------------------------------------------------------ event feed (long poll)
const HISTORY_MS = 10 * 60 * 1000;

async function followEvents() {
  let next = 0;
  for (;;) {
    const started = Date.now();
    try {
      const page = await api('GET', `/events?since=${next}&waitMs=25000`);
      setPill('#feed', 'events: live', 'ok');
      for (const event of page.events) handleEvent(event);
      next = page.next;
      if (page.events.length) renderSoon();
      else if (Date.now() - started < 1000) await sleep(2000); // a server without waitMs
    } catch (error) {
      setPill('#feed', error.status === 401 ? 'events: wrong key' : 'events: retrying', 'bad');
      await sleep(error.status === 401 ? 10000 : 2000);
    }
  }
}

function handleEvent({ seq, atMs, event }) {
  switch (event.kind) {
    case 'registered': {
      const w = worker(event.workerId);
      state.connections.set(event.connection, event.workerId);
      w.register = event.register;
      w.connected = true;
      w.registrations++;
      audit({ atMs, worker: event.workerId, kind: 'info', text: w.registrations > 1 ? `registered again (reconnect ${w.registrations - 1})` : 'registered' });
      break;
    }
    case 'heartbeat': {
      const id = event.workerId ?? state.connections.get(event.connection);
      if (!id) break;
      const w = worker(id);
      const hb = event.heartbeat;
      const total = w.register?.memoryTotal;
      w.beats.push({ atMs, cpu: hb.cpuUsage, memUsed: total ? (100 * (total - hb.memoryFree)) / total : null });
      while (w.beats.length && w.beats[0].atMs < atMs - HISTORY_MS) w.beats.shift();
      w.lastBeat = hb;
      break;
    }
    case 'disconnected': {
      const id = state.connections.get(event.connection);
      if (!id) break;
      state.connections.delete(event.connection);
      const w = worker(id);
      if (![...state.connections.values()].includes(id)) w.connected = false;
      w.disconnects++;
      audit({ atMs, worker: id, kind: 'bad', text: `connection ${event.connection} closed` });
      break;
    }
    case 'sent': {
      let frame;
      try { frame = JSON.parse(event.text); } catch { break; }
      if (!frame.id) break;
      state.commandTypes.set(frame.id, frame.type);
      audit({ atMs, worker: event.workerId ?? state.connections.get(event.connection), kind: 'cmd', type: frame.type, id: frame.id, text: summarize(frame.params) });
      break;
    }
    case 'frame': {
      let frame;
      try { frame = JSON.parse(event.text); } catch { break; }
      const id = event.workerId ?? state.connections.get(event.connection);
      if (frame.type === 'result' || frame.type === 'progress') deliver(frame);
      if (frame.type === 'result') {
        const text = frame.ok ? summarize(frame.result) : `${frame.error?.code}: ${frame.error?.message}`;
        audit({ atMs, worker: id, kind: frame.ok ? 'ok' : 'bad', type: state.commandTypes.get(frame.id), id: frame.id, text });
      } else if (frame.type === 'error') {
        audit({ atMs, worker: id, kind: 'bad', type: 'error', text: `${frame.error?.code}: ${frame.error?.message}` });
      }
      break;
    }
    case 'upgrade':
      if (!event.authorized) audit({ atMs, kind: 'bad', text: 'worker upgrade refused (HTTP 401)' });
      break;
    default:
      break;
  }
  void seq;
}

function summarize(value) {
  if (value === undefined) return '';
  const text = JSON.stringify(value);
  return text.length > 160 ? `${text.slice(0, 160)}…` : text;
}

// ------------------------------------------------------------------ audit trail
const auditRows = [];
const NOISE = /^terminal\.(input|resize)$/;

function audit(row) {
  auditRows.push(row);
  if (auditRows.length > 400) auditRows.shift();
}

function renderAudit() {
  const showNoise = $('#audit-noise').checked;
  const list = $('#audit-rows');
  const rows = auditRows.filter((r) => showNoise || !NOISE.test(r.type ?? '')).slice(-150).reverse();
  list.replaceChildren(...rows.map((r) => h('li', { class: r.kind },
    h('time', {}, clock(r.atMs)), ' ',
    r.worker ? h('span', { class: 'who' }, r.worker) : '', ' ',
    r.kind === 'cmd' ? '→ ' : r.kind === 'ok' || r.kind === 'bad' ? (r.id ? '← ' : '! ') : '· ',
    r.type ? h('b', {}, r.type) : '', r.id ? h('span', { class: 'id' }, ` ${r.id}`) : '', ' ',
    h('span', { class: 'detail' }, r.text ?? ''))));
}

// ------------------------------------------------------------------ workers
async function refreshWorkers() {
  try {
    const list = await api('GET', '/workers');
    const live = new Set();
    for (const info of list) {
      const w = worker(info.workerId);
      w.info = info;
      w.register = info.register ?? w.register;
      w.connected = true;
      live.add(info.workerId);
    }
    for (const w of state.workers.values()) if (!live.has(w.id)) { w.connected = false; w.info = null; }
    if (!state.selected || !live.has(state.selected)) {
      const first = list[0]?.workerId ?? null;
      if (first !== state.selected) { state.selected = first; if (first) refreshLists(); }
    }
    renderWorkers();
  } catch (error) {
    if (error.status !== 401) status(`workers: ${error.message}`, true);
  }
}

function sparkline(beats, field, color) {
  const W = 160;
  const H = 36;
  const svg = document.createElementNS('http://www.w3.org/2000/svg', 'svg');
  svg.setAttribute('viewBox', `0 0 ${W} ${H}`);
  svg.setAttribute('class', 'spark');
  const points = beats.filter((b) => b[field] !== null && b[field] !== undefined);
  if (points.length) {
    const end = beats[beats.length - 1].atMs;
    const line = document.createElementNS(svg.namespaceURI, 'polyline');
    line.setAttribute('points', points.map((b) => {
      const x = W - ((end - b.atMs) / HISTORY_MS) * W;
      const y = H - 2 - (Math.min(100, Math.max(0, b[field])) / 100) * (H - 4);
      return `${x.toFixed(1)},${y.toFixed(1)}`;
    }).join(' '));
    line.setAttribute('stroke', color);
    svg.append(line);
  }
  return svg;
}

function renderWorkers() {
  const select = $('#worker-select');
  const ids = [...state.workers.keys()];
  select.replaceChildren(...ids.map((id) => h('option', { value: id, selected: id === state.selected }, id)));
  const cards = [...state.workers.values()].map((w) => {
    const r = w.register ?? {};
    const hb = w.info?.lastHeartbeat ?? w.lastBeat ?? {};
    const last = w.beats[w.beats.length - 1];
    return h('article', { class: `card ${w.connected ? 'up' : 'down'}`, 'data-worker': w.id },
      h('header', {}, h('b', {}, r.name ?? w.id), ' ', h('span', { class: 'id' }, w.id), ' ',
        h('span', { class: `pill ${w.connected ? 'ok' : 'bad'}` }, w.connected ? 'connected' : 'disconnected')),
      h('dl', {},
        h('dt', {}, 'host'), h('dd', {}, `${r.hostname ?? '?'} · ${r.platform ?? '?'}/${r.arch ?? '?'} · ${r.cpuCount ?? '?'} CPU · ${bytes(r.memoryTotal)}`),
        h('dt', {}, 'engines'), h('dd', {}, (r.containerEngines ?? []).join(', ') || 'none'),
        h('dt', {}, 'agent'), h('dd', {}, `${r.agentVersion ?? '?'} · ${r.mode ?? '?'} · protocol ${r.protocolVersion ?? '?'}`),
        h('dt', {}, 'link'), h('dd', {}, w.info ? `up ${ago(w.info.connectedForMs)} · heartbeat ${ago(w.info.lastHeartbeatAgoMs)} ago` : '—',
          ` · ${Math.max(0, w.registrations - 1)} reconnect${w.registrations === 2 ? '' : 's'}`),
        h('dt', {}, 'now'), h('dd', {}, `${hb.containersRunning ?? 0} running · mem free ${bytes(hb.memoryFree)}`,
          hb.diskFree !== undefined ? ` · disk free ${bytes(hb.diskFree)}` : '')),
      h('div', { class: 'charts' },
        h('figure', {}, sparkline(w.beats, 'cpu', '#4fc3f7'), h('figcaption', {}, `CPU ${last ? last.cpu.toFixed(1) : '?'}%`)),
        h('figure', {}, sparkline(w.beats, 'memUsed', '#ffb74d'), h('figcaption', {}, `memory ${last?.memUsed != null ? last.memUsed.toFixed(0) : '?'}% used`))));
  });
  $('#worker-list').replaceChildren(...(cards.length ? cards : [h('p', { class: 'empty' }, 'No worker has registered yet.')]));
}

// ------------------------------------------------------------------ containers
async function refreshContainers() {
  if (!state.selected) return;
  const tenant = $('#tenant-filter').value.trim();
  try {
    const result = tenant ? await command('container.list', { tenant }) : await command('container.list-all', {});
    state.containers = result.containers;
    renderContainers();
  } catch (error) {
    status(`containers: ${error.message}`, true);
  }
}

function containerAction(label, fn) {
  return h('button', { type: 'button', class: 'small', onclick: async (e) => {
    e.target.disabled = true;
    try { await fn(); } catch (error) { status(`${label}: ${error.message}`, true); }
    e.target.disabled = false;
    refreshContainers();
  } }, label);
}

function renderContainers() {
  const rows = state.containers.map((c) => {
    const ref = { containerId: c.containerId, tenant: c.tenant ?? undefined };
    const running = c.state === 'running';
    return h('tr', { 'data-container': c.name },
      h('td', { title: c.containerId }, c.name), h('td', {}, c.tenant ?? ''), h('td', {}, c.image),
      h('td', {}, h('span', { class: `state ${c.state}`, title: c.status }, c.state)),
      h('td', { class: 'actions' },
        running ? h('button', { type: 'button', class: 'small primary', onclick: () => openTerminal(c) }, 'shell') : '',
        running ? containerAction('stop', () => command('container.stop', { ...ref, graceMs: 2000 })) : containerAction('start', () => command('container.start', ref)),
        containerAction('remove', async () => {
          if (confirm(`Remove ${c.name}${running ? ' (it is running)' : ''}?`)) await command('container.remove', { ...ref, force: true });
        })));
  });
  $('#container-rows').replaceChildren(...(rows.length ? rows : [h('tr', {}, h('td', { colspan: 5, class: 'empty' }, 'No containers.'))]));
  const select = $('#exec-form [name=container]');
  const chosen = select.value;
  select.replaceChildren(...state.containers.filter((c) => c.state === 'running')
    .map((c) => h('option', { value: c.containerId, selected: c.containerId === chosen, 'data-tenant': c.tenant ?? '' }, `${c.tenant ?? ''}/${c.name}`)));
}

$('#create-form').addEventListener('submit', async (e) => {
  e.preventDefault();
  const form = e.target;
  const out = $('#create-output');
  const params = { image: form.image.value.trim(), tenant: form.tenant.value.trim() };
  if (form.name.value.trim()) params.name = form.name.value.trim();
  try {
    if (form.command.value.trim()) params.command = argv(form.command.value);
  } catch (error) { status(`command: ${error.message}`, true); return; }
  out.hidden = false;
  out.textContent = `creating ${params.name ?? 'a container'} from ${params.image}…\n`;
  form.querySelector('button').disabled = true;
  try {
    const created = await command('container.create', params, { timeoutMs: 600000, onProgress: (p) => {
      out.textContent += `${p.phase ?? ''} ${p.layer ?? ''} ${p.message ?? ''}${p.totalBytes ? ` ${bytes(p.currentBytes)}/${bytes(p.totalBytes)}` : ''}\n`;
    } });
    out.textContent += `created ${created.name} (${created.containerId.slice(0, 12)})${created.pulled ? ', pulled' : ''}\n`;
    if (form.start.checked) {
      await command('container.start', { containerId: created.containerId, tenant: params.tenant });
      out.textContent += 'started\n';
    }
  } catch (error) {
    out.textContent += `failed: ${error.message}\n`;
  }
  form.querySelector('button').disabled = false;
  refreshContainers();
});

// ------------------------------------------------------------------ exec and background execs
$('#exec-form').addEventListener('submit', async (e) => {
  e.preventDefault();
  const form = e.target;
  const option = form.container.selectedOptions[0];
  if (!option) { status('no running container', true); return; }
  let cmd;
  try { cmd = argv(form.command.value); } catch (error) { status(`command: ${error.message}`, true); return; }
  const params = { containerId: option.value, tenant: option.dataset.tenant || undefined, command: cmd };
  if (e.submitter?.value === 'background') {
    try {
      const started = await command('container.exec.background', params);
      followBackground(started.execId, option.textContent, cmd.join(' '), params.tenant);
    } catch (error) { status(`background: ${error.message}`, true); }
    return;
  }
  const out = $('#exec-output');
  out.hidden = false;
  out.textContent = `$ ${cmd.join(' ')}\n`;
  try {
    const r = await command('container.exec', { ...params, timeoutMs: 60000 });
    out.textContent += r.stdout + (r.stderr ? `\n[stderr]\n${r.stderr}` : '') +
      `\n[exit ${r.exitCode} · ${r.durationMs} ms${r.truncated ? ' · truncated' : ''}]`;
  } catch (error) {
    out.textContent += `failed: ${error.message}`;
  }
});

function followBackground(execId, where, line, tenant) {
  const out = h('pre', { class: 'out' });
  const info = h('span', { class: 'note' }, 'running');
  const kill = h('button', { type: 'button', class: 'small', onclick: async () => {
    try {
      const r = await command('container.exec.background.kill', { execId, tenant, graceMs: 3000 });
      info.textContent = r.alreadyExited ? 'had exited' : `killed (${r.signal ?? r.exitCode})`;
    } catch (error) { status(`kill: ${error.message}`, true); }
  } }, 'kill');
  const box = h('div', { class: 'bg', 'data-exec': execId },
    h('div', { class: 'row' }, h('b', {}, execId), ` ${where} $ ${line} `, info, kill,
      h('button', { type: 'button', class: 'small', onclick: () => { stopped = true; box.remove(); } }, 'hide')), out);
  $('#bg-list').prepend(box);
  let offset = 0;
  let stopped = false;
  (async () => {
    while (!stopped) {
      try {
        const r = await command('container.exec.background.capture', { execId, tenant, offset, maxBytes: 65536 });
        if (r.lostBytes) out.append(h('span', { class: 'note' }, `[${r.lostBytes} bytes lost]\n`));
        for (const chunk of r.chunks) out.append(chunk.stream === 'stderr' ? h('span', { class: 'stderr' }, chunk.data) : chunk.data);
        if (r.chunks.length) out.scrollTop = out.scrollHeight;
        const grew = r.nextOffset !== offset;
        offset = r.nextOffset;
        if (!r.running && !grew) {
          info.textContent = r.exitCode !== undefined && r.exitCode !== null ? `exited ${r.exitCode}` : 'ended';
          kill.disabled = true;
          return;
        }
        if (!grew) await sleep(1000);
      } catch (error) {
        info.textContent = `capture failed: ${error.message}`;
        await sleep(3000);
      }
    }
  })();
}

// ------------------------------------------------------------------ images
async function refreshImages() {
  if (!state.selected) return;
  try {
    const { images } = await command('images.list', {});
    $('#image-rows').replaceChildren(...images.map((img) => h('tr', {},
      h('td', {}, img.tags.join(', ') || '<none>', img.managed ? h('span', { class: 'pill ok' }, 'managed') : ''),
      h('td', { title: img.imageId }, img.imageId.replace('sha256:', '').slice(0, 12)),
      h('td', {}, bytes(img.sizeBytes)),
      h('td', { class: 'actions' }, img.managed ? h('button', { type: 'button', class: 'small', onclick: async () => {
        if (!confirm(`Delete ${img.tags[0] ?? img.imageId}?`)) return;
        try { await command('image.delete', { image: img.tags[0] ?? img.imageId }); } catch (error) { status(`delete: ${error.message}`, true); }
        refreshImages();
      } }, 'delete') : ''))));
  } catch (error) {
    status(`images: ${error.message}`, true);
  }
}

$('#build-form').addEventListener('submit', async (e) => {
  e.preventDefault();
  const form = e.target;
  const out = $('#build-output');
  out.hidden = false;
  out.textContent = '';
  const params = { tag: form.tag.value.trim(), dockerfile: form.dockerfile.value };
  if (form.tenant.value.trim()) params.tenant = form.tenant.value.trim();
  form.querySelector('button').disabled = true;
  try {
    const r = await command('image.build', params, { timeoutMs: 600000, onProgress: (p) => {
      out.textContent += p.message?.endsWith('\n') ? p.message : `${p.message ?? ''}\n`;
      out.scrollTop = out.scrollHeight;
    } });
    out.textContent += `built ${r.tag} (${r.imageId.slice(7, 19)})\n`;
  } catch (error) {
    out.textContent += `failed: ${error.message}\n`;
  }
  form.querySelector('button').disabled = false;
  refreshImages();
});

function refreshLists() {
  refreshContainers();
  refreshImages();
}

// ------------------------------------------------------------------ terminals
const terms = new Map(); // term id → Term
let activeTerm = null;
const INPUT_KEPT = 64 * 1024;

class ConsoleSocket {
  constructor() { this.ws = null; this.delay = 500; }

  connect() {
    const url = `${location.protocol === 'https:' ? 'wss' : 'ws'}://${location.host}/console/ws`;
    const ws = new WebSocket(url, ['cropscode-console', `key.${key}`]);
    this.ws = ws;
    ws.onopen = () => {
      this.delay = 500;
      setPill('#sock', 'terminals: connected', 'ok');
      for (const t of terms.values()) t.socketOpened();
    };
    ws.onmessage = (m) => {
      let msg;
      try { msg = JSON.parse(m.data); } catch { return; }
      const t = msg.term ? terms.get(msg.term) : null;
      if (t) t.handle(msg);
      else if (msg.op === 'error') status(`terminal: ${msg.code}: ${msg.message}`, true);
    };
    ws.onclose = () => {
      if (this.ws !== ws) return;
      setPill('#sock', 'terminals: reconnecting…', 'bad');
      for (const t of terms.values()) t.socketClosed();
      setTimeout(() => this.connect(), this.delay);
      this.delay = Math.min(this.delay * 2, 5000);
    };
  }

  get open() { return this.ws?.readyState === WebSocket.OPEN; }

  send(message) {
    if (!this.open) return false;
    this.ws.send(JSON.stringify(message));
    return true;
  }

  /** Test hook: drop the browser's socket as a network failure would. */
  drop() { this.ws?.close(); }
}
const socket = new ConsoleSocket();

class Term {
  constructor(container) {
    this.id = `t-${[...crypto.getRandomValues(new Uint8Array(8))].map((b) => b.toString(16).padStart(2, '0')).join('')}`;
    this.worker = state.selected;
    this.container = container;
    this.state = 'opening';
    this.opened = false;
    this.sessionId = null;
    this.written = 0; // output bytes written to xterm = the next offset expected
    this.lostBytes = 0;
    this.gapBytes = 0;
    this.duplicateBytes = 0;
    this.inputSent = 0;
    this.inputLog = []; // [{offset, bytes}] of the last INPUT_KEPT bytes sent
    this.xterm = new Terminal({ cursorBlink: true, fontSize: 13, scrollback: 5000, convertEol: false,
      fontFamily: 'ui-monospace, "DejaVu Sans Mono", Menlo, Consolas, monospace', theme: { background: '#101418' } });
    this.fit = new FitAddon();
    this.xterm.loadAddon(this.fit);
    this.note = h('div', { class: 'term-note' });
    this.pane = h('div', { class: 'pane', 'data-term': this.id }, this.note);
    this.label = h('span', {}, `${container.name}`);
    this.tab = h('div', { class: 'tab', role: 'tab', 'data-term': this.id, onclick: () => activate(this) }, this.label,
      h('button', { type: 'button', class: 'close', title: 'close', onclick: (e) => { e.stopPropagation(); this.close(); } }, '×'));
    this.xterm.onData((data) => this.input(data));
    this.xterm.onResize(({ cols, rows }) => { if (this.opened) socket.send({ op: 'resize', term: this.id, cols, rows }); });
  }

  mount() {
    $('#tabs').append(this.tab);
    $('#panes').append(this.pane);
    activate(this);
    this.xterm.open(this.pane);
    this.fit.fit();
    this.socketOpened();
  }

  socketOpened() {
    if (!socket.open || this.state === 'ended') return;
    if (this.opened) {
      socket.send({ op: 'attach', term: this.id, offset: this.written });
    } else {
      const { containerId, tenant } = this.container;
      socket.send({ op: 'open', term: this.id, worker: this.worker, containerId, tenant: tenant ?? undefined,
        cols: this.xterm.cols, rows: this.xterm.rows, env: { TERM: 'xterm-256color' } });
    }
  }

  socketClosed() {
    if (this.state !== 'ended') this.setState('reconnecting', 'browser connection lost; reattaching…');
  }

  handle(msg) {
    switch (msg.op) {
      case 'opened':
        this.opened = true;
        this.sessionId = msg.sessionId;
        this.setState('open', '');
        this.resendInput(msg.inputOffset ?? this.inputSent);
        socket.send({ op: 'resize', term: this.id, cols: this.xterm.cols, rows: this.xterm.rows });
        break;
      case 'data': this.data(msg.offset, b64decode(msg.data)); break;
      case 'lost':
        if (msg.offset + msg.lostBytes > this.written) {
          const skipped = msg.offset + msg.lostBytes - Math.max(this.written, msg.offset);
          this.lostBytes += skipped;
          this.written = msg.offset + msg.lostBytes;
          this.notice(`${skipped} bytes of output were lost while detached`);
        }
        break;
      case 'reattaching': this.setState('reattaching', `${msg.reason ?? 'worker connection lost'}; reattaching…`); break;
      case 'end':
        this.setState('ended', `session ended: ${msg.reason}${msg.exitCode !== undefined && msg.exitCode !== null ? ` (exit ${msg.exitCode})` : ''}`);
        if (this.closing) this.remove();
        break;
      case 'error':
        status(`terminal ${this.container.name}: ${msg.code}: ${msg.message}`, true);
        if (!this.opened || msg.code === 'not_found') this.setState('ended', `${msg.code}: ${msg.message}`);
        if (this.closing) this.remove();
        break;
      default: break;
    }
  }

  data(offset, chunk) {
    if (offset + chunk.length <= this.written) { this.duplicateBytes += chunk.length; return; }
    if (offset < this.written) {
      this.duplicateBytes += this.written - offset;
      chunk = chunk.subarray(this.written - offset);
      offset = this.written;
    }
    if (offset > this.written) {
      this.gapBytes += offset - this.written;
      this.notice(`${offset - this.written} bytes of output are missing here`);
    }
    this.xterm.write(chunk);
    this.written = offset + chunk.length;
  }

  input(text) {
    if (this.state === 'ended') return;
    const data = enc.encode(text);
    this.inputLog.push({ offset: this.inputSent, bytes: data });
    let kept = this.inputLog.reduce((n, e) => n + e.bytes.length, 0);
    while (kept > INPUT_KEPT && this.inputLog.length > 1) kept -= this.inputLog.shift().bytes.length;
    // Before the first `opened` the input waits in inputLog; `opened` (inputOffset 0) sends it.
    if (this.opened) socket.send({ op: 'input', term: this.id, offset: this.inputSent, data: text });
    this.inputSent += data.length;
  }

  resendInput(from) {
    const dec = new TextDecoder();
    for (const entry of this.inputLog) {
      const end = entry.offset + entry.bytes.length;
      if (end <= from) continue;
      const start = Math.max(from, entry.offset);
      socket.send({ op: 'input', term: this.id, offset: start, data: dec.decode(entry.bytes.subarray(start - entry.offset)) });
    }
  }

  setState(value, note) {
    this.state = value;
    this.tab.dataset.state = value;
    this.note.textContent = note;
    this.note.hidden = !note;
  }

  /** A lasting note written into the terminal itself (lost or missing bytes). */
  notice(text) {
    this.xterm.write(`\r\n\x1b[33m[cropscode: ${text}]\x1b[0m\r\n`);
  }

  close() {
    if (this.state === 'ended' || !socket.send({ op: 'close', term: this.id })) { this.remove(); return; }
    this.closing = true;
    this.setState('closing', 'closing…');
  }

  remove() {
    this.tab.remove();
    this.pane.remove();
    this.xterm.dispose();
    terms.delete(this.id);
    if (activeTerm === this) activate([...terms.values()].pop() ?? null);
    $('#no-term').hidden = terms.size > 0;
  }

  /** The buffer as text, wrapped lines joined: what the test reads. */
  text() {
    const buffer = this.xterm.buffer.active;
    const lines = [];
    for (let i = 0; i < buffer.length; i++) {
      const line = buffer.getLine(i);
      const s = line.translateToString(true);
      if (line.isWrapped && lines.length) lines[lines.length - 1] += s;
      else lines.push(s);
    }
    while (lines.length && lines[lines.length - 1] === '') lines.pop();
    return lines.join('\n');
  }
}

function openTerminal(container) {
  if (!socket.ws) socket.connect();
  const t = new Term(container);
  terms.set(t.id, t);
  $('#no-term').hidden = true;
  t.mount();
  return t.id;
}

function activate(t) {
  activeTerm = t;
  for (const other of terms.values()) {
    other.tab.classList.toggle('active', other === t);
    other.pane.hidden = other !== t;
  }
  if (t) { requestAnimationFrame(() => { t.fit.fit(); t.xterm.focus(); }); }
}

let resizeTimer;
window.addEventListener('resize', () => {
  clearTimeout(resizeTimer);
  resizeTimer = setTimeout(() => activeTerm?.fit.fit(), 100);
});

// ------------------------------------------------------------------ rendering and start
let renderQueued = false;
function renderSoon() {
  if (renderQueued) return;
  renderQueued = true;
  requestAnimationFrame(() => { renderQueued = false; renderWorkers(); renderAudit(); });
}

function setPill(selector, text, kind) {
  const el = $(selector);
  el.textContent = text;
  el.className = `pill ${kind}`;
}

$('#worker-select').addEventListener('change', (e) => { state.selected = e.target.value; refreshLists(); });
$('#containers-refresh').addEventListener('click', refreshContainers);
$('#tenant-filter').addEventListener('change', refreshContainers);
$('#images-refresh').addEventListener('click', refreshImages);
$('#audit-noise').addEventListener('change', renderAudit);

// The browser test drives and reads the page through this (xterm's buffer, not the DOM).
window.__console = {
  terms: () => [...terms.keys()],
  term: (id) => terms.get(id)?.xterm,
  text: (id) => terms.get(id)?.text(),
  stats: (id) => {
    const t = terms.get(id);
    return t && { state: t.state, sessionId: t.sessionId, written: t.written, lostBytes: t.lostBytes, gapBytes: t.gapBytes,
      duplicateBytes: t.duplicateBytes, inputSent: t.inputSent, cols: t.xterm.cols, rows: t.xterm.rows };
  },
  active: () => activeTerm?.id ?? null,
  open: (containerName) => {
    const c = state.containers.find((x) => x.name === containerName || x.containerId === containerName);
    return c ? openTerminal(c) : null;
  },
  dropSocket: () => socket.drop(),
  workers: () => [...state.workers.values()].map((w) => ({ id: w.id, connected: w.connected, registrations: w.registrations })),
  refresh: () => refreshLists(),
};

if (!key) {
  $('#app').hidden = true;
  $('#nokey').hidden = false;
  setPill('#feed', 'no key', 'bad');
} else {
  socket.connect();
  followEvents();
  refreshWorkers();
  setInterval(refreshWorkers, 5000);
  setInterval(() => { if (!document.hidden) refreshContainers(); }, 15000);
}
