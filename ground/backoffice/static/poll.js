// Keeps the flights table live: every data-poll-ms milliseconds it fetches
// the table body, drawn on the server by the same template as the page,
// and swaps it in. A failed poll says so and tries again on the next tick.
const live = document.getElementById("live");
const body = document.getElementById("flight-rows");
const every = Number(live?.dataset.pollMs) || 5000;

async function refresh() {
  try {
    const res = await fetch("/backoffice/flights/rows", { credentials: "same-origin", cache: "no-store" });
    if (res.status === 401) {
      live.textContent = "Signed out: reload the page to sign in again.";
      live.classList.add("bad");
      return false;
    }
    if (!res.ok) throw new Error(`HTTP ${res.status}`);
    const html = await res.text();
    const doc = new DOMParser().parseFromString(`<table><tbody>${html}</tbody></table>`, "text/html");
    body.replaceChildren(...doc.querySelector("tbody").childNodes);
    live.textContent = `Live: updated ${new Date().toLocaleTimeString()}`;
    live.classList.remove("bad");
  } catch (err) {
    live.textContent = `Live update failed (${err.message}); retrying`;
    live.classList.add("bad");
  }
  return true;
}

async function loop() {
  if (await refresh()) setTimeout(loop, every);
}

if (live && body) setTimeout(loop, every);
