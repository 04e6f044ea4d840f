// The durable mark queue: nothing a person marked is lost to a network failure or a reload.
//
// Every mark (and every change of a mark: a comment, an undo) is the full state of one mark under its
// UUID. It is written to localStorage FIRST, then PUT to /api/marks/{uuid}; it leaves the queue only
// when the server answers 200 with `acked: true`, which the server sends after its transaction
// committed. The server upserts by UUID, so sending the same state twice is harmless: the queue can
// retry freely (every 2 s, on page load, when the browser comes back online).
//
// Storage is read-modify-written on every change (never cached), so two tabs of the same user share
// one queue without overwriting each other. The queue is per user: marks queued by one person are
// never sent with another person's session.

const PREFIX = "protege.studio.queue.v1.";
const REJECTED_PREFIX = "protege.studio.rejected.v1.";
// Answers that will not change on retry: the mark is set aside (kept, shown) instead of retried forever.
const PERMANENT = new Set([400, 404, 409, 413, 422]);

function newRevision() {
  return crypto.randomUUID();
}

export class MarkQueue {
  /**
   * @param {string} user - the signed-in user's name (the queue's storage key)
   * @param {object} options - getCsrf(): the session's CSRF token; refreshCsrf(): fetch it again
   *   (after a new sign-in); onChange(queue): redraw; onAuthLost(): the session expired;
   *   storage (default localStorage), fetchFn (default fetch), intervalMs (default 2000).
   */
  constructor(user, options = {}) {
    this.key = PREFIX + user;
    this.rejectedKey = REJECTED_PREFIX + user;
    this.storage = options.storage ?? window.localStorage;
    this.fetchFn = options.fetchFn ?? ((...args) => window.fetch(...args));
    this.getCsrf = options.getCsrf ?? (() => "");
    this.refreshCsrf = options.refreshCsrf ?? (async () => {});
    this.onChange = options.onChange ?? (() => {});
    this.onAuthLost = options.onAuthLost ?? (() => {});
    this.intervalMs = options.intervalMs ?? 2000;
    this.inFlight = new Map(); // uuid -> revision being sent (one request per uuid at a time)
    this.lastError = "";
    this.timer = null;
  }

  /** Queued entries, oldest first: [{uuid, body, rev, at}]. */
  entries() {
    return this.#read(this.key);
  }

  /** Entries the server refused for good (e.g. an episode that no longer exists). */
  rejected() {
    return this.#read(this.rejectedKey);
  }

  get size() {
    return this.entries().length;
  }

  /** Queue the full state of mark `uuid` (replacing any older unsent state of it), then send. */
  put(uuid, body) {
    const entries = this.entries().filter((e) => e.uuid !== uuid);
    entries.push({ uuid, body, rev: newRevision(), at: Date.now() });
    this.#write(this.key, entries); // throws if storage is full: then the caller must not pretend it is saved
    this.onChange(this);
    this.flush();
  }

  /** Start retrying: now, every `intervalMs`, and when the browser reports it is online again. */
  start() {
    if (this.timer === null) {
      this.timer = window.setInterval(() => this.flush(), this.intervalMs);
      window.addEventListener("online", () => this.flush());
      window.addEventListener("storage", (event) => {
        if (event.key === this.key) this.onChange(this);
      });
    }
    this.flush();
  }

  /** Send every queued entry that has no request in flight; resolves when those requests end. */
  async flush() {
    const sends = [];
    for (const entry of this.entries()) {
      if (!this.inFlight.has(entry.uuid)) sends.push(this.#send(entry));
    }
    await Promise.all(sends);
  }

  async #send(entry) {
    this.inFlight.set(entry.uuid, entry.rev);
    let response;
    try {
      response = await this.fetchFn(`/api/marks/${encodeURIComponent(entry.uuid)}`, {
        method: "PUT",
        headers: { "Content-Type": "application/json", "X-CSRF-Token": this.getCsrf() },
        body: JSON.stringify(entry.body),
        credentials: "same-origin",
        cache: "no-store",
      });
    } catch {
      this.#settled(entry, "offline: marks are kept and retried");
      return;
    }
    let acked = false;
    if (response.status === 200) {
      try {
        acked = (await response.json()).acked === true;
      } catch {
        acked = false; // a cut connection can truncate the body: not an acknowledgement
      }
    }
    if (acked) {
      this.#remove(entry, this.key);
      this.#settled(entry, "");
    } else if (response.status === 401) {
      this.#settled(entry, "signed out: sign in again to send the queued marks");
      this.onAuthLost();
    } else if (response.status === 403) {
      // Most often a CSRF token from an older session (signed in again in another tab).
      await this.refreshCsrf().catch(() => {});
      this.#settled(entry, `the server refused a mark (HTTP 403); retrying`);
    } else if (PERMANENT.has(response.status)) {
      this.#remove(entry, this.key);
      const rejected = this.rejected();
      rejected.push({ ...entry, status: response.status });
      this.#write(this.rejectedKey, rejected);
      this.#settled(entry, `the server rejected a mark (HTTP ${response.status}); it is kept aside`);
    } else {
      this.#settled(entry, `the server answered HTTP ${response.status}; retrying`);
    }
  }

  #settled(entry, error) {
    this.inFlight.delete(entry.uuid);
    this.lastError = error;
    this.onChange(this);
    // A newer state of this mark was queued while this one was in flight: send it now, in order.
    const newer = this.entries().find((e) => e.uuid === entry.uuid);
    if (newer && newer.rev !== entry.rev && !error) this.#send(newer);
  }

  /** Drop `entry` from storage only if it was not replaced by a newer state meanwhile. */
  #remove(entry, key) {
    const entries = this.#read(key).filter((e) => !(e.uuid === entry.uuid && e.rev === entry.rev));
    this.#write(key, entries);
  }

  #read(key) {
    try {
      const value = JSON.parse(this.storage.getItem(key) ?? "[]");
      return Array.isArray(value) ? value : [];
    } catch {
      return [];
    }
  }

  #write(key, entries) {
    this.storage.setItem(key, JSON.stringify(entries));
  }
}
