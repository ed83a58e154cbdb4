// Home: credit score, eligibility and limit band, funding, and the flights
// the passenger opted in to.
import * as store from "../store.js";
import { OfflineError } from "../api.js";
import { credentialWindow, formatMoney, parseCredential } from "../messages.js";
import { busy, card, field, h, message, show, when } from "../ui.js";
import { explain, go, loadCredentials, refreshAccount, screenToken, state, stillShown } from "../app.js";
import { NETWORK_NAMES } from "../tokenizer.js";

export async function homeScreen() {
  render();
  const token = screenToken();
  try {
    await refreshAccount();
    if (stillShown(token)) refresh();
  } catch (e) {
    if (!stillShown(token)) return;
    if (!(e instanceof OfflineError)) message("error", explain(e));
    else if (state.account) message("info", "Offline: showing your account as last seen. Payment codes work without a network.");
  }
}

function render() {
  const a = state.account;
  show(h("div", { id: "account-cards" }, accountCards(a)), flightsCard(), optInCard());
}

function accountCards(a) {
  return a ? [scoreCard(a), fundingCard(a)] : [card("Your account", h("p", {}, "Not loaded yet: this needs the network once."))];
}

// refresh redraws what a new account changes, leaving forms as typed.
function refresh() {
  document.getElementById("account-cards")?.replaceChildren(...accountCards(state.account));
  document.getElementById("optin-note")?.replaceChildren(eligibilityNote());
}

function eligibilityNote() {
  return state.account && !state.account.eligible ? "You can opt in once you are eligible." : "";
}

export function fundingText(f) {
  if (!f) return "none linked";
  if (f.kind === "wallet") return "wallet balance";
  return `${NETWORK_NAMES[f.network] || f.network} ending ${f.last4}, expires ${String(f.exp_month).padStart(2, "0")}/${f.exp_year}`;
}

function scoreCard(a) {
  const pct = Math.max(0, Math.min(100, ((a.score - 300) / 550) * 100));
  const mark = ((a.eligibility_threshold - 300) / 550) * 100;
  const fill = h("div", { class: "meter-fill " + (a.score >= a.eligibility_threshold ? "good" : "bad") });
  const tick = h("div", { class: "meter-mark", title: `eligible from ${a.eligibility_threshold}` });
  fill.style.width = pct + "%"; // CSSOM, allowed by the CSP (style attributes are not)
  tick.style.left = mark + "%";
  const bar = h("div", { class: "meter", role: "img", "aria-label": `score ${a.score} on a scale of 300 to 850` }, fill, tick);
  // The band in the currency of the passenger's flights (EUR before any),
  // the other currencies in one line below it.
  const all = a.limits || [];
  const flightCur = [...state.credentials.values()].map((c) => c.parsed.limit.currency)[0];
  const main = all.find((l) => l.limit.currency === flightCur) || all.find((l) => l.limit.currency === "EUR") || all[0];
  const others = all.filter((l) => l !== main).map((l) => `${formatMoney(l.limit)} (${formatMoney(l.tx_cap)} a sale)`);
  const limits = main ? [
    h("li", { class: "band" }, h("span", { class: "band-amount" }, formatMoney(main.limit)), h("span", { class: "small" }, " per flight"),
      h("div", {}, h("strong", {}, formatMoney(main.tx_cap)), h("span", { class: "small" }, " per sale"))),
    others.length ? h("li", { class: "small" }, "Also: " + others.join(", ")) : null,
  ] : [];
  return card("Credit score",
    h("div", { class: "score-row" }, h("span", { id: "score", class: "score" }, String(a.score)), h("span", { class: "small" }, `eligible from ${a.eligibility_threshold}`)),
    bar,
    a.eligible
      ? h("p", { id: "eligibility", class: "ok-text" }, "✓ Eligible to pay on board")
      : h("p", { id: "eligibility", class: "bad-text" }, "Not eligible: ", a.ineligible_reason),
    limits.length ? h("div", {}, h("h3", {}, "Your limit band"), h("ul", { id: "limits", class: "plain" }, limits),
      h("p", { class: "small" }, "On a flight paid from the wallet, the limit is at most the balance.")) : null);
}

function fundingCard(a) {
  const owed = (a.arrears || []).length;
  return card("Paying with",
    h("p", { id: "funding" }, fundingText(a.funding)),
    owed ? h("p", { class: "bad-text" }, `${owed} unpaid charge${owed > 1 ? "s" : ""}: see Receipts.`) : null,
    h("button", { class: "secondary", onclick: () => go("funding") }, a.funding ? "Change or top up" : "Link funding"));
}

function flightsCard() {
  const now = Math.floor(Date.now() / 1000);
  const rows = [...state.credentials.values()].sort((x, y) => x.parsed.notBefore - y.parsed.notBefore).map((c) => {
    const p = c.parsed, w = credentialWindow(p, now);
    return h("li", { class: "flight" },
      h("div", {}, h("strong", {}, p.flight), h("div", { class: "small" }, `limit ${formatMoney(p.limit)}, ${formatMoney(p.txCap)} per sale`),
        h("div", { class: "small" }, w === "ok" ? `valid until ${when(p.notAfter)}` : w === "expired" ? `expired ${when(p.notAfter)}` : `valid from ${when(p.notBefore)}`)),
      w === "ok" ? h("button", { class: "primary small-btn", "data-flight": p.flight, onclick: () => go("pay/" + encodeURIComponent(p.flight)) }, "Pay") : null);
  });
  const c = card("Your flights", rows.length ? h("ul", { id: "flights", class: "plain" }, rows) : h("p", { class: "small" }, "None yet: opt in to a flight below before you board."));
  c.id = "flights-card";
  return c;
}

function optInCard() {
  const input = h("input", { id: "flight", name: "flight", placeholder: "XX123-2026-11-21", autocomplete: "off", autocapitalize: "characters" });
  const button = h("button", { id: "optin", class: "primary", type: "submit" }, "Opt in");
  const form = h("form", {}, field("Flight (carrier, number, date)", input), button);
  form.addEventListener("submit", (ev) => {
    ev.preventDefault();
    busy(button, () => optIn(input.value.trim().toUpperCase()), explain);
  });
  return card("Opt in to a flight", h("p", { id: "optin-note", class: "small" }, eligibilityNote()), form);
}

async function optIn(flight) {
  const cr = await state.client.optIn(flight);
  const raw = Uint8Array.from(atob(cr.cose), (ch) => ch.charCodeAt(0));
  const parsed = parseCredential(raw);
  const dev = state.device.raw;
  if (parsed.flight !== cr.flight || parsed.device.some((x, i) => x !== dev[i])) {
    throw new Error("ground's credential does not match this flight or this phone's key");
  }
  await store.putCredential({ flight: parsed.flight, raw, fresh_seconds: cr.code_fresh_seconds || 120, credential: cr.id });
  await loadCredentials();
  message("ok", `Opted in to ${parsed.flight}: up to ${formatMoney(parsed.limit)} on board.`);
  document.getElementById("flights-card")?.replaceWith(flightsCard());
}
