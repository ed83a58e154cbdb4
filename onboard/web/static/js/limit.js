// Looking up a passenger's remaining limit from a scanned code, without
// using the code up.
import { call } from './api.js';
import { scan } from './scan.js';
import { format } from './money.js';
import { $, el, show } from './ui.js';

export function initLimit(onError) {
  $('limit-scan').addEventListener('click', async () => {
    const code = await scan('limit', "Scan the passenger's code to see the limit", 'limit');
    show('limit');
    if (!code) return;
    const box = $('limit-result');
    box.hidden = false;
    box.replaceChildren(el('p', 'hint', 'Checking…'));
    try {
      const a = await call('POST', '/v1/limit', { code });
      if (a.valid) {
        box.replaceChildren(
          el('div', 'hint', 'Remaining on this flight'),
          el('div', 'big', format(a.remaining)),
          facts([['Limit', format(a.limit)], ['Spent', format(a.spent)], ['Per-sale cap', format(a.tx_cap)],
            ['Passenger', (a.passenger || '').slice(0, 8)]]));
      } else {
        const d = a.decline || {};
        box.replaceChildren(el('div', 'big', 'Not valid'), el('p', 'message', d.message || ''),
          el('p', 'hint', 'Reason ' + (d.name || '?') + ' (' + (d.reason ?? '?') + ')'));
      }
    } catch (e) {
      box.replaceChildren(el('p', 'error', 'Lookup failed: ' + e.message));
      onError(e);
    }
  });
}

export function facts(pairs) {
  const dl = el('dl', 'facts');
  for (const [k, v] of pairs) dl.append(el('dt', '', k), el('dd', '', v));
  return dl;
}
