// Small DOM helpers: elements are built with textContent, never innerHTML,
// so nothing from the network or a QR code is ever parsed as HTML.

// h makes an element: h("p", {class: "x", onclick: f}, "text", child…).
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
    else if (k === "class") el.className = v;
    else el.setAttribute(k, v === true ? "" : String(v));
  }
  for (const c of children.flat()) {
    if (c === undefined || c === null || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

// show replaces the view's content.
export function show(...children) {
  const view = document.getElementById("view");
  view.replaceChildren(...children.flat().filter(Boolean));
  view.focus({ preventScroll: true });
  window.scrollTo(0, 0);
}

// message shows a notice at the top of the view: kind is "error", "ok" or "info".
export function message(kind, text) {
  const box = document.getElementById("notice");
  box.className = "notice " + kind;
  box.textContent = text;
  box.hidden = !text;
  // A notice answers what the passenger just did, often at the foot of a
  // long form: bring it into view, or the tap looks like it did nothing.
  // The sticky top bar covers the page's first 52 px.
  const bar = document.querySelector(".top")?.getBoundingClientRect().bottom || 0;
  if (text && box.getBoundingClientRect().top < bar) {
    box.scrollIntoView({ block: "start", behavior: "instant" });
  }
}

let flashed = null;

// flash shows a notice after the next screen change (a route clears the
// notice otherwise).
export function flash(kind, text) {
  flashed = [kind, text];
}

// takeFlash shows the notice flash left, if any, else clears it.
export function takeFlash() {
  const f = flashed;
  flashed = null;
  message(...(f || ["info", ""]));
}

export function clearMessage() {
  message("info", "");
}

// busy disables button while fn runs and shows errors with explain.
export async function busy(button, fn, explain) {
  button.disabled = true;
  try {
    clearMessage();
    return await fn();
  } catch (e) {
    message("error", explain ? explain(e) : e.message);
  } finally {
    button.disabled = false;
  }
}

export function field(label, input, hint) {
  return h("label", { class: "field" }, h("span", { class: "label" }, label), input, hint ? h("span", { class: "hint" }, hint) : null);
}

export function card(title, ...children) {
  return h("section", { class: "card" }, title ? h("h2", {}, title) : null, ...children);
}

export function when(unix) {
  return new Date(unix * 1000).toISOString().replace("T", " ").slice(0, 16) + " UTC";
}

export function whenISO(iso) {
  return iso ? iso.replace("T", " ").slice(0, 16) + " UTC" : "";
}
