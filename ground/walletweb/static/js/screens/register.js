// Register: make the device key in this browser and register with ground.
import * as store from "../store.js";
import { ApiError, Client } from "../api.js";
import { generateDeviceKey } from "../keys.js";
import { busy, card, field, flash, h, show } from "../ui.js";
import { explain, go, registered } from "../app.js";

export async function registerScreen() {
  const ref = h("input", { id: "ref", name: "ref", autocomplete: "off", maxlength: 64, placeholder: "e.g. your frequent-flyer number" });
  const button = h("button", { id: "register", class: "primary", type: "submit" }, "Create my wallet");
  const form = h("form", { id: "register-form" }, field("Airline reference (optional)", ref, "Letters, digits and _ . : @ - only."), button);
  form.addEventListener("submit", (ev) => {
    ev.preventDefault();
    busy(button, () => register(ref.value.trim()), explain);
  });
  show(
    h("div", { class: "hero" },
      h("h1", {}, "Pay on board, even in airplane mode"),
      h("p", {}, "Register before you fly. In the air, show a code to the crew: no network needed. You see the final charge after landing.")),
    card("Create your wallet",
      h("p", { class: "small" }, "This phone makes a signing key that never leaves it. Ground only ever sees its public half."),
      form),
    h("ol", { class: "steps" },
      h("li", {}, "Register this phone"),
      h("li", {}, "Link a card or top up your wallet"),
      h("li", {}, "Opt in to your flight"),
      h("li", {}, "Pay on board with a QR code")),
  );
}

async function register(ref) {
  if (ref && !/^[A-Za-z0-9][A-Za-z0-9_.:@-]{0,63}$/.test(ref)) {
    throw new Error(`The airline reference "${ref}" cannot be used: it takes letters, digits and _ . : @ - only, starting with a letter or digit, with no spaces.`);
  }
  let device = await store.getDevice();
  if (!device) {
    device = await generateDeviceKey();
    await store.putDevice(device); // kept before ground hears of it, so a retry signs with the same key
  }
  const client = new Client(device);
  let account;
  try {
    account = await client.register(ref);
  } catch (e) {
    if (!(e instanceof ApiError && e.code === "conflict")) throw e;
    // Either this key is registered already (a retry after a lost answer),
    // or the reference belongs to someone else.
    try {
      account = await client.account();
    } catch {
      if (ref) {
        throw new Error(`The reference "${ref}" is registered with another device key. If this browser's data was cleared, that key is gone with it: register without a reference, or ask the airline to move the reference.`);
      }
      throw e;
    }
  }
  await store.put("account", account);
  registered(device, account);
  flash("ok", "Wallet created. Next: link a card or top up.");
  go("funding");
}
