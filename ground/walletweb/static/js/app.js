// The passenger wallet: start-up, the screens' router and the shared state.
// Screens live in screens/, one file each; the protocol work is in
// cbor.js, cose.js, base45.js, messages.js; keys in keys.js; storage in
// store.js; ground's API in api.js.
import * as store from "./store.js";
import { ApiError, Client, OfflineError } from "./api.js";
import { message, takeFlash } from "./ui.js";
import { parseCredential } from "./messages.js";
import { registerScreen } from "./screens/register.js";
import { homeScreen } from "./screens/home.js";
import { fundingScreen } from "./screens/funding.js";
import { payScreen } from "./screens/pay.js";
import { orderScreen } from "./screens/order.js";
import { receiptsScreen } from "./screens/receipts.js";

// state is what every screen reads: the device key, the API client, the
// counters, the last account seen and the credentials by flight.
export const state = {
  device: null,
  client: null,
  counters: new store.Counters(),
  account: null,
  credentials: new Map(), // flight → {flight, raw, fresh_seconds, parsed}
};

// explain turns any error into a sentence for the passenger.
export function explain(e) {
  if (e instanceof OfflineError) return "No connection to ground. Registering, funding, opting in and receipts need the network; payment codes do not.";
  if (e instanceof ApiError) return refusal(e);
  if (e?.name === "StorageError") return e.message;
  return e?.message || String(e);
}

// refusal is ground's answer as a sentence: its message, which names the
// problem, without the code, which is for programs. A fault on ground's
// side says to try again rather than blame what the passenger did.
function refusal(e) {
  let msg = (e.message || "").trim();
  msg = msg.charAt(0).toUpperCase() + msg.slice(1);
  if (msg && !/[.!?]$/.test(msg)) msg += ".";
  if (e.status >= 500 || e.code === "internal") {
    return `Ground could not do that just now; try again in a minute. ${msg}`.trim();
  }
  return `Ground refused: ${msg || "no reason given."}`;
}

export async function loadCredentials() {
  state.credentials.clear();
  for (const c of await store.credentials()) {
    try {
      state.credentials.set(c.flight, { ...c, parsed: parseCredential(c.raw) });
    } catch (e) {
      console.warn("stored credential unreadable", c.flight, e);
    }
  }
}

// refreshAccount fetches the account, keeping the last one for offline use.
export async function refreshAccount() {
  const a = await state.client.account();
  state.account = a;
  await store.put("account", a);
  return a;
}

const routes = {
  home: homeScreen,
  funding: fundingScreen,
  pay: payScreen,
  order: orderScreen,
  receipts: receiptsScreen,
};

let leave = null; // the current screen's clean-up (stop timers, camera)
let shown = 0; // counts screen changes

// screenToken names the screen now shown; stillShown(token) says whether it
// still is, so a screen whose network answer comes late never draws over
// the next one.
export function screenToken() {
  return shown;
}

export function stillShown(token) {
  return token === shown;
}

export function go(path) {
  if (location.hash !== "#/" + path) location.hash = "#/" + path;
  else route();
}

async function route() {
  shown++;
  if (leave) {
    try {
      leave();
    } catch {}
    leave = null;
  }
  takeFlash();
  const [name, ...args] = location.hash.replace(/^#\//, "").split("/");
  document.body.dataset.screen = name || "home";
  const tab = name === "order" ? "pay" : name || "home";
  for (const a of document.querySelectorAll("nav a")) a.classList.toggle("active", a.dataset.screen === tab);
  if (!state.device) {
    document.body.dataset.screen = "register";
    leave = await registerScreen();
    return;
  }
  const screen = routes[name] || homeScreen;
  try {
    leave = (await screen(...args.map(decodeURIComponent))) || null;
  } catch (e) {
    message("error", explain(e));
  }
}

function showOnline() {
  const pill = document.getElementById("net");
  pill.textContent = navigator.onLine ? "online" : "offline";
  pill.className = "pill " + (navigator.onLine ? "on" : "off");
}

async function start() {
  showOnline();
  addEventListener("online", showOnline);
  addEventListener("offline", showOnline);
  if ("serviceWorker" in navigator) {
    navigator.serviceWorker.register("./sw.js", { scope: "./" }).catch((e) => console.warn("service worker", e));
  }
  try {
    state.device = (await store.getDevice()) || null;
    if (state.device) {
      state.client = new Client(state.device);
      state.account = (await store.get("account")) || null;
      await loadCredentials();
    }
  } catch (e) {
    message("error", explain(e));
  }
  addEventListener("hashchange", route);
  document.body.classList.add("ready");
  await route();
}

export function registered(device, account) {
  state.device = device;
  state.client = new Client(device);
  state.account = account;
}

start();
