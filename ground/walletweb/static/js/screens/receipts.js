// Receipts: after landing, what ground charged for each sale, the total
// charged, and a collection notice with how to pay when a charge was
// declined.
import * as store from "../store.js";
import { OfflineError } from "../api.js";
import { formatMoney } from "../messages.js";
import { card, h, message, show, whenISO } from "../ui.js";
import { explain, go, screenToken, state, stillShown } from "../app.js";

const STATUS = {
  settled: ["Charged", "ok"],
  pending: ["Being charged", "info"],
  collections: ["Payment failed", "bad"],
  voided: ["Cancelled by crew", "muted"],
  refused: ["Not charged", "muted"],
};

const DECLINES = {
  insufficient_funds: "your card was declined for insufficient funds",
  card_expired: "your card has expired",
  fraud_suspected: "your bank declined the charge",
  wallet_insufficient_balance: "your wallet balance was too low",
  no_funding_source: "no funding source was linked",
};

export async function receiptsScreen() {
  const cached = await store.get("charges");
  if (cached) render(cached, true);
  else show(card("Receipts", h("p", {}, "Loading…")));
  const token = screenToken();
  try {
    const list = await state.client.charges();
    await store.put("charges", list);
    if (stillShown(token)) render(list, false);
  } catch (e) {
    if (!stillShown(token)) return;
    if (e instanceof OfflineError) message("info", cached ? "Offline: receipts as last seen." : "Receipts appear after landing, when the phone is online.");
    else message("error", explain(e));
  }
}

function render(list, stale) {
  const sales = list.charges.filter((c) => c.kind === "sale");
  const byFlight = new Map();
  for (const c of sales) {
    if (!byFlight.has(c.flight)) byFlight.set(c.flight, []);
    byFlight.get(c.flight).push(c);
  }
  const owed = list.owed || [];
  show(
    owed.length ? collectionNotice(list) : null,
    card("Charged", h("p", { id: "charged-total", class: "total" }, list.charged.length ? list.charged.map(formatMoney).join(" + ") : "nothing yet"),
      stale ? h("p", { class: "small" }, "As last seen.") : null),
    sales.length ? [...byFlight].map(([flight, cs]) => card(flight, h("ul", { class: "plain receipts" }, cs.map(receipt)))) :
      card("Receipts", h("p", { class: "small" }, "No sales yet. Receipts appear once the aircraft has landed and sent its sales to ground.")),
  );
}

function receipt(c) {
  const [label, tone] = STATUS[c.status] || [c.status, "info"];
  const items = (c.lines || []).map((l) => `${l.quantity} × ${l.sku}`).join(", ");
  return h("li", { class: "receipt", "data-invoice": c.invoice, "data-status": c.status },
    h("div", { class: "receipt-main" }, h("span", {}, items || "sale"), h("strong", { class: "num" }, formatMoney(c.amount))),
    h("div", { class: "receipt-sub" },
      h("span", { class: "chip " + tone }, label),
      h("span", { class: "small" }, whenISO(c.sold_at) + (c.funding ? " · " + (c.funding === "card" ? "card" : "wallet") : ""))));
}

function collectionNotice(list) {
  const declined = list.charges.find((c) => c.status === "collections");
  const why = DECLINES[declined?.decline] || (declined?.decline ? `the charge was declined (${declined.decline})` : "the charge was declined");
  return h("section", { id: "collection", class: "card alert" },
    h("h2", {}, "Payment needed"),
    h("p", {}, `${list.owed.map(formatMoney).join(" + ")} is owed for your purchases on board: ${why}.`),
    h("p", { class: "small" }, "Until it is paid you cannot pay on board again. Top up your wallet or link another card: the charge is retried at once."),
    h("div", { class: "pay-actions" },
      h("button", { class: "primary", onclick: () => go("funding") }, "Pay now")));
}
