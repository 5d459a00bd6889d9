import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { backoffMs, destroyTracker, retryAfterMs } from '../src/tracker';
import { MemStorage, mockFetch, queueKeys, stored, tab } from './helpers';

const T0 = Date.UTC(2024, 0, 1, 12, 0, 0);
let trackers: any[] = [];
const mk = (...a: Parameters<typeof tab>) => {
  const r = tab(...a);
  trackers.push(r.t);
  return r;
};

beforeEach(() => {
  vi.useFakeTimers({ now: T0 });
});
afterEach(() => {
  trackers.forEach((t) => destroyTracker(t));
  trackers = [];
  vi.useRealTimers();
});

describe('batching', () => {
  it('sends as soon as batchSize events are queued', async () => {
    const f = mockFetch(200);
    const { t } = mk(new MemStorage(), { batchSize: 3 }, { fetch: f.fn });
    t._track('click', { tag: 'A', id: null });
    t._track('click', { tag: 'B', id: null });
    await vi.advanceTimersByTimeAsync(0);
    expect(f.calls).toHaveLength(0);
    t._track('click', { tag: 'C', id: null });
    await vi.advanceTimersByTimeAsync(0);
    expect(f.calls).toHaveLength(1);
    expect(f.calls[0].body.events.map((e: any) => e.properties.tag)).toEqual(['A', 'B', 'C']);
    expect(t._queue).toHaveLength(0);
  });

  it('splits a large backlog into batches of batchSize', async () => {
    const f = mockFetch(200);
    const { t } = mk(new MemStorage(), { batchSize: 4, flushIntervalMs: 1000 }, { fetch: f.fn });
    for (let i = 0; i < 3; i++) t._track('click', { tag: 'X', id: null });
    t._queue.push(...Array.from({ length: 7 }, () => ({ ...t._queue[0], eventId: crypto.randomUUID() })));
    await t._flush();
    expect(f.calls.map((c) => c.body.events.length)).toEqual([4, 4, 2]);
  });

  it('sends a partial batch after flushIntervalMs', async () => {
    const f = mockFetch(200);
    const { t } = mk(new MemStorage(), { flushIntervalMs: 5000 }, { fetch: f.fn });
    t._track('page_view', { title: 'a' });
    await vi.advanceTimersByTimeAsync(2000);
    t._track('click', { tag: 'A', id: 'x' });
    await vi.advanceTimersByTimeAsync(2999);
    expect(f.calls).toHaveLength(0);
    await vi.advanceTimersByTimeAsync(1);
    expect(f.calls).toHaveLength(1);
    expect(f.calls[0].body.events).toHaveLength(2);
  });

  it('posts a text/plain envelope with credentials omit and sentAt, without keepalive (only exit sends use it)', async () => {
    const f = mockFetch(200);
    const { t } = mk(new MemStorage(), { batchSize: 1 }, { fetch: f.fn });
    t._track('click', { tag: 'A', id: null });
    await vi.advanceTimersByTimeAsync(0);
    const c = f.calls[0];
    expect(c.url).toBe('https://collect.example.com/v1/batch');
    expect(c.init.method).toBe('POST');
    expect(c.init.headers).toEqual({ 'Content-Type': 'text/plain;charset=UTF-8' });
    expect(c.init.keepalive).toBe(false); // an aborted keepalive request is not cancelled by Chromium
    expect(c.init.signal).toBeInstanceOf(AbortSignal);
    expect(c.init.credentials).toBe('omit');
    expect(c.body.sentAt).toBe(T0);
    expect('dropped' in c.body).toBe(false);
    expect(Object.keys(c.body.events[0]).sort()).toEqual(
      ['eventId', 'eventType', 'timestamp', 'tenantId', 'sessionId', 'userId', 'pageUrl', 'referrer', 'deviceInfo', 'properties', 'seq'].sort(),
    );
  });

  it('exit sends use keepalive, except for bodies of 60 KB or more', async () => {
    const f = mockFetch(200);
    const { t } = mk(new MemStorage(), {}, { fetch: f.fn, sendBeacon: () => false });
    t._track('click', { tag: 'A', id: null });
    t._beaconFlush();
    expect(f.calls[0].init.keepalive).toBe(true);
    await vi.advanceTimersByTimeAsync(0);
    t._track('error', { message: 'x'.repeat(70000) });
    t._beaconFlush();
    expect(f.calls[1].init.keepalive).toBe(false);
  });
});

describe('offline', () => {
  const setOnLine = (value: boolean) => Object.defineProperty(navigator, 'onLine', { value, configurable: true });
  afterEach(() => setOnLine(true));

  it('attempts no request while navigator.onLine is false, by fetch or on page hide, and keeps the events', async () => {
    const f = mockFetch(200);
    const beacons: Blob[] = [];
    const { t } = mk(new MemStorage(), { batchSize: 2, flushIntervalMs: 1000 }, { fetch: f.fn, sendBeacon: (_u, b) => (beacons.push(b), true) });
    setOnLine(false);
    t._track('click', { tag: 'A', id: null });
    t._track('click', { tag: 'B', id: null });
    await vi.advanceTimersByTimeAsync(5000);
    t._beaconFlush();
    expect(f.calls).toHaveLength(0);
    expect(beacons).toHaveLength(0);
    expect(t._queue).toHaveLength(2);
    setOnLine(true);
    await vi.advanceTimersByTimeAsync(120000); // the next attempt of the backoff
    expect(f.events().map((e: any) => e.properties.tag)).toEqual(['A', 'B']);
  });
});

describe('retries', () => {
  it('backoffMs is full-jitter exponential with base 1 s and cap 60 s', () => {
    const max = Array.from({ length: 9 }, (_, i) => backoffMs(i, () => 1));
    expect(max).toEqual([1000, 2000, 4000, 8000, 16000, 32000, 60000, 60000, 60000]);
    expect(backoffMs(3, () => 0.25)).toBe(2000);
    expect(backoffMs(0, () => 0)).toBe(0);
  });

  it('retries 5xx / network errors on the jittered schedule, then succeeds and resets', async () => {
    const f = mockFetch(503, new TypeError('Failed to fetch'), 500, 502, 200);
    const { t } = mk(new MemStorage(), { batchSize: 1 }, { fetch: f.fn, random: () => 0.5 });
    t._track('click', { tag: 'A', id: null });
    await vi.advanceTimersByTimeAsync(0);
    expect(f.calls).toHaveLength(1);
    // random 0.5 => waits of 500, 1000, 2000, 4000 ms
    const times: number[] = [];
    for (const wait of [500, 1000, 2000, 4000]) {
      await vi.advanceTimersByTimeAsync(wait - 1);
      const before = f.calls.length;
      await vi.advanceTimersByTimeAsync(1);
      expect(f.calls.length).toBe(before + 1);
      times.push(Date.now() - T0);
    }
    expect(times).toEqual([500, 1500, 3500, 7500]);
    expect(t._queue).toHaveLength(0);
    expect(t._attempt).toBe(0);
    // every attempt carried the same event and a fresh sentAt
    const ids = new Set(f.calls.map((c) => c.body.events[0].eventId));
    expect(ids.size).toBe(1);
    expect(f.calls.map((c) => c.body.sentAt - T0)).toEqual([0, 500, 1500, 3500, 7500]);
  });

  it('caps the backoff at 60 s', async () => {
    const f = mockFetch(500);
    const { t } = mk(new MemStorage(), { batchSize: 1 }, { fetch: f.fn, random: () => 0.999999 });
    t._track('click', { tag: 'A', id: null });
    await vi.advanceTimersByTimeAsync(0);
    await vi.advanceTimersByTimeAsync(1000 + 2000 + 4000 + 8000 + 16000 + 32000);
    expect(f.calls).toHaveLength(7);
    await vi.advanceTimersByTimeAsync(59990);
    expect(f.calls).toHaveLength(7);
    await vi.advanceTimersByTimeAsync(10);
    expect(f.calls).toHaveLength(8);
  });

  it('honours Retry-After seconds on 429', async () => {
    const f = mockFetch({ status: 429, retryAfter: '7' }, 200);
    const { t } = mk(new MemStorage(), { batchSize: 1 }, { fetch: f.fn, random: () => 0 });
    t._track('click', { tag: 'A', id: null });
    await vi.advanceTimersByTimeAsync(0);
    expect(f.calls).toHaveLength(1);
    // new events and explicit flushes must not jump the Retry-After window
    t._track('click', { tag: 'B', id: null });
    await t._flush();
    await vi.advanceTimersByTimeAsync(6999);
    expect(f.calls).toHaveLength(1);
    await vi.advanceTimersByTimeAsync(1);
    // the retry drains both queued events (batchSize 1 => two requests back to back)
    expect(f.calls.map((c) => c.body.events[0].properties.tag)).toEqual(['A', 'A', 'B']);
    expect(t._queue).toHaveLength(0);
  });

  it('honours Retry-After on 503 and parses HTTP dates', async () => {
    expect(retryAfterMs('120', 0)).toBe(120000);
    expect(retryAfterMs(new Date(T0 + 30000).toUTCString(), T0)).toBe(30000);
    expect(retryAfterMs('garbage', T0)).toBeNull();
    expect(retryAfterMs(null, T0)).toBeNull();
    const f = mockFetch({ status: 503, retryAfter: '2' }, 200);
    const { t } = mk(new MemStorage(), { batchSize: 1 }, { fetch: f.fn, random: () => 0 });
    t._track('click', { tag: 'A', id: null });
    await vi.advanceTimersByTimeAsync(1999);
    expect(f.calls).toHaveLength(1);
    await vi.advanceTimersByTimeAsync(1);
    expect(f.calls).toHaveLength(2);
  });

  it('drops a batch on other 4xx without retrying and warns once', async () => {
    const warn = vi.spyOn(console, 'warn').mockImplementation(() => {});
    const f = mockFetch(400);
    const ls = new MemStorage();
    const { t } = mk(ls, { batchSize: 1 }, { fetch: f.fn });
    t._track('click', { tag: 'A', id: null });
    await vi.advanceTimersByTimeAsync(0);
    expect(f.calls).toHaveLength(1);
    expect(t._queue).toHaveLength(0);
    expect(queueKeys(ls)).toHaveLength(0);
    await vi.advanceTimersByTimeAsync(10 * 60000);
    expect(f.calls).toHaveLength(1);
    t._track('click', { tag: 'B', id: null });
    await vi.advanceTimersByTimeAsync(0);
    expect(f.calls).toHaveLength(2);
    expect(warn).toHaveBeenCalledTimes(1);
    expect(String(warn.mock.calls[0][0])).toContain('400');
  });

  it('splits a batch the server answers 413 (too large) for, and drops only the event that alone is too large', async () => {
    const bodies: any[] = [];
    const fetchFn = vi.fn(async (_u: string, init: RequestInit) => {
      const body = JSON.parse(String(init.body));
      bodies.push(body);
      return { status: String(init.body).includes('BIG') ? 413 : 202 };
    });
    const ls = new MemStorage();
    const { t } = mk(ls, { batchSize: 4 }, { fetch: fetchFn as any });
    for (const tag of ['A', 'BIG', 'C', 'D']) t._track('click', { tag, id: null });
    await vi.advanceTimersByTimeAsync(0);
    const stored = bodies.filter((b) => !JSON.stringify(b).includes('BIG')).flatMap((b) => b.events.map((e: any) => e.properties.tag));
    expect(stored.sort()).toEqual(['A', 'C', 'D']);
    expect(t._queue).toHaveLength(0);
    expect(queueKeys(ls)).toHaveLength(0);
  });

  it('retries a 408 (the body did not reach the server in time) instead of dropping the batch', async () => {
    const f = mockFetch(408, 202);
    const ls = new MemStorage();
    const { t } = mk(ls, { batchSize: 1 }, { fetch: f.fn });
    t._track('click', { tag: 'A', id: null });
    await vi.advanceTimersByTimeAsync(0);
    expect(t._queue).toHaveLength(1);
    await vi.advanceTimersByTimeAsync(1000);
    expect(f.calls).toHaveLength(2);
    expect(f.calls[1].body.events[0].eventId).toBe(f.calls[0].body.events[0].eventId);
    expect(t._queue).toHaveLength(0);
  });

  it('retries immediately when the browser comes back online', async () => {
    const f = mockFetch(new TypeError('offline'), 200);
    const { t } = mk(new MemStorage(), { batchSize: 1 }, { fetch: f.fn, random: () => 0.99, autocapture: true });
    await vi.advanceTimersByTimeAsync(0); // initial page_view (deferred) goes out and fails
    expect(f.calls).toHaveLength(1);
    window.dispatchEvent(new Event('online'));
    await vi.advanceTimersByTimeAsync(0);
    expect(f.calls).toHaveLength(2);
    expect(t._queue).toHaveLength(0);
  });
});

describe('queue bound', () => {
  it('drops oldest events beyond maxQueue and reports the count in `dropped` until a 2xx', async () => {
    const f = mockFetch(new TypeError('down'), 200);
    const ls = new MemStorage();
    const { t } = mk(ls, { maxQueue: 5, batchSize: 100, flushIntervalMs: 1000 }, { fetch: f.fn, random: () => 0.5 });
    for (let i = 1; i <= 8; i++) t._track('click', { tag: 'T' + i, id: null });
    expect(t._queue.map((e: any) => e.properties.tag)).toEqual(['T4', 'T5', 'T6', 'T7', 'T8']);
    expect(t._dropped).toBe(3);
    expect(ls.getItem(`tf:key-1:d:${t._tabId}`)).toBe('3');
    expect(stored(ls, t._tabId).map((e: any) => e.properties.tag)).toEqual(['T4', 'T5', 'T6', 'T7', 'T8']);
    await vi.advanceTimersByTimeAsync(1000); // fails
    expect(f.calls[0].body.dropped).toBe(3);
    t._track('click', { tag: 'T9', id: null }); // drops T4
    await vi.advanceTimersByTimeAsync(500); // retry after 0.5 * 1000 ms succeeds
    expect(f.calls).toHaveLength(2);
    expect(f.calls[1].body.dropped).toBe(4);
    expect(f.calls[1].body.events.map((e: any) => e.properties.tag)).toEqual(['T5', 'T6', 'T7', 'T8', 'T9']);
    expect(t._dropped).toBe(0);
    t._track('click', { tag: 'T10', id: null });
    await vi.advanceTimersByTimeAsync(1000);
    expect('dropped' in f.calls[2].body).toBe(false);
  });
});

const hide = () => {
  Object.defineProperty(document, 'visibilityState', { value: 'hidden', configurable: true });
  try {
    document.dispatchEvent(new Event('visibilitychange'));
  } finally {
    delete (document as any).visibilityState;
  }
};

describe('page hide: fetch keepalive, then sendBeacon, never a deletion without a 2xx', () => {
  it('sends the first batch by fetch (keepalive) on hide: its answer removes it when the page lives on', async () => {
    const f = mockFetch(200);
    const beacons: Blob[] = [];
    const ls = new MemStorage();
    const { t } = mk(ls, {}, { fetch: f.fn, autocapture: true, sendBeacon: (_u, b) => (beacons.push(b), true) });
    await vi.advanceTimersByTimeAsync(0); // page_view queued
    t._track('click', { tag: 'A', id: null });
    hide();
    expect(f.calls).toHaveLength(1);
    expect(f.calls[0].init.keepalive).toBe(true);
    expect(f.calls[0].body.events.map((e: any) => e.eventType)).toEqual(['page_view', 'click']);
    expect(beacons).toHaveLength(0); // everything is in flight already
    await vi.advanceTimersByTimeAsync(0);
    expect(t._queue).toHaveLength(0);
    expect(queueKeys(ls)).toHaveLength(0);
  });

  it('while the endpoint fails, hands the queue to sendBeacon as text/plain but keeps it until a 2xx', async () => {
    const f = mockFetch(503, 503, 200);
    const beacons: Array<{ url: string; blob: Blob }> = [];
    const ls = new MemStorage();
    const ss = new MemStorage();
    const { t } = mk(ls, { batchSize: 2 }, { fetch: f.fn, autocapture: true, sendBeacon: (url, blob) => (beacons.push({ url, blob }), true) }, ss);
    await vi.advanceTimersByTimeAsync(0); // page_view queued
    t._track('click', { tag: 'A', id: null }); // batch of 2 -> 503, backoff
    await vi.advanceTimersByTimeAsync(0);
    expect(f.calls).toHaveLength(1);
    t._track('click', { tag: 'B', id: null });
    window.dispatchEvent(new Event('pagehide'));
    expect(f.calls).toHaveLength(1); // the backoff is respected; the beacon is the exit attempt
    expect(beacons).toHaveLength(1);
    expect(beacons[0].url).toBe('https://collect.example.com/v1/batch');
    expect(beacons[0].blob.type).toBe('text/plain;charset=utf-8');
    const body = JSON.parse(await beacons[0].blob.text());
    expect(body.events.map((e: any) => e.eventType)).toEqual(['page_view', 'click', 'click']);
    expect(body.sentAt).toBe(T0);
    // true from sendBeacon only means "queued by the browser": nothing is removed
    expect(t._queue).toHaveLength(3);
    expect(stored(ls, t._tabId)).toHaveLength(3);
    window.dispatchEvent(new Event('pagehide'));
    expect(beacons).toHaveLength(1); // one exit attempt per hide

    // the next page load in this tab sends them again; only its 2xx removes them
    destroyTracker(t);
    const g = mockFetch(200);
    const { t: next } = mk(ls, { batchSize: 2 }, { fetch: g.fn }, ss);
    expect(next._tabId).toBe(t._tabId);
    expect(next._queue.map((e: any) => e.eventId)).toEqual(body.events.map((e: any) => e.eventId));
    await next._flush();
    expect(g.events().map((e: any) => e.eventId).sort()).toEqual(body.events.map((e: any) => e.eventId).sort());
    expect(queueKeys(ls)).toHaveLength(0);
  });

  it('an exit batch of 60 KB or more, sent without keepalive, goes by beacons too, in chunks under 60 KB', async () => {
    const f = mockFetch(200);
    const beacons: Blob[] = [];
    const { t } = mk(new MemStorage(), { batchSize: 20, flushIntervalMs: 60000 }, { fetch: f.fn, sendBeacon: (_u, b) => (beacons.push(b), true) });
    for (let i = 0; i < 10; i++) t._track('click', { tag: 'x'.repeat(10000), id: String(i) });
    t._beaconFlush();
    expect(f.calls).toHaveLength(1);
    expect(f.calls[0].init.keepalive).toBe(false); // dies with the page
    const sent = [];
    for (const blob of beacons) {
      const text = await blob.text();
      expect(new TextEncoder().encode(text).length).toBeLessThan(60000);
      sent.push(...JSON.parse(text).events.map((e: any) => e.properties.id));
    }
    expect(sent.sort()).toEqual(['0', '1', '2', '3', '4', '5', '6', '7', '8', '9']);
  });

  it('the exit fetch carries no dropped count either: its answer may never be seen', async () => {
    const f = mockFetch(503, 200, 200);
    const { t } = mk(new MemStorage(), { maxQueue: 2, batchSize: 100, flushIntervalMs: 1000 }, { fetch: f.fn, random: () => 0.5, sendBeacon: () => true });
    for (const tag of ['A', 'B', 'C']) t._track('click', { tag, id: null }); // A dropped
    await vi.advanceTimersByTimeAsync(1000); // 503 -> backoff: nothing in flight
    expect(f.calls[0].body.dropped).toBe(1);
    await vi.advanceTimersByTimeAsync(500); // the retry reports it
    expect(t._dropped).toBe(0);
    for (const tag of ['D', 'E', 'F']) t._track('click', { tag, id: null }); // D dropped
    expect(t._dropped).toBe(1);
    t._beaconFlush();
    const exit = f.calls[f.calls.length - 1];
    expect(exit.init.keepalive).toBe(true);
    expect('dropped' in exit.body).toBe(false);
    await vi.advanceTimersByTimeAsync(0);
    expect(t._dropped).toBe(1); // reported by a later fetch whose answer is seen
  });

  it('a full queue drops events that are not in flight, so none is both stored and counted as dropped', async () => {
    let answer: (v: any) => void = () => {};
    const calls: any[] = [];
    const fetch = (_url: string, init: RequestInit) => {
      calls.push(JSON.parse(String(init.body)));
      return new Promise((resolve) => (answer = resolve));
    };
    const { t } = mk(new MemStorage(), { maxQueue: 3, batchSize: 3, flushIntervalMs: 60000 }, { fetch: fetch as any });
    for (const tag of ['A', 'B', 'C']) t._track('click', { tag, id: null }); // a full batch: sent at once
    await vi.advanceTimersByTimeAsync(0);
    expect(calls).toHaveLength(1);
    t._track('click', { tag: 'D', id: null }); // the queue is full of events in flight
    expect(t._queue.map((e: any) => e.properties.tag)).toEqual(['A', 'B', 'C']);
    expect(t._dropped).toBe(1); // D, the only one not being sent
    answer({ status: 202, headers: { get: () => null } });
    await vi.advanceTimersByTimeAsync(0);
    expect(t._queue).toHaveLength(0);
    expect(calls[0].events.map((e: any) => e.properties.tag)).toEqual(['A', 'B', 'C']);
  });

  it('beacons carry no dropped count: it stays until a fetch reports it with a 2xx', async () => {
    const f = mockFetch(503, 200);
    const beacons: Blob[] = [];
    const ls = new MemStorage();
    const { t } = mk(ls, { maxQueue: 2, batchSize: 100, flushIntervalMs: 1000 }, { fetch: f.fn, random: () => 0.5, sendBeacon: (_u, b) => (beacons.push(b), true) });
    for (const tag of ['A', 'B', 'C']) t._track('click', { tag, id: null }); // A dropped
    await vi.advanceTimersByTimeAsync(1000); // 503 -> backoff
    t._beaconFlush();
    const body = JSON.parse(await beacons[0].text());
    expect(body.events.map((e: any) => e.properties.tag)).toEqual(['B', 'C']);
    expect('dropped' in body).toBe(false);
    expect(t._dropped).toBe(1);
    await vi.advanceTimersByTimeAsync(500); // retry by fetch
    expect(f.calls[1].body.dropped).toBe(1);
    expect(t._dropped).toBe(0);
    expect(queueKeys(ls)).toHaveLength(0);
  });

  it('beacons again after the page was visible again', async () => {
    const f = mockFetch(503);
    const beacons: Blob[] = [];
    const { t } = mk(new MemStorage(), { batchSize: 1 }, { fetch: f.fn, autocapture: true, sendBeacon: (_u, b) => (beacons.push(b), true) });
    t._track('click', { tag: 'A', id: null }); // 503 -> backoff
    await vi.advanceTimersByTimeAsync(0);
    hide();
    hide();
    expect(beacons).toHaveLength(1);
    document.dispatchEvent(new Event('visibilitychange')); // visible
    hide();
    expect(beacons).toHaveLength(2);
    expect(t._queue.length).toBeGreaterThan(0);
  });

  it('falls back to fetch keepalive when sendBeacon refuses, keeping events until 2xx', async () => {
    const f = mockFetch(503, 200);
    const ls = new MemStorage();
    const { t } = mk(ls, { batchSize: 1 }, { fetch: f.fn, sendBeacon: () => false });
    t._track('click', { tag: 'A', id: null }); // 503 -> backoff
    await vi.advanceTimersByTimeAsync(0);
    t._beaconFlush();
    expect(f.calls).toHaveLength(2);
    expect(f.calls[1].init.keepalive).toBe(true);
    expect(t._queue).toHaveLength(1); // not yet acknowledged
    await vi.advanceTimersByTimeAsync(0);
    expect(t._queue).toHaveLength(0);
  });

  it('beacons the events of a running request too (it dies with the page), but an exit send only once', async () => {
    let release!: (v: any) => void;
    const fetchFn = vi.fn(() => new Promise<any>((r) => (release = r)));
    const beacons: Blob[] = [];
    const { t } = mk(new MemStorage(), { batchSize: 1 }, { fetch: fetchFn as any, sendBeacon: (_u, b) => (beacons.push(b), true) });
    t._track('click', { tag: 'A', id: null }); // in flight
    t._track('click', { tag: 'B', id: null });
    t._beaconFlush();
    expect(fetchFn).toHaveBeenCalledTimes(1); // A's request is running: no second fetch
    const body = JSON.parse(await beacons[0].text());
    expect(body.events.map((e: any) => e.properties.tag)).toEqual(['A', 'B']);
    t._beaconFlush();
    expect(beacons).toHaveLength(1);
    release({ status: 200 }); // the page lived on: A's answer arrives
    await vi.advanceTimersByTimeAsync(0);
    expect(t._queue.map((e: any) => e.properties.tag)).toEqual(['B']); // beaconed, not yet acknowledged
    release({ status: 200 }); // B's own fetch
    await vi.advanceTimersByTimeAsync(0);
    expect(t._queue).toHaveLength(0);
  });
});

describe('request timeout', () => {
  it('aborts a request that hangs after timeoutMs, backs off and delivers once the endpoint answers', async () => {
    const signals: AbortSignal[] = [];
    let hang = true;
    const calls: any[] = [];
    const fetchFn = vi.fn((_url: string, init: RequestInit) => {
      calls.push(JSON.parse(String(init.body)));
      signals.push(init.signal!);
      if (!hang) return Promise.resolve({ status: 200 });
      return new Promise<any>((_, reject) => init.signal!.addEventListener('abort', () => reject(new DOMException('aborted', 'AbortError'))));
    });
    const { t } = mk(new MemStorage(), { batchSize: 1, timeoutMs: 3000 }, { fetch: fetchFn as any, random: () => 0.5 });
    t._track('click', { tag: 'A', id: null });
    await vi.advanceTimersByTimeAsync(2999);
    expect(signals[0].aborted).toBe(false);
    await vi.advanceTimersByTimeAsync(1);
    expect(signals[0].aborted).toBe(true);
    expect(t._attempt).toBe(1); // counted as a failure: backoff 0.5 * 1 s
    hang = false;
    await vi.advanceTimersByTimeAsync(500);
    expect(calls).toHaveLength(2);
    expect(t._queue).toHaveLength(0);
  });

  it('defaults to 10 s', () => {
    const { t } = mk(new MemStorage());
    expect(t._timeoutMs).toBe(10000);
  });
});
