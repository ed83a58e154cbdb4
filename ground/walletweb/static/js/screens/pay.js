// Pay: the full-screen payment QR, made here with no network, refreshed
// well within the flight's code freshness period. Each code takes a new
// counter, reserved on disk before the code is shown (store.js).
import { credentialWindow, formatMoney, makePaymentCode, toQR } from "../messages.js";
import { keyId } from "../keys.js";
import { render as renderQR } from "../qr.js";
import { card, h, message, show, when } from "../ui.js";
import { explain, go, state } from "../app.js";

// refreshSeconds: half the freshness cap, between 10 and 60 s (SPEC §6 asks
// for a new code every 30-60 s; a short cap needs it sooner).
export function refreshSeconds(fresh) {
  return Math.max(10, Math.min(60, Math.floor((fresh || 120) / 2)));
}

// currentCredential is the credential valid now that ends soonest (the
// flight being flown), else the next one to become valid.
function currentCredential() {
  const now = Math.floor(Date.now() / 1000);
  const all = [...state.credentials.values()];
  const live = all.filter((c) => credentialWindow(c.parsed, now) === "ok").sort((a, b) => a.parsed.notAfter - b.parsed.notAfter);
  const next = all.filter((c) => credentialWindow(c.parsed, now) === "not-yet-valid").sort((a, b) => a.parsed.notBefore - b.parsed.notBefore);
  return live[0] || next[0] || null;
}

export async function payScreen(flight) {
  const c = flight ? state.credentials.get(flight) : currentCredential();
  if (!c) {
    show(card("Pay", h("p", {}, flight ? `No credential for ${flight} on this phone: opt in first (before boarding).` : "Opt in to a flight first."),
      h("button", { class: "secondary", onclick: () => go("home") }, "Back")));
    return;
  }
  const p = c.parsed;
  const now = Math.floor(Date.now() / 1000);
  const w = credentialWindow(p, now);
  if (w !== "ok") {
    const why = w === "expired" ? `Your credential for ${p.flight} expired at ${when(p.notAfter)}: the crew's server would decline it. Opt in again (needs the network).` :
      `Your credential for ${p.flight} is valid only from ${when(p.notBefore)}.`;
    show(card("Pay", h("p", { id: "pay-error", class: "bad-text" }, why), h("button", { class: "secondary", onclick: () => go("home") }, "Back")));
    return;
  }
  const canvas = h("canvas", { id: "code", class: "qr", "aria-label": "payment QR code" });
  const bar = h("div", { class: "countdown-fill" });
  const status = h("p", { id: "code-status", class: "small center" }, "");
  const full = h("input", { type: "checkbox", id: "full" });
  show(h("div", { class: "pay" },
    h("div", { class: "pay-head" }, h("strong", {}, p.flight), h("span", {}, `up to ${formatMoney(p.txCap)} a sale`)),
    h("div", { class: "qr-frame" }, canvas),
    h("div", { class: "countdown" }, bar),
    status,
    h("p", { class: "small center" }, "Show this to the crew. Works in airplane mode."),
    h("div", { class: "pay-actions" },
      h("button", { id: "two-way", class: "secondary", onclick: () => go("order/" + encodeURIComponent(p.flight)) }, "Scan the crew's order"),
      h("button", { id: "done", class: "secondary", onclick: () => go("home") }, "Done")),
    h("label", { class: "check small" }, full, " Late registration: show the full code")));
  const period = refreshSeconds(c.fresh_seconds);
  const kid = await keyId(state.device.raw);
  let timer = 0, ticker = 0, shownAt = 0, stopped = false, lock = null;
  async function next() {
    if (stopped) return;
    try {
      const counter = await state.counters.take(); // durable before use
      const t = Math.floor(Date.now() / 1000);
      const raw = await makePaymentCode({ cred: p, privateKey: state.device.privateKey, kid, counter, time: t, full: full.checked });
      const text = toQR("payment-code", raw);
      if (stopped) return;
      const version = renderQR(canvas, text);
      canvas.dataset.qr = text;
      canvas.dataset.counter = String(counter);
      canvas.dataset.version = String(version);
      shownAt = Date.now();
      status.textContent = `code ${counter} · new code every ${period} s`;
    } catch (e) {
      canvas.dataset.qr = "";
      message("error", "No code: " + explain(e));
    }
    timer = setTimeout(next, period * 1000);
  }
  full.addEventListener("change", () => {
    clearTimeout(timer);
    next();
  });
  ticker = setInterval(() => {
    const left = Math.max(0, 1 - (Date.now() - shownAt) / (period * 1000));
    bar.style.width = (left * 100).toFixed(1) + "%";
  }, 250);
  try {
    lock = await navigator.wakeLock?.request("screen");
  } catch {}
  await next();
  return () => {
    stopped = true;
    clearTimeout(timer);
    clearInterval(ticker);
    lock?.release?.().catch(() => {});
  };
}
