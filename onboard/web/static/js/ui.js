// Small DOM helpers shared by the screens.

export const $ = (id) => document.getElementById(id);

// el makes an element with a class and text; children are appended.
export function el(tag, cls, text, ...children) {
  const e = document.createElement(tag);
  if (cls) e.className = cls;
  if (text !== undefined && text !== null) e.textContent = text;
  for (const c of children) if (c) e.append(c);
  return e;
}

const SCREENS = ['signin', 'sell', 'scan', 'answer', 'order', 'sales', 'limit', 'flight'];
const listeners = {};

// onShow registers fn to run each time the screen is shown.
export function onShow(name, fn) { listeners[name] = fn; }

// show makes one screen visible and marks its tab.
export function show(name) {
  for (const s of SCREENS) $('screen-' + s).hidden = s !== name;
  for (const b of document.querySelectorAll('#tabs button')) b.classList.toggle('active', b.dataset.screen === name);
  document.body.dataset.screen = name;
  window.scrollTo(0, 0);
  if (listeners[name]) listeners[name]();
}

// current returns the screen shown.
export function current() { return document.body.dataset.screen || ''; }

// confirm asks a yes/no question in the page's own dialog (a native
// confirm() would block the page) and resolves true for yes.
export function confirm(text, okLabel) {
  const d = $('confirm');
  $('confirm-text').textContent = text;
  $('confirm-ok').textContent = okLabel || 'Confirm';
  return new Promise((resolve) => {
    d.addEventListener('close', () => resolve(d.returnValue === 'ok'), { once: true });
    d.returnValue = '';
    d.showModal();
  });
}

// banner shows a message above every screen, or hides it for ''.
export function banner(text) {
  $('banner').textContent = text;
  $('banner').hidden = !text;
}

// short returns an invoice id's first 8 characters, as printed for crew.
export function short(id) { return (id || '').slice(0, 8); }
