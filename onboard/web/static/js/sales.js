// Recent sales made on this handheld, from IndexedDB, with their state and
// a void button for approved sales not yet voided.
import * as store from './store.js';
import { voidSale } from './checkout.js';
import { format } from './money.js';
import { $, el, confirm, short } from './ui.js';

// SHOWN bounds the list on screen.
const SHOWN = 50;

const STATE_TEXT = {
  sending: 'sending…', unknown: 'unknown — retrying', approved: 'approved', declined: 'declined', refused: 'not sold',
};

export async function drawSales() {
  const recs = (await store.all()).slice(0, SHOWN);
  const list = $('sales-list');
  list.replaceChildren();
  $('sales-empty').hidden = recs.length > 0;
  for (const r of recs) {
    const voided = r.kind === 'sale' && r.voided_by;
    const state = voided ? 'voided' : r.state;
    let stateText = voided ? 'voided' : (r.kind === 'void' && r.state === 'approved' ? 'void done' : STATE_TEXT[r.state]);
    // A declined sale says why, so the crew can answer the passenger later.
    const why = r.state === 'declined' && r.answer && r.answer.decline && r.answer.decline.message;
    if (why) stateText += ': ' + why;
    let seq = '';
    if (r.state === 'approved') seq = '#' + (r.kind === 'void' ? r.answer.seq : r.answer.sale.seq) + ' · ';
    const li = el('li', 'sale', null,
      el('div', '', null,
        el('div', 'what', r.label || short(r.id)),
        el('div', 'total', r.total ? format(r.total) : ''),
        el('div', 'when', seq + new Date(r.created).toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' }) + ' · ' + short(r.id)),
        el('div', 'state ' + state, stateText)));
    li.dataset.id = r.id;
    if (r.kind === 'sale' && r.state === 'approved' && !voided) {
      const b = el('button', 'secondary', 'Void');
      b.setAttribute('aria-label', 'Void ' + (r.label || r.id));
      b.addEventListener('click', async () => {
        if (await confirm('Void ' + (r.label || 'this sale') + ' (' + format(r.total) + ')? The passenger is not charged for it.', 'Void sale')) {
          await voidSale(r);
        }
      });
      li.append(b);
    }
    list.append(li);
  }
}
