// The status bar, always visible: flight, manifest serial and age, the
// link to the ground, invoices not yet cleared, unresolved sales on this
// handheld, and who is signed in.
import { call, session } from './api.js';
import * as store from './store.js';
import { $ } from './ui.js';

// POLL_MS is how often the bar asks the cabin server.
const POLL_MS = 5000;
let timer = 0;
let last = null;
let onSessionLost = () => {};

export function initStatus(sessionLost) { onSessionLost = sessionLost; }

// lastStatus returns the latest /v1/status answer, or null.
export function lastStatus() { return last; }

export function startStatus() {
  clearTimeout(timer);
  refresh();
}

export function stopStatus() {
  clearTimeout(timer);
  timer = 0;
  last = null;
  paint(null, 0, false);
}

// refresh asks for the status now and schedules the next poll.
export async function refresh() {
  clearTimeout(timer);
  let st = null;
  let reachable = true;
  try {
    st = await call('GET', '/v1/status');
    last = st;
  } catch (e) {
    reachable = false;
    if (e.kind === 'session') { onSessionLost(e.message); return; }
  }
  const unresolved = (await store.unresolved()).length;
  paint(st || last, unresolved, reachable);
  if (session()) timer = setTimeout(refresh, POLL_MS);
}

function set(id, text, cls) {
  const e = $(id);
  e.textContent = text;
  e.className = 'st' + (cls ? ' ' + cls : '');
}

// age formats seconds as "45 s", "12 min" or "3 h 05".
export function age(s) {
  if (s < 60) return s + ' s';
  if (s < 3600) return Math.floor(s / 60) + ' min';
  return Math.floor(s / 3600) + ' h ' + String(Math.floor((s % 3600) / 60)).padStart(2, '0');
}

function paint(st, unresolved, reachable) {
  const s = session();
  set('st-crew', s ? s.crew_id + ' · ' + s.role : 'signed out');
  for (const id of ['st-flight', 'st-manifest', 'st-link', 'st-pending']) $(id).hidden = !s;
  if (!st) {
    set('st-flight', 'Airtab');
    set('st-manifest', 'manifest –');
    set('st-link', s && !reachable ? 'cabin server unreachable' : 'link –', s && !reachable ? 'bad' : '');
    set('st-pending', '– to clear');
    $('banner').hidden = true;
    return;
  }
  set('st-flight', st.flight);
  const m = st.manifest;
  if (m) set('st-manifest', 'manifest #' + m.serial + (m.delta_seq ? '.' + m.delta_seq : '') + ' · ' + age(m.age_seconds), m.expired ? 'bad' : '');
  else set('st-manifest', 'no manifest', 'bad');
  const inv = st.invoices || { pending: 0, sent: 0, cleared: 0 };
  const open = inv.pending + inv.sent;
  const all = open + inv.cleared;
  if (!reachable) set('st-link', 'cabin server unreachable', 'bad');
  else if (st.link === 'up' && open > 0) set('st-link', 'replaying ' + inv.cleared + ' of ' + all, 'warn');
  else if (st.link === 'up') set('st-link', all ? 'cleared' : 'link up', 'good');
  else set('st-link', 'link ' + (st.link === 'unknown' ? 'down' : st.link));
  let pend = open + ' to clear';
  if (unresolved) pend += ' · ' + unresolved + ' unknown';
  set('st-pending', pend, unresolved ? 'warn' : '');
  const off = !st.sales_open && st.sales_off ? 'Sales are off: ' + st.sales_off.message : '';
  const journal = st.journal_error ? 'Journal failure: sales stopped until the cabin server restarts.' : '';
  $('banner').textContent = journal || off;
  $('banner').hidden = !(journal || off);
}
