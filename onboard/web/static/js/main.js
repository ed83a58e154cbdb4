// The crew handheld app: wiring of the screens. Each screen lives in its
// own module; this one signs in and out, switches tabs and registers the
// service worker that keeps the app shell for a reload in the aisle.
import { call, session, setSession } from './api.js';
import * as basket from './basket.js';
import { initCheckout, resume, sell } from './checkout.js';
import { drawFlight, initFlight } from './flight.js';
import { initLimit } from './limit.js';
import { initOrder, startOrder } from './order.js';
import { drawSales } from './sales.js';
import { initScan, scan } from './scan.js';
import { initSignIn } from './signin.js';
import { initStatus, refresh, startStatus, stopStatus } from './status.js';
import { $, banner, current, onShow, show } from './ui.js';

async function signedIn(s) {
  $('tabs').hidden = false;
  $('signin-error').textContent = '';
  banner('');
  show('sell');
  startStatus();
  try {
    await basket.loadCatalog();
  } catch (e) {
    if (e.kind === 'session') { sessionLost(e.message); return; }
    // The Sell screen says the catalog is missing and offers to try again.
  }
  resume();
}

function signedOut(message) {
  setSession(null);
  stopStatus();
  $('tabs').hidden = true;
  show('signin');
  $('signin-error').textContent = message || '';
  $('signin-crew').focus();
}

function sessionLost(message) {
  signedOut('Session ended (' + message + '): sign in again. Unanswered sales are retried after sign-in.');
}

function changed() {
  refresh();
  if (current() === 'sales') drawSales();
}

async function payByCode() {
  const lines = basket.lines();
  if (!lines.length) return;
  const total = basket.total();
  const label = basket.label();
  const code = await scan('pay', 'Scan to pay ' + $('basket-total').textContent, 'sell');
  if (!code) return;
  basket.clear();
  const rec = await sell(code, lines, label, total);
  if (rec.state === 'declined' || rec.state === 'refused') return; // the basket comes back on "Back to the basket"
}

async function twoWay() {
  const lines = basket.lines();
  if (!lines.length) return;
  try {
    await startOrder(lines, basket.label());
    basket.clear();
  } catch (e) {
    if (e.kind === 'session') { sessionLost(e.message); return; }
    banner('Order not created: ' + e.message);
  }
}

function done(rec) {
  if (rec && rec.kind === 'void') { show('sales'); return; }
  if (rec && rec.kind === 'sale' && (rec.state === 'declined' || rec.state === 'refused')) basket.restore(rec.basket);
  show('sell');
}

function init() {
  initSignIn(signedIn);
  initScan();
  initCheckout({ changed, sessionLost, done });
  initOrder();
  initLimit((e) => { if (e.kind === 'session') sessionLost(e.message); });
  initFlight();
  initStatus(sessionLost);
  onShow('sell', basket.reloadIfFailed);
  onShow('sales', drawSales);
  onShow('flight', drawFlight);
  $('basket-scan').addEventListener('click', payByCode);
  $('basket-twoway').addEventListener('click', twoWay);
  $('basket-clear').addEventListener('click', () => basket.clear());
  for (const b of document.querySelectorAll('#tabs button')) b.addEventListener('click', () => show(b.dataset.screen));
  $('signout').addEventListener('click', async () => {
    try { await call('DELETE', '/v1/sessions'); } catch (_) { /* signed out locally either way */ }
    signedOut('Signed out.');
  });
  const s = session();
  if (s) signedIn(s); else signedOut('');
  if ('serviceWorker' in navigator) {
    navigator.serviceWorker.register('/sw.js', { scope: '/' }).catch((e) => console.warn('service worker not registered:', e.message));
  }
}

init();
