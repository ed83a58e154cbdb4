// The flight screen: what the cabin server holds, and for the purser the
// flight close (with a confirmation) and its report.
import { call, session } from './api.js';
import { lastStatus, refresh } from './status.js';
import { facts } from './limit.js';
import { format } from './money.js';
import { $, el, confirm } from './ui.js';

export function drawFlight() {
  const st = lastStatus();
  const s = session();
  const dl = $('flight-totals');
  dl.replaceChildren();
  if (st) {
    const inv = st.invoices || {};
    for (const c of facts([
      ['Flight', st.flight], ['Aircraft', st.aircraft], ['Invoices', String(st.last_seq)],
      ['Pending', String(inv.pending)], ['Sent', String(inv.sent)], ['Cleared', String(inv.cleared)],
      ['Sales', st.closed ? 'closed' : (st.sales_open ? 'open' : 'off')],
    ]).children) dl.append(c.cloneNode(true));
  }
  const purser = s && s.role === 'purser';
  $('flight-close').hidden = !purser;
  $('flight-close').textContent = st && st.closed ? 'Show the close report' : 'Close the flight';
  // Once closed, the button only shows the report: nothing to warn about.
  $('flight-close').className = (st && st.closed ? 'secondary' : 'danger') + ' big';
  $('flight-note').textContent = purser ? '' : 'Only the purser can close the flight.';
}

function drawReport(r) {
  const box = $('flight-report');
  box.hidden = false;
  const totals = (ms) => (ms && ms.length ? ms.map(format).join(', ') : '0');
  box.replaceChildren(
    el('div', 'big', 'Flight closed'),
    facts([
      ['Closed at', new Date(r.closed_at).toLocaleString([], { dateStyle: 'short', timeStyle: 'short' })], ['Sales', String(r.sales)], ['Sales total', totals(r.sales_total)],
      ['Voids', String(r.voids)], ['Voids total', totals(r.voids_total)], ['Last invoice', '#' + r.last_seq],
      ['Chain head', (r.head || '').slice(0, 16)],
    ]));
}

export function initFlight() {
  $('flight-close').addEventListener('click', async () => {
    const st = lastStatus();
    if (!(st && st.closed)) {
      const ok = await confirm('Close flight ' + (st ? st.flight : '') + ' now? No sale or void is possible on this flight after it.', 'Close flight');
      if (!ok) return;
    }
    $('flight-close').disabled = true;
    try {
      drawReport(await call('POST', '/v1/flight/close'));
      await refresh();
      drawFlight();
    } catch (e) {
      $('flight-note').textContent = 'Close failed: ' + e.message;
    } finally {
      $('flight-close').disabled = false;
    }
  });
}
