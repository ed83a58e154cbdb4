// Sending sales and voids so that none is ever made twice. Each invoice id
// is created and committed to IndexedDB before its request leaves; an
// answer that never comes is retried with the same id and the same body,
// and the cabin server answers a retry with the original result. Until
// then the sale shows as "unknown — retrying".
import { call, newId } from './api.js';
import * as store from './store.js';
import { format } from './money.js';
import { $, show, short } from './ui.js';

// RETRY_MS are the waits between retries of a lost answer; the last one
// repeats until the answer comes.
const RETRY_MS = [500, 1000, 2000, 4000, 5000];

const running = new Set(); // ids with a retry loop in this page
let shown = '';            // the id of the record on the answer screen
let shownRec = null;
let hooks = { changed() {}, sessionLost() {}, done() {} };

// initCheckout sets what to call when a record changes (status bar,
// sales list) and when the session is found expired.
export function initCheckout(h) {
  hooks = { ...hooks, ...h };
  $('answer-done').addEventListener('click', () => hooks.done(shownRec));
}

// sell authorizes the basket (lines) against a scanned payment code.
export function sell(code, lines, label, total) {
  const id = newId();
  return submit({
    id, kind: 'sale', path: '/v1/sales', created: Date.now(), label, total, basket: lines,
    request: { invoice_id: id, code, lines },
  });
}

// sellOrder authorizes a two-way order with the passenger's consent.
export function sellOrder(consent, order, label, lines) {
  const id = newId();
  return submit({
    id, kind: 'sale', path: '/v1/sales', created: Date.now(), label, total: order.total, basket: lines,
    request: { invoice_id: id, code: consent, order_id: order.order_id },
  });
}

// voidSale reverses an approved sale made on this handheld.
export async function voidSale(sale) {
  const id = newId();
  return submit({
    id, kind: 'void', path: '/v1/voids', created: Date.now(), voids: sale.id,
    label: 'Void of ' + (sale.label || short(sale.id)), total: sale.total,
    request: { invoice_id: id, sale_id: sale.answer.sale.invoice_id },
  });
}

// resume restarts the retry loop of every sale whose answer never came,
// for example after a reload or a new sign-in.
export async function resume() {
  for (const rec of await store.unresolved()) {
    if (!running.has(rec.id)) submit(rec, false);
  }
}

// submit sends rec until it has an answer; in the foreground it is shown
// on the answer screen.
async function submit(rec, foreground = true) {
  if (rec.state !== 'unknown') rec.state = 'sending';
  try {
    await store.put(rec); // committed before the request is sent
  } catch (e) {
    // Without its id on record a lost answer could not be retried safely:
    // nothing is sent.
    rec.state = 'refused';
    rec.answer = { error: { message: 'This handheld could not store the sale (' + (e && e.name || 'storage error') + '): nothing was sent. Free some storage or reload, then sell again.' } };
    shown = rec.id;
    render(rec);
    show('answer');
    return rec;
  }
  running.add(rec.id);
  if (foreground) {
    shown = rec.id;
    render(rec);
    show('answer');
  }
  hooks.changed();
  try {
    for (let attempt = 0; ; attempt++) {
      try {
        const answer = await call('POST', rec.path, rec.request);
        await resolved(rec, answer);
        return rec;
      } catch (e) {
        if (e.kind === 'network' || e.kind === 'busy') {
          rec.state = 'unknown';
          rec.attempts = attempt + 1;
          rec.note = (e.kind === 'busy' ? 'Cabin server busy' : 'No answer from the cabin server') + ' — attempt ' + rec.attempts + '.';
          await store.put(rec);
          render(rec);
          hooks.changed();
          await sleep(RETRY_MS[Math.min(attempt, RETRY_MS.length - 1)]);
          continue;
        }
        if (e.kind === 'session') {
          rec.state = 'unknown';
          rec.note = 'Session expired: sign in again; this sale is then retried with the same invoice.';
          await store.put(rec);
          render(rec);
          hooks.changed();
          hooks.sessionLost(e.message);
          return rec;
        }
        rec.state = 'refused';
        rec.answer = { error: { message: e.message, code: e.code, reason: e.reason, status: e.status } };
        await finishRecord(rec);
        return rec;
      }
    }
  } finally {
    running.delete(rec.id);
  }
}

async function resolved(rec, answer) {
  rec.answer = answer;
  if (rec.kind === 'void') {
    rec.state = 'approved';
    rec.total = answer.total;
    const sale = await store.get(rec.voids);
    if (sale) { sale.voided_by = rec.id; await store.put(sale); }
  } else if (answer.approved) {
    rec.state = 'approved';
    rec.total = answer.sale.total;
  } else {
    rec.state = 'declined';
    const d = answer.decline || {};
    if (d.name === 'over_passenger_limit' && !remainingOf(answer) && rec.request.code.startsWith('AT1:')) {
      // The code was not used up by the decline: ask what is left.
      try {
        const lim = await call('POST', '/v1/limit', { code: rec.request.code });
        if (lim.valid) answer.looked_up_remaining = lim.remaining;
      } catch (_) { /* the decline stands without the figure */ }
    }
  }
  await finishRecord(rec);
}

async function finishRecord(rec) {
  rec.note = '';
  rec.request = { ...rec.request, code: rec.request.code ? '(used)' : undefined }; // the code is not kept once answered
  await store.put(rec);
  await store.prune();
  render(rec);
  hooks.changed();
}

// remainingOf finds the remaining limit in an answer: at the top
// (onboard.Decision.remaining) or inside the decline.
export function remainingOf(answer) {
  if (!answer) return null;
  return answer.remaining || (answer.decline && answer.decline.remaining) || answer.looked_up_remaining || null;
}

// ADVICE is what to do next after a decline, by stable reason name.
const ADVICE = {
  code_reused: 'Ask for a fresh code.',
  code_stale: 'Ask the passenger to refresh the code.',
  code_from_future: "The passenger's phone clock is wrong: ask them to set the time automatically, then show a fresh code.",
  bad_device_signature: 'The code is not genuine: ask for a fresh code; if it fails again, do not sell.',
  bad_issuer_signature: 'The code is not genuine: do not sell.',
  malformed: 'The code could not be read: ask for a fresh code.',
  unknown_credential: 'The passenger is not registered for this flight.',
  wrong_flight: 'The code is for another flight.',
  credential_expired: "The passenger's registration has expired.",
  credential_not_yet_valid: "The passenger's registration is not valid yet.",
  deny_listed: 'Do not sell: the passenger must settle with the airline first.',
  over_transaction_cap: 'Over the per-sale limit: take items off the basket.',
  over_aircraft_cap: "The aircraft's sales cap is reached: no more card sales on this flight.",
  velocity: 'Too many sales for this passenger: wait a few minutes.',
  consent_mismatch: "The passenger's consent is for another order: show the order again.",
  no_manifest: 'Sales are off: the cabin server has no flight manifest.',
  manifest_expired: 'Sales are off: the flight manifest has expired.',
  flight_closed: 'The flight is closed to sales.',
};

function render(rec) {
  if (rec.id !== shown) return;
  shownRec = rec;
  const box = $('answer');
  const verdict = $('answer-verdict');
  const amount = $('answer-amount');
  const msg = $('answer-message');
  const next = $('answer-next');
  const detail = $('answer-detail');
  box.className = 'answer';
  next.textContent = '';
  detail.textContent = 'Invoice ' + rec.id;
  amount.textContent = rec.total ? format(rec.total) : '';
  const again = rec.kind === 'sale' && (rec.state === 'declined' || rec.state === 'refused');
  $('answer-done').textContent = rec.kind === 'void' ? 'Back to sales' : (again ? 'Back to the basket' : 'New sale');
  switch (rec.state) {
    case 'sending':
      verdict.textContent = 'Sending…';
      msg.textContent = rec.label || '';
      break;
    case 'unknown':
      box.classList.add('unknown');
      verdict.textContent = 'Unknown — retrying';
      msg.textContent = 'The answer did not arrive. Retrying with the same invoice: it is never sold twice.';
      next.textContent = rec.note || '';
      break;
    case 'approved': {
      box.classList.add('approved');
      const a = rec.answer;
      if (rec.kind === 'void') {
        verdict.textContent = 'Voided';
        msg.textContent = rec.label;
        detail.textContent = 'Void invoice #' + a.seq + ' · ' + a.invoice_id;
      } else {
        verdict.textContent = 'Approved';
        msg.textContent = rec.label || '';
        detail.textContent = 'Invoice #' + a.sale.seq + ' · ' + a.sale.invoice_id;
        const rem = remainingOf(a);
        if (rem) next.textContent = 'Remaining limit: ' + format(rem);
      }
      break;
    }
    case 'declined': {
      box.classList.add('declined');
      const d = rec.answer.decline || {};
      verdict.textContent = 'Declined';
      msg.textContent = d.message || 'declined';
      let advice = ADVICE[d.name] || '';
      const rem = remainingOf(rec.answer);
      if (d.name === 'over_transaction_cap' && d.amount) {
        advice = 'Take items off the basket to bring it to ' + format(d.amount) + ' or less.';
      }
      if (d.name === 'over_passenger_limit') {
        // The message already names what is left: say what to do with it.
        if (!rem) advice = 'Passenger is over the flight limit.';
        else if (rem.minor > 0) advice = 'Take items off the basket to bring it to ' + format(rem) + ' or less.';
        else advice = 'Nothing is left on this passenger\'s limit for the flight: do not sell more.';
      }
      next.textContent = advice;
      detail.textContent = 'Reason ' + (d.name || '?') + ' (' + (d.reason ?? '?') + ') · not charged';
      break;
    }
    case 'refused': {
      box.classList.add('declined');
      const e = rec.answer.error || {};
      verdict.textContent = 'Not sold';
      msg.textContent = e.message || 'refused by the cabin server';
      detail.textContent = (e.reason || e.code || 'error') + ' · invoice ' + rec.id;
      break;
    }
  }
}

function sleep(ms) { return new Promise((r) => setTimeout(r, ms)); }
