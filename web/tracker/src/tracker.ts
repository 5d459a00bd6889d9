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

interface Persisted {
  d: number;
  e: TrackEvent[];
}

export const OPT_OUT_KEY = 'trackflow:optout';
const CT = 'text/plain;charset=UTF-8';
const MAX_KEEPALIVE = 60000;
const BASE_MS = 1000;
const CAP_MS = 60000;
const MAX_RETRY_AFTER_MS = 3600000;
const MAX_ERRORS = 100;

let optOutMem = false;

type Store = Storage | null | undefined;

const sget = (s: Store, k: string): string | null => {
  try {
    return s ? s.getItem(k) : null;
  } catch (e) {
    return null;
  }
};
const sset = (s: Store, k: string, v: string): boolean => {
  try {
    if (s) {
      s.setItem(k, v);
      return true;
    }
  } catch (e) {
    /* quota / disabled */
  }
  return false;
};
const sdel = (s: Store, k: string) => {
  try {
    if (s) s.removeItem(k);
  } catch (e) {
    /* ignore */
  }
};
const jget = (s: Store, k: string): any => {
  try {
    return JSON.parse(sget(s, k) || 'null');
  } catch (e) {
    return null;
  }
};
const skeys = (s: Store): string[] => {
  const out: string[] = [];
  try {
    if (s) for (let i = 0; i < s.length; i++) out.push(s.key(i)!);
  } catch (e) {
    /* ignore */
  }
  return out;
};
const bytes = (s: string): number => {
  try {
    return new TextEncoder().encode(s).length;
  } catch (e) {
    return s.length * 3;
  }
};
const pos = (v: unknown, d: number): number => (typeof v == 'number' && v >= 1 && v < 1 / 0 ? Math.floor(v) : d);

export function browserStore(name: 'localStorage' | 'sessionStorage'): Storage | null {
  try {
    const s = window[name];
    s.getItem('tf');
    return s;
  } catch (e) {
    return null;
  }
}

export function setOptOut(v: boolean, ls: Store) {
  optOutMem = v;
  if (v) sset(ls, OPT_OUT_KEY, '1');
  else sdel(ls, OPT_OUT_KEY);
}

/** Parse Retry-After (delta-seconds or HTTP-date) into ms, or null. */
export function retryAfterMs(v: string | null | undefined, now: number): number | null {
  if (!v) return null;
  let ms = /^\s*\d+(\.\d+)?\s*$/.test(v) ? parseFloat(v) * 1000 : Date.parse(v) - now;
  if (ms !== ms) return null;
  return Math.min(Math.max(ms, 0), MAX_RETRY_AFTER_MS);
}

/** Full-jitter exponential backoff: random() * min(cap, base * 2^attempt). attempt starts at 0. */
export function backoffMs(attempt: number, random: () => number): number {
  return random() * Math.min(CAP_MS, BASE_MS * Math.pow(2, attempt));
}

export function isPrivacyBlocked(cfg: TrackFlowConfig): boolean {
  const n: any = typeof navigator != 'undefined' ? navigator : {};
  const w: any = typeof window != 'undefined' ? window : {};
  const dnt = n.doNotTrack == '1' || n.doNotTrack == 'yes' || w.doNotTrack == '1' || n.msDoNotTrack == '1';
  return !!((cfg.respectDoNotTrack && dnt) || (cfg.respectGlobalPrivacyControl && n.globalPrivacyControl === true));
}

export class Tracker {
  readonly _batchSize: number;
  readonly _flushIntervalMs: number;
  readonly _maxQueue: number;
  readonly _url: string;
  /** localStorage key prefix, namespaced by apiKey */
  readonly _P: string;
  _tab = '';
  _sessionId = '';
  _userId: string | null = null;
  _q: TrackEvent[] = [];
  _dropped = 0;
  _attempt = 0;
  _disabled = false;

  private _cfg: TrackFlowConfig;
  private _ls: Store;
  private _ss: Store;
  private _now: () => number;
  private _rnd: () => number;
  private _fx: NonNullable<TrackerEnv['fetch']>;
  private _beacon: NonNullable<TrackerEnv['sendBeacon']>;
  private _hbMs: number;
  private _staleMs: number;
  private _claimMs: number;
  private _leaseMs: number;
  private _n = 0;
  private _fly: Record<string, 1> = {};
  private _sending: Promise<void> | null = null;
  private _timer: any = 0;
  private _retry: any = 0;
  private _hb: any = 0;
  private _warned = false;
  private _errs = 0;
  private _lastUrl = '';
  private _claiming = false;
  private _offs: Array<() => void> = [];
  private _dev: DeviceInfo;

  constructor(cfg: TrackFlowConfig, env: TrackerEnv = {}) {
    this._cfg = cfg;
    this._batchSize = pos(cfg.batchSize, 20);
    this._flushIntervalMs = pos(cfg.flushIntervalMs, 5000);
    this._maxQueue = pos(cfg.maxQueue, 1000);
    this._url = String(cfg.endpoint).replace(/\/+$/, '') + '/v1/batch';
    this._P = 'tf:' + cfg.apiKey + ':';
    this._ls = 'localStorage' in env ? env.localStorage : browserStore('localStorage');
    this._ss = 'sessionStorage' in env ? env.sessionStorage : browserStore('sessionStorage');
    this._now = env.now || (() => Date.now());
    this._rnd = env.random || Math.random;
    this._fx = env.fetch || ((u, i) => fetch(u, i));
    this._beacon = env.sendBeacon || ((u, d) => navigator.sendBeacon(u, d));
    this._hbMs = env.heartbeatMs || 5000;
    this._staleMs = env.staleMs || 90000;
    this._claimMs = env.claimDelayMs || 300;
    this._leaseMs = env.leaseMs || 600000;
    const n: any = navigator;
    this._dev = detectDevice(n.userAgent, n.userAgentData, n.maxTouchPoints);

    if (isPrivacyBlocked(cfg)) {
      this._log('disabled by Do-Not-Track / Global Privacy Control');
      this._disabled = true;
      this._clearAll();
      return;
    }
    this._boot();
    this._hb = setInterval(() => this._safe(this._tick), this._hbMs);
    if (env.autocapture !== false) this._capture();
    this._adopt();
    this._schedule();
  }

  // ---------------------------------------------------------------- state

  private _log(...a: unknown[]) {
    if (this._cfg.debug) console.log('[TrackFlow]', ...a);
  }

  private _safe(fn: (...a: any[]) => void, ...a: any[]) {
    try {
      fn.apply(this, a);
    } catch (e) {
      this._log('internal error', e);
    }
  }

  private _active(): boolean {
    return !this._disabled && !optOutMem && sget(this._ls, OPT_OUT_KEY) != '1';
  }

  /** Restore (or create) session id, seq counter and tab id; load this tab's persisted queue. */
  private _boot() {
    let r = jget(this._ss, this._P + 's');
    let tab: string | null = r && r.t;
    if (tab) {
      const hb = +(sget(this._ls, this._P + 'hb:' + tab) || 0);
      if (hb > 0 && this._now() - hb < this._staleMs) {
        // The previous owner of this tab id is still alive: this is a duplicated tab
        // (sessionStorage was copied). Start a fresh session and tab.
        r = tab = null;
      } else if (this._lost(tab)) tab = null;
    }
    this._sessionId = (r && r.s) || uuid();
    this._n = (r && r.n) || 0;
    this._tab = tab || uuid();
    this._sess();
    this._load();
    this._beat();
  }

  private _load() {
    const d: Persisted | null = jget(this._ls, this._P + 'q:' + this._tab);
    this._q = (d && d.e) || [];
    this._dropped = (d && d.d) || 0;
  }

  private _sess() {
    sset(this._ss, this._P + 's', JSON.stringify({ s: this._sessionId, n: this._n, t: this._tab }));
  }

  private _nextSeq(): number {
    const r = jget(this._ss, this._P + 's');
    if (r && r.s == this._sessionId && r.n > this._n) this._n = r.n;
    this._n++;
    this._sess();
    return this._n;
  }

  private _beat(v?: number) {
    sset(this._ls, this._P + 'hb:' + this._tab, String(v === 0 ? 0 : this._now()));
  }

  private _alive(tab: string): boolean {
    const hb = +(sget(this._ls, this._P + 'hb:' + tab) || 0);
    return hb > 0 && this._now() - hb < this._staleMs;
  }

  /** True if another tab holds a valid lease on `tab` and has already taken its queue. */
  private _lost(tab: string): boolean {
    const l = jget(this._ls, this._P + 'l:' + tab);
    return !!(l && l.b != tab && l.u > this._now() && sget(this._ls, this._P + 'q:' + tab) == null);
  }

  /** If another tab adopted our queue (e.g. we were frozen), give it up and continue under a new tab id. */
  private _own() {
    if (this._lost(this._tab)) {
      this._log('queue adopted by another tab; rotating tab id');
      this._q = [];
      this._dropped = 0;
      this._tab = uuid();
      this._sess();
      this._beat();
    }
  }

  _save() {
    const k = this._P + 'q:' + this._tab;
    if (!this._q.length && !this._dropped) return sdel(this._ls, k);
    // On quota errors persist the newest part that fits; memory keeps everything.
    for (let e = this._q; ; e = e.slice(Math.ceil(e.length / 2))) {
      if (sset(this._ls, k, JSON.stringify({ d: this._dropped, e }))) return;
      if (!e.length) return sdel(this._ls, k);
    }
  }

  private _bound() {
    const n = this._q.length - this._maxQueue;
    if (n > 0) {
      this._q.splice(0, n);
      this._dropped += n;
    }
  }

  private _remove(ids: Record<string, 1>) {
    this._q = this._q.filter((e) => !ids[e.eventId]);
  }

  /** Clear every persisted queue of this apiKey (opt-out / privacy). */
  _clearAll() {
    this._q = [];
    this._dropped = 0;
    clearTimeout(this._timer);
    clearTimeout(this._retry);
    this._timer = this._retry = 0;
    for (const k of skeys(this._ls)) if (k.indexOf(this._P + 'q:') == 0) sdel(this._ls, k);
  }

  _optOut() {
    setOptOut(true, this._ls);
    this._clearAll();
  }

  _optIn() {
    setOptOut(false, this._ls);
  }

  // ---------------------------------------------------------------- multi-tab

  private _tick() {
    if (!this._active()) return;
    this._own();
    this._beat();
    this._adopt();
  }

  /**
   * Adopt queues of tabs that are gone (heartbeat released or stale):
   * write a lease, wait claimDelayMs, re-read the lease and the heartbeat, then move the events.
   */
  _adopt(): Promise<void> {
    if (this._claiming || !this._ls || !this._active()) return Promise.resolve();
    this._claiming = true;
    const me = this._tab;
    const now = this._now();
    const pq = this._P + 'q:';
    const mine: string[] = [];
    for (const k of skeys(this._ls)) {
      const m = k.slice(this._P.length).match(/^(q|hb|l):(.+)$/);
      if (k.indexOf(this._P) || !m || m[2] == me) continue;
      const t = m[2];
      if (m[1] == 'q') {
        if (this._alive(t)) continue;
        const l = jget(this._ls, this._P + 'l:' + t);
        if (l && l.b != me && l.u > now) continue;
        sset(this._ls, this._P + 'l:' + t, JSON.stringify({ b: me, u: now + this._leaseMs }));
        mine.push(t);
      } else if (sget(this._ls, pq + t) == null) {
        // housekeeping: heartbeats of dead tabs and expired leases without a queue
        const l = m[1] == 'l' && jget(this._ls, k);
        if (l ? !(l.u > now) : !this._alive(t)) sdel(this._ls, k);
      }
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
            const l = jget(this._ls, this._P + 'l:' + t);
            if (!l || l.b != me) continue;
            if (this._alive(t) || this._tab != me) {
              sdel(this._ls, this._P + 'l:' + t);
              continue;
            }
            const d: Persisted | null = jget(this._ls, pq + t);
            sdel(this._ls, pq + t);
            sdel(this._ls, this._P + 'hb:' + t);
            if (d && d.e) {
              const have: Record<string, 1> = {};
              for (const e of this._q) have[e.eventId] = 1;
              this._q = d.e.filter((e) => !have[e.eventId]).concat(this._q);
              this._dropped += d.d || 0;
              got += d.e.length;
            }
          }
          if (got) {
            this._log('adopted', got, 'events from closed tabs');
            this._bound();
            this._save();
            this._schedule();
          }
        });
        res();
      }, this._claimMs),
    );
  }

  // ---------------------------------------------------------------- capture

  private _on(t: EventTarget, type: string, fn: (e: any) => void, capture?: boolean) {
    const h = (e: Event) => this._safe(fn, e);
    t.addEventListener(type, h, capture);
    this._offs.push(() => t.removeEventListener(type, h, capture));
  }

  private _capture() {
    const w = window;
    const d = document;
    const h: any = history;
    const self = this;
    // Deferred by a microtask so that identify() called right after init() applies to it.
    Promise.resolve().then(() => this._safe(this._nav));
    for (const m of ['pushState', 'replaceState']) {
      const orig = h[m];
      if (typeof orig != 'function') continue;
      const wrapped = function (this: History) {
        const r = orig.apply(this, arguments as any);
        self._safe(self._nav);
        return r;
      };
      h[m] = wrapped;
      this._offs.push(() => {
        if (h[m] === wrapped) h[m] = orig;
      });
    }
    this._on(w, 'popstate', this._nav);
    this._on(w, 'hashchange', this._nav);
    this._on(
      d,
      'click',
      (e: MouseEvent) => {
        const el: any = e.target;
        if (el && el.tagName) this._track('click', { tag: String(el.tagName).toUpperCase(), id: el.id || null });
      },
      true,
    );
    this._on(w, 'error', (e: ErrorEvent) => {
      const er: any = e.error;
      if (e.message == null && !er) return; // not a script error
      this._err(e.message || (er && er.message) || 'Script error', e.filename || location.href, e.lineno || 0, e.colno || 0, er && er.stack);
    });
    this._on(w, 'unhandledrejection', (e: PromiseRejectionEvent) => {
      const r: any = e.reason;
      const stack = r && typeof r.stack == 'string' ? r.stack : null;
      const m = stack && stack.match(/((?:https?|file):\/\/[^\s()]+?):\d+:\d+/);
      this._err(r && r.message != null ? String(r.message) : String(r), m ? m[1] : location.href, 0, 0, stack);
    });
    this._on(w, 'pagehide', () => {
      this._beaconFlush();
      this._save();
      this._beat(0); // release: other tabs may adopt what is left immediately
    });
    this._on(w, 'pageshow', (e: PageTransitionEvent) => {
      if (!e.persisted) return; // restored from bfcache: storage may have moved on
      this._own();
      this._load();
      this._beat();
      this._schedule();
    });
    this._on(d, 'visibilitychange', () => {
      if (d.visibilityState == 'hidden') this._beaconFlush();
      else {
        this._own();
        this._beat();
      }
    });
    this._on(w, 'online', () => {
      clearTimeout(this._retry);
      this._retry = 0;
      this._flush();
    });
    this._perf();
  }

  private _nav() {
    const u = location.href;
    if (u == this._lastUrl) return;
    this._lastUrl = u;
    this._track('page_view', { title: document.title });
  }

  private _err(message: string, source: string, line: number, col: number, stack: string | null | undefined) {
    if (++this._errs > MAX_ERRORS) return;
    this._track('error', {
      message: String(message).slice(0, 2000),
      source: String(source),
      line: +line || 0,
      col: +col || 0,
      stack: stack ? String(stack).slice(0, 8000) : null,
    });
  }

  private _perf() {
    const go = (tries: number) => {
      const p: any = window.performance;
      if (!p) return;
      const nav = p.getEntriesByType && p.getEntriesByType('navigation')[0];
      const t = p.timing;
      let load: number, dcl: number;
      if (nav) {
        load = nav.loadEventEnd - nav.startTime;
        dcl = nav.domContentLoadedEventEnd - nav.startTime;
        if (!(nav.loadEventEnd > 0)) load = -1;
      } else if (t && t.navigationStart) {
        load = t.loadEventEnd - t.navigationStart;
        dcl = t.domContentLoadedEventEnd - t.navigationStart;
        if (!(t.loadEventEnd > 0)) load = -1;
      } else return;
      if (load < 0) {
        if (tries < 50) setTimeout(() => this._safe(go, tries + 1), 100);
        return;
      }
      this._track('performance', { loadTime: Math.max(0, Math.round(load)), domContentLoaded: Math.max(0, Math.round(dcl)) });
    };
    const start = () => setTimeout(() => this._safe(go, 0), 0);
    if (document.readyState == 'complete') start();
    else this._on(window, 'load', start);
  }

  // ---------------------------------------------------------------- queue

  _track(eventType: string, properties: Record<string, unknown>) {
    if (!this._active()) return;
    this._own();
    const ev: TrackEvent = {
      eventId: uuid(),
      eventType,
      timestamp: this._now(),
      tenantId: this._cfg.apiKey,
      sessionId: this._sessionId,
      userId: this._userId,
      pageUrl: location.href,
      referrer: document.referrer || null,
      deviceInfo: this._dev,
      properties,
      seq: this._nextSeq(),
    };
    this._log('event', ev);
    this._q.push(ev);
    this._bound();
    this._save();
    this._schedule();
  }

  private _schedule() {
    if (this._retry || this._sending || !this._q.length) return;
    if (this._q.length >= this._batchSize) this._flush();
    else if (!this._timer)
      this._timer = setTimeout(() => {
        this._timer = 0;
        this._flush();
      }, this._flushIntervalMs);
  }

  /** Send everything queued, in batches of batchSize. Never rejects. Does nothing while backing off. */
  _flush(): Promise<void> {
    if (this._sending) return this._sending;
    if (this._retry || !this._active()) return Promise.resolve();
    clearTimeout(this._timer);
    this._timer = 0;
    return (this._sending = this._drain()
      .catch((e) => this._log('internal error', e))
      .then(() => {
        this._sending = null;
        this._schedule();
      }));
  }

  private async _drain() {
    for (;;) {
      if (!this._active() || this._retry) return;
      this._own();
      const batch = this._q.filter((e) => !this._fly[e.eventId]).slice(0, this._batchSize);
      if (!batch.length) return;
      if (!(await this._send(batch, this._dropped))) return;
    }
  }

  private _body(events: TrackEvent[], dropped: number): string {
    const env: Record<string, unknown> = { events, sentAt: this._now() };
    if (dropped) env.dropped = dropped;
    return JSON.stringify(env);
  }

  /** POST one batch. Resolves true if the batch is settled (2xx or permanently rejected), false if a retry was scheduled. */
  private async _send(batch: TrackEvent[], dropped: number, body?: string): Promise<boolean> {
    const ids: Record<string, 1> = {};
    for (const e of batch) ids[e.eventId] = this._fly[e.eventId] = 1;
    let status = 0;
    let ra: string | null | undefined = null;
    try {
      if (typeof navigator != 'undefined' && navigator.onLine === false) throw 0;
      body = body || this._body(batch, dropped);
      const res = await this._fx(this._url, {
        method: 'POST',
        body,
        headers: { 'Content-Type': CT },
        keepalive: bytes(body) < MAX_KEEPALIVE,
        credentials: 'omit',
        mode: 'cors',
      });
      status = res.status;
      ra = res.headers && res.headers.get('Retry-After');
    } catch (e) {
      status = 0; // network error / offline
    }
    for (const id in ids) delete this._fly[id];
    if (status >= 200 && status < 300) {
      this._remove(ids);
      this._dropped = Math.max(0, this._dropped - dropped);
      this._attempt = 0;
      this._save();
      this._log('sent', batch.length, 'events');
      return true;
    }
    if (status && status != 429 && status < 500) {
      this._remove(ids);
      this._save();
      if (!this._warned) {
        this._warned = true;
        console.warn('[TrackFlow] batch rejected with HTTP ' + status + '; dropped ' + batch.length + ' events');
      }
      return true;
    }
    if (!this._retry) {
      const delay = retryAfterMs(ra, this._now()) ?? backoffMs(this._attempt, this._rnd);
      this._attempt++;
      this._log('send failed (' + status + '), retry in', Math.round(delay), 'ms');
      this._retry = setTimeout(() => {
        this._retry = 0;
        this._flush();
      }, delay);
    }
    return false;
  }

  /** Page is being hidden/unloaded: hand everything not already in flight to sendBeacon. */
  _beaconFlush() {
    if (!this._active() || !this._q.length) return;
    if (typeof navigator != 'undefined' && navigator.onLine === false) return; // keep persisted for next load
    clearTimeout(this._timer);
    this._timer = 0;
    const rest = this._q.filter((e) => !this._fly[e.eventId]);
    let dropped = this._dropped;
    while (rest.length) {
      // chunk to stay under the keepalive/beacon body limit
      let n = rest.length;
      let body = this._body(rest.slice(0, n), dropped);
      while (n > 1 && bytes(body) >= MAX_KEEPALIVE) body = this._body(rest.slice(0, (n = Math.ceil(n / 2))), dropped);
      const chunk = rest.splice(0, n);
      let ok = false;
      try {
        ok = this._beacon(this._url, new Blob([body], { type: CT }));
      } catch (e) {
        /* fall back to fetch */
      }
      if (ok) {
        const ids: Record<string, 1> = {};
        for (const e of chunk) ids[e.eventId] = 1;
        this._remove(ids);
        this._dropped = Math.max(0, this._dropped - dropped);
      } else this._send(chunk, dropped, body);
      dropped = 0;
    }
    this._save();
  }

  _destroy() {
    clearInterval(this._hb);
    clearTimeout(this._timer);
    clearTimeout(this._retry);
    this._timer = this._retry = 0;
    this._disabled = true;
    for (const off of this._offs) off();
    this._offs = [];
  }
}
