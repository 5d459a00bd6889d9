import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import * as api from '../src/api';
import { autoInit } from '../src/auto';
import { OPT_OUT_KEY, destroyTracker, setOptOut } from '../src/tracker';
import { uuid } from '../src/uuid';
import { BASE, MemStorage, mockFetch, queueKeys, tab } from './helpers';

const T0 = Date.UTC(2024, 0, 1, 12, 0, 0);

beforeEach(() => {
  vi.useFakeTimers({ now: T0 });
  localStorage.clear();
  sessionStorage.clear();
});
afterEach(() => {
  api._reset();
  setOptOut(false, localStorage);
  vi.useRealTimers();
  for (const k of ['doNotTrack', 'globalPrivacyControl']) delete (navigator as any)[k];
  delete (window as any).doNotTrack;
});

function start(cfg = {}, ls = new MemStorage()) {
  const f = mockFetch(200);
  api.init({ ...BASE, flushIntervalMs: 1000, ...cfg }, { fetch: f.fn, localStorage: ls, sessionStorage: new MemStorage(), random: () => 0.5 });
  return { f, ls, t: api._instance() as any };
}

describe('public API', () => {
  it('identify() applies to the initial page_view when called right after init, and setUserId is an alias', async () => {
    const { f } = start();
    api.identify('user-7');
    await vi.advanceTimersByTimeAsync(0);
    document.body.click();
    api.setUserId('user-8');
    document.body.click();
    api.identify(null);
    document.body.click();
    await api.flush();
    expect(f.events().map((e: any) => [e.eventType, e.userId])).toEqual([
      ['page_view', 'user-7'],
      ['click', 'user-7'],
      ['click', 'user-8'],
      ['click', null],
    ]);
  });

  it('identify() before init() is remembered; a second init() is ignored', async () => {
    const warn = vi.spyOn(console, 'warn').mockImplementation(() => {});
    api.identify('early');
    const { f, t } = start();
    api.init({ apiKey: 'other', endpoint: 'https://elsewhere.example' });
    expect(api._instance()).toBe(t);
    expect(warn).toHaveBeenCalledTimes(1);
    await vi.advanceTimersByTimeAsync(1000);
    expect(f.events()[0]).toMatchObject({ userId: 'early', tenantId: 'key-1' });
  });

  it('init() without apiKey/endpoint warns and does nothing', () => {
    const warn = vi.spyOn(console, 'warn').mockImplementation(() => {});
    api.init({ apiKey: '', endpoint: 'x' } as any);
    api.init(undefined as any);
    expect(api._instance()).toBeNull();
    expect(warn).toHaveBeenCalledTimes(2);
  });

  it('flush() sends immediately and resolves; never rejects without init', async () => {
    await expect(api.flush()).resolves.toBeUndefined();
    const { f } = start({ flushIntervalMs: 60000 });
    await vi.advanceTimersByTimeAsync(0);
    await api.flush();
    expect(f.calls).toHaveLength(1);
  });
});

describe('opt-out', () => {
  it('optOut() clears the queue, stops sending and persists; optIn() resumes', async () => {
    const ls = new MemStorage();
    const { f } = start({ batchSize: 100 }, ls);
    await vi.advanceTimersByTimeAsync(0);
    document.body.click();
    expect(queueKeys(ls)).toHaveLength(2); // page_view and click, one key each
    api.optOut();
    expect(ls.getItem(OPT_OUT_KEY)).toBe('1');
    expect(queueKeys(ls)).toHaveLength(0);
    document.body.click();
    await api.flush();
    await vi.advanceTimersByTimeAsync(60000);
    expect(f.calls).toHaveLength(0);

    // a later page load (fresh module state) is still opted out via localStorage
    api._reset();
    setOptOut(false, null); // forget the in-memory flag only
    ls.setItem(OPT_OUT_KEY, '1');
    const again = start({}, ls);
    await vi.advanceTimersByTimeAsync(0);
    document.body.click();
    await vi.advanceTimersByTimeAsync(60000);
    expect(again.f.calls).toHaveLength(0);

    api.optIn();
    expect(ls.getItem(OPT_OUT_KEY)).toBeNull();
    document.body.click();
    await api.flush();
    expect(again.f.events().map((e: any) => e.eventType)).toEqual(['click']);
  });

  it('optOut() before init() deletes the events earlier pages queued, which a later optIn() never sends', async () => {
    const ls = new MemStorage();
    const down = mockFetch(503);
    api.init({ ...BASE, flushIntervalMs: 1000 }, { fetch: down.fn, localStorage: ls, sessionStorage: new MemStorage(), random: () => 0.5 });
    await vi.advanceTimersByTimeAsync(0);
    document.body.click();
    await vi.advanceTimersByTimeAsync(1000); // the endpoint is down: kept for a later page
    const earlier = down.events().map((e: any) => e.eventId);
    expect(earlier).toHaveLength(2); // page_view and click, tried once
    expect(queueKeys(ls)).toHaveLength(2);
    api._reset();

    api.optOut(); // the next page opts out before its init
    const { f } = start({}, ls);
    expect(queueKeys(ls)).toHaveLength(0);
    api.optIn();
    document.body.click();
    await api.flush();
    const sent = f.events().map((e: any) => e.eventId);
    expect(sent.length).toBeGreaterThan(0); // this page's own events, tracked after optIn()
    expect(sent.filter((id: string) => earlier.includes(id))).toEqual([]);
  });

  it('optOut() in another tab: this tab drops its queued copy too, so a later optIn() does not send it', async () => {
    const ls = new MemStorage();
    const fb = mockFetch(503, 202);
    const b = tab(ls, { batchSize: 1 }, { fetch: fb.fn });
    b.t._track('click', { tag: 'BEFORE', id: null });
    await vi.advanceTimersByTimeAsync(0); // 503: kept for a retry
    const a = tab(ls); // another tab
    a.t._optOut(); // deletes every stored queue of the API key
    await vi.advanceTimersByTimeAsync(2000); // B's retry: opted out, nothing sent
    const triedBefore = fb.calls.length;
    a.t._optIn();
    b.t._track('click', { tag: 'AFTER', id: null });
    await vi.advanceTimersByTimeAsync(120000);
    const sent = fb.calls.slice(triedBefore).flatMap((c) => c.body.events.map((e: any) => e.properties.tag));
    destroyTracker(a.t);
    destroyTracker(b.t);
    expect(sent).toEqual(['AFTER']);
  });

  it('optOut() before init() is stored in localStorage', async () => {
    api.optOut();
    expect(localStorage.getItem(OPT_OUT_KEY)).toBe('1');
    const f = mockFetch(200);
    api.init({ ...BASE }, { fetch: f.fn });
    await vi.advanceTimersByTimeAsync(10000);
    expect(f.calls).toHaveLength(0);
    api.optIn();
    expect(localStorage.getItem(OPT_OUT_KEY)).toBeNull();
  });
});

describe('Do-Not-Track / Global Privacy Control', () => {
  const setNav = (k: string, v: unknown) => Object.defineProperty(navigator, k, { value: v, configurable: true });

  it.each([
    ['navigator.doNotTrack = "1"', () => setNav('doNotTrack', '1'), { respectDoNotTrack: true }],
    ['window.doNotTrack = "1"', () => ((window as any).doNotTrack = '1'), { respectDoNotTrack: true }],
    ['navigator.globalPrivacyControl', () => setNav('globalPrivacyControl', true), { respectGlobalPrivacyControl: true }],
  ])('%s with the option set: nothing is captured or sent', async (_n, arrange, opts) => {
    arrange();
    const ls = new MemStorage();
    ls.setItem('tf:key-1:q:old-tab', JSON.stringify({ d: 0, e: [{ eventId: 'x' }] }));
    const { f, t } = start(opts, ls);
    await vi.advanceTimersByTimeAsync(0);
    document.body.click();
    await api.flush();
    await vi.advanceTimersByTimeAsync(60000);
    expect(f.calls).toHaveLength(0);
    expect(t._queue).toHaveLength(0);
    expect(queueKeys(ls)).toHaveLength(0); // stale queue purged
  });

  it('signals are ignored unless the matching option is set', async () => {
    setNav('doNotTrack', '1');
    setNav('globalPrivacyControl', true);
    const { f } = start({ respectDoNotTrack: false });
    await vi.advanceTimersByTimeAsync(0);
    await api.flush();
    expect(f.events().map((e: any) => e.eventType)).toEqual(['page_view']);
  });

  it('DNT "0" does not block', async () => {
    setNav('doNotTrack', '0');
    const { f } = start({ respectDoNotTrack: true, respectGlobalPrivacyControl: true });
    await vi.advanceTimersByTimeAsync(0);
    await api.flush();
    expect(f.calls).toHaveLength(1);
  });
});

describe('script-tag auto-init', () => {
  it('reads data-api-key and defaults the endpoint to the script origin', () => {
    const s = document.createElement('script');
    s.src = 'https://collect.example.net/tracker.js';
    s.setAttribute('data-api-key', 'pk_live_1');
    document.head.appendChild(s);
    autoInit(null);
    const t = api._instance() as any;
    expect(t._config.apiKey).toBe('pk_live_1');
    expect(t._batchUrl).toBe('https://collect.example.net/v1/batch');
    s.remove();
  });

  it('honours data-endpoint and privacy attributes; no data-api-key means no init', () => {
    const s = document.createElement('script');
    s.src = 'https://cdn.example.net/tracker.js';
    autoInit(s);
    expect(api._instance()).toBeNull();
    s.setAttribute('data-api-key', 'k2');
    s.setAttribute('data-endpoint', 'https://ingest.example.org/');
    s.setAttribute('data-respect-dnt', '');
    autoInit(s);
    const t = api._instance() as any;
    expect(t._batchUrl).toBe('https://ingest.example.org/v1/batch');
    expect(t._config.respectDoNotTrack).toBe(true);
    expect(t._config.respectGlobalPrivacyControl).toBe(false);
  });
});

describe('uuid', () => {
  const V4 = /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;
  it('uses crypto.randomUUID when present', () => {
    const spy = vi.spyOn(crypto, 'randomUUID').mockReturnValue('11111111-2222-4333-8444-555555555555');
    expect(uuid()).toBe('11111111-2222-4333-8444-555555555555');
    expect(spy).toHaveBeenCalled();
  });
  it('falls back to getRandomValues (insecure contexts have no randomUUID), then Math.random', () => {
    const real = globalThis.crypto;
    try {
      vi.stubGlobal('crypto', { getRandomValues: (b: Uint8Array) => b.fill(0xff) });
      expect(uuid()).toBe('ffffffff-ffff-4fff-bfff-ffffffffffff');
      vi.stubGlobal('crypto', { getRandomValues: (b: Uint8Array) => real.getRandomValues(b) });
      const ids = new Set(Array.from({ length: 500 }, () => uuid()));
      expect(ids.size).toBe(500);
      for (const id of ids) expect(id).toMatch(V4);
      vi.stubGlobal('crypto', undefined);
      expect(uuid()).toMatch(V4);
    } finally {
      vi.unstubAllGlobals();
    }
  });
});
