// The wallet's storage: one IndexedDB database holding the device key (as
// a non-extractable CryptoKey), the passenger id, credentials by flight, the
// payment-code counter's reserved mark, the last account and receipts seen
// (for offline display) and a top-up in doubt.
//
// Counters never repeat (SPEC.md §6): a page claims a block of counters by
// raising the reserved mark in one read-write transaction with strict
// durability, and hands out counters from that block only once the
// transaction has committed. A reload, a crash or a second tab claims a new
// block above the mark and never sees a counter handed out before.
import { MAX_COUNTER } from "./messages.js";

const DB_NAME = "airtab-wallet";
const DB_VERSION = 1;
export const COUNTER_BLOCK = 16;

export class StorageError extends Error {
  constructor(message, cause) {
    super(message);
    this.name = "StorageError";
    this.cause = cause;
  }
}

let dbPromise = null;

function open() {
  if (!dbPromise) {
    dbPromise = new Promise((resolve, reject) => {
      if (!("indexedDB" in self)) return reject(new StorageError("this browser has no IndexedDB: the wallet cannot keep its key"));
      const req = indexedDB.open(DB_NAME, DB_VERSION);
      req.onupgradeneeded = () => {
        const db = req.result;
        db.createObjectStore("kv");
        db.createObjectStore("credentials", { keyPath: "flight" });
      };
      req.onsuccess = () => {
        const db = req.result;
        db.onversionchange = () => db.close();
        resolve(db);
      };
      req.onerror = () => reject(new StorageError("cannot open the wallet's storage: " + req.error?.message, req.error));
      req.onblocked = () => reject(new StorageError("the wallet's storage is busy in another tab; close it and reload"));
    });
    dbPromise.catch(() => (dbPromise = null));
  }
  return dbPromise;
}

// tx runs fn(stores) in one transaction and resolves with fn's result once
// the transaction has committed (strict durability: flushed to disk).
async function tx(names, mode, fn) {
  const db = await open();
  return new Promise((resolve, reject) => {
    let t, result;
    try {
      t = db.transaction(names, mode, { durability: "strict" });
    } catch (e) {
      return reject(new StorageError("storage unavailable: " + e.message, e));
    }
    const stores = Object.fromEntries([].concat(names).map((n) => [n, t.objectStore(n)]));
    Promise.resolve(fn(stores, t)).then((r) => (result = r), (e) => { reject(e); try { t.abort(); } catch {} });
    t.oncomplete = () => resolve(result);
    t.onerror = () => reject(storageError(t.error));
    t.onabort = () => reject(storageError(t.error));
  });
}

function storageError(e) {
  if (e?.name === "QuotaExceededError") return new StorageError("the phone's storage is full: free some space, then try again", e);
  return new StorageError("storage failed: " + (e?.message || "aborted"), e);
}

function req(r) {
  return new Promise((resolve, reject) => {
    r.onsuccess = () => resolve(r.result);
    r.onerror = () => reject(r.error);
  });
}

export async function get(key) {
  return tx("kv", "readonly", (s) => req(s.kv.get(key)));
}

export async function put(key, value) {
  return tx("kv", "readwrite", (s) => req(s.kv.put(value, key)));
}

export async function del(key) {
  return tx("kv", "readwrite", (s) => req(s.kv.delete(key)));
}

// Device key: {privateKey, publicKey, raw}.
export const getDevice = () => get("device");
export const putDevice = (d) => put("device", d);

export async function putCredential(c) {
  return tx("credentials", "readwrite", (s) => req(s.credentials.put(c)));
}

export async function credentials() {
  return tx("credentials", "readonly", (s) => req(s.credentials.getAll()));
}

// reserveCounters claims the next block of counters: it raises the reserved
// mark by COUNTER_BLOCK and resolves, once that is on disk, with the block's
// first and last counter.
export async function reserveCounters() {
  return tx("kv", "readwrite", async (s) => {
    const mark = (await req(s.kv.get("counter_mark"))) ?? 0;
    if (mark >= MAX_COUNTER) throw new StorageError("this device key has used every payment-code counter: register a new device");
    const next = Math.min(mark + COUNTER_BLOCK, MAX_COUNTER);
    await req(s.kv.put(next, "counter_mark"));
    return { first: mark + 1, last: next };
  });
}

// Counters hands out counters from reserved blocks, one at a time.
export class Counters {
  constructor() {
    this.block = null;
    this.next = 0;
    this.pending = null;
  }
  async take() {
    // One reservation at a time, so two quick refreshes never share a block.
    while (this.pending) await this.pending;
    if (!this.block || this.next > this.block.last) {
      this.pending = reserveCounters();
      try {
        this.block = await this.pending;
      } finally {
        this.pending = null;
      }
      this.next = this.block.first;
    }
    return this.next++;
  }
}

// wipe deletes the whole wallet (a person's explicit "remove this wallet").
export async function wipe() {
  const db = await open();
  db.close();
  dbPromise = null;
  await req(indexedDB.deleteDatabase(DB_NAME));
}
