// The catalog from the manifest and the basket being sold. Prices come
// from the cabin server's catalog; the server prices the sale again itself.
import { call } from './api.js';
import { format, money } from './money.js';
import { $, el } from './ui.js';

let catalog = { currency: '', items: [] };
const qty = new Map(); // SKU -> quantity
// MAX_QTY bounds a line, as a slip of the thumb should not sell 40 coffees.
const MAX_QTY = 20;

let failed = false; // the last catalog fetch got no catalog

// loadCatalog fetches the catalog and draws it. When it cannot, the Sell
// screen says so and offers to try again, rather than staying blank.
export async function loadCatalog() {
  try {
    catalog = await call('GET', '/v1/catalog');
  } catch (e) {
    failed = true;
    if (e.kind !== 'session') unavailable(e.message);
    throw e;
  }
  failed = false;
  draw();
}

// reloadIfFailed fetches the catalog again if the last try got none.
export function reloadIfFailed() {
  if (failed) loadCatalog().catch(() => { /* the Sell screen says why */ });
}

function unavailable(why) {
  draw();
  const again = el('button', 'secondary big', 'Try again');
  again.id = 'catalog-retry';
  again.addEventListener('click', reloadIfFailed);
  $('catalog').replaceChildren(el('div', 'card', null,
    el('p', '', 'Catalog not loaded: ' + why),
    el('p', 'hint', 'The catalog comes from the cabin server: try again once the status bar no longer says it is unreachable.'),
    again));
}

export function lines() {
  return [...qty].filter(([, q]) => q > 0).map(([sku, quantity]) => ({ sku, quantity }));
}

export function total() {
  let minor = 0;
  for (const it of catalog.items) minor += (it.price.minor) * (qty.get(it.sku) || 0);
  return money(minor, catalog.currency);
}

// label describes the basket for the sales list: "2 × Coffee, 1 × Water".
export function label() {
  return catalog.items.filter((it) => qty.get(it.sku)).map((it) => qty.get(it.sku) + ' × ' + it.name).join(', ');
}

export function clear() { qty.clear(); draw(); }

function change(sku, d) {
  const q = Math.max(0, Math.min(MAX_QTY, (qty.get(sku) || 0) + d));
  if (q) qty.set(sku, q); else qty.delete(sku);
  draw();
}

function draw() {
  const root = $('catalog');
  root.replaceChildren();
  // Group by category, in the order categories first appear.
  const cats = [...new Set(catalog.items.map((it) => it.category || ''))];
  const items = cats.flatMap((c) => catalog.items.filter((it) => (it.category || '') === c));
  let cat = null;
  for (const it of items) {
    if ((it.category || '') !== cat) {
      cat = it.category || '';
      root.append(el('div', 'cat-head', cat || 'items'));
    }
    const q = qty.get(it.sku) || 0;
    const minus = el('button', '', '−');
    minus.setAttribute('aria-label', 'one less ' + it.name);
    minus.disabled = q === 0;
    minus.addEventListener('click', () => change(it.sku, -1));
    const plus = el('button', '', '+');
    plus.setAttribute('aria-label', 'one more ' + it.name);
    plus.dataset.sku = it.sku;
    plus.addEventListener('click', () => change(it.sku, +1));
    const out = el('output', '', String(q));
    const row = el('div', 'item' + (q ? ' inbasket' : ''), null,
      el('div', '', null, el('div', 'name', it.name), el('div', 'price', format(it.price))),
      el('div', 'qty', null, minus, out, plus));
    row.dataset.sku = it.sku;
    root.append(row);
  }
  const n = [...qty.values()].reduce((a, b) => a + b, 0);
  $('basket-count').textContent = n ? n + (n === 1 ? ' item' : ' items') : 'Basket empty';
  $('basket-total').textContent = format(total());
  $('basket-scan').disabled = n === 0;
  $('basket-twoway').disabled = n === 0;
  $('basket-clear').disabled = n === 0;
}

// restore puts lines back in the basket, after a declined sale.
export function restore(ls) {
  qty.clear();
  for (const l of ls || []) if (l.quantity > 0) qty.set(l.sku, l.quantity);
  draw();
}
