// Funding: the prepaid wallet (top up) or a card, linked as a token from the
// simulated tokenizer; the card number never reaches this screen's code.
import * as store from "../store.js";
import { OfflineError } from "../api.js";
import { formatMoney, parseMajor } from "../messages.js";
import { randomHex } from "../bytes.js";
import { tokenize } from "../tokenizer.js";
import { busy, card, field, h, message, show } from "../ui.js";
import { explain, refreshAccount, screenToken, state, stillShown } from "../app.js";
import { fundingText } from "./home.js";

export async function fundingScreen() {
  const token = screenToken();
  await render(token);
  try {
    await refreshAccount();
    if (stillShown(token)) summary();
  } catch (e) {
    if (!stillShown(token)) return;
    if (!(e instanceof OfflineError)) message("error", explain(e));
  }
}

function currencies() {
  const cs = (state.account?.limits || []).map((l) => l.limit.currency);
  if (!cs.length) return ["EUR"];
  // The flights' currencies first, then the rest of the band's.
  const flights = [...state.credentials.values()].map((c) => c.parsed.limit.currency);
  const first = flights.find((c) => cs.includes(c)) || (cs.includes("EUR") ? "EUR" : cs[0]);
  return [first, ...cs.filter((c) => c !== first)];
}

async function render(token) {
  const pending = await store.get("topup_pending");
  if (token !== undefined && !stillShown(token)) return;
  show(h("div", { id: "summary" }), walletCard(pending), cardCard());
  summary();
}

// summary redraws the funding in use and the balance, leaving forms as typed.
function summary() {
  const a = state.account;
  document.getElementById("summary")?.replaceChildren(card("Paying with", h("p", { id: "funding" }, fundingText(a?.funding)),
    a?.funding?.kind === "wallet" ? h("p", { id: "balance", class: "small" }, "Balance: loading…") : null));
  const button = document.getElementById("topup");
  if (button) button.textContent = a?.funding?.kind === "wallet" ? "Top up" : "Top up and pay from this balance";
  if (a?.funding?.kind === "wallet") showBalance(currencies()[0]);
}

async function showBalance(cur) {
  const el = document.getElementById("balance");
  try {
    const b = await state.client.balance(cur);
    if (el) el.textContent = "Balance: " + formatMoney(b.balance);
  } catch (e) {
    if (el) el.textContent = e instanceof OfflineError ? "Balance: not available offline" : "Balance: " + explain(e);
  }
}

function walletCard(pending) {
  const cur = h("select", { id: "currency", name: "currency" }, currencies().map((c) => h("option", { value: c }, c)));
  const amount = h("input", { id: "amount", name: "amount", inputmode: "decimal", placeholder: "50.00", autocomplete: "off" });
  const button = h("button", { id: "topup", class: "primary", type: "submit" }, "Top up");
  const form = h("form", { id: "topup-form" }, h("div", { class: "row" }, field("Amount", amount), field("Currency", cur)), button);
  form.addEventListener("submit", (ev) => {
    ev.preventDefault();
    busy(button, async () => {
      const minor = parseMajor(amount.value, cur.value);
      await topUp({ minor, currency: cur.value });
    }, explain);
  });
  return card("Wallet balance",
    h("p", { class: "small" }, "Charges are taken from a balance you top up. Topping up also pays anything owed."),
    pending ? h("p", { class: "bad-text" }, `A top-up of ${formatMoney(pending.amount)} did not get an answer; it is retried (never credited twice) when you top up that amount again.`) : null,
    form);
}

// topUp credits amount once: the idempotency ref is stored before the
// request leaves and dropped only when ground has answered.
async function topUp(amount) {
  let pending = await store.get("topup_pending");
  if (!pending || pending.amount.minor !== amount.minor || pending.amount.currency !== amount.currency) {
    pending = { ref: randomHex(16), amount };
    await store.put("topup_pending", pending);
  }
  if (state.account?.funding?.kind !== "wallet") {
    state.account = await state.client.setFunding({ kind: "wallet" });
  }
  const b = await state.client.topUp(pending.amount, pending.ref);
  await store.del("topup_pending");
  await refreshAccount();
  message("ok", `Topped up ${formatMoney(amount)}. Balance ${formatMoney(b.balance)}.`);
  document.getElementById("amount").value = "";
  summary();
  showBalance(amount.currency);
}

function cardCard() {
  const number = h("input", { id: "card-number", name: "cc-number", inputmode: "numeric", autocomplete: "cc-number", placeholder: "4242 4242 4242 4242" });
  const exp = h("input", { id: "card-exp", name: "cc-exp", autocomplete: "cc-exp", placeholder: "MM/YY" });
  const button = h("button", { id: "link-card", class: "primary", type: "submit" }, "Link card");
  const form = h("form", { id: "card-form", autocomplete: "off" },
    h("div", { class: "tokenizer" },
      h("div", { class: "tokenizer-head" }, "Card details go to the acquirer (simulated)"),
      field("Card number", number), field("Expiry", exp)),
    button);
  form.addEventListener("submit", (ev) => {
    ev.preventDefault();
    busy(button, async () => {
      const t = tokenize(number, exp.value); // clears the number field
      exp.value = "";
      state.account = await state.client.setFunding({ kind: "card", ...t });
      await store.put("account", state.account);
      message("ok", `Linked ${fundingText(state.account.funding)}. Any unpaid charge is retried with it now.`);
      summary();
    }, (e) => { number.value = ""; return explain(e); });
  });
  return card("Card", h("p", { class: "small" }, "Only a token, the network, the last four digits and the expiry are kept. The card number is never sent to Airtab or stored."), form);
}

