// The handheld's own record of its sales in IndexedDB. A sale's invoice id
// is written here before its request is sent, so a reload, a crash of the
// browser or a lost answer never makes a second sale: the retry carries
// the same id and the cabin server answers with the original result.
//
// A record: {id, kind: 'sale'|'void', request (the JSON body sent), state:
// 'sending'|'unknown'|'approved'|'declined'|'refused', answer, note,
// created (ms), total ({minor, currency}) and label for the list}.

const DB_NAME = 'airtab-handheld';
const STORE = 'invoices';
// MAX_KEPT bounds the records kept; the oldest resolved ones go first.
const MAX_KEPT = 500;

let dbPromise = null;

function open() {
  if (!dbPromise) {
    dbPromise = new Promise((resolve, reject) => {
      const req = indexedDB.open(DB_NAME, 1);
      req.onupgradeneeded = () => {
        const os = req.result.createObjectStore(STORE, { keyPath: 'id' });
        os.createIndex('created', 'created');
      };
      req.onsuccess = () => resolve(req.result);
      req.onerror = () => reject(req.error);
    });
  }
  return dbPromise;
}

function tx(mode, fn) {
  return open().then((db) => new Promise((resolve, reject) => {
    const t = db.transaction(STORE, mode);
    const os = t.objectStore(STORE);
    let result;
    Promise.resolve(fn(os)).then((r) => { result = r; });
    t.oncomplete = () => resolve(result);
    t.onerror = () => reject(t.error);
    t.onabort = () => reject(t.error || new Error('IndexedDB transaction aborted'));
  }));
}

function reqP(r) {
  return new Promise((resolve, reject) => { r.onsuccess = () => resolve(r.result); r.onerror = () => reject(r.error); });
}

// put writes the record and resolves once IndexedDB has committed it.
export function put(rec) {
  return tx('readwrite', (os) => { os.put(rec); });
}

export function get(id) {
  return tx('readonly', (os) => reqP(os.get(id)));
}

// all returns every record, newest first.
export async function all() {
  const recs = await tx('readonly', (os) => reqP(os.getAll()));
  return recs.sort((a, b) => b.created - a.created);
}

// unresolved returns the records whose answer never came, oldest first.
export async function unresolved() {
  return (await all()).filter((r) => r.state === 'sending' || r.state === 'unknown').reverse();
}

// prune keeps the newest MAX_KEPT records and every unresolved one.
export async function prune() {
  const recs = await all();
  const drop = recs.slice(MAX_KEPT).filter((r) => r.state !== 'sending' && r.state !== 'unknown');
  if (drop.length) await tx('readwrite', (os) => { for (const r of drop) os.delete(r.id); });
}
