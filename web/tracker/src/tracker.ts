import { detectDevice, type DeviceInfo } from './device';
import { uuid } from './uuid';

export interface TrackFlowConfig {
  /** Ingest API key; becomes every event's tenantId. */
  apiKey: string;
  /** Base URL of the TrackFlow worker; events are POSTed to `${endpoint}/v1/batch`. */
  endpoint: string;
  batchSize?: number;
  flushIntervalMs?: number;
  maxQueue?: number;
  /** A request that has not answered after this many ms is aborted and retried with backoff. */
  timeoutMs?: number;
  respectDoNotTrack?: boolean;
  respectGlobalPrivacyControl?: boolean;
  debug?: boolean;
}

/** Internal seams for tests. Not part of the public API. */
export interface TrackerEnv {
  fetch?: (url: string, init: RequestInit) => Promise<{ status: number; headers?: { get(name: string): string | null } }>;
  sendBeacon?: (url: string, data: Blob) => boolean;
  random?: () => number;
  now?: () => number;
  localStorage?: Storage | null;
  sessionStorage?: Storage | null;
  /** false: install no DOM listeners (used to simulate extra tabs in one jsdom) */
  autocapture?: boolean;
  heartbeatMs?: number;
  staleMs?: number;
  claimDelayMs?: number;
  leaseMs?: number;
}

export interface TrackEvent {
  eventId: string;
  eventType: string;
  timestamp: number;
  tenantId: string;
  sessionId: string;
  userId: string | null;
  pageUrl: string;
  referrer: string | null;
  deviceInfo: DeviceInfo;
  properties: Record<string, unknown>;
  seq: number;
}

/** The whole-queue layout of earlier tracker versions (key `q:<tab>`); its field names are stored data. */
interface Persisted {
  /** dropped count */
  d: number;
  /** queued events, oldest first */
  e: TrackEvent[];
}

export const OPT_OUT_KEY = 'trackflow:optout';
const CONTENT_TYPE = 'text/plain;charset=UTF-8';
/** Body size limit of keepalive fetches and beacons. */
const MAX_KEEPALIVE_BYTES = 60000;
const BACKOFF_BASE_MS = 1000;
const BACKOFF_CAP_MS = 60000;
const MAX_RETRY_AFTER_MS = 3600000;
const MAX_ERRORS = 100;
/** A click reports the nearest of these around its target (like PostHog's autocapture). */
const INTERACTIVE_SELECTOR = 'button,a,input,select,textarea,label,[role=button],[onclick]';

/** Opt-out of this page, also when localStorage is unavailable. */
let optedOutInMemory = false;

type Store = Storage | null | undefined;

const storageGet = (storage: Store, key: string): string | null => {
  try {
    return storage ? storage.getItem(key) : null;
  } catch (e) {
    return null;
  }
};
const storageSet = (storage: Store, key: string, value: string): boolean => {
  try {
    if (storage) {
      storage.setItem(key, value);
      return true;
    }
  } catch (e) {
    /* quota / disabled */
  }
  return false;
};
const storageRemove = (storage: Store, key: string) => {
  try {
    if (storage) storage.removeItem(key);
  } catch (e) {
    /* ignore */
  }
};
const storageGetJson = (storage: Store, key: string): any => {
  try {
    return JSON.parse(storageGet(storage, key) || 'null');
  } catch (e) {
    return null;
  }
};
/** The keys that start with `prefix`, without it. */
const storageKeys = (storage: Store, prefix: string): string[] => {
  const keys: string[] = [];
  try {
    if (storage)
      for (let i = 0, key; i < storage.length; i++)
        if (!(key = storage.key(i)!).indexOf(prefix)) keys.push(key.slice(prefix.length));
  } catch (e) {
    /* ignore */
  }
  return keys;
};
const byteLength = (text: string): number => new Blob([text]).size;
const isOffline = () => navigator.onLine === false;
/** `value` as a whole number >= 1, else `fallback`. */
const positiveInt = (value: unknown, fallback: number): number =>
  typeof value == 'number' && value >= 1 && value < 1 / 0 ? Math.floor(value) : fallback;

export function browserStore(name: 'localStorage' | 'sessionStorage'): Storage | null {
  try {
    const storage = window[name];
    storage.getItem('tf');
    return storage;
  } catch (e) {
    return null;
  }
}

export function setOptOut(optedOut: boolean, localStore: Store) {
  optedOutInMemory = optedOut;
  if (optedOut) storageSet(localStore, OPT_OUT_KEY, '1');
  else storageRemove(localStore, OPT_OUT_KEY);
}

/** Parse Retry-After (delta-seconds or HTTP-date) into ms, or null. */
export function retryAfterMs(header: string | null | undefined, now: number): number | null {
  if (!header) return null;
  let ms = +header * 1000; // delta-seconds (Number() trims whitespace)
  if (ms !== ms) ms = Date.parse(header) - now;
  if (ms !== ms) return null;
  return Math.min(Math.max(ms, 0), MAX_RETRY_AFTER_MS);
}

/** Full-jitter exponential backoff: random() * min(cap, base * 2^attempt). attempt starts at 0. */
export function backoffMs(attempt: number, random: () => number): number {
  return random() * Math.min(BACKOFF_CAP_MS, BACKOFF_BASE_MS * Math.pow(2, attempt));
}

export function isPrivacyBlocked(cfg: TrackFlowConfig): boolean {
  // only ever called in a browser (init() checks)
  const nav: any = navigator;
  const doNotTrack = nav.doNotTrack == '1' || (window as any).doNotTrack == '1';
  return !!(
    (cfg.respectDoNotTrack && doNotTrack) ||
    (cfg.respectGlobalPrivacyControl && nav.globalPrivacyControl === true)
  );
}

export class Tracker {
  readonly _batchSize: number;
  readonly _flushIntervalMs: number;
  readonly _maxQueue: number;
  readonly _timeoutMs: number;
  readonly _batchUrl: string;
  /** localStorage key prefix, namespaced by apiKey */
  readonly _keyPrefix: string;
  _tabId = '';
  _sessionId = '';
  _userId: string | null = null;
  _queue: TrackEvent[] = [];
  _dropped = 0;
  _attempt = 0;
  _disabled = false;

  private _config: TrackFlowConfig;
  private _localStore: Store;
  private _sessionStore: Store;
  private _now: () => number;
  private _random: () => number;
  private _fetch: NonNullable<TrackerEnv['fetch']>;
  private _sendBeacon: NonNullable<TrackerEnv['sendBeacon']>;
  private _heartbeatMs: number;
  private _staleMs: number;
  private _claimDelayMs: number;
  private _leaseMs: number;
  private _seq = 0;
  private _inFlight: Record<string, 1> = {};
  private _sending: Promise<void> | null = null;
  private _flushTimer: any = 0;
  private _retryTimer: any = 0;
  private _heartbeatTimer: any = 0;
  private _warned = false;
  private _errorCount = 0;
  private _lastUrl = '';
  private _claiming = false;
  private _cleanups: Array<() => void> = [];
  /** page_views of SPA navigations waiting for the app to set document.title */
  private _awaitingTitle = new Set<TrackEvent>();
  /** ids handed to sendBeacon since the page was last visible (one exit attempt per hide) */
  private _beaconed: Record<string, 1> = {};
  /** true while the exit attempt is being made (its fetches use keepalive) */
  private _exiting = false;
  private _deviceInfo: DeviceInfo;

  constructor(cfg: TrackFlowConfig, env: TrackerEnv = {}) {
    this._config = cfg;
    this._batchSize = positiveInt(cfg.batchSize, 20);
    this._flushIntervalMs = positiveInt(cfg.flushIntervalMs, 5000);
    this._maxQueue = positiveInt(cfg.maxQueue, 1000);
    this._timeoutMs = positiveInt(cfg.timeoutMs, 10000);
    this._batchUrl = String(cfg.endpoint).replace(/\/+$/, '') + '/v1/batch';
    this._keyPrefix = 'tf:' + cfg.apiKey + ':';
    this._localStore = 'localStorage' in env ? env.localStorage : browserStore('localStorage');
    this._sessionStore = 'sessionStorage' in env ? env.sessionStorage : browserStore('sessionStorage');
    this._now = env.now || (() => Date.now());
    this._random = env.random || Math.random;
    this._fetch = env.fetch || ((u, i) => fetch(u, i));
    this._sendBeacon = env.sendBeacon || ((u, d) => navigator.sendBeacon(u, d));
    this._heartbeatMs = env.heartbeatMs || 5000;
    this._staleMs = env.staleMs || 90000;
    this._claimDelayMs = env.claimDelayMs || 300;
    this._leaseMs = env.leaseMs || 600000;
    const n: any = navigator;
    this._deviceInfo = detectDevice(n.userAgent, n.userAgentData, n.maxTouchPoints);

    if (isPrivacyBlocked(cfg)) {
      this._log('off: DNT/GPC');
      this._disabled = true;
      this._clearAll();
      return;
    }
    this._restoreSession();
    this._heartbeatTimer = setInterval(() => this._safe(this._heartbeatTick), this._heartbeatMs);
    if (env.autocapture !== false) this._installAutocapture();
    this._adoptOrphans();
    this._scheduleFlush();
  }

  // ---------------------------------------------------------------- state

  private _log(...a: unknown[]) {
    if (this._config.debug) console.log('[TrackFlow]', ...a);
  }

  private _safe(fn: (...a: any[]) => void, ...a: any[]) {
    try {
      fn.apply(this, a);
    } catch (e) {
      this._log('internal', e);
    }
  }

  private _isActive(): boolean {
    return !this._disabled && !optedOutInMemory && storageGet(this._localStore, OPT_OUT_KEY) != '1';
  }

  /** Restore (or create) session id, seq counter and tab id; load this tab's persisted queue. */
  private _restoreSession() {
    let r = storageGetJson(this._sessionStore, this._keyPrefix + 's');
    let tab: string | null = r && r.t;
    if (tab) {
      if (this._isAlive(tab)) {
        // The previous owner of this tab id is still alive: this is a duplicated tab
        // (sessionStorage was copied). Start a fresh session and tab.
        r = tab = null;
      } else if (this._isAdoptedElsewhere(tab)) tab = null;
    }
    this._sessionId = (r && r.s) || uuid();
    this._seq = (r && r.n) || 0;
    this._tabId = tab || uuid();
    this._saveSession();
    this._loadQueue();
    this._writeHeartbeat();
  }

  private _loadQueue() {
    const d = this._readQueue(this._tabId);
    this._queue = d.e;
    this._dropped = d.d;
    this._saveDropped();
  }

  /**
   * Everything persisted for `tab`, oldest first: the events (one key `e:<tab>:<eventId>` each) and the dropped
   * count (`d:<tab>`). The whole-queue key `q:<tab>` of earlier versions is read too and deleted; for our own tab
   * its events move to per-event keys. `take` (adopting another tab's queue) deletes every key read.
   */
  private _readQueue(tab: string, take?: boolean): Persisted {
    const P = this._keyPrefix;
    const ek = 'e:' + tab + ':';
    const dk = P + 'd:' + tab;
    const e: TrackEvent[] = [];
    for (const k of storageKeys(this._localStore, P))
      if (!k.indexOf(ek)) {
        const v = storageGetJson(this._localStore, P + k);
        if (v) e.push(v);
        if (take) storageRemove(this._localStore, P + k);
      }
    const old: Persisted | null = storageGetJson(this._localStore, P + 'q:' + tab);
    for (const v of (old && old.e) || []) {
      e.push(v);
      if (!take) this._persistEvent(v);
    }
    storageRemove(this._localStore, P + 'q:' + tab);
    const d = ((old && old.d) || 0) + (+(storageGet(this._localStore, dk) as any) || 0);
    if (take) storageRemove(this._localStore, dk);
    return { e: e.sort((a, b) => a.timestamp - b.timestamp), d };
  }

  private _saveSession() {
    storageSet(
      this._sessionStore,
      this._keyPrefix + 's',
      JSON.stringify({ s: this._sessionId, n: this._seq, t: this._tabId }),
    );
  }

  private _nextSeq(): number {
    const r = storageGetJson(this._sessionStore, this._keyPrefix + 's');
    if (r && r.s == this._sessionId && r.n > this._seq) this._seq = r.n;
    this._seq++;
    this._saveSession();
    return this._seq;
  }

  private _writeHeartbeat(v?: number) {
    storageSet(this._localStore, this._keyPrefix + 'hb:' + this._tabId, String(v === 0 ? 0 : this._now()));
  }

  private _isAlive(tab: string): boolean {
    const hb = +(storageGet(this._localStore, this._keyPrefix + 'hb:' + tab) || 0);
    return hb > 0 && this._now() - hb < this._staleMs;
  }

  /** True if another tab holds a valid lease on `tab` and has already taken its queue (it deletes the heartbeat). */
  private _isAdoptedElsewhere(tab: string): boolean {
    const l = storageGetJson(this._localStore, this._keyPrefix + 'l:' + tab);
    return !!(
      l &&
      l.b != tab &&
      l.u > this._now() &&
      storageGet(this._localStore, this._keyPrefix + 'hb:' + tab) == null
    );
  }

  /** If another tab adopted our queue (e.g. we were frozen), give it up and continue under a new tab id. */
  private _checkQueueOwnership() {
    if (this._isAdoptedElsewhere(this._tabId)) {
      this._log('queue adopted elsewhere');
      this._queue = [];
      this._dropped = 0;
      this._tabId = uuid();
      this._saveSession();
      this._writeHeartbeat();
    }
  }

  /** Storage key of one queued event of this tab. */
  private _eventKey(id: string): string {
    return this._keyPrefix + 'e:' + this._tabId + ':' + id;
  }

  /** Persist one event: a write of constant size, whatever the queue length. On quota errors it stays in memory only. */
  private _persistEvent(e: TrackEvent) {
    storageSet(this._localStore, this._eventKey(e.eventId), JSON.stringify(e));
  }

  /** Persist the dropped count (`d:<tab>`, absent when 0). */
  _saveDropped() {
    const k = 'd:' + this._tabId;
    if (this._dropped) storageSet(this._localStore, this._keyPrefix + k, String(this._dropped));
    else storageRemove(this._localStore, this._keyPrefix + k);
  }

  private _enforceMaxQueue() {
    const n = this._queue.length - this._maxQueue;
    if (n > 0) {
      for (const e of this._queue.splice(0, n)) storageRemove(this._localStore, this._eventKey(e.eventId));
      this._dropped += n;
      this._saveDropped();
    }
  }

  private _removeEvents(ids: Record<string, 1>) {
    this._queue = this._queue.filter((e) => !ids[e.eventId]);
    for (const id in ids) storageRemove(this._localStore, this._eventKey(id));
  }

  /** Clear every persisted queue of this apiKey (opt-out / privacy). */
  _clearAll() {
    this._queue = [];
    this._dropped = 0;
    clearTimeout(this._flushTimer);
    clearTimeout(this._retryTimer);
    this._flushTimer = this._retryTimer = 0;
    for (const k of storageKeys(this._localStore, this._keyPrefix))
      if (/^[qed]:/.test(k)) storageRemove(this._localStore, this._keyPrefix + k);
  }

  _optOut() {
    setOptOut(true, this._localStore);
    this._clearAll();
  }

  _optIn() {
    setOptOut(false, this._localStore);
  }

  // ---------------------------------------------------------------- multi-tab

  private _heartbeatTick() {
    if (!this._isActive()) return;
    this._checkQueueOwnership();
    this._writeHeartbeat();
    this._adoptOrphans();
  }

  /**
   * Adopt queues of tabs that are gone (heartbeat released or stale):
   * write a lease, wait claimDelayMs, re-read the lease and the heartbeat, then move the events.
   */
  _adoptOrphans(): Promise<void> {
    if (this._claiming || !this._localStore || !this._isActive()) return Promise.resolve();
    this._claiming = true;
    const me = this._tabId;
    const now = this._now();
    const mine: string[] = [];
    const queued: Record<string, 1> = {};
    const other: string[][] = [];
    for (const k of storageKeys(this._localStore, this._keyPrefix)) {
      const m = k.match(/^(q|e|d|hb|l):([^:]+)/);
      if (!m || m[2] == me) continue;
      if ('qed'.indexOf(m[1]) < 0) other.push([k, m[1], m[2]]);
      else queued[m[2]] = 1;
    }
    for (const t in queued) {
      if (this._isAlive(t)) continue;
      const l = storageGetJson(this._localStore, this._keyPrefix + 'l:' + t);
      if (l && l.b != me && l.u > now) continue;
      storageSet(this._localStore, this._keyPrefix + 'l:' + t, JSON.stringify({ b: me, u: now + this._leaseMs }));
      mine.push(t);
    }
    // housekeeping: heartbeats of dead tabs and expired leases, of tabs that have no queue
    for (const [k, kind, t] of other)
      if (!queued[t]) {
        const l = kind == 'l' && storageGetJson(this._localStore, this._keyPrefix + k);
        if (l ? !(l.u > now) : !this._isAlive(t)) storageRemove(this._localStore, this._keyPrefix + k);
      }
    if (!mine.length) {
      this._claiming = false;
      return Promise.resolve();
    }
    return new Promise<void>((res) =>
      setTimeout(() => {
        this._claiming = false;
        this._safe(() => {
          let got = 0;
          for (const t of mine) {
            const l = storageGetJson(this._localStore, this._keyPrefix + 'l:' + t);
            if (!l || l.b != me) continue;
            if (this._isAlive(t) || this._tabId != me) {
              storageRemove(this._localStore, this._keyPrefix + 'l:' + t);
              continue;
            }
            const d = this._readQueue(t, true);
            storageRemove(this._localStore, this._keyPrefix + 'hb:' + t);
            const have: Record<string, 1> = {};
            for (const e of this._queue) have[e.eventId] = 1;
            const add = d.e.filter((e) => !have[e.eventId]);
            for (const e of add) this._persistEvent(e);
            this._queue = add.concat(this._queue);
            this._dropped += d.d;
            got += d.e.length + d.d;
          }
          if (got) {
            this._log('adopted', got);
            this._enforceMaxQueue();
            this._saveDropped();
            this._scheduleFlush();
          }
        });
        res();
      }, this._claimDelayMs),
    );
  }

  // ---------------------------------------------------------------- capture

  private _listen(t: EventTarget, type: string, fn: (e: any) => void, capture?: boolean) {
    const h = (e: Event) => this._safe(fn, e);
    t.addEventListener(type, h, capture);
    this._cleanups.push(() => t.removeEventListener(type, h, capture));
  }

  private _installAutocapture() {
    const w = window;
    const d = document;
    const h: any = history;
    const self = this;
    // Deferred by a microtask so that identify() called right after init() applies to it.
    Promise.resolve().then(() => this._safe(this._onNavigation));
    for (const m of ['pushState', 'replaceState']) {
      const orig = h[m];
      if (typeof orig != 'function') continue;
      const wrapped = function (this: History) {
        const r = orig.apply(this, arguments as any);
        self._safe(self._onNavigation);
        return r;
      };
      h[m] = wrapped;
      this._cleanups.push(() => {
        if (h[m] === wrapped) h[m] = orig;
      });
    }
    this._listen(w, 'popstate', this._onNavigation);
    this._listen(w, 'hashchange', this._onNavigation);
    this._listen(
      d,
      'click',
      (e: MouseEvent) => {
        let el: any = e.target;
        // the control the user meant (a <span> inside a <button> reports the button), else the target itself
        el = (el && el.closest && el.closest(INTERACTIVE_SELECTOR)) || el;
        if (el && el.tagName) this._track('click', { tag: el.tagName.toUpperCase(), id: el.id || null });
      },
      true,
    );
    this._listen(w, 'error', (e: ErrorEvent) => {
      const er: any = e.error;
      if (e.message == null && !er) return; // not a script error
      // A cross-origin script's error is muted to "Script error." without a filename: no source then.
      this._trackError(e.message || (er && er.message) || 'Script error', e.filename, e.lineno, e.colno, er && er.stack);
    });
    this._listen(w, 'unhandledrejection', (e: PromiseRejectionEvent) => {
      const r: any = e.reason;
      let stack: string | null = null;
      let msg: string | undefined;
      // Any value can be a reason, also one whose String() or getters throw (e.g. Object.create(null)).
      try {
        stack = r && typeof r.stack == 'string' ? r.stack : null;
        msg = String(r && r.message != null ? r.message : r);
      } catch (x) {
        try {
          msg = JSON.stringify(r);
        } catch (y) {
          /* the generic message below */
        }
      }
      const m = stack && stack.match(/((?:https?|file):\/\/[^\s()]+?):\d+:\d+/);
      this._trackError(msg || 'Unhandled rejection', m ? m[1] : location.href, 0, 0, stack);
    });
    this._listen(w, 'pagehide', () => {
      this._beaconFlush();
      this._writeHeartbeat(0); // release: other tabs may adopt what is left immediately
    });
    this._listen(w, 'pageshow', (e: PageTransitionEvent) => {
      if (!e.persisted) return; // restored from bfcache: storage may have moved on
      this._loadQueue();
      this._onVisibleAgain();
      this._scheduleFlush();
    });
    this._listen(d, 'visibilitychange', () => {
      if (d.visibilityState == 'hidden') this._beaconFlush();
      else this._onVisibleAgain();
    });
    this._listen(w, 'online', () => {
      clearTimeout(this._retryTimer);
      this._retryTimer = 0;
      this._flush();
    });
    this._trackPerformance();
  }

  /** The page is visible again (or restored from bfcache). */
  private _onVisibleAgain() {
    this._checkQueueOwnership();
    this._writeHeartbeat();
    this._beaconed = {};
  }

  private _onNavigation() {
    const u = location.href;
    if (u == this._lastUrl) return;
    // After the first page view the URL changed through history: the app sets the title only after that.
    const later = !!this._lastUrl;
    this._lastUrl = u;
    this._track('page_view', { title: document.title }, later);
  }

  /** A page_view waiting for its title is queued now (page hide, or its frame / 100 ms came). */
  private _queueWithTitle(ev: TrackEvent) {
    if (!this._awaitingTitle.delete(ev)) return;
    ev.properties.title = document.title;
    this._enqueue(ev);
  }

  private _trackError(
    message: string,
    source: string | undefined,
    line: number,
    col: number,
    stack: string | null | undefined,
  ) {
    if (++this._errorCount > MAX_ERRORS) return;
    const p = {
      message: String(message).slice(0, 2000),
      source: source ? String(source) : null,
      line: +line || 0,
      col: +col || 0,
      stack: stack ? String(stack).slice(0, 8000) : null,
    };
    // Without a source the contract's top-level error shape applies (there, source may be null).
    if (source) this._track('error', p);
    else this._track('error', {}, false, { name: 'Error', ...p });
  }

  private _trackPerformance() {
    const go = (tries: number) => {
      const p: any = window.performance;
      // Navigation Timing 2, else the old performance.timing (times relative to navigationStart)
      const nav = p && p.getEntriesByType && p.getEntriesByType('navigation')[0];
      const t = nav || (p && p.timing);
      const t0 = nav ? nav.startTime : t && t.navigationStart;
      if (!t || !(nav || t0)) return;
      if (!(t.loadEventEnd > 0)) {
        if (tries < 50) setTimeout(() => this._safe(go, tries + 1), 100);
        return;
      }
      const ms = (v: number) => Math.max(0, Math.round(v - t0));
      this._track('performance', { loadTime: ms(t.loadEventEnd), domContentLoaded: ms(t.domContentLoadedEventEnd) });
    };
    const start = () => setTimeout(() => this._safe(go, 0), 0);
    if (document.readyState == 'complete') start();
    else this._listen(window, 'load', start);
  }

  // ---------------------------------------------------------------- queue

  _track(eventType: string, properties: Record<string, unknown>, later?: boolean, top?: Record<string, unknown>) {
    if (!this._isActive()) return;
    this._checkQueueOwnership();
    const ev: TrackEvent = {
      eventId: uuid(),
      eventType,
      timestamp: this._now(),
      tenantId: this._config.apiKey,
      sessionId: this._sessionId,
      userId: this._userId,
      pageUrl: location.href,
      referrer: document.referrer || null,
      deviceInfo: this._deviceInfo,
      properties,
      seq: this._nextSeq(),
      ...top,
    };
    if (!later) return this._enqueue(ev);
    // URL, time and seq are the navigation's; the title is read once the app had a frame to set it.
    this._awaitingTitle.add(ev);
    const go = () => this._safe(this._queueWithTitle, ev);
    setTimeout(go, 100);
    const w: any = window;
    if (w.requestAnimationFrame) w.requestAnimationFrame(go);
  }

  private _enqueue(ev: TrackEvent) {
    if (!this._isActive()) return;
    this._log('event', ev);
    this._queue.push(ev);
    this._persistEvent(ev);
    this._enforceMaxQueue();
    this._scheduleFlush();
  }

  private _scheduleFlush() {
    if (this._retryTimer || this._sending || !this._queue.length) return;
    if (this._queue.length >= this._batchSize) this._flush();
    else if (!this._flushTimer)
      this._flushTimer = setTimeout(() => {
        this._flushTimer = 0;
        this._flush();
      }, this._flushIntervalMs);
  }

  /** Send everything queued, in batches of batchSize. Never rejects. Does nothing while backing off. */
  _flush(): Promise<void> {
    if (this._sending) return this._sending;
    if (this._retryTimer || !this._isActive()) return Promise.resolve();
    clearTimeout(this._flushTimer);
    this._flushTimer = 0;
    return (this._sending = this._drain()
      .catch((e) => this._log('internal', e))
      .then(() => {
        this._sending = null;
        this._scheduleFlush();
      }));
  }

  private async _drain() {
    for (;;) {
      if (!this._isActive() || this._retryTimer) return;
      this._checkQueueOwnership();
      const batch = this._queue.filter((e) => !this._inFlight[e.eventId]).slice(0, this._batchSize);
      if (!batch.length) return;
      if (!(await this._sendBatch(batch, this._dropped))) return;
    }
  }

  private _batchBody(events: TrackEvent[], dropped: number): string {
    return JSON.stringify({ events, sentAt: this._now(), dropped: dropped || undefined }); // no key when 0
  }

  /** POST one batch. Resolves true if the batch is settled (2xx or permanently rejected), false if a retry was scheduled. */
  private async _sendBatch(batch: TrackEvent[], dropped: number, body?: string): Promise<boolean> {
    const ids: Record<string, 1> = {};
    for (const e of batch) {
      ids[e.eventId] = this._inFlight[e.eventId] = 1;
      if (this._exiting) this._beaconed[e.eventId] = 1; // this is its exit attempt
    }
    let status = 0;
    let ra: string | null | undefined = null;
    let timer: any;
    try {
      if (isOffline()) throw 0;
      body = body || this._batchBody(batch, dropped);
      const ac = window.AbortController && new AbortController();
      // a request that hangs must not stop sending for the life of the page: abort it after timeoutMs
      timer = setTimeout(() => ac && ac.abort(), this._timeoutMs);
      const res = await this._fetch(this._batchUrl, {
        method: 'POST',
        body,
        headers: { 'Content-Type': CONTENT_TYPE },
        // Only exit sends must outlive the page. Chromium does not cancel an aborted keepalive request, so a
        // hanging endpoint would keep the connections busy.
        keepalive: this._exiting && byteLength(body) < MAX_KEEPALIVE_BYTES,
        credentials: 'omit',
        mode: 'cors',
        signal: ac ? ac.signal : null,
      });
      status = res.status;
      ra = res.headers && res.headers.get('Retry-After');
    } catch (e) {
      status = 0; // network error, timeout or offline
    }
    clearTimeout(timer);
    for (const id in ids) delete this._inFlight[id];
    if (status >= 200 && status < 300) {
      this._removeEvents(ids);
      this._dropped = Math.max(0, this._dropped - dropped);
      this._attempt = 0;
      this._saveDropped();
      this._log('sent', batch.length);
      return true;
    }
    if (status && status != 429 && status < 500) {
      this._removeEvents(ids);
      if (!this._warned) {
        this._warned = true;
        console.warn('[TrackFlow] HTTP ' + status + ': batch dropped');
      }
      return true;
    }
    if (!this._retryTimer) {
      const delay = retryAfterMs(ra, this._now()) ?? backoffMs(this._attempt, this._random);
      this._attempt++;
      this._log('retry', status, delay);
      this._retryTimer = setTimeout(() => {
        this._retryTimer = 0;
        this._flush();
      }, delay);
    }
    return false;
  }

  /**
   * Page is being hidden/unloaded: one exit attempt for everything queued. If no send is running or backing off,
   * the first batch goes by fetch with keepalive, whose answer is seen if the page lives on; the rest, including
   * the events of a running (non-keepalive) request that dies with the page, goes to sendBeacon. Nothing is
   * removed here: `true` from sendBeacon only means "queued by the browser", so events stay persisted until a 2xx
   * the tracker saw, and the next page load sends them again (the store keeps one row per eventId).
   */
  _beaconFlush() {
    if (!this._isActive()) return;
    this._awaitingTitle.forEach((e) => this._queueWithTitle(e));
    if (!this._queue.length || isOffline()) return; // kept for the next load
    this._exiting = true;
    this._flush();
    const rest = this._queue.filter((e) => !this._beaconed[e.eventId]);
    // Beacons never report `dropped`: their answer is not seen, so the count is reported (and cleared) by a fetch.
    while (rest.length) {
      // chunk to stay under the keepalive/beacon body limit
      let n = rest.length;
      let body = this._batchBody(rest.slice(0, n), 0);
      while (n > 1 && byteLength(body) >= MAX_KEEPALIVE_BYTES) body = this._batchBody(rest.slice(0, (n = Math.ceil(n / 2))), 0);
      const chunk = rest.splice(0, n);
      let ok = false;
      try {
        ok = this._sendBeacon(this._batchUrl, new Blob([body], { type: CONTENT_TYPE }));
      } catch (e) {
        /* fall back to fetch */
      }
      if (ok) for (const e of chunk) this._beaconed[e.eventId] = 1;
      else this._sendBatch(chunk, 0, body);
    }
    this._exiting = false;
  }

  _destroy() {
    clearInterval(this._heartbeatTimer);
    clearTimeout(this._flushTimer);
    clearTimeout(this._retryTimer);
    this._flushTimer = this._retryTimer = 0;
    this._disabled = true;
    for (const off of this._cleanups) off();
    this._cleanups = [];
  }
}
