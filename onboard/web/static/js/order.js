// Two-way mode: the cabin server prices the basket as an order, the
// handheld shows it as a QR code, the passenger's wallet signs consent to
// exactly that order, and the handheld scans the consent.
import { call } from './api.js';
import { scan } from './scan.js';
import { sellOrder } from './checkout.js';
import { format } from './money.js';
import { $, show } from './ui.js';

let order = null;
let orderLabel = '';
let orderLines = [];

// startOrder creates the order for lines and shows its QR code.
export async function startOrder(lines, label) {
  order = await call('POST', '/v1/orders', { lines });
  orderLabel = label;
  orderLines = lines;
  $('order-qr').src = '/qr.png?t=' + encodeURIComponent(order.qr_text);
  $('order-qr').dataset.text = order.qr_text;
  $('order-total').textContent = format(order.total);
  $('order-lines').textContent = label;
  // UTC and 24-hour, like the status bar: a cabin crosses time zones.
  $('order-expiry').textContent = 'Valid until ' + new Date(order.expires_at).toISOString().slice(11, 16) + ' UTC';
  show('order');
}

export function initOrder() {
  $('order-cancel').addEventListener('click', () => { order = null; show('sell'); });
  $('order-scan').addEventListener('click', async () => {
    if (!order) return;
    const consent = await scan('consent', "Scan the passenger's consent", 'order');
    if (!consent) return;
    const o = order;
    order = null;
    await sellOrder(consent, o, orderLabel, orderLines);
  });
}
