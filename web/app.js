// SPDX-License-Identifier: Apache-2.0
// The exo dashboard. It reads the daemon's API (docs/api.md) from the origin that served it:
//   GET /api/v1/nodes, /api/v1/cluster  polled every POLL_MS: the graph, the table, the header
//   GET /api/v1/events (SSE)            membership and leader changes refresh at once;
//                                       `telemetry` events feed the charts, `device` events the
//                                       device list
//   GET /api/v1/devices, /api/v1/telemetry   optional: a 404 leaves their panels empty
//   GET /v1/models, /readyz             the model and its loading progress
//   POST /v1/chat/completions           the chat, streamed
// Every call goes through fetch() rather than EventSource so that the bearer token of
// --api-token can be sent; a 401 asks for the token and keeps it in localStorage. A failed
// call marks the daemon unreachable; the poll keeps trying and everything reloads when it answers.
'use strict';

const TOKEN_KEY = 'exo.apiToken';
const POLL_MS = 3000;
const SLOW_POLL_MS = 15000;
const WINDOW_MS = 120000; // what a chart shows
const MAX_SAMPLES = 600; // kept per node: ten minutes at 1 Hz, like the daemon's ring
const RETRY_MAX_MS = 10000;

const state = {
  token: localStorage.getItem(TOKEN_KEY) || '',
  online: null,
  nodes: [],
  self: null,
  leader: null,
  cluster: null,
  series: new Map(), // node id -> [{t, cpu, mem, gpu}], oldest first (percentages or null)
  historyAsked: new Set(),
  missing: new Set(), // optional routes that answered 404
  lastEventId: null,
  streaming: false,
  model: null,
  chat: { messages: [], abort: null },
  tokenWaiters: [],
};

// ---- small helpers ----------------------------------------------------------------------------

const $ = (id) => document.getElementById(id);
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

// Build an element; children are nodes or strings (always inserted as text, never as HTML).
function h(tag, props, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(props || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k === 'class') el.className = v;
    else if (k === 'data') Object.assign(el.dataset, v);
    else el.setAttribute(k, v === true ? '' : v);
  }
  for (const c of children.flat()) {
    if (c !== undefined && c !== null && c !== false) el.append(c);
  }
  return el;
}

function fmtBytes(n) {
  if (n === null || n === undefined) return '?';
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) {
    n /= 1024;
    i++;
  }
  return `${n >= 100 || i === 0 ? n.toFixed(0) : n.toFixed(1)} ${units[i]}`;
}

const fmtPct = (v) => (v === null || v === undefined ? '–' : `${v.toFixed(0)}%`);
const fmtMs = (v) => (v === null || v === undefined ? '–' : v < 10 ? `${v.toFixed(2)} ms` : `${v.toFixed(0)} ms`);
const shortId = (id) => (id ? id.slice(0, 8) : '?');
const nameOf = (id) => state.nodes.find((n) => n.id === id)?.name || shortId(id);

function cssVar(name) {
  return getComputedStyle(document.documentElement).getPropertyValue(name).trim();
}

// ---- the API ----------------------------------------------------------------------------------

class HttpError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

function setOnline(online) {
  if (state.online === online) return;
  const was = state.online;
  state.online = online;
  const banner = $('banner');
  if (online) {
    banner.hidden = true;
    if (was === false) refreshAll();
  } else {
    banner.textContent = `The exo daemon at ${location.host} is unreachable. Retrying every few seconds…`;
    banner.hidden = false;
  }
  document.body.classList.toggle('offline', !online); // what is shown is no longer current
  updatePill();
  updateChatEnabled();
}

function updatePill() {
  const pill = $('conn');
  const s = state.online === false ? 'offline' : state.streaming ? 'live' : state.online ? 'polling' : 'connecting';
  pill.dataset.state = s;
  pill.textContent = s;
  pill.title = {
    offline: 'the daemon does not answer',
    live: 'connected, receiving events',
    polling: 'connected; the event stream is reconnecting',
    connecting: 'connecting',
  }[s];
}

// fetch with the token. Resolves to the Response for any HTTP answer but 401; rejects with an
// HttpError (status 0 when the daemon is unreachable) or the AbortError of a canceled call.
async function api(path, opts = {}) {
  const headers = new Headers(opts.headers || {});
  if (state.token) headers.set('Authorization', `Bearer ${state.token}`);
  let res;
  try {
    res = await fetch(path, { ...opts, headers, cache: 'no-store' });
  } catch (e) {
    if (e.name === 'AbortError') throw e;
    setOnline(false);
    throw new HttpError(0, 'the daemon is unreachable');
  }
  setOnline(true);
  if (res.status === 401) {
    askToken();
    throw new HttpError(401, 'this daemon needs an API token');
  }
  return res;
}

async function errorMessage(res) {
  try {
    const j = await res.json();
    return j?.error?.message || `HTTP ${res.status}`;
  } catch {
    return `HTTP ${res.status}`;
  }
}

// GET path as JSON; null when an optional route is missing (404), remembered in state.missing.
async function getJson(path, optional = false) {
  const route = path.split('?')[0];
  if (optional && state.missing.has(route)) return null;
  const res = await api(path);
  if (res.status === 404 && optional) {
    state.missing.add(route);
    return null;
  }
  if (!res.ok) throw new HttpError(res.status, await errorMessage(res));
  return res.json();
}

// Read a text/event-stream body, calling onEvent({event, data, id}) per event, until it ends.
async function readSse(res, onEvent) {
  const reader = res.body.getReader();
  const decoder = new TextDecoder();
  let buf = '';
  let ev = { event: 'message', data: [], id: null };
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buf += decoder.decode(value, { stream: true });
    const lines = buf.split(/\r\n|\r|\n/);
    buf = lines.pop();
    for (const line of lines) {
      if (line === '') {
        if (ev.data.length) onEvent({ event: ev.event, data: ev.data.join('\n'), id: ev.id });
        ev = { event: 'message', data: [], id: null };
        continue;
      }
      if (line.startsWith(':')) continue;
      const colon = line.indexOf(':');
      const field = colon < 0 ? line : line.slice(0, colon);
      let value = colon < 0 ? '' : line.slice(colon + 1);
      if (value.startsWith(' ')) value = value.slice(1);
      if (field === 'event') ev.event = value;
      else if (field === 'data') ev.data.push(value);
      else if (field === 'id') ev.id = value;
    }
  }
}

// ---- the token --------------------------------------------------------------------------------

function askToken() {
  const dlg = $('token-dialog');
  if (!dlg.open) dlg.showModal();
}

function waitForToken() {
  return new Promise((resolve) => state.tokenWaiters.push(resolve));
}

function initToken() {
  $('token-form').addEventListener('submit', () => {
    state.token = $('token-input').value.trim();
    localStorage.setItem(TOKEN_KEY, state.token);
    for (const w of state.tokenWaiters.splice(0)) w();
    refreshAll();
  });
}

// ---- telemetry --------------------------------------------------------------------------------

// Percentages of one sample (docs/api.md's shape); null where the node did not measure.
function loadOf(sample) {
  const cpu = typeof sample.cpu === 'number' ? sample.cpu * 100 : null;
  const m = sample.mem;
  const mem = m && m.total > 0 ? ((m.total - m.available) / m.total) * 100 : null;
  const gpus = (sample.gpus || []).filter((g) => !g.lost && typeof g.util === 'number');
  const gpu = gpus.length ? (gpus.reduce((sum, g) => sum + g.util, 0) / gpus.length) * 100 : null;
  return { cpu, mem, gpu };
}

// Add samples (any order, possibly seen before: the poll, the events and the history overlap)
// to a node's series, which stays sorted by time and at most MAX_SAMPLES long. Returns whether
// anything was new.
function addSamples(id, samples) {
  const old = state.series.get(id) || [];
  const seen = new Set(old.map((p) => p.t));
  const fresh = samples.filter((x) => x && typeof x.t === 'number' && !seen.has(x.t)).map((x) => ({ t: x.t, ...loadOf(x) }));
  if (!fresh.length) return false;
  const all = old.concat(fresh).sort((a, b) => a.t - b.t);
  state.series.set(id, all.slice(-MAX_SAMPLES));
  return true;
}

async function loadHistory(id) {
  if (state.historyAsked.has(id)) return;
  state.historyAsked.add(id);
  try {
    const since = Date.now() - WINDOW_MS;
    const j = await getJson(`/api/v1/telemetry?node=${encodeURIComponent(id)}&since=${since}`, true);
    if (j) addSamples(id, j.samples || []);
    drawCharts(); // also when the route is missing: the panel says so
  } catch {
    state.historyAsked.delete(id); // asked again on the next poll
  }
}

// ---- the cluster: graph and table -------------------------------------------------------------

// Canvas backing store at the device's pixel ratio; returns the 2D context in CSS pixels.
function fitCanvas(canvas) {
  const dpr = window.devicePixelRatio || 1;
  const w = canvas.clientWidth;
  const hgt = canvas.clientHeight;
  if (canvas.width !== Math.round(w * dpr) || canvas.height !== Math.round(hgt * dpr)) {
    canvas.width = Math.round(w * dpr);
    canvas.height = Math.round(hgt * dpr);
  }
  const ctx = canvas.getContext('2d');
  ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
  ctx.clearRect(0, 0, w, hgt);
  return { ctx, w, h: hgt };
}

// Nodes in one order everywhere: this node first, then by name with numbers compared as numbers
// (n2 before n10).
function nodeOrder(a, b) {
  return (b.self - a.self) || (a.name || '').localeCompare(b.name || '', undefined, { numeric: true });
}

function truncate(s, n) {
  return s.length > n ? `${s.slice(0, n - 1)}…` : s;
}

// Nodes on a circle, this node on top; lines carry the round-trip times the nodes measured to
// each other (their links records), this node's own lines drawn strongest.
function drawGraph() {
  const canvas = $('graph');
  const { ctx, w, h: hgt } = fitCanvas(canvas);
  const nodes = [...state.nodes].sort(nodeOrder);
  canvas.dataset.nodes = nodes.length;
  if (!nodes.length) return;
  const n = nodes.length;
  const r = Math.max(9, Math.min(22, 26 - n));
  const ring = n > 1 ? Math.min(w / 2 - 90, hgt / 2 - r - 28) : 0; // room for the names around
  const cx = w / 2;
  const cy = hgt / 2 + (n > 1 ? 2 : -6);
  const pos = nodes.map((_, i) => {
    const a = -Math.PI / 2 + (2 * Math.PI * i) / n;
    return { x: cx + ring * Math.cos(a), y: cy + ring * Math.sin(a), cos: Math.cos(a), sin: Math.sin(a) };
  });
  const fg = cssVar('--fg');
  const muted = cssVar('--muted');
  ctx.font = `${n > 10 ? 10 : 12}px system-ui, sans-serif`;
  ctx.textAlign = 'center';
  ctx.textBaseline = 'middle';
  // Every pair that either end measured (its links record), else this node's own probe time.
  const rttOf = (a, b) => {
    const v = (a.links && a.links[b.id]) ?? (b.links && b.links[a.id]);
    if (v !== undefined && v !== null) return v;
    if (a.self) return b.rtt_ms;
    if (b.self) return a.rtt_ms;
    return null;
  };
  for (let i = 0; i < n; i++) {
    for (let j = i + 1; j < n; j++) {
      const a = pos[i];
      const b = pos[j];
      const rtt = rttOf(nodes[i], nodes[j]);
      const gone = (x) => x.state === 'dead' || x.state === 'left';
      const dead = gone(nodes[i]) || gone(nodes[j]);
      if (!nodes[i].self && (rtt === null || rtt === undefined) && !dead) continue;
      ctx.strokeStyle = muted;
      ctx.lineWidth = 1;
      ctx.globalAlpha = nodes[i].self ? 1 : 0.45;
      ctx.setLineDash(dead || rtt === null || rtt === undefined ? [4, 4] : []);
      ctx.beginPath();
      ctx.moveTo(a.x, a.y);
      ctx.lineTo(b.x, b.y);
      ctx.stroke();
      ctx.setLineDash([]);
      ctx.globalAlpha = 1;
      // Labels where they stay legible: this node's links up to 12 nodes, all of them up to 5.
      if (rtt !== null && rtt !== undefined && (n <= 5 || (nodes[i].self && n <= 12))) {
        const t = n > 6 ? 0.72 : 0.5; // crowded: labels near the peer, away from the hub
        const lx = a.x + (b.x - a.x) * t;
        const ly = a.y + (b.y - a.y) * t;
        const label = fmtMs(rtt);
        const tw = ctx.measureText(label).width + 6;
        ctx.fillStyle = cssVar('--panel');
        ctx.fillRect(lx - tw / 2, ly - 8, tw, 16);
        ctx.fillStyle = muted;
        ctx.fillText(label, lx, ly);
      }
    }
  }
  nodes.forEach((node, i) => {
    const p = pos[i];
    if (node.leader) {
      ctx.strokeStyle = cssVar('--leader');
      ctx.lineWidth = 3;
      ctx.beginPath();
      ctx.arc(p.x, p.y, r + 5, 0, 2 * Math.PI);
      ctx.stroke();
    }
    ctx.fillStyle = cssVar(`--${node.state}`) || muted;
    ctx.beginPath();
    ctx.arc(p.x, p.y, r, 0, 2 * Math.PI);
    ctx.fill();
    if (node.self) {
      ctx.strokeStyle = fg;
      ctx.lineWidth = 2;
      ctx.stroke();
    }
    // Names go outside the ring, where they do not cross the links.
    const gap = r + (node.leader ? 9 : 5);
    const name = truncate(node.name, n > 10 ? 12 : 18);
    ctx.fillStyle = fg;
    if (n === 1 || Math.abs(p.cos) < 0.3) {
      ctx.textAlign = 'center';
      ctx.fillText(name, p.x, p.y + (n === 1 || p.sin > 0 ? 1 : -1) * (gap + 7));
    } else {
      ctx.textAlign = p.cos > 0 ? 'left' : 'right';
      ctx.fillText(name, p.x + Math.sign(p.cos) * gap, p.y);
    }
  });
}

function renderTable() {
  const body = $('nodes').tBodies[0];
  const rows = [...state.nodes]
    .sort(nodeOrder)
    .map((n) => {
      const last = state.series.get(n.id)?.at(-1);
      const tags = [n.leader && h('span', { class: 'tag leader' }, 'leader'), n.self && h('span', { class: 'tag' }, 'this node')];
      return h(
        'tr',
        { data: { id: n.id, state: n.state } },
        h('td', { title: n.id }, h('span', { class: `dot ${n.state}` }), n.name, ' ', tags),
        h('td', {}, n.addr || '–'),
        h('td', {}, n.state),
        h('td', {}, n.self ? '–' : fmtMs(n.rtt_ms)),
        h('td', {}, fmtPct(last?.cpu)),
        h('td', {}, fmtPct(last?.mem)),
      );
    });
  body.replaceChildren(...rows);
}

function renderSummary() {
  const alive = state.nodes.filter((n) => n.state === 'alive').length;
  const parts = [`${alive}/${state.nodes.length} node${state.nodes.length === 1 ? '' : 's'} alive`];
  parts.push(state.leader ? `leader ${nameOf(state.leader)}` : 'no leader yet');
  if (state.cluster) parts.push(`term ${state.cluster.term}`, `exo ${state.cluster.version}`);
  $('summary').textContent = parts.join(' · ');
}

async function refreshNodes() {
  const [nodes, cluster] = await Promise.all([getJson('/api/v1/nodes'), getJson('/api/v1/cluster')]);
  state.nodes = nodes.nodes || [];
  state.self = nodes.self;
  state.leader = nodes.leader;
  state.cluster = cluster;
  for (const n of state.nodes) {
    if (n.telemetry) addSamples(n.id, [n.telemetry]);
    loadHistory(n.id);
  }
  renderSummary();
  renderTable();
  drawGraph();
  drawCharts();
}

// ---- charts -----------------------------------------------------------------------------------

function chartCard(id) {
  let card = document.querySelector(`.chart[data-id="${id}"]`);
  if (!card) {
    card = h('div', { class: 'chart', data: { id, samples: '0' } }, h('div', { class: 'chart-head' }, h('b', {}), h('span', { class: 'muted' })), h('canvas', {}));
    $('charts').append(card);
  }
  return card;
}

// One line per series over the last WINDOW_MS of the node's own clock; gaps where it has no value.
function drawSeries(ctx, s, key, x0, w, hgt, color) {
  ctx.strokeStyle = color;
  ctx.lineWidth = 1.5;
  ctx.beginPath();
  let pen = false;
  const end = s.at(-1).t;
  for (const p of s) {
    const v = p[key];
    if (v === null || end - p.t > WINDOW_MS) {
      pen = false;
      continue;
    }
    const x = x0 + w - ((end - p.t) / WINDOW_MS) * w;
    const y = 4 + (hgt - 8) * (1 - Math.max(0, Math.min(100, v)) / 100);
    if (pen) ctx.lineTo(x, y);
    else ctx.moveTo(x, y);
    pen = true;
  }
  ctx.stroke();
}

function drawChart(card, node, s) {
  const last = s.at(-1);
  card.querySelector('b').textContent = node ? node.name : shortId(card.dataset.id);
  card.querySelector('.chart-head span').textContent =
    `cpu ${fmtPct(last.cpu)} · mem ${fmtPct(last.mem)}` + (last.gpu !== null ? ` · gpu ${fmtPct(last.gpu)}` : '');
  card.dataset.samples = String(s.length);
  card.dataset.last = String(last.t);
  const { ctx, w, h: hgt } = fitCanvas(card.querySelector('canvas'));
  const x0 = 30;
  ctx.strokeStyle = cssVar('--grid');
  ctx.fillStyle = cssVar('--muted');
  ctx.lineWidth = 1;
  ctx.font = '10px system-ui, sans-serif';
  ctx.textAlign = 'right';
  ctx.textBaseline = 'middle';
  for (const pct of [0, 50, 100]) {
    const y = Math.round(4 + (hgt - 8) * (1 - pct / 100)) + 0.5;
    ctx.beginPath();
    ctx.moveTo(x0, y);
    ctx.lineTo(w, y);
    ctx.stroke();
    ctx.fillText(`${pct}%`, x0 - 4, y);
  }
  drawSeries(ctx, s, 'mem', x0, w - x0, hgt, cssVar('--mem'));
  drawSeries(ctx, s, 'gpu', x0, w - x0, hgt, cssVar('--gpu'));
  drawSeries(ctx, s, 'cpu', x0, w - x0, hgt, cssVar('--cpu'));
}

function drawCharts() {
  const box = $('charts');
  const ids = [...state.nodes].sort(nodeOrder).map((n) => n.id).filter((id) => state.series.get(id)?.length);
  for (const card of [...box.querySelectorAll('.chart')]) {
    if (!ids.includes(card.dataset.id)) card.remove();
  }
  box.querySelector('p')?.remove();
  if (!ids.length) {
    const why = state.missing.has('/api/v1/telemetry') ? 'This daemon does not report telemetry yet.' : 'No telemetry yet.';
    box.replaceChildren(h('p', { class: 'muted' }, why));
    return;
  }
  for (const id of ids) drawChart(chartCard(id), state.nodes.find((n) => n.id === id), state.series.get(id));
  // Cards are made as nodes first report; keep them in the nodes' order (moving one keeps its
  // drawing).
  const cards = [...box.querySelectorAll('.chart')];
  if (cards.some((c, i) => c.dataset.id !== ids[i])) box.append(...ids.map((id) => chartCard(id)));
}

// ---- devices ----------------------------------------------------------------------------------

function scoreText(score) {
  if (!score) return null;
  const parts = [];
  if (score.mem_bw_gbps) parts.push(`memory ${score.mem_bw_gbps.toFixed(1)} GB/s`);
  const t = (score.types || [])[0];
  if (t) parts.push(`${t.type} mat-vec ${t.matvec_gbps.toFixed(1)} GB/s`, `${t.matmul_gflops.toFixed(0)} GFLOP/s`);
  return parts.join(' · ');
}

function deviceRow(d, nodeScore) {
  const mem = d.memory || {};
  const memText = `${fmtBytes(mem.total)}${mem.free !== null && mem.free !== undefined ? ` (${fmtBytes(mem.free)} free)` : ''}${mem.shared ? ', shared' : ''}`;
  const units = d.kind === 'cpu' ? (d.threads ? `${d.threads} threads` : null) : d.compute_units ? `${d.compute_units} compute units` : null;
  const score = scoreText(d.score || (d.id === 'cpu0' ? nodeScore : null));
  return h(
    'li',
    { class: 'device' },
    h('span', { class: `tag ${d.kind}` }, d.id),
    ' ',
    h('b', {}, d.name || d.kind),
    h('div', { class: 'muted' }, [memText, units, d.isa].filter(Boolean).join(' · ')),
    score && h('div', { class: 'score' }, score),
  );
}

async function refreshDevices() {
  const box = $('devices');
  let j;
  try {
    j = await getJson('/api/v1/devices', true);
  } catch (e) {
    // 503 while the node still detects and measures its devices: say so rather than "…".
    if (e.status >= 500 && !box.querySelector('.node-devices')) box.replaceChildren(h('p', { class: 'muted' }, `No device reports yet: ${e.message}`));
    throw e;
  }
  if (!j) {
    box.replaceChildren(h('p', { class: 'muted' }, 'This daemon does not report devices yet.'));
    return;
  }
  const nodes = (j.nodes || []).map((n) => ({ ...n, self: n.node === state.self })).sort(nodeOrder);
  const blocks = nodes.map((n) =>
    h('div', { class: 'node-devices', data: { node: n.node } }, h('h3', {}, n.name || shortId(n.node)), h('ul', {}, (n.devices || []).map((d) => deviceRow(d, n.score)))),
  );
  box.classList.remove('muted');
  box.replaceChildren(...(blocks.length ? blocks : [h('p', { class: 'muted' }, 'No devices reported.')]));
}

// ---- the model --------------------------------------------------------------------------------

async function refreshModel() {
  const box = $('model');
  const j = await getJson('/v1/models');
  const models = j.data || [];
  state.model = models.find((m) => m.status === 'ready') || models[0] || null;
  const where = state.self ? `${nameOf(state.self)} (this node)` : 'this node';
  if (!models.length) {
    box.replaceChildren(h('p', { class: 'muted' }, 'No node in the cluster serves a model yet.'));
  } else {
    const items = models.map((m) =>
      h(
        'div',
        { class: 'model', data: { status: m.status } },
        h('b', {}, m.id),
        ' ',
        h('span', { class: `tag ${m.status === 'ready' ? 'ok' : ''}` }, m.status),
        h('div', { class: 'muted' }, [m.name, m.context_length && `context ${m.context_length} tokens`, `served by ${m.nodes ? m.nodes.join(', ') : where}`].filter(Boolean).join(' · ')),
      ),
    );
    box.classList.remove('muted');
    box.replaceChildren(...items);
    if (state.model && state.model.status !== 'ready') {
      const res = await api('/readyz');
      const r = await res.json().catch(() => ({}));
      if (r.phase || typeof r.progress === 'number') {
        const bar = h('progress', { max: '1' });
        if (typeof r.progress === 'number') bar.value = r.progress;
        box.append(h('div', { class: 'muted' }, r.error || r.phase || r.status, ' '), bar);
      }
    }
  }
  updateChatEnabled();
}

// ---- the event stream -------------------------------------------------------------------------

let refreshTimer = null;

// Bursts of membership events cost one reload.
function refreshSoon() {
  if (refreshTimer) return;
  refreshTimer = setTimeout(() => {
    refreshTimer = null;
    refreshNodes().catch(() => {});
  }, 250);
}

function onClusterEvent(ev) {
  if (ev.id) state.lastEventId = ev.id;
  let data;
  try {
    data = JSON.parse(ev.data);
  } catch {
    return;
  }
  switch (ev.event) {
    case 'telemetry':
      if (addSamples(data.node, [data.sample])) {
        drawCharts();
        renderTable();
      }
      break;
    case 'device':
      refreshDevices().catch(() => {});
      break;
    case 'snapshot':
      refreshAll();
      break;
    case 'record_set':
    case 'record_del':
      if ((data.record?.kind || data.kind) === 'devices' || (data.record?.kind || data.kind) === 'scores') refreshDevices().catch(() => {});
      break;
    default: // leader, member_set, member_del
      refreshSoon();
  }
}

async function eventsLoop() {
  let delay = 1000;
  for (;;) {
    try {
      const headers = state.lastEventId ? { 'Last-Event-ID': state.lastEventId } : {};
      const res = await api('/api/v1/events', { headers });
      if (res.ok) {
        delay = 1000;
        state.streaming = true;
        updatePill();
        await readSse(res, onClusterEvent);
      }
    } catch (e) {
      if (e.status === 401) await waitForToken();
    }
    state.streaming = false;
    updatePill();
    await sleep(delay);
    delay = Math.min(delay * 2, RETRY_MAX_MS);
  }
}

// ---- chat -------------------------------------------------------------------------------------

function updateChatEnabled() {
  const ready = state.online !== false && state.model && state.model.status === 'ready';
  $('send').disabled = !ready || !!state.chat.abort;
  $('prompt').placeholder = ready
    ? 'Ask the model… (Enter sends, Shift+Enter for a new line)'
    : 'No model is ready on this node yet.';
}

function addMessage(role, text) {
  const el = h('div', { class: `msg ${role}`, data: { role } }, h('div', { class: 'text' }, text), h('div', { class: 'stats muted' }));
  $('messages').append(el);
  el.scrollIntoView({ block: 'end' });
  return el;
}

// Time to first token: request sent to first content. Tokens/s: the tokens after the first over
// the time after the first, as llama.cpp reports decode speed (the first token pays the prompt).
function chatStats(t0, tFirst, tEnd, tokens) {
  const parts = [];
  if (tFirst) parts.push(`TTFT ${fmtMs(tFirst - t0)}`);
  if (tFirst && tokens > 1 && tEnd > tFirst) parts.push(`${((tokens - 1) / ((tEnd - tFirst) / 1000)).toFixed(1)} tok/s`);
  parts.push(`${tokens} token${tokens === 1 ? '' : 's'}`);
  return parts.join(' · ');
}

async function sendChat(prompt) {
  if (!state.model) return;
  const chat = state.chat;
  chat.messages.push({ role: 'user', content: prompt });
  addMessage('user', prompt);
  const out = addMessage('assistant', '');
  const text = out.querySelector('.text');
  const stats = out.querySelector('.stats');
  out.dataset.state = 'waiting';
  chat.abort = new AbortController();
  $('stop').disabled = false;
  updateChatEnabled();
  const maxTokens = parseInt($('max-tokens').value, 10) || 256;
  const t0 = performance.now();
  let tFirst = 0;
  let tEnd = 0;
  let chunks = 0;
  let usage = null;
  let answer = '';
  try {
    const res = await api('/v1/chat/completions', {
      method: 'POST',
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify({ model: state.model.id, messages: chat.messages, stream: true, max_tokens: maxTokens, stream_options: { include_usage: true } }),
      signal: chat.abort.signal,
    });
    if (!res.ok) throw new HttpError(res.status, await errorMessage(res));
    out.dataset.state = 'streaming';
    await readSse(res, (ev) => {
      if (ev.data === '[DONE]') return;
      const j = JSON.parse(ev.data);
      if (j.usage) usage = j.usage;
      const delta = j.choices?.[0]?.delta?.content;
      if (delta) {
        if (!tFirst) tFirst = performance.now();
        tEnd = performance.now();
        chunks++;
        out.dataset.chunks = String(chunks);
        answer += delta;
        text.textContent = answer;
        stats.textContent = chatStats(t0, tFirst, tEnd, chunks);
        out.scrollIntoView({ block: 'end' });
      }
    });
    out.dataset.state = 'done';
  } catch (e) {
    out.dataset.state = e.name === 'AbortError' ? 'stopped' : 'error';
    if (e.name !== 'AbortError') out.append(h('div', { class: 'error' }, e.message));
  }
  stats.textContent = chatStats(t0, tFirst, tEnd || performance.now(), usage?.completion_tokens ?? chunks);
  if (answer) chat.messages.push({ role: 'assistant', content: answer });
  else chat.messages.pop(); // a failed turn is not part of the conversation
  chat.abort = null;
  $('stop').disabled = true;
  updateChatEnabled();
}

function initChat() {
  const form = $('chat-form');
  const prompt = $('prompt');
  form.addEventListener('submit', (e) => {
    e.preventDefault();
    const text = prompt.value.trim();
    if (!text || state.chat.abort || $('send').disabled) return;
    prompt.value = '';
    sendChat(text);
  });
  prompt.addEventListener('keydown', (e) => {
    if (e.key === 'Enter' && !e.shiftKey) {
      e.preventDefault();
      form.requestSubmit();
    }
  });
  $('stop').addEventListener('click', () => state.chat.abort?.abort());
  $('clear').addEventListener('click', () => {
    state.chat.abort?.abort();
    state.chat.messages = [];
    $('messages').replaceChildren();
  });
}

// ---- start ------------------------------------------------------------------------------------

function refreshAll() {
  refreshNodes().catch(() => {});
  refreshModel().catch(() => {});
  refreshDevices().catch(() => {});
}

async function pollLoop(fn, ms) {
  for (;;) {
    await sleep(ms);
    if (document.hidden && state.online) continue; // a background tab needs no polling
    await fn().catch(() => {});
  }
}

function start() {
  initToken();
  initChat();
  updatePill();
  refreshAll();
  eventsLoop();
  // The model is polled fast only while it loads, to show the progress.
  pollLoop(() => Promise.all([refreshNodes(), state.model?.status === 'ready' ? null : refreshModel()]), POLL_MS);
  pollLoop(() => Promise.all([refreshModel(), refreshDevices()]), SLOW_POLL_MS);
  new ResizeObserver(() => {
    drawGraph();
    drawCharts();
  }).observe(document.body);
}

start();
