// The cabin server's handheld API (/v1), as the app calls it: the
// handheld's id on every request, the crew session's bearer token, and
// errors sorted into what the screens must tell apart.

const HANDHELD_KEY = 'airtab.handheld';
const SESSION_KEY = 'airtab.session';

// handheldId is this device's stable id: made once, kept in localStorage.
export function handheldId() {
  let id = localStorage.getItem(HANDHELD_KEY);
  if (!id) {
    const b = crypto.getRandomValues(new Uint8Array(6));
    id = 'hh-web-' + Array.from(b, (x) => x.toString(16).padStart(2, '0')).join('');
    localStorage.setItem(HANDHELD_KEY, id);
  }
  return id;
}

// session returns the signed-in crew session ({token, crew_id, role,
// expires_at}) or null. The PIN is never stored. Expiry is the cabin
// server's to judge (a 401): the handheld's own clock may be off.
export function session() {
  try {
    const s = JSON.parse(localStorage.getItem(SESSION_KEY) || 'null');
    if (s && s.token) return s;
  } catch (_) { /* a damaged entry is no session */ }
  return null;
}

export function setSession(s) {
  if (s) localStorage.setItem(SESSION_KEY, JSON.stringify(s));
  else localStorage.removeItem(SESSION_KEY);
}

// ApiError is a failed call. kind is 'network' (no answer: the request may
// or may not have reached the server), 'session' (401: sign in again),
// 'busy' (any 5xx: the sale may have been committed before the server
// failed, so the only safe move is to retry with the same invoice id) or
// 'refused' (any other 4xx: code, message and reason from the server).
export class ApiError extends Error {
  constructor(kind, message, status = 0, code = '', reason = null) {
    super(message);
    this.kind = kind;
    this.status = status;
    this.code = code;
    this.reason = reason;
  }
}

// REQUEST_TIMEOUT_MS bounds one call: the server's own bound is 10 s.
const REQUEST_TIMEOUT_MS = 15000;

// call sends one request and returns the decoded JSON answer, or throws an
// ApiError.
export async function call(method, path, body) {
  const headers = { 'Airtab-Handheld': handheldId() };
  const s = session();
  if (s) headers.Authorization = 'Bearer ' + s.token;
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  let resp;
  try {
    resp = await fetch(path, {
      method, headers, body: body === undefined ? undefined : JSON.stringify(body),
      cache: 'no-store', signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS),
    });
  } catch (e) {
    throw new ApiError('network', 'no answer from the cabin server (' + (e.name || 'network error') + ')');
  }
  let data = null;
  if (resp.status !== 204) {
    try { data = await resp.json(); } catch (_) {
      // An answer we cannot read says nothing about whether the sale was
      // committed: retry it like a lost answer, never call it refused.
      const kind = resp.ok ? 'network' : (resp.status >= 500 ? 'busy' : 'refused');
      throw new ApiError(kind, 'unreadable answer from the cabin server (HTTP ' + resp.status + ')', resp.status);
    }
  }
  if (resp.ok) return data;
  const err = (data && data.error) || {};
  const msg = err.message || ('HTTP ' + resp.status);
  if (resp.status === 401) throw new ApiError('session', msg, 401, err.code);
  if (resp.status === 429) {
    const e = new ApiError('refused', msg, 429, err.code);
    e.retryAfterSeconds = parseInt(resp.headers.get('Retry-After') || '0', 10) || 0;
    throw e;
  }
  if (resp.status >= 500) throw new ApiError('busy', msg, resp.status, err.code, err.reason_name || null);
  throw new ApiError('refused', msg, resp.status, err.code, err.reason_name || null);
}

// newId returns a fresh 128-bit id in the server's form: 32 lower-case hex.
export function newId() {
  const b = crypto.getRandomValues(new Uint8Array(16));
  return Array.from(b, (x) => x.toString(16).padStart(2, '0')).join('');
}
