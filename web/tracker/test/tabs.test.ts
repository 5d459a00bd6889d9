import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { destroyTracker } from '../src/tracker';
import { MemStorage, mockFetch, queueKeys, stored, tab } from './helpers';

const T0 = Date.UTC(2024, 0, 1, 12, 0, 0);
let trackers: any[] = [];
const mk = (...a: Parameters<typeof tab>) => {
  const r = tab(...a);
  trackers.push(r.t);
  return r;
};
const tags = (events: any[]) => events.map((e) => e.properties.tag).sort();

beforeEach(() => {
  vi.useFakeTimers({ now: T0 });
});
afterEach(() => {
  trackers.forEach((t) => destroyTracker(t));
  trackers = [];
  vi.useRealTimers();
});

/** A tab that cannot deliver (network down) and has queued `n` click events. */
function offlineTab(ls: MemStorage, names: string[], ss = new MemStorage()) {
  const f = mockFetch(new TypeError('offline'));
  const r = mk(ls, { flushIntervalMs: 1000 }, { fetch: f.fn }, ss);
  for (const n of names) r.t._track('click', { tag: n, id: null });
  return { ...r, f };
}

describe('persistence across reloads', () => {
  it('a re-init in the same tab restores the queue, session id and seq', async () => {
    const ls = new MemStorage();
    const ss = new MemStorage();
    const a = offlineTab(ls, ['A1', 'A2'], ss);
    await vi.advanceTimersByTimeAsync(1000); // first attempt fails
    expect(a.f.calls).toHaveLength(1);
    // reload: pagehide releases the heartbeat, then the page is gone (every event was persisted when tracked)
    a.t._writeHeartbeat(0);
    destroyTracker(a.t);

    const f = mockFetch(200);
    const { t: b } = mk(ls, { flushIntervalMs: 1000 }, { fetch: f.fn }, ss);
    expect(b._tabId).toBe(a.t._tabId);
    expect(b._sessionId).toBe(a.t._sessionId);
    expect(b._queue).toHaveLength(2);
    b._track('click', { tag: 'B1', id: null });
    await vi.advanceTimersByTimeAsync(1000);
    const sent = f.events();
    expect(tags(sent)).toEqual(['A1', 'A2', 'B1']);
    expect(sent.map((e: any) => e.seq)).toEqual([1, 2, 3]);
    expect(new Set(sent.map((e: any) => e.sessionId)).size).toBe(1);
    expect(queueKeys(ls)).toHaveLength(0);
  });

  it('a duplicated tab (copied sessionStorage, original alive) gets a new session and tab id', () => {
    const ls = new MemStorage();
    const ss = new MemStorage();
    const { t: a } = mk(ls, {}, {}, ss);
    const copy = new MemStorage();
    for (const k of ss.keys()) copy.setItem(k, ss.getItem(k)!);
    const { t: b } = mk(ls, {}, {}, copy);
    expect(b._sessionId).not.toBe(a._sessionId);
    expect(b._tabId).not.toBe(a._tabId);
  });
});

describe('multi-tab ownership', () => {
  it('never sends the queue of a live tab', async () => {
    const ls = new MemStorage();
    const a = offlineTab(ls, ['A1', 'A2']);
    const f = mockFetch(200);
    const { t: b } = mk(ls, { flushIntervalMs: 1000 }, { fetch: f.fn });
    b._track('click', { tag: 'B1', id: null });
    await vi.advanceTimersByTimeAsync(10 * 60000); // A keeps heartbeating
    expect(tags(f.events())).toEqual(['B1']);
    expect(a.t._queue).toHaveLength(2);
    expect(stored(ls, a.t._tabId)).toHaveLength(2);
  });

  it('adopts a crashed tab after its heartbeat goes stale, and sends its events exactly once', async () => {
    const ls = new MemStorage();
    const a = offlineTab(ls, ['A1', 'A2', 'A3']);
    destroyTracker(a.t); // crash: no pagehide, heartbeat not released
    const f = mockFetch(200);
    mk(ls, { flushIntervalMs: 1000 }, { fetch: f.fn });
    await vi.advanceTimersByTimeAsync(80000);
    expect(f.calls).toHaveLength(0); // heartbeat 80 s old: not stale yet (90 s)
    await vi.advanceTimersByTimeAsync(30000);
    expect(tags(f.events())).toEqual(['A1', 'A2', 'A3']);
    expect(stored(ls, a.t._tabId)).toHaveLength(0);
    await vi.advanceTimersByTimeAsync(10 * 60000);
    expect(f.events()).toHaveLength(3);
    expect(queueKeys(ls)).toHaveLength(0);
  });

  it('adopts a released (closed) tab immediately and keeps events in storage until a 2xx', async () => {
    const ls = new MemStorage();
    const a = offlineTab(ls, ['A1', 'A2']);
    a.t._writeHeartbeat(0);
    destroyTracker(a.t);
    const f = mockFetch(503, 200);
    const { t: b } = mk(ls, { flushIntervalMs: 1000 }, { fetch: f.fn, random: () => 0.5 });
    await vi.advanceTimersByTimeAsync(300); // claim delay
    expect(b._queue).toHaveLength(2);
    expect(stored(ls, b._tabId)).toHaveLength(2);
    await vi.advanceTimersByTimeAsync(1000); // flush -> 503
    expect(f.calls).toHaveLength(1);
    expect(stored(ls, b._tabId)).toHaveLength(2);
    await vi.advanceTimersByTimeAsync(500); // retry -> 200
    expect(f.calls).toHaveLength(2);
    expect(queueKeys(ls)).toHaveLength(0);
  });

  it('two tabs racing for an orphan: only one gets it', async () => {
    const ls = new MemStorage();
    const a = offlineTab(ls, ['A1', 'A2']);
    a.t._writeHeartbeat(0);
    destroyTracker(a.t);
    const fb = mockFetch(200);
    const fc = mockFetch(200);
    const { t: b } = mk(ls, { flushIntervalMs: 1000 }, { fetch: fb.fn }); // writes its lease
    const { t: c } = mk(ls, { flushIntervalMs: 1000 }, { fetch: fc.fn }); // sees B's lease, backs off
    await vi.advanceTimersByTimeAsync(5000);
    expect(fb.events()).toHaveLength(2);
    expect(fc.events()).toHaveLength(0);

    // Worse interleaving: both believe they wrote the lease; the last writer wins on re-read.
    const d = offlineTab(ls, ['D1']);
    d.t._writeHeartbeat(0);
    destroyTracker(d.t);
    const lk = `tf:key-1:l:${d.t._tabId}`;
    b._claiming = false;
    const pb = b._adoptOrphans();
    expect(JSON.parse(ls.getItem(lk)!).b).toBe(b._tabId);
    ls.setItem(lk, JSON.stringify({ b: c._tabId, u: Date.now() + 600000 })); // C wrote after B
    const pc = c._adoptOrphans();
    await vi.advanceTimersByTimeAsync(300);
    await Promise.all([pb, pc]);
    await vi.advanceTimersByTimeAsync(2000);
    expect(tags(fb.events())).toEqual(['A1', 'A2']);
    expect(tags(fc.events())).toEqual(['D1']);
  });

  /** A frozen tab: no heartbeats, no timers. */
  const freeze = (t: any) => {
    clearInterval(t._heartbeatTimer);
    clearTimeout(t._flushTimer);
    t._flushTimer = 0;
  };

  it('a frozen owner whose queue was adopted gives it up instead of re-sending', async () => {
    const ls = new MemStorage();
    const a = offlineTab(ls, ['A1', 'A2']);
    const oldTab = a.t._tabId;
    freeze(a.t);
    const f = mockFetch(200);
    mk(ls, { flushIntervalMs: 1000 }, { fetch: f.fn });
    await vi.advanceTimersByTimeAsync(100000);
    expect(tags(f.events())).toEqual(['A1', 'A2']);
    // A wakes up: it must notice the lease and continue under a new tab id without its old events
    const fa = mockFetch(200);
    a.t._fetch = fa.fn;
    a.t._track('click', { tag: 'A3', id: null });
    expect(a.t._tabId).not.toBe(oldTab);
    await a.t._flush();
    expect(tags(fa.events())).toEqual(['A3']);
  });

  it('a frozen owner whose queue was adopted keeps the events storage had no room for', async () => {
    const ls = new MemStorage();
    const a = offlineTab(ls, ['A1']);
    const set = ls.setItem.bind(ls);
    ls.setItem = (k: string, v: string) => {
      if (k.includes(':e:')) throw new Error('QuotaExceededError'); // storage full from here on
      set(k, v);
    };
    a.t._track('click', { tag: 'A2', id: null }); // memory only
    ls.setItem = set;
    freeze(a.t);
    const f = mockFetch(200);
    mk(ls, { flushIntervalMs: 1000 }, { fetch: f.fn });
    await vi.advanceTimersByTimeAsync(100000);
    expect(tags(f.events())).toEqual(['A1']); // the adopter only has what was stored
    const fa = mockFetch(200);
    a.t._fetch = fa.fn;
    a.t._track('click', { tag: 'A3', id: null });
    await a.t._flush();
    expect(tags(fa.events())).toEqual(['A2', 'A3']);
  });
});

describe('migration from the whole-queue layout of earlier versions', () => {
  const legacy = (ls: MemStorage, tab: string, tags: string[], d = 0) => {
    const ev = (tag: string, i: number) => ({
      eventId: crypto.randomUUID(),
      eventType: 'click',
      timestamp: T0 - 1000 + i,
      tenantId: 'key-1',
      sessionId: 's-old',
      userId: null,
      pageUrl: 'https://shop.example.com/',
      referrer: null,
      deviceInfo: { deviceType: 'desktop', os: 'Linux', browser: 'Chrome' },
      properties: { tag, id: null },
      seq: i + 1,
    });
    ls.setItem(`tf:key-1:q:${tab}`, JSON.stringify({ d, e: tags.map(ev) }));
    ls.setItem(`tf:key-1:hb:${tab}`, '0');
  };

  it('a reload picks up its own queue from the old key and moves it to one key per event', async () => {
    const ls = new MemStorage();
    const ss = new MemStorage();
    ss.setItem('tf:key-1:s', JSON.stringify({ s: 's-old', n: 2, t: 'tab-old' }));
    legacy(ls, 'tab-old', ['L1', 'L2'], 3);
    const f = mockFetch(200);
    const { t } = mk(ls, { flushIntervalMs: 1000 }, { fetch: f.fn }, ss);
    expect(t._tabId).toBe('tab-old');
    expect(tags(t._queue)).toEqual(['L1', 'L2']);
    expect(ls.getItem('tf:key-1:q:tab-old')).toBeNull();
    expect(tags(stored(ls, 'tab-old'))).toEqual(['L1', 'L2']);
    expect(ls.getItem('tf:key-1:d:tab-old')).toBe('3');
    t._track('click', { tag: 'N1', id: null });
    await vi.advanceTimersByTimeAsync(1000);
    expect(tags(f.events())).toEqual(['L1', 'L2', 'N1']);
    expect(f.calls[0].body.dropped).toBe(3);
    expect(f.events().find((e: any) => e.properties.tag == 'N1').seq).toBe(3);
    expect(queueKeys(ls)).toHaveLength(0);
  });

  it('an old-layout queue of a closed tab is adopted and sent once', async () => {
    const ls = new MemStorage();
    legacy(ls, 'gone-tab', ['G1', 'G2', 'G3']);
    const f = mockFetch(200);
    const { t } = mk(ls, { flushIntervalMs: 1000 }, { fetch: f.fn });
    await vi.advanceTimersByTimeAsync(300);
    expect(tags(t._queue)).toEqual(['G1', 'G2', 'G3']);
    expect(ls.getItem('tf:key-1:q:gone-tab')).toBeNull();
    expect(tags(stored(ls, t._tabId))).toEqual(['G1', 'G2', 'G3']);
    await vi.advanceTimersByTimeAsync(10 * 60000);
    expect(tags(f.events())).toEqual(['G1', 'G2', 'G3']);
    expect(queueKeys(ls)).toHaveLength(0);
  });
});
