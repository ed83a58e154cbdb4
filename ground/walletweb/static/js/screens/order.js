// Two-way mode (SPEC.md §7): scan the handheld's order QR, show its lines
// and total, and on "Confirm" show the consent QR the passenger signed, so
// the passenger's signature covers the amount.
import { ProtocolError } from "../errors.js";
import { credentialWindow, formatMoney, makeConsent, readOrderQR, toQR } from "../messages.js";
import { keyId } from "../keys.js";
import { render as renderQR } from "../qr.js";
import { Scanner } from "../scan.js";
import { busy, card, field, h, message, show } from "../ui.js";
import { explain, go, state } from "../app.js";

export async function orderScreen(flight) {
  const c = state.credentials.get(flight);
  if (!c) {
    show(card("Scan an order", h("p", {}, "Opt in to this flight first.")));
    return;
  }
  const video = h("video", { id: "camera", class: "camera", muted: true, playsinline: true });
  const text = h("textarea", { id: "order-text", rows: 3, placeholder: "ATO1:…", spellcheck: "false", autocapitalize: "off" });
  const read = h("button", { id: "read-order", class: "secondary", type: "submit" }, "Read order");
  const form = h("form", {}, field("Or paste the order text", text), read);
  const camStatus = h("p", { id: "camera-status", class: "small" }, "Starting the camera…");
  let scanner = null, handled = false;
  const onText = (t) => {
    if (handled) return;
    accept(t).then((ok) => {
      if (ok) {
        handled = true;
        scanner?.stop();
      }
    });
  };
  form.addEventListener("submit", (ev) => {
    ev.preventDefault();
    busy(read, () => onText(text.value), explain);
  });
  async function accept(t) {
    try {
      const order = await readOrderQR(t);
      if (order.flight !== c.parsed.flight) throw new Error(`This order is for flight ${order.flight}; this wallet is paying on ${c.parsed.flight}.`);
      if (order.total.currency !== c.parsed.limit.currency) throw new Error(`This order is in ${order.total.currency}; your credential is in ${c.parsed.limit.currency}.`);
      confirmScreen(c, order);
      return true;
    } catch (e) {
      message("error", e instanceof ProtocolError ? orderProblem(e) : explain(e));
      return false;
    }
  }
  show(card("Scan the crew's order", h("p", { class: "small" }, "Point the camera at the order QR on the crew's handheld."), video, camStatus),
    card(null, form),
    h("button", { class: "secondary", onclick: () => go("pay/" + encodeURIComponent(flight)) }, "Back to my code"));
  scanner = new Scanner(video, onText);
  try {
    await scanner.start();
    camStatus.textContent = "Camera on: hold the order QR in view.";
  } catch (e) {
    video.hidden = true;
    camStatus.textContent = e.message;
    camStatus.className = "bad-text";
  }
  return () => scanner?.stop();
}

function orderProblem(e) {
  if (e.cls === "malformed/version") return "This order QR is from a newer version of Airtab than this wallet reads: " + e.message;
  if (e.message.startsWith("not an Airtab")) return "That QR code is not an Airtab order. Scan the order shown on the crew's handheld.";
  return "This order QR cannot be read: " + e.message;
}

function confirmScreen(c, order) {
  const p = c.parsed;
  const over = order.total.minor > p.txCap.minor;
  const confirm = h("button", { id: "confirm", class: "primary" }, `Confirm ${formatMoney(order.total)}`);
  confirm.addEventListener("click", () => busy(confirm, () => showConsent(c, order), explain));
  show(card("Check your order",
    h("table", { id: "order-lines", class: "lines" },
      h("tbody", {}, order.lines.map((l) => h("tr", {},
        h("td", {}, `${l.quantity} × ${l.sku}`),
        h("td", { class: "num" }, formatMoney({ minor: l.quantity * l.unitPrice.minor, currency: l.unitPrice.currency }))))),
      h("tfoot", {}, h("tr", {}, h("th", {}, "Total"), h("th", { id: "order-total", class: "num" }, formatMoney(order.total))))),
    over ? h("p", { class: "bad-text" }, `Over your per-sale cap of ${formatMoney(p.txCap)}: the crew's server will decline it.`) : null,
    h("p", { class: "small" }, `Flight ${order.flight}. Your signature will cover exactly this order and amount.`),
    confirm,
    h("button", { class: "secondary", onclick: () => go("pay/" + encodeURIComponent(p.flight)) }, "Cancel")));
}

async function showConsent(c, order) {
  const kid = await keyId(state.device.raw);
  const counter = await state.counters.take();
  const raw = await makeConsent({ cred: c.parsed, order, privateKey: state.device.privateKey, kid, counter, time: Math.floor(Date.now() / 1000) });
  const textQR = toQR("order-consent", raw);
  const canvas = h("canvas", { id: "consent", class: "qr", "aria-label": "consent QR code" });
  show(h("div", { class: "pay" },
    h("div", { class: "pay-head" }, h("strong", {}, "Your consent"), h("span", {}, formatMoney(order.total))),
    h("div", { class: "qr-frame" }, canvas),
    h("p", { class: "small center" }, "Show this to the crew to pay this order."),
    h("div", { class: "pay-actions" }, h("button", { id: "done", class: "secondary", onclick: () => go("pay/" + encodeURIComponent(c.parsed.flight)) }, "Done"))));
  renderQR(canvas, textQR);
  canvas.dataset.qr = textQR;
  canvas.dataset.counter = String(counter);
}
