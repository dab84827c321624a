// Saga admin dashboard: plain modern JavaScript, no build step, no dependencies.
// Talks to the admin API under /api/v1 with the bearer token kept in localStorage
// (or passed once as #token=... in the URL). Polls every 2 s for live updates.
'use strict';

const API = '/api/v1';
const POLL_MS = 2000;
const PAGE_SIZE = 50;
const STATUSES = ['running', 'waiting', 'compensating', 'paused', 'failed', 'compensation_failed',
                  'completed', 'compensated', 'cancelled'];
const STATUS_LABEL = {
  running: 'Running', waiting: 'Waiting', compensating: 'Compensating', paused: 'Paused',
  failed: 'Failed', compensation_failed: 'Compensation failed', completed: 'Completed',
  compensated: 'Compensated', cancelled: 'Cancelled',
  // step statuses
  pending: 'Pending', retrying: 'Retrying', skipped: 'Skipped',
};

const state = {
  token: localStorage.getItem('saga-admin-token') || '',
  operator: localStorage.getItem('saga-admin-operator') || 'dashboard',
  selected: null,
  after: '',          // paging: the id the current page starts after
  nextAfter: null,
  timer: null,
  busy: false,
  lastOk: 0,
  selectedVersion: -1,
};

// ---- tiny DOM helpers ----------------------------------------------------------------------

const $ = (id) => document.getElementById(id);

/** h('div', {class: 'x', onclick: fn}, child, 'text', ...) */
function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith('on')) el.addEventListener(k.slice(2), v);
    else if (k === 'class') el.className = v;
    else if (k === 'dataset') Object.assign(el.dataset, v);
    else el.setAttribute(k, v === true ? '' : v);
  }
  for (const c of children.flat()) {
    if (c === undefined || c === null || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

function badge(status) {
  return h('span', {class: `badge s-${status}`, dataset: {status}}, STATUS_LABEL[status] || status);
}

function progress(percent, status) {
  const p = Math.max(0, Math.min(100, Number(percent) || 0));
  const bar = h('div', {class: `progress-bar s-${status}`});
  bar.style.width = `${p}%`;
  return h('div', {class: 'progress-cell'},
           h('div', {class: 'progress', role: 'progressbar', 'aria-valuenow': Math.round(p),
                     'aria-valuemin': 0, 'aria-valuemax': 100}, bar),
           h('span', {class: 'progress-text'}, `${Math.round(p)}%`));
}

function relTime(iso) {
  if (!iso) return '—';
  const s = (Date.now() - Date.parse(iso)) / 1000;
  if (s < 0 || Number.isNaN(s)) return new Date(iso).toLocaleString();
  if (s < 5) return 'just now';
  if (s < 60) return `${Math.floor(s)} s ago`;
  if (s < 3600) return `${Math.floor(s / 60)} min ago`;
  if (s < 86400) return `${Math.floor(s / 3600)} h ago`;
  return new Date(iso).toLocaleDateString();
}

function clockTime(iso) {
  if (!iso) return '—';
  const d = new Date(iso);
  return d.toLocaleTimeString([], {hour: '2-digit', minute: '2-digit', second: '2-digit', hour12: false}) +
         `.${String(d.getMilliseconds()).padStart(3, '0')}`;
}

function duration(ms) {
  if (ms === null || ms === undefined) return '';
  if (ms < 1000) return `${ms} ms`;
  if (ms < 60000) return `${(ms / 1000).toFixed(ms < 10000 ? 2 : 1)} s`;
  const m = Math.floor(ms / 60000);
  return `${m} min ${Math.round((ms % 60000) / 1000)} s`;
}

function toast(message, kind = 'ok') {
  const t = h('div', {class: `toast toast-${kind}`, role: 'status'}, message);
  $('toasts').append(t);
  setTimeout(() => t.classList.add('toast-out'), 3500);
  setTimeout(() => t.remove(), 4000);
}

// ---- API -----------------------------------------------------------------------------------

// {"error": {"type": "NOT_FOUND", "message": "...", "correlation": "..."}}
class ApiError extends Error {
  constructor(status, type, message, correlation) {
    super(message);
    this.status = status;
    this.type = type;
    this.correlation = correlation;
  }
}

async function api(path, {method = 'GET', body} = {}) {
  const headers = {'Authorization': `Bearer ${state.token}`, 'X-Saga-Operator': state.operator};
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  const res = await fetch(path, {method, headers, body: body === undefined ? undefined : JSON.stringify(body)});
  const text = await res.text();
  let json = null;
  try { json = text ? JSON.parse(text) : null; } catch { json = null; }
  if (!res.ok) {
    const e = json && json.error ? json.error : {type: `HTTP_${res.status}`, message: text || res.statusText};
    if (res.status === 401) showLogin(e.message);
    throw new ApiError(res.status, e.type, e.message, e.correlation || res.headers.get('X-Correlation-Id') || '');
  }
  return json;
}

// ---- list and summary ----------------------------------------------------------------------

function filterParams() {
  const p = new URLSearchParams();
  const q = $('f-q').value.trim();
  if (q) p.set('q', q);
  if ($('f-status').value) p.set('status', $('f-status').value);
  if ($('f-definition').value) p.set('definition', $('f-definition').value);
  const key = $('f-key').value.trim();
  if (key) p.set('correlation_key', key);
  return p;
}

function renderCards(summary) {
  const cards = $('cards');
  const active = $('f-status').value;
  cards.replaceChildren(
    h('button', {class: `card card-total${active === '' ? ' card-active' : ''}`, type: 'button',
                 onclick: () => { $('f-status').value = ''; refreshNow(true); }},
      h('span', {class: 'card-value'}, summary.total), h('span', {class: 'card-label'}, 'All sagas')),
    ...STATUSES.map((s) => h('button', {
      class: `card s-${s}${active === s ? ' card-active' : ''}${summary.counts[s] ? '' : ' card-zero'}`,
      type: 'button', dataset: {status: s, testid: `card-${s}`},
      onclick: () => { $('f-status').value = active === s ? '' : s; refreshNow(true); },
    }, h('span', {class: 'card-value'}, summary.counts[s] ?? 0),
       h('span', {class: 'card-label'}, h('span', {class: `dot s-${s}`}), STATUS_LABEL[s]))));
  const sel = $('f-definition');
  const current = sel.value;
  const known = new Set([...sel.options].map((o) => o.value));
  for (const d of summary.definitions) if (!known.has(d)) sel.append(h('option', {value: d}, d));
  sel.value = current;
}

function renderList(list) {
  const rows = list.items.map((s) => h('tr', {
    class: `row${s.id === state.selected ? ' row-selected' : ''}`, tabindex: 0,
    dataset: {id: s.id, testid: 'saga-row'},
    onclick: () => select(s.id),
    onkeydown: (e) => { if (e.key === 'Enter') select(s.id); },
  },
    h('td', {class: 'cell-id'},
      h('div', {class: 'saga-id'}, s.id),
      h('div', {class: 'saga-def'}, `${s.definition} v${s.definition_version}`,
        s.current_steps.length ? h('span', {class: 'saga-current'}, ` · ${s.current_steps.join(', ')}`) : null)),
    h('td', {}, badge(s.status)),
    h('td', {class: 'col-progress'}, progress(s.percent_complete, s.status)),
    h('td', {class: 'col-key'}, s.correlation_key ? h('code', {}, s.correlation_key) : h('span', {class: 'muted'}, '—')),
    h('td', {class: 'col-updated', title: s.updated_at}, relTime(s.updated_at)),
  ));
  $('saga-rows').replaceChildren(...rows);
  $('list-empty').hidden = rows.length > 0;
  state.nextAfter = list.next_after;
  $('page-next').disabled = !list.next_after;
  $('page-first').disabled = !state.after;
  $('list-count').textContent = `${list.items.length} shown${list.next_after ? ', more on the next page' : ''}`;
}

// ---- detail --------------------------------------------------------------------------------

const ACTIONS = {
  approve: {label: 'Approve', kind: 'primary', title: 'Approve saga', signal: true,
            text: 'Sends the signal “approval” so the saga moves past its approval step.'},
  signal: {label: 'Send signal…', kind: 'ghost', title: 'Send a signal', signal: true, askName: true,
           text: 'Delivers a signal to the saga; it is kept until a wait for it opens.'},
  pause: {label: 'Pause', kind: 'ghost', title: 'Pause saga', path: 'pause',
          text: 'No new step or compensation starts until the saga is resumed.'},
  resume: {label: 'Resume', kind: 'primary', title: 'Resume saga', path: 'resume',
           text: 'The saga moves again from where it was paused.'},
  retry: {label: 'Retry', kind: 'primary', title: 'Retry', path: 'retry',
          text: 'Retries the failed compensation (or the failed step) with a fresh retry budget.'},
  cancel: {label: 'Cancel saga', kind: 'danger', title: 'Cancel saga', path: 'cancel',
           text: 'No new step starts; completed steps are compensated and the saga ends cancelled.'},
};

function actionsFor(v) {
  const waitingForSignal = v.steps.some((s) => s.kind === 'wait' && s.status === 'waiting');
  switch (v.status) {
    case 'running': return ['pause', 'signal', 'cancel'];
    case 'waiting': return [waitingForSignal ? 'approve' : null, 'pause', 'signal', 'cancel'].filter(Boolean);
    case 'paused': return ['resume', 'cancel'];
    case 'failed': return ['retry'];
    case 'compensation_failed': return ['retry'];
    case 'compensating': return ['pause'];
    default: return [];
  }
}

function stepSkippable(s, sagaStatus) {
  if (['completed', 'compensated', 'cancelled'].includes(sagaStatus)) return false;
  return ['failed', 'retrying', 'waiting', 'compensation_failed'].includes(s.status);
}

function renderDetail(v, history) {
  $('detail-placeholder').hidden = true;
  $('detail-body').hidden = false;
  $('detail').classList.add('detail-open');
  $('d-id').textContent = v.id;
  const st = $('d-status');
  st.className = `badge s-${v.status}`;
  st.dataset.status = v.status;
  st.textContent = STATUS_LABEL[v.status] || v.status;

  const fact = (k, val) => [h('dt', {}, k), h('dd', {}, val)];
  $('d-facts').replaceChildren(
    ...fact('Definition', `${v.definition} v${v.definition_version}`),
    ...fact('Correlation key', v.correlation_key || '—'),
    ...fact('Progress', `${Math.round(v.percent_complete)}%`),
    ...fact('Current', v.current_steps.length ? v.current_steps.join(', ') : '—'),
    ...fact('Started', new Date(v.created_at).toLocaleString()),
    ...fact('Updated', `${new Date(v.updated_at).toLocaleString()} (${relTime(v.updated_at)})`),
  );
  const bar = $('d-progress');
  const switched = bar.dataset.id !== v.id;  // a new saga: jump, do not animate from the last
  bar.dataset.id = v.id;
  bar.className = `progress-bar s-${v.status}${switched ? ' no-anim' : ''}`;
  bar.style.width = `${Math.max(0, Math.min(100, v.percent_complete))}%`;
  $('d-error').hidden = !v.error;
  $('d-error').textContent = v.error || '';

  $('d-actions').replaceChildren(...actionsFor(v).map((a) => h('button', {
    class: `btn btn-${ACTIONS[a].kind}`, type: 'button', dataset: {action: a, testid: `action-${a}`},
    onclick: () => confirmAction(v.id, a),
  }, ACTIONS[a].label)));

  $('d-steps').replaceChildren(...v.steps.map((s) => {
    const meta = [];
    meta.push(s.kind);
    if (s.attempts) meta.push(`${s.attempts} attempt${s.attempts === 1 ? '' : 's'}`);
    if (s.compensation_attempts) meta.push(`${s.compensation_attempts} compensation attempt${s.compensation_attempts === 1 ? '' : 's'}`);
    if (s.duration_ms !== null && s.duration_ms !== undefined) meta.push(duration(s.duration_ms));
    if (s.items_total) meta.push(`${s.items_completed}/${s.items_total} items${s.items_failed ? `, ${s.items_failed} failed` : ''}`);
    return h('li', {class: `step st-${s.status}`, dataset: {step: s.name, status: s.status}},
      h('span', {class: 'step-marker'}),
      h('div', {class: 'step-main'},
        h('div', {class: 'step-head'},
          h('span', {class: 'step-name'}, s.name),
          badge(s.status),
          stepSkippable(s, v.status)
            ? h('button', {class: 'btn btn-ghost btn-xs', type: 'button', dataset: {testid: `skip-${s.name}`},
                           onclick: () => confirmAction(v.id, 'skip', s.name)}, 'Skip step')
            : null),
        h('div', {class: 'step-meta'}, meta.join(' · '),
          s.started_at ? h('span', {class: 'muted'}, ` · started ${clockTime(s.started_at)}`) : null),
        s.error ? h('div', {class: 'step-error'}, s.error) : null));
  }));

  $('d-history').replaceChildren(...history.items.slice().reverse().map((e) => {
    const d = e.detail || {};
    const extra = Object.entries(d).filter(([k]) => k !== 'who' && k !== 'why');
    return h('li', {class: `event ev-${eventKind(e.event)}`, dataset: {event: e.event}},
      h('time', {datetime: e.at, title: e.at}, clockTime(e.at)),
      h('div', {class: 'event-main'},
        h('div', {},
          h('span', {class: 'event-name'}, e.event.replaceAll('_', ' ')),
          e.step ? h('span', {class: 'event-step'}, e.step) : null,
          e.attempt ? h('span', {class: 'muted'}, ` attempt ${e.attempt}`) : null),
        d.who || d.why ? h('div', {class: 'event-audit'}, h('strong', {}, d.who || '?'), ': ', d.why || '') : null,
        extra.length ? h('div', {class: 'event-detail'}, extra.map(([k, val]) =>
          `${k}: ${typeof val === 'string' ? val : JSON.stringify(val)}`).join(' · ')) : null));
  }));
  $('d-data').textContent = JSON.stringify(v.data, null, 2);
}

function eventKind(ev) {
  if (/fail|timeout|error|exceeded/.test(ev)) return 'bad';
  if (/compensat|cancel|undo/.test(ev)) return 'undo';
  if (/paus|resum|retry|skip|operator|lock|signal/.test(ev)) return 'op';
  if (/complet|started|succeed/.test(ev)) return 'good';
  return 'info';
}

function closeDetail() {
  state.selected = null;
  $('detail-placeholder').hidden = false;
  $('detail-body').hidden = true;
  $('detail').classList.remove('detail-open');
  history.replaceState(null, '', location.pathname + location.search);
  for (const r of document.querySelectorAll('.row-selected')) r.classList.remove('row-selected');
}

async function select(id) {
  state.selected = id;
  history.replaceState(null, '', `#saga=${encodeURIComponent(id)}`);
  for (const r of document.querySelectorAll('#saga-rows tr')) r.classList.toggle('row-selected', r.dataset.id === id);
  await loadDetail();
}

async function loadDetail() {
  const id = state.selected;
  if (!id) return;
  try {
    const enc = encodeURIComponent(id);
    const [v, hist] = await Promise.all([api(`${API}/sagas/${enc}`), api(`${API}/sagas/${enc}/history`)]);
    if (state.selected === id) renderDetail(v, hist);
  } catch (e) {
    if (e.status === 404) { toast(`Saga ${id} no longer exists`, 'error'); closeDetail(); } else throw e;
  }
}

// ---- actions -------------------------------------------------------------------------------

let pending = null;

function confirmAction(id, action, step) {
  const a = action === 'skip'
    ? {label: 'Skip step', kind: 'danger', title: `Skip step “${step}”`,
       text: 'Marks the step as done without running it (a failed compensation counts as compensated) and moves on.'}
    : ACTIONS[action];
  pending = {id, action, step};
  $('confirm-title').textContent = `${a.title}: ${id}`;
  $('confirm-text').textContent = a.text;
  $('confirm-signal-field').hidden = !a.askName;
  $('confirm-signal').value = 'approval';
  $('confirm-reason').value = '';
  const ok = $('confirm-ok');
  ok.textContent = a.label.replace('…', '');
  ok.className = `btn btn-${a.kind === 'ghost' ? 'primary' : a.kind}`;
  $('confirm').showModal();
  $('confirm-reason').focus();
}

async function runPending() {
  const {id, action, step} = pending;
  const why = $('confirm-reason').value.trim();
  const enc = encodeURIComponent(id);
  try {
    if (action === 'approve' || action === 'signal') {
      const name = action === 'approve' ? 'approval' : $('confirm-signal').value.trim();
      // approve: the conventional approval payload {approved, by, note} (plus why)
      const payload = action === 'approve' ? {approved: true, by: state.operator, note: why, why}
                                           : {by: state.operator, why};
      await api(`${API}/sagas/${enc}/signals/${encodeURIComponent(name)}`, {method: 'POST', body: {payload}});
      toast(action === 'approve' ? `Approved ${id}` : `Sent “${name}” to ${id}`);
    } else if (action === 'skip') {
      await api(`${API}/sagas/${enc}/steps/${encodeURIComponent(step)}/skip`, {method: 'POST', body: {why}});
      toast(`Skipped ${step} of ${id}`);
    } else {
      await api(`${API}/sagas/${enc}/${ACTIONS[action].path}`, {method: 'POST', body: {why}});
      toast(`${ACTIONS[action].label.replace('…', '')}: ${id}`);
    }
  } catch (e) {
    // the correlation id lets whoever reads the server's access log find this request
    toast(e.correlation ? `${e.message} (correlation ${e.correlation})` : `${e.message}`, 'error');
  }
  pending = null;
  refreshNow();
}

// ---- polling -------------------------------------------------------------------------------

async function refresh() {
  if (state.busy || !state.token) return;
  state.busy = true;
  try {
    const p = filterParams();
    const sp = new URLSearchParams(p);
    sp.delete('q');
    const lp = new URLSearchParams(p);
    lp.set('limit', PAGE_SIZE);
    if (state.after) lp.set('after', state.after);
    const [summary, list] = await Promise.all([
      api(`${API}/summary?${new URLSearchParams({definition: p.get('definition') || '',
                                                  correlation_key: p.get('correlation_key') || ''})}`),
      api(`${API}/sagas?${lp}`),
    ]);
    renderCards(summary);
    renderList(list);
    await loadDetail();
    state.lastOk = Date.now();
    setLive(true);
  } catch (e) {
    setLive(false, e.message);
  } finally {
    state.busy = false;
  }
}

function setLive(ok, message) {
  const live = $('live');
  live.classList.toggle('live-ok', ok);
  live.classList.toggle('live-bad', !ok);
  $('live-text').textContent = ok ? 'Live' : 'Disconnected';
  live.title = ok ? `Updated every ${POLL_MS / 1000} s` : message || '';
}

function refreshNow(resetPage = false) {
  if (resetPage) state.after = '';
  clearTimeout(state.timer);
  refresh().finally(schedule);
}

function schedule() {
  clearTimeout(state.timer);
  state.timer = setTimeout(() => refresh().finally(schedule), POLL_MS);
}

// ---- login ---------------------------------------------------------------------------------

function showLogin(message) {
  const d = $('login');
  $('login-error').hidden = !message;
  $('login-error').textContent = message || '';
  $('login-operator').value = state.operator;
  if (!d.open) d.showModal();
}

function setOperator(name) {
  state.operator = name || 'dashboard';
  localStorage.setItem('saga-admin-operator', state.operator);
  $('operator-name').textContent = state.operator;
}

// ---- start ---------------------------------------------------------------------------------

function init() {
  // #token=...&operator=...&saga=... (tests and links); the token leaves the URL at once.
  const hash = new URLSearchParams(location.hash.slice(1));
  if (hash.get('token')) {
    state.token = hash.get('token');
    localStorage.setItem('saga-admin-token', state.token);
  }
  if (hash.get('operator')) setOperator(hash.get('operator'));
  else setOperator(state.operator);
  state.selected = hash.get('saga');
  history.replaceState(null, '', location.pathname + location.search +
                       (state.selected ? `#saga=${encodeURIComponent(state.selected)}` : ''));

  const statusSel = $('f-status');
  for (const s of STATUSES) statusSel.append(h('option', {value: s}, STATUS_LABEL[s]));

  let debounce = null;
  const onFilter = () => { clearTimeout(debounce); debounce = setTimeout(() => refreshNow(true), 250); };
  $('f-q').addEventListener('input', onFilter);
  $('f-key').addEventListener('input', onFilter);
  statusSel.addEventListener('change', () => refreshNow(true));
  $('f-definition').addEventListener('change', () => refreshNow(true));
  $('filters').addEventListener('submit', (e) => { e.preventDefault(); refreshNow(true); });
  $('filters').addEventListener('reset', () => setTimeout(() => refreshNow(true), 0));
  $('page-next').addEventListener('click', () => { if (state.nextAfter) { state.after = state.nextAfter; refreshNow(); } });
  $('page-first').addEventListener('click', () => refreshNow(true));
  $('d-close').addEventListener('click', closeDetail);

  $('confirm-cancel').addEventListener('click', () => { pending = null; $('confirm').close(); });
  $('confirm-form').addEventListener('submit', (e) => {
    if (!$('confirm-reason').value.trim()) { e.preventDefault(); $('confirm-reason').focus(); return; }
    if (pending) runPending();
  });
  $('login-form').addEventListener('submit', () => {
    state.token = $('login-token').value.trim();
    localStorage.setItem('saga-admin-token', state.token);
    setOperator($('login-operator').value.trim());
    refreshNow();
  });
  $('token-btn').addEventListener('click', () => showLogin());
  $('operator-btn').addEventListener('click', () => showLogin());
  document.addEventListener('keydown', (e) => {
    if (e.key === 'Escape' && state.selected && !document.querySelector('dialog[open]')) closeDetail();
  });

  if (!state.token) showLogin();
  else refreshNow();
}

document.addEventListener('DOMContentLoaded', init);
