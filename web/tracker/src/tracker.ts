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

/** What _readQueue found for one tab. */
interface TabQueue {
  /** oldest first */
  _events: TrackEvent[];
  _dropped: number;
}

/** sessionStorage `s`: this tab's session. The short field names are stored data. */
interface SessionRecord {
  /** session id */
  s: string;
  /** last seq number used */
  n: number;
  /** tab id */
  t: string;
}

/** localStorage `l:<tabId>`: a claim on another tab's queue. The short field names are stored data. */
interface Lease {
  /** tab id of the claiming tab */
  b: string;
  /** expiry time in ms */
  u: number;
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

export function isPrivacyBlocked(config: TrackFlowConfig): boolean {
  // only ever called in a browser (init() checks)
  const nav: any = navigator;
  const doNotTrack = nav.doNotTrack == '1' || (window as any).doNotTrack == '1';
  return !!(
    (config.respectDoNotTrack && doNotTrack) ||
    (config.respectGlobalPrivacyControl && nav.globalPrivacyControl === true)
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
  _tabId!: string;
  _sessionId!: string;
  _userId: string | null = null;
  _queue: TrackEvent[] = [];
  /** set by _loadQueue, or by _clearAll when disabled */
  _dropped!: number;
  _attempt = 0;
  _disabled?: boolean;

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
  private _seq!: number;
  private _inFlight: Record<string, 1> = {};
  private _sending?: Promise<void> | null;
  // timers and flags start undefined (falsy): no initializers, for the bundle size
  private _flushTimer: any;
  private _retryTimer: any;
  private _heartbeatTimer: any;
  private _warned?: boolean;
  private _errorCount = 0;
  private _lastUrl?: string;
  private _claiming?: boolean;
  private _cleanups: Array<() => void> = [];
  /** page_views of SPA navigations waiting for the app to set document.title */
  private _awaitingTitle = new Set<TrackEvent>();
  /** ids handed to sendBeacon since the page was last visible (one exit attempt per hide) */
  private _beaconed: Record<string, 1> = {};
  /** true while the exit attempt is being made (its fetches use keepalive) */
  private _exiting = false;
  /** ids of events that storage had no room for: only this page's memory holds them */
  private _memoryOnly: Record<string, 1> = {};
  private _deviceInfo: DeviceInfo;

  constructor(config: TrackFlowConfig, env: TrackerEnv = {}) {
    this._config = config;
    this._batchSize = positiveInt(config.batchSize, 20);
    this._flushIntervalMs = positiveInt(config.flushIntervalMs, 5000);
    this._maxQueue = positiveInt(config.maxQueue, 1000);
    this._timeoutMs = positiveInt(config.timeoutMs, 10000);
    this._batchUrl = String(config.endpoint).replace(/\/+$/, '') + '/v1/batch';
    this._keyPrefix = 'tf:' + config.apiKey + ':';
    this._localStore = 'localStorage' in env ? env.localStorage : browserStore('localStorage');
    this._sessionStore = 'sessionStorage' in env ? env.sessionStorage : browserStore('sessionStorage');
    this._now = env.now || (() => Date.now());
    this._random = env.random || Math.random;
    this._fetch = env.fetch || ((url, init) => fetch(url, init));
    this._sendBeacon = env.sendBeacon || ((url, data) => navigator.sendBeacon(url, data));
    this._heartbeatMs = env.heartbeatMs || 5000;
    this._staleMs = env.staleMs || 90000;
    this._claimDelayMs = env.claimDelayMs || 300;
    this._leaseMs = env.leaseMs || 600000;
    const nav: any = navigator;
    this._deviceInfo = detectDevice(nav.userAgent, nav.userAgentData, nav.maxTouchPoints);

    if (isPrivacyBlocked(config)) {
      this._disabled = true;
      this._clearAll();
      return;
    }
    this._restoreSession();
    // An opt-out made before this init, or on an earlier page, deletes what earlier pages queued.
    if (optedOutInMemory || storageGet(this._localStore, OPT_OUT_KEY) == '1') this._clearAll();
    this._heartbeatTimer = setInterval(() => this._safe(this._heartbeatTick), this._heartbeatMs);
    if (env.autocapture !== false) this._installAutocapture();
    this._adoptOrphans();
    this._scheduleFlush();
  }

  // ---------------------------------------------------------------- state

  private _log(...args: unknown[]) {
    if (this._config.debug) console.log('[TrackFlow]', ...args);
  }

  /** Call `fn` as a method of this tracker; an exception is logged, never thrown into the page. */
  private _safe(fn: (...args: any[]) => void, ...args: any[]) {
    try {
      fn.apply(this, args);
    } catch (e) {
      this._log('internal', e);
    }
  }

  private _isActive(): boolean {
    if (!this._disabled && !optedOutInMemory && storageGet(this._localStore, OPT_OUT_KEY) != '1') return true;
    // Opted out, maybe in another tab, which deleted the stored queues: this copy must not be sent after an optIn().
    this._queue = [];
    this._dropped = 0;
    return false;
  }

  /** Restore (or create) session id, seq counter and tab id; load this tab's persisted queue. */
  private _restoreSession() {
    let session: SessionRecord | null = storageGetJson(this._sessionStore, this._keyPrefix + 's');
    let tabId: string | null = session && session.t;
    if (tabId) {
      if (this._isAlive(tabId)) {
        // The previous owner of this tab id is still alive: this is a duplicated tab
        // (sessionStorage was copied). Start a fresh session and tab.
        session = tabId = null;
      } else if (this._isAdoptedElsewhere(tabId)) tabId = null;
    }
    this._sessionId = (session && session.s) || uuid();
    this._seq = (session && session.n) || 0;
    this._tabId = tabId || uuid();
    this._saveSession();
    this._loadQueue();
    this._writeHeartbeat();
  }

  private _loadQueue() {
    const saved = this._readQueue(this._tabId);
    // A bfcache restore re-reads storage, which another page may have changed, but only memory has the rest.
    this._queue = saved._events.concat(this._memoryOnlyEvents());
    this._dropped = saved._dropped;
    this._saveDropped();
  }

  /**
   * Everything persisted for `tabId`, oldest first: the events (one key `e:<tabId>:<eventId>` each) and the dropped
   * count (`d:<tabId>`). The whole-queue key `q:<tabId>` of earlier versions is read too and deleted; for our own
   * tab its events move to per-event keys. `take` (adopting another tab's queue) deletes every key read.
   */
  private _readQueue(tabId: string, take?: boolean): TabQueue {
    const prefix = this._keyPrefix;
    const eventKeyStart = 'e:' + tabId + ':';
    const droppedKey = prefix + 'd:' + tabId;
    const events: TrackEvent[] = [];
    for (const key of storageKeys(this._localStore, prefix))
      if (!key.indexOf(eventKeyStart)) {
        const event = storageGetJson(this._localStore, prefix + key);
        if (event) events.push(event);
        if (take) storageRemove(this._localStore, prefix + key);
      }
    const legacy: Persisted | null = storageGetJson(this._localStore, prefix + 'q:' + tabId);
    for (const event of (legacy && legacy.e) || []) {
      events.push(event);
      if (!take) this._persistEvent(event);
    }
    storageRemove(this._localStore, prefix + 'q:' + tabId);
    const dropped = ((legacy && legacy.d) || 0) + (+(storageGet(this._localStore, droppedKey) as any) || 0);
    if (take) storageRemove(this._localStore, droppedKey);
    return { _events: events.sort((a, b) => a.timestamp - b.timestamp), _dropped: dropped };
  }

  private _saveSession() {
    storageSet(
      this._sessionStore,
      this._keyPrefix + 's',
      JSON.stringify({ s: this._sessionId, n: this._seq, t: this._tabId }),
    );
  }

  private _nextSeq(): number {
    const session: SessionRecord | null = storageGetJson(this._sessionStore, this._keyPrefix + 's');
    if (session && session.s == this._sessionId && session.n > this._seq) this._seq = session.n;
    this._seq++;
    this._saveSession();
    return this._seq;
  }

  /** Write this tab's heartbeat: the current time; `time` 0 marks the tab released, so others may adopt its queue. */
  private _writeHeartbeat(time?: number) {
    storageSet(this._localStore, this._keyPrefix + 'hb:' + this._tabId, String(time === 0 ? 0 : this._now()));
  }

  private _isAlive(tabId: string): boolean {
    const heartbeat = +(storageGet(this._localStore, this._keyPrefix + 'hb:' + tabId) || 0);
    return heartbeat > 0 && this._now() - heartbeat < this._staleMs;
  }

  /** True if another tab holds a valid lease on `tabId` and has already taken its queue (it deletes the heartbeat). */
  private _isAdoptedElsewhere(tabId: string): boolean {
    const lease: Lease | null = storageGetJson(this._localStore, this._keyPrefix + 'l:' + tabId);
    return !!(
      lease &&
      lease.b != tabId &&
      lease.u > this._now() &&
      storageGet(this._localStore, this._keyPrefix + 'hb:' + tabId) == null
    );
  }

  /** If another tab adopted our queue (e.g. we were frozen), give it up and continue under a new tab id. */
  private _checkQueueOwnership() {
    if (this._isAdoptedElsewhere(this._tabId)) {
      this._queue = this._memoryOnlyEvents(); // the adopter could not take what was never stored
      this._dropped = 0;
      this._tabId = uuid();
      this._saveSession();
      this._writeHeartbeat();
    }
  }

  /** Storage key of one queued event of this tab. */
  private _eventKey(eventId: string): string {
    return this._keyPrefix + 'e:' + this._tabId + ':' + eventId;
  }

  /** Persist one event: a write of constant size, whatever the queue length. On quota errors it stays in memory only. */
  private _persistEvent(event: TrackEvent) {
    if (!storageSet(this._localStore, this._eventKey(event.eventId), JSON.stringify(event)))
      this._memoryOnly[event.eventId] = 1;
  }

  private _memoryOnlyEvents(): TrackEvent[] {
    return this._queue.filter((event) => this._memoryOnly[event.eventId]);
  }

  /** Persist the dropped count (`d:<tab>`, absent when 0). */
  _saveDropped() {
    const key = 'd:' + this._tabId;
    if (this._dropped) storageSet(this._localStore, this._keyPrefix + key, String(this._dropped));
    else storageRemove(this._localStore, this._keyPrefix + key);
  }

  /**
   * Drop the oldest events beyond maxQueue, and count them. Events in flight are left alone: their request may
   * still store them, and they would then be both stored and counted as dropped.
   */
  private _enforceMaxQueue() {
    const excess = this._queue.length - this._maxQueue;
    if (excess <= 0) return;
    const drop: Record<string, 1> = {};
    let count = 0;
    for (const event of this._queue) {
      if (count == excess) break;
      if (this._inFlight[event.eventId]) continue;
      drop[event.eventId] = 1;
      count++;
    }
    if (!count) return;
    this._removeEvents(drop);
    this._dropped += count;
    this._saveDropped();
  }

  private _removeEvents(ids: Record<string, 1>) {
    this._queue = this._queue.filter((event) => !ids[event.eventId]);
    for (const eventId in ids) storageRemove(this._localStore, this._eventKey(eventId));
  }

  /** Clear every persisted queue of this apiKey (opt-out / privacy). */
  _clearAll() {
    this._queue = [];
    this._dropped = 0;
    clearTimeout(this._flushTimer);
    clearTimeout(this._retryTimer);
    this._flushTimer = this._retryTimer = 0;
    for (const key of storageKeys(this._localStore, this._keyPrefix))
      if (/^[qed]:/.test(key)) storageRemove(this._localStore, this._keyPrefix + key);
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
    const myTabId = this._tabId;
    const now = this._now();
    /** tabs on whose queue this tab wrote a lease */
    const claimed: string[] = [];
    /** other tabs that have queue keys */
    const tabsWithQueue: Record<string, 1> = {};
    /** [key, kind, tabId] of other tabs' heartbeats and leases */
    const otherKeys: string[][] = [];
    for (const key of storageKeys(this._localStore, this._keyPrefix)) {
      const match = key.match(/^(q|e|d|hb|l):([^:]+)/);
      if (!match || match[2] == myTabId) continue;
      if ('qed'.indexOf(match[1]) < 0) otherKeys.push([key, match[1], match[2]]);
      else tabsWithQueue[match[2]] = 1;
    }
    for (const tabId in tabsWithQueue) {
      if (this._isAlive(tabId)) continue;
      const lease: Lease | null = storageGetJson(this._localStore, this._keyPrefix + 'l:' + tabId);
      if (lease && lease.b != myTabId && lease.u > now) continue;
      storageSet(
        this._localStore,
        this._keyPrefix + 'l:' + tabId,
        JSON.stringify({ b: myTabId, u: now + this._leaseMs } satisfies Lease),
      );
      claimed.push(tabId);
    }
    // housekeeping: heartbeats of dead tabs and expired leases, of tabs that have no queue
    for (const [key, kind, tabId] of otherKeys)
      if (!tabsWithQueue[tabId]) {
        const lease: Lease | null | false = kind == 'l' && storageGetJson(this._localStore, this._keyPrefix + key);
        if (lease ? !(lease.u > now) : !this._isAlive(tabId)) storageRemove(this._localStore, this._keyPrefix + key);
      }
    if (!claimed.length) {
      this._claiming = false;
      return Promise.resolve();
    }
    return new Promise<void>((resolve) =>
      setTimeout(() => {
        this._claiming = false;
        this._safe(() => {
          for (const tabId of claimed) {
            const lease: Lease | null = storageGetJson(this._localStore, this._keyPrefix + 'l:' + tabId);
            if (!lease || lease.b != myTabId) continue;
            if (this._isAlive(tabId) || this._tabId != myTabId) {
              storageRemove(this._localStore, this._keyPrefix + 'l:' + tabId);
              continue;
            }
            const orphan = this._readQueue(tabId, true);
            storageRemove(this._localStore, this._keyPrefix + 'hb:' + tabId);
            const known: Record<string, 1> = {};
            for (const event of this._queue) known[event.eventId] = 1;
            const newEvents = orphan._events.filter((event) => !known[event.eventId]);
            for (const event of newEvents) this._persistEvent(event);
            this._queue = newEvents.concat(this._queue);
            this._dropped += orphan._dropped;
          }
          // (each a no-op when nothing was adopted)
          this._enforceMaxQueue();
          this._saveDropped();
          this._scheduleFlush();
        });
        resolve();
      }, this._claimDelayMs),
    );
  }

  // ---------------------------------------------------------------- capture

  /** addEventListener with the listener wrapped in _safe; destroyTracker removes it. */
  private _listen(target: EventTarget, type: string, listener: (event: any) => void, capture?: boolean) {
    const handler = (event: Event) => this._safe(listener, event);
    target.addEventListener(type, handler, capture);
    this._cleanups.push(() => target.removeEventListener(type, handler, capture));
  }

  private _installAutocapture() {
    const win = window;
    const doc = document;
    const hist: any = history;
    const self = this;
    // Deferred by a microtask so that identify() called right after init() applies to it.
    Promise.resolve().then(() => this._safe(this._onNavigation));
    for (const method of ['pushState', 'replaceState']) {
      const original = hist[method];
      if (typeof original != 'function') continue;
      const wrapped = function (this: History) {
        const result = original.apply(this, arguments as any);
        self._safe(self._onNavigation);
        return result;
      };
      hist[method] = wrapped;
      this._cleanups.push(() => {
        if (hist[method] === wrapped) hist[method] = original;
      });
    }
    this._listen(win, 'popstate', this._onNavigation);
    this._listen(win, 'hashchange', this._onNavigation);
    this._listen(
      doc,
      'click',
      (event: MouseEvent) => {
        let element: any = event.target;
        // the control the user meant (a <span> inside a <button> reports the button), else the target itself
        element = (element && element.closest && element.closest(INTERACTIVE_SELECTOR)) || element;
        if (element && element.tagName)
          this._track('click', { tag: element.tagName.toUpperCase(), id: element.getAttribute('id') || null });
      },
      true,
    );
    this._listen(win, 'error', (event: ErrorEvent) => {
      const error: any = event.error;
      if (event.message == null && !error) return; // not a script error
      // A cross-origin script's error is muted to "Script error." without a filename: no source then.
      this._trackError(
        event.message || (error && error.message) || 'Script error',
        event.filename,
        event.lineno,
        event.colno,
        error && error.stack,
      );
    });
    this._listen(win, 'unhandledrejection', (event: PromiseRejectionEvent) => {
      const reason: any = event.reason;
      let stack: string | null = null;
      let message: string | undefined;
      // Any value can be a reason, also one whose String() or getters throw (e.g. Object.create(null)).
      try {
        stack = reason && typeof reason.stack == 'string' ? reason.stack : null;
        message = String(reason && reason.message != null ? reason.message : reason);
      } catch (e) {
        try {
          message = JSON.stringify(reason);
        } catch (e) {
          /* the generic message below */
        }
      }
      // the source is the first script URL in the stack
      const sourceMatch = stack && stack.match(/((?:https?|file):\/\/[^\s()]+?):\d+:\d+/);
      this._trackError(message || 'Unhandled rejection', sourceMatch ? sourceMatch[1] : location.href, 0, 0, stack);
    });
    this._listen(win, 'pagehide', () => {
      this._beaconFlush();
      this._writeHeartbeat(0); // release: other tabs may adopt what is left immediately
    });
    this._listen(win, 'pageshow', (event: PageTransitionEvent) => {
      if (!event.persisted) return; // restored from bfcache: storage may have moved on
      this._loadQueue();
      this._onVisibleAgain();
      this._scheduleFlush();
    });
    this._listen(doc, 'visibilitychange', () => {
      if (doc.visibilityState == 'hidden') this._beaconFlush();
      else this._onVisibleAgain();
    });
    this._listen(win, 'online', () => {
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
    const url = location.href;
    if (url == this._lastUrl) return;
    // After the first page view the URL changed through history: the app sets the title only after that.
    const titleLater = !!this._lastUrl;
    this._lastUrl = url;
    this._track('page_view', { title: document.title }, titleLater);
  }

  /** A page_view waiting for its title is queued now (page hide, or its frame / 100 ms came). */
  private _queueWithTitle(event: TrackEvent) {
    if (!this._awaitingTitle.delete(event)) return;
    event.properties.title = document.title;
    this._enqueue(event);
  }

  private _trackError(
    message: string,
    source: string | undefined,
    line: number,
    col: number,
    stack: string | null | undefined,
  ) {
    if (++this._errorCount > MAX_ERRORS) return;
    const details = {
      message: String(message).slice(0, 2000),
      source: source ? String(source) : null,
      line: +line || 0,
      col: +col || 0,
      stack: stack ? String(stack).slice(0, 8000) : null,
    };
    // Without a source the contract's top-level error shape applies (there, source may be null).
    if (source) this._track('error', details);
    else this._track('error', {}, false, { name: 'Error', ...details });
  }

  private _trackPerformance() {
    const measure = (tries: number) => {
      const perf: any = window.performance;
      // Navigation Timing 2, else the old performance.timing (times relative to navigationStart)
      const navEntry = perf && perf.getEntriesByType && perf.getEntriesByType('navigation')[0];
      const timing = navEntry || (perf && perf.timing);
      const startTime = navEntry ? navEntry.startTime : timing && timing.navigationStart;
      if (!timing || !(navEntry || startTime)) return;
      if (!(timing.loadEventEnd > 0)) {
        if (tries < 50) setTimeout(() => this._safe(measure, tries + 1), 100);
        return;
      }
      const sinceStart = (time: number) => Math.max(0, Math.round(time - startTime));
      this._track('performance', {
        loadTime: sinceStart(timing.loadEventEnd),
        domContentLoaded: sinceStart(timing.domContentLoadedEventEnd),
      });
    };
    const measureAfterLoad = () => setTimeout(() => this._safe(measure, 0), 0);
    if (document.readyState == 'complete') measureAfterLoad();
    else this._listen(window, 'load', measureAfterLoad);
  }

  // ---------------------------------------------------------------- queue

  /**
   * Build an event and queue it. With `titleLater` (a page_view of an SPA navigation) it is queued once the app had a
   * chance to set document.title. `topLevel` adds or overrides fields of the event itself.
   */
  _track(
    eventType: string,
    properties: Record<string, unknown>,
    titleLater?: boolean,
    topLevel?: Record<string, unknown>,
  ) {
    if (!this._isActive()) return;
    this._checkQueueOwnership();
    const event: TrackEvent = {
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
      ...topLevel,
    };
    if (!titleLater) return this._enqueue(event);
    // URL, time and seq are the navigation's; the title is read once the app had a frame to set it.
    this._awaitingTitle.add(event);
    const queueWithTitle = () => this._safe(this._queueWithTitle, event);
    setTimeout(queueWithTitle, 100);
    const win: any = window;
    if (win.requestAnimationFrame) win.requestAnimationFrame(queueWithTitle);
  }

  private _enqueue(event: TrackEvent) {
    if (!this._isActive()) return;
    this._log('event', event);
    this._queue.push(event);
    this._persistEvent(event);
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
      .catch((error) => this._log('internal', error))
      .then(() => {
        this._sending = null;
        this._scheduleFlush();
      }));
  }

  private async _drain() {
    for (;;) {
      if (!this._isActive() || this._retryTimer) return;
      this._checkQueueOwnership();
      const batch = this._queue.filter((event) => !this._inFlight[event.eventId]).slice(0, this._batchSize);
      if (!batch.length) return;
      // An exit send's answer may never be seen, so, as beacons, it does not report (and clear) the dropped count.
      if (!(await this._sendBatch(batch, this._exiting ? 0 : this._dropped))) return;
    }
  }

  private _batchBody(events: TrackEvent[], dropped: number): string {
    return JSON.stringify({ events, sentAt: this._now(), dropped: dropped || undefined }); // no key when 0
  }

  /**
   * POST one batch. Resolves true if the batch is settled (2xx or permanently rejected), false if a retry was
   * scheduled.
   */
  private async _sendBatch(batch: TrackEvent[], dropped: number, body?: string): Promise<boolean> {
    const ids: Record<string, 1> = {};
    for (const event of batch) ids[event.eventId] = this._inFlight[event.eventId] = 1;
    let status = 0;
    let retryAfter: string | null | undefined = null;
    let abortTimer: any;
    try {
      if (isOffline()) throw 0;
      body = body || this._batchBody(batch, dropped);
      const keepalive = this._exiting && byteLength(body) < MAX_KEEPALIVE_BYTES;
      // Only a request that outlives the page is its events' exit attempt; a larger exit batch goes by beacons.
      if (keepalive) for (const event of batch) this._beaconed[event.eventId] = 1;
      const abortController = window.AbortController && new AbortController();
      // a request that hangs must not stop sending for the life of the page: abort it after timeoutMs
      abortTimer = setTimeout(() => abortController && abortController.abort(), this._timeoutMs);
      const response = await this._fetch(this._batchUrl, {
        method: 'POST',
        body,
        headers: { 'Content-Type': CONTENT_TYPE },
        // Only exit sends must outlive the page. Chromium does not cancel an aborted keepalive request, so a
        // hanging endpoint would keep the connections busy.
        keepalive,
        credentials: 'omit',
        mode: 'cors',
        signal: abortController && abortController.signal,
      });
      status = response.status;
      retryAfter = response.headers && response.headers.get('Retry-After');
    } catch (e) {
      status = 0; // network error, timeout or offline
    }
    clearTimeout(abortTimer);
    for (const eventId in ids) delete this._inFlight[eventId];
    if (status >= 200 && status < 300) {
      this._removeEvents(ids);
      this._dropped = Math.max(0, this._dropped - dropped);
      this._attempt = 0;
      this._saveDropped();
      this._log('sent', batch.length);
      return true;
    }
    if (status == 413 && batch[1]) {
      // Too large for the server: send each half, so only an event too large by itself is dropped.
      const secondHalf = batch.splice(batch.length >> 1);
      return (await this._sendBatch(batch, dropped)) && this._sendBatch(secondHalf, 0);
    }
    // 408: the body did not reach the server in time, a transient failure like 429 and 5xx
    if (status && status != 429 && status != 408 && status < 500) {
      this._removeEvents(ids);
      if (!this._warned) {
        this._warned = true;
        console.warn('[TrackFlow] HTTP ' + status + ': batch dropped');
      }
      return true;
    }
    if (!this._retryTimer) {
      const delay = retryAfterMs(retryAfter, this._now()) ?? backoffMs(this._attempt, this._random);
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
    this._awaitingTitle.forEach((event) => this._queueWithTitle(event));
    if (!this._queue.length || isOffline()) return; // kept for the next load
    this._exiting = true;
    this._flush();
    const unsent = this._queue.filter((event) => !this._beaconed[event.eventId]);
    // Beacons never report `dropped`: their answer is not seen, so the count is reported (and cleared) by a fetch.
    while (unsent.length) {
      // chunk to stay under the keepalive/beacon body limit
      let count = unsent.length;
      let body = this._batchBody(unsent.slice(0, count), 0);
      while (count > 1 && byteLength(body) >= MAX_KEEPALIVE_BYTES)
        body = this._batchBody(unsent.slice(0, (count = Math.ceil(count / 2))), 0);
      const chunk = unsent.splice(0, count);
      let beaconQueued = false;
      try {
        beaconQueued = this._sendBeacon(this._batchUrl, new Blob([body], { type: CONTENT_TYPE }));
      } catch (e) {
        /* fall back to fetch */
      }
      if (beaconQueued) for (const event of chunk) this._beaconed[event.eventId] = 1;
      else this._sendBatch(chunk, 0, body);
    }
    this._exiting = false;
  }

}

/** Test seam, outside the class so that the bundle leaves it out: stop timers and listeners for good. */
export function destroyTracker(tracker: Tracker) {
  const t: any = tracker;
  clearInterval(t._heartbeatTimer);
  clearTimeout(t._flushTimer);
  clearTimeout(t._retryTimer);
  t._flushTimer = t._retryTimer = 0;
  t._disabled = true;
  for (const cleanup of t._cleanups) cleanup();
  t._cleanups = [];
}
