// Sign-in screen: crew id and PIN against the manifest's crew list. The
// session token is kept, the PIN never is.
import { call, setSession, ApiError } from './api.js';
import { $ } from './ui.js';

export function initSignIn(onSignedIn) {
  $('signin-form').addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const crew = $('signin-crew').value.trim();
    const pin = $('signin-pin').value;
    $('signin-error').textContent = '';
    $('signin-submit').disabled = true;
    try {
      const s = await call('POST', '/v1/sessions', { crew_id: crew, pin });
      setSession(s);
      $('signin-pin').value = '';
      onSignedIn(s);
    } catch (e) {
      $('signin-pin').value = '';
      $('signin-error').textContent = signInMessage(e);
    } finally {
      $('signin-submit').disabled = false;
    }
  });
}

function signInMessage(e) {
  if (!(e instanceof ApiError)) return 'Sign-in failed: ' + e.message;
  switch (e.kind) {
    case 'network': return 'No answer from the cabin server: check the cabin Wi-Fi and try again.';
    // The cabin server says which roster it checked (manifest serial and
    // time), so a crew member added on the ground since knows to wait for
    // the next sync rather than retype the PIN.
    case 'session': return 'Wrong crew id or PIN.' + rosterNote(e.message);
  }
  if (e.status === 429) {
    return 'Too many sign-in attempts' + (e.retryAfterSeconds ? ': try again in ' + e.retryAfterSeconds + ' s.' : ': wait a minute.');
  }
  return 'Sign-in refused: ' + e.message;
}

// rosterNote turns the cabin server's account of the roster it checked
// ("... manifest serial 3 issued 2026-12-03T08:48:24Z ...") into one short
// line for the aisle, or nothing when the answer does not say.
function rosterNote(message) {
  const m = /manifest serial (\d+)(?:, delta (\d+),)? issued (\d{4}-\d\d-\d\dT(\d\d:\d\d))/.exec(message || '');
  if (!m) return '';
  return ' The roster on board is from manifest #' + m[1] + ' (' + m[4] + ' UTC); crew added since can sign in after the next sync.';
}
