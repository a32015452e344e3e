// sessiond dashboard (SPEC §12). Plain JavaScript, no library, no build step: it talks
// to the documented /v1 API with the key the operator entered (session storage), and
// follows the session event stream for live updates. Every text it shows is a text
// node (never markup built from data). docs/adr/0009-dashboard.md explains the design.
'use strict';

const KEY = 'sessiond.key';
const STATUSES = ['PENDING', 'SCHEDULED', 'PREPARING', 'PULLING', 'PREPARED', 'CREATING',
  'RUNNING', 'RESTARTING', 'RUNNING_DEGRADED', 'TERMINATING', 'TERMINATED', 'CANCELLED', 'ERROR'];
const EVENT_STATUS = {
  SessionEnqueued: 'PENDING', SessionScheduled: 'SCHEDULED', SessionPreparing: 'PREPARING',
  SessionPulling: 'PULLING', SessionPrepared: 'PREPARED', SessionCreating: 'CREATING',
  SessionStarted: 'RUNNING', SessionRestarting: 'RESTARTING', SessionDegraded: 'RUNNING_DEGRADED',
  SessionTerminating: 'TERMINATING', SessionTerminated: 'TERMINATED',
  SessionCancelled: 'CANCELLED', SessionErrored: 'ERROR',
};

const $ = (id) => document.getElementById(id);

/** An element with attributes and children (strings become text nodes). */
function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k === 'class') el.className = v;
    else if (k.startsWith('on')) el.addEventListener(k.slice(2), v);
    else el.setAttribute(k, v === true ? '' : String(v));
  }
  for (const c of children.flat(Infinity)) {
    if (c === null || c === undefined || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

function badge(status) {
  return h('span', { class: 'badge st-' + status }, status);
}

function empty(text) {
  return h('p', { class: 'empty' }, text);
}

function table(headers, rows) {
  return h('div', { class: 'scroll' }, h('table', {},
    h('thead', {}, h('tr', {}, headers.map((x) => h('th', { scope: 'col' }, x)))),
    h('tbody', {}, rows)));
}

function fill(id, ...content) {
  $(id).replaceChildren(...content.filter((c) => c !== null && c !== undefined && c !== false));
}

// ---- time -------------------------------------------------------------------------

function ago(iso) {
  if (!iso) return '';
  return duration((Date.now() - Date.parse(iso)) / 1000);
}

function duration(secs) {
  const s = Math.max(0, Math.round(secs));
  if (s < 60) return s + ' s';
  if (s < 3600) return Math.floor(s / 60) + ' min ' + (s % 60) + ' s';
  if (s < 86400) return Math.floor(s / 3600) + ' h ' + Math.floor((s % 3600) / 60) + ' min';
  return Math.floor(s / 86400) + ' d ' + Math.floor((s % 86400) / 3600) + ' h';
}

function when(iso) {
  if (!iso) return '';
  const d = new Date(iso);
  return h('time', { datetime: iso, title: iso }, d.toLocaleString());
}

/** A text that counts up every second (a waiting time) without asking the server. */
function since(iso) {
  return h('span', { 'data-since': iso || '' }, ago(iso));
}

function tick() {
  for (const el of document.querySelectorAll('[data-since]')) {
    el.textContent = ago(el.getAttribute('data-since'));
  }
  for (const el of document.querySelectorAll('[data-until]')) {
    const left = (Date.parse(el.getAttribute('data-until')) - Date.now()) / 1000;
    el.textContent = left > 0 ? 'in ' + duration(left) : 'due now';
  }
}

// ---- the API ----------------------------------------------------------------------

class Refused extends Error {}

function key() {
  return sessionStorage.getItem(KEY);
}

function authHeaders(k) {
  return { Authorization: 'Bearer ' + k };
}

/** A JSON call; a 401 sends the operator back to the key prompt. */
async function api(path, options) {
  const k = key();
  if (!k) throw new Refused('no key');
  const opts = options || {};
  const res = await fetch(path, { ...opts, headers: { ...(opts.headers || {}), ...authHeaders(k) } });
  if (res.status === 401) {
    signOut('The key was refused (revoked or unknown). Enter a key to continue.');
    throw new Refused('401');
  }
  const body = await res.json().catch(() => null);
  if (!res.ok) {
    const e = new Error((body && body.error && body.error.message) || res.statusText);
    e.status = res.status;
    e.code = body && body.error && body.error.code;
    throw e;
  }
  return body;
}

/** A consistency token for reads after an event: wait until the read models have it. */
function withPosition(path) {
  if (!state.position) return path;
  return path + (path.includes('?') ? '&' : '?') + 'min_position=' + state.position;
}

/**
 * A Server-Sent Events stream read with fetch (EventSource cannot send the key in a
 * header). Reconnects with Last-Event-ID and backoff; `onOpen` runs after every
 * (re)connect so the page catches up on what it missed; `onIdle` runs on each
 * keep-alive the server sends on a quiet stream (every 15 s).
 */
class Stream {
  constructor(path, onEvent, onOpen, onIdle) {
    this.path = path;
    this.onEvent = onEvent;
    this.onOpen = onOpen;
    this.onIdle = onIdle;
    this.last = null;
    this.closed = false;
    this.ctrl = null;
    this.run();
  }

  close() {
    this.closed = true;
    if (this.ctrl) this.ctrl.abort();
  }

  async run() {
    let delay = 500;
    while (!this.closed) {
      const k = key();
      if (!k) return;
      this.ctrl = new AbortController();
      try {
        const headers = { ...authHeaders(k), Accept: 'text/event-stream' };
        if (this.last !== null) headers['Last-Event-ID'] = this.last;
        const res = await fetch(this.path, { headers, signal: this.ctrl.signal });
        if (res.status === 401) {
          signOut('The key was refused (revoked or unknown). Enter a key to continue.');
          return;
        }
        if (!res.ok) throw new Error('stream answered ' + res.status);
        delay = 500;
        this.live(true);
        if (this.onOpen) this.onOpen();
        const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
        let buf = '';
        for (;;) {
          const { value, done } = await reader.read();
          if (done) break;
          buf += value.replace(/\r\n?/g, '\n');
          let end;
          while ((end = buf.indexOf('\n\n')) >= 0) {
            this.dispatch(buf.slice(0, end));
            buf = buf.slice(end + 2);
          }
        }
      } catch (err) {
        if (this.closed) return;
      }
      this.live(false);
      if (this.closed) return;
      await new Promise((resolve) => setTimeout(resolve, delay));
      delay = Math.min(delay * 2, 10000);
    }
  }

  live(on) {
    if (this !== state.stream) return;
    const el = $('live');
    el.className = 'live ' + (on ? 'on' : 'off');
    el.textContent = on ? 'live' : 'reconnecting';
  }

  dispatch(block) {
    let id = null;
    let event = 'message';
    const data = [];
    if (block.split('\n').every((line) => !line || line.startsWith(':'))) {
      if (this.onIdle) this.onIdle();
      return;
    }
    for (const line of block.split('\n')) {
      if (!line || line.startsWith(':')) continue;
      const colon = line.indexOf(':');
      const field = colon < 0 ? line : line.slice(0, colon);
      let value = colon < 0 ? '' : line.slice(colon + 1);
      if (value.startsWith(' ')) value = value.slice(1);
      if (field === 'id') id = value;
      else if (field === 'event') event = value;
      else if (field === 'data') data.push(value);
    }
    if (id !== null) this.last = id;
    if (data.length === 0) return;
    let parsed = null;
    try {
      parsed = JSON.parse(data.join('\n'));
    } catch (err) {
      return;
    }
    this.onEvent(event, parsed);
  }
}

// ---- page state and refreshes ----------------------------------------------------------

const state = {
  role: null,
  stream: null,
  taskStream: null,
  refresh: null,
  position: 0,
  timer: null,
  running: false,
  again: false,
};

/** Runs the current view's refresh soon, at most one at a time (events coalesce). */
function scheduleRefresh() {
  if (state.timer) return;
  state.timer = setTimeout(async () => {
    state.timer = null;
    if (state.running) {
      state.again = true;
      return;
    }
    state.running = true;
    try {
      if (state.refresh) await state.refresh();
    } finally {
      state.running = false;
      if (state.again) {
        state.again = false;
        scheduleRefresh();
      }
    }
  }, 100);
}

function onSessionEvent(_name, data) {
  if (data && typeof data.position === 'number' && data.position > state.position) {
    state.position = data.position;
  }
  scheduleRefresh();
}

/** A background-task event: progress moves its bar in place; anything else (a new
 * task, an end) reloads the panel. */
function onTaskEvent(_name, data) {
  const bar = data && document.querySelector('[data-task-progress="' + data.task_id + '"]');
  if (bar && data.event_type === 'BackgroundTaskProgressed') {
    bar.replaceWith(progress({
      task_id: data.task_id, status: data.status,
      current_progress: data.current_progress, total_progress: data.total_progress,
    }));
  } else {
    scheduleRefresh();
  }
}

function stopStreams() {
  if (state.stream) state.stream.close();
  if (state.taskStream) state.taskStream.close();
  state.stream = null;
  state.taskStream = null;
}

function follow(path, withTasks) {
  stopStreams();
  // Heartbeats are not events: on a quiet stream the agents panel (liveness, last
  // heartbeat) is refreshed with each keep-alive, never more often.
  const idle = withTasks ? () => panel('agents', loadAgents) : null;
  state.stream = new Stream(path, onSessionEvent, scheduleRefresh, idle);
  if (withTasks) state.taskStream = new Stream('/v1/events/background-tasks', onTaskEvent, scheduleRefresh);
}

/** Runs one panel's loader; a failure is shown in the panel, not thrown. */
async function panel(id, load) {
  try {
    await load();
  } catch (err) {
    if (err instanceof Refused) return;
    fill(id, h('p', { class: 'alert' }, 'Could not load: ' + err.message));
  }
}

// ---- overview -------------------------------------------------------------------------

async function refreshOverview() {
  const groups = await api('/v1/scaling-groups').catch(() => ({ items: [] }));
  const byName = new Map(groups.items.map((g) => [g.name, g]));
  await Promise.all([
    panel('counts', loadCounts),
    panel('pending', () => loadPending(byName)),
    panel('running', loadRunning),
    panel('agents', loadAgents),
    panel('tasks', loadTasks),
    panel('webhooks', loadWebhooks),
  ]);
  tick();
}

async function loadCounts() {
  const counts = await api(withPosition('/v1/session-counts'));
  if (counts.items.length === 0) return fill('counts', empty('No sessions yet.'));
  const groups = [...new Set(counts.items.map((c) => c.scaling_group))];
  const present = STATUSES.filter((s) => counts.items.some((c) => c.status === s));
  const n = (g, s) => {
    const c = counts.items.find((x) => x.scaling_group === g && x.status === s);
    return c ? c.count : 0;
  };
  const rows = groups.map((g) => h('tr', { 'data-group': g },
    h('th', { scope: 'row' }, g),
    present.map((s) => h('td', { class: 'num', 'data-status': s }, String(n(g, s))))));
  fill('counts', table(['Scaling group', ...present.map(badge)], rows));
}

function predicates(session) {
  const sched = session.status_data && session.status_data.scheduler;
  const failed = (sched && sched.failed_predicates) || [];
  if (failed.length === 0) return h('span', { class: 'muted' }, 'not tried yet');
  return h('ul', { class: 'preds' },
    failed.map((p) => h('li', {}, h('strong', {}, p.name), ': ', p.msg)));
}

function sessionLink(s) {
  return h('a', { href: '#/session/' + encodeURIComponent(s.session_id) }, s.name);
}

async function cancel(s) {
  if (!window.confirm('Cancel session ' + s.name + '?')) return;
  try {
    const out = await api('/v1/sessions/' + encodeURIComponent(s.session_id), { method: 'DELETE' });
    if (out && out.position > state.position) state.position = out.position;
    scheduleRefresh();
  } catch (err) {
    if (!(err instanceof Refused)) window.alert('Could not cancel: ' + err.message);
  }
}

async function loadPending(groups) {
  const list = await api(withPosition('/v1/sessions?status=PENDING&limit=100'));
  $('pending-n').textContent = list.next_cursor ? '(first 100)' : '(' + list.items.length + ')';
  if (list.items.length === 0) return fill('pending', empty('Nothing is waiting.'));
  const rows = list.items.map((s) => {
    const g = groups.get(s.scaling_group);
    const timeout = g && g.scheduler_opts && g.scheduler_opts.pending_timeout;
    let deadline = h('span', { class: 'muted' }, 'none');
    if (timeout && s.created_at) {
      const at = new Date(Date.parse(s.created_at) + timeout * 1000).toISOString();
      deadline = h('span', {}, when(at), ' (', h('span', { 'data-until': at }, ''), ')');
    }
    return h('tr', { 'data-session-id': s.session_id },
      h('td', {}, sessionLink(s)),
      h('td', {}, s.owner),
      h('td', {}, s.scaling_group),
      h('td', {}, since(s.created_at)),
      h('td', {}, deadline),
      h('td', { class: 'why' }, predicates(s)),
      h('td', {}, h('button', {
        type: 'button', class: 'danger', 'aria-label': 'Cancel session ' + s.name,
        onclick: () => cancel(s),
      }, 'Cancel')));
  });
  fill('pending', table(['Session', 'Owner', 'Group', 'Waiting', 'Pending timeout', 'Why it waits', ''], rows));
}

async function loadRunning() {
  const list = await api(withPosition('/v1/sessions?status=RUNNING&limit=100'));
  $('running-n').textContent = list.next_cursor ? '(first 100)' : '(' + list.items.length + ')';
  if (list.items.length === 0) return fill('running', empty('Nothing is running.'));
  const rows = list.items.map((s) => h('tr', { 'data-session-id': s.session_id },
    h('td', {}, sessionLink(s)),
    h('td', {}, s.owner),
    h('td', {}, s.scaling_group),
    h('td', {}, (s.agents || []).map((a) => a.agent_id).join(', ')),
    h('td', {}, 'for ', since(s.status_changed))));
  fill('running', table(['Session', 'Owner', 'Group', 'Agents', 'Running'], rows));
}

function amount(slot, v) {
  const n = Number(v);
  if (slot === 'mem' && Number.isFinite(n)) {
    const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
    let x = n;
    let i = 0;
    while (x >= 1024 && i < units.length - 1) { x /= 1024; i += 1; }
    return (Math.round(x * 10) / 10) + ' ' + units[i];
  }
  return String(v);
}

function slots(agent) {
  const cap = agent.available_slots || {};
  const used = agent.occupied_slots || {};
  return h('div', {}, Object.keys(cap).sort().map((slot) => {
    const total = Number(cap[slot]);
    const u = Number(used[slot] || 0);
    const pct = total > 0 ? Math.min(100, Math.round((u / total) * 100)) : 0;
    return h('div', {},
      h('span', { class: 'meter', role: 'img', 'aria-label': pct + '% used' },
        h('span', { style: null, 'data-pct': pct })),
      slot + ' ' + amount(slot, used[slot] || 0) + ' / ' + amount(slot, cap[slot]));
  }));
}

async function loadAgents() {
  if (state.role !== 'admin') return fill('agents', empty('Agents are shown to admin keys.'));
  const list = await api('/v1/agents');
  if (list.items.length === 0) return fill('agents', empty('No agent has registered.'));
  const rows = list.items.map((a) => h('tr', { 'data-agent-id': a.agent_id },
    h('td', {}, a.agent_id, a.over_capacity ? h('div', { class: 'alert' }, 'over capacity') : null),
    h('td', {}, a.scaling_group),
    h('td', {}, badge(a.status)),
    h('td', {}, slots(a)),
    h('td', { class: 'num' }, String(a.sessions)),
    h('td', {}, a.last_heartbeat_at ? since(a.last_heartbeat_at) : 'never', a.last_heartbeat_at ? ' ago' : '')));
  fill('agents', table(['Agent', 'Group', 'Liveness', 'Slots used / available', 'Sessions', 'Last heartbeat'], rows));
  // Bar widths are set from script (the style sheet policy allows no inline styles).
  for (const bar of $('agents').querySelectorAll('[data-pct]')) {
    bar.style.width = bar.getAttribute('data-pct') + '%';
  }
}

function progress(t) {
  const total = t.total_progress || 0;
  return h('span', { 'data-task-progress': t.task_id },
    h('progress', { max: total || 1, value: total ? t.current_progress : (t.status === 'running' ? null : 1),
      'aria-label': 'progress of task ' + t.task_id }),
    ' ', total ? Math.floor((100 * t.current_progress) / total) + '%' : '');
}

async function loadTasks() {
  const list = await api('/v1/background-tasks');
  if (list.items.length === 0) return fill('tasks', empty('No background tasks.'));
  const rows = list.items.slice(0, 50).map((t) => h('tr', { 'data-task-id': t.task_id },
    h('td', {}, t.kind), h('td', {}, t.owner), h('td', {}, badge(t.status)),
    h('td', {}, progress(t)), h('td', {}, t.message), h('td', {}, when(t.started_at))));
  fill('tasks', table(['Kind', 'Owner', 'Status', 'Progress', 'Message', 'Started'], rows));
}

async function loadWebhooks() {
  if (state.role !== 'admin') return fill('webhooks', empty('Webhook subscriptions are shown to admin keys.'));
  const list = await api('/v1/webhooks');
  if (list.items.length === 0) return fill('webhooks', empty('No webhook subscriptions.'));
  const rows = list.items.map((w) => {
    const d = w.deliveries;
    return h('tr', { 'data-webhook-id': w.webhook_id },
      h('td', {}, w.url, w.description ? h('div', { class: 'muted' }, w.description) : null),
      h('td', {}, badge(w.enabled ? 'enabled' : 'disabled'), w.disabled_reason ? h('div', {}, w.disabled_reason) : null),
      h('td', { class: 'num' }, String(d.delivered)),
      h('td', { class: 'num' }, String(d.open)),
      h('td', { class: 'num' }, String(d.dead)),
      h('td', {}, d.oldest_open_at ? h('span', {}, since(d.oldest_open_at), ' behind') : 'up to date'),
      h('td', {}, d.last_error || ''));
  });
  fill('webhooks', table(['Endpoint', 'State', 'Delivered', 'Open', 'Dead', 'Backlog', 'Last failure'], rows));
}

// ---- one session ----------------------------------------------------------------------

function details(payload) {
  const inner = (payload && typeof payload === 'object' && Object.values(payload).length === 1
    && typeof Object.values(payload)[0] === 'object') ? Object.values(payload)[0] : payload;
  if (!inner || typeof inner !== 'object') return '';
  const parts = [];
  if (inner.reason) parts.push(inner.reason);
  if (inner.exit_code !== undefined && inner.exit_code !== null) parts.push('exit code ' + inner.exit_code);
  if (inner.ended_on && inner.ended_on.length) parts.push('on ' + inner.ended_on.join(', '));
  if (inner.allocations) parts.push('on ' + inner.allocations.map((a) => a.agent_id).join(', '));
  if (inner.failed_predicates) parts.push(inner.failed_predicates.map((p) => p.name + ': ' + p.msg).join('; '));
  return parts.join(' · ');
}

async function refreshSession(id) {
  const path = '/v1/sessions/' + encodeURIComponent(id);
  let s;
  try {
    s = await api(path);
  } catch (err) {
    if (err instanceof Refused) return;
    fill('s-summary', h('p', { class: 'alert' }, err.status === 404 ? 'No such session (or not yours).' : err.message));
    fill('s-timeline');
    fill('s-logs');
    return;
  }
  $('s-title').textContent = 'Session ' + s.name;
  const terminal = ['TERMINATED', 'CANCELLED'].includes(s.status);
  const stopButton = terminal ? null : h('button', {
    type: 'button', class: 'danger', onclick: () => cancel(s),
  }, s.status === 'PENDING' ? 'Cancel' : 'Terminate');
  const kv = [['Status', h('span', {}, badge(s.status), ' ', s.status_info || '')],
    ['Id', s.session_id], ['Owner', s.owner], ['Scaling group', s.scaling_group],
    ['Type', s.type], ['Image', s.image],
    ['Resources', Object.entries(s.resources || {}).map(([k, v]) => k + ' ' + amount(k, v)).join(', ')],
    ['Agents', (s.agents || []).map((a) => a.agent_id).join(', ') || '—'],
    ['Created', when(s.created_at)], ['Exit code', s.exit_code === null ? '—' : String(s.exit_code)]];
  if (s.status === 'PENDING') kv.push(['Why it waits', predicates(s)]);
  fill('s-summary', h('dl', { class: 'kv' }, kv.map(([k, v]) => [h('dt', {}, k), h('dd', {}, v)])), stopButton);
  await Promise.all([
    panel('s-timeline', async () => {
      const hist = await api(path + '/history');
      const rows = hist.items.map((e) => h('tr', { 'data-event': e.event_type },
        h('td', {}, when(e.occurred_at)),
        h('td', {}, e.event_type),
        h('td', {}, EVENT_STATUS[e.event_type] ? badge(EVENT_STATUS[e.event_type]) : ''),
        h('td', {}, e.actor),
        h('td', {}, details(e.payload))));
      fill('s-timeline', table(['When', 'What', 'Status', 'Who', 'Details'], rows));
    }),
    panel('s-logs', async () => {
      const logs = await api(path + '/logs');
      if (!logs.reported_at) return fill('s-logs', empty('The agent has not reported any output yet.'));
      fill('s-logs', h('p', { class: 'muted' }, 'from ' + logs.agent_id + ', ', when(logs.reported_at)),
        h('h3', {}, 'stdout'), h('pre', {}, logs.stdout || ' '),
        h('h3', {}, 'stderr'), h('pre', {}, logs.stderr || ' '));
    }),
  ]);
}

// ---- views, sign-in and sign-out ----------------------------------------------------------

function show(view) {
  for (const id of ['login', 'overview', 'session']) $(id).hidden = id !== view;
  $('signout').hidden = view === 'login';
}

function route() {
  if (!key()) return showLogin();
  const m = location.hash.match(/^#\/session\/([^/?]+)$/);
  if (m) {
    const id = decodeURIComponent(m[1]);
    show('session');
    $('s-title').textContent = 'Session';
    state.refresh = () => refreshSession(id);
    follow('/v1/events/sessions?session_id=' + encodeURIComponent(id));
  } else {
    show('overview');
    state.refresh = refreshOverview;
    follow('/v1/events/sessions', true);
  }
  scheduleRefresh();
}

function showLogin(message) {
  stopStreams();
  state.refresh = null;
  show('login');
  const msg = $('login-msg');
  msg.hidden = !message;
  msg.textContent = message || '';
  $('whoami').textContent = '';
  $('live').className = 'live off';
  $('live').textContent = 'offline';
  $('key').focus();
}

function signOut(message) {
  sessionStorage.removeItem(KEY);
  state.role = null;
  state.position = 0;
  showLogin(message);
}

/** Which role a key has: admin (may list agents), user, or refused. */
async function roleOf(k) {
  const res = await fetch('/v1/agents', { headers: authHeaders(k) });
  if (res.ok) return 'admin';
  if (res.status === 401) return null;
  const counts = await fetch('/v1/session-counts', { headers: authHeaders(k) });
  return counts.ok ? 'user' : 'agent';
}

async function signIn(event) {
  event.preventDefault();
  const k = $('key').value.trim();
  if (!k) return;
  let role;
  try {
    role = await roleOf(k);
  } catch (err) {
    return showLogin('The server could not be reached: ' + err.message);
  }
  if (role === null) return showLogin('That key was refused (revoked or unknown).');
  if (role === 'agent') return showLogin('That is an agent key; the dashboard needs a user or admin key.');
  sessionStorage.setItem(KEY, k);
  $('key').value = '';
  await start(role);
}

async function start(role) {
  state.role = role;
  $('whoami').textContent = role + ' key';
  route();
  $('main').focus();
}

async function boot() {
  $('login-form').addEventListener('submit', signIn);
  $('signout').addEventListener('click', () => signOut(''));
  $('goto-form').addEventListener('submit', (e) => {
    e.preventDefault();
    const id = $('goto').value.trim();
    if (id) location.hash = '#/session/' + encodeURIComponent(id);
  });
  window.addEventListener('hashchange', () => { if (key()) route(); });
  setInterval(tick, 1000);
  const k = key();
  if (!k) return showLogin();
  const role = await roleOf(k).catch(() => null);
  if (role === null || role === 'agent') return signOut('The key was refused (revoked or unknown). Enter a key to continue.');
  await start(role);
}

boot();
