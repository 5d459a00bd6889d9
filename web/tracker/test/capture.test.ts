import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { destroyTracker } from '../src/tracker';
import { MemStorage, mockFetch, tab } from './helpers';

const T0 = Date.UTC(2024, 0, 1, 12, 0, 0);
let trackers: any[] = [];
const UA = navigator.userAgent;

beforeEach(() => {
  vi.useFakeTimers({ now: T0 });
  history.replaceState(null, '', '/start?x=1');
  document.title = 'Start page';
});
afterEach(() => {
  trackers.forEach((t) => destroyTracker(t));
  trackers = [];
  vi.useRealTimers();
  Object.defineProperty(navigator, 'userAgent', { value: UA, configurable: true });
});

function live(opts = {}) {
  const ls = new MemStorage();
  const ss = new MemStorage();
  const r = tab(ls, opts, { autocapture: true }, ss);
  trackers.push(r.t);
  return { ...r, ls, ss };
}

describe('automatic capture', () => {
  it('builds BaseEvent-shaped events with session, seq and device info', async () => {
    Object.defineProperty(navigator, 'userAgent', {
      value: 'Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36',
      configurable: true,
    });
    const { t, ss } = live();
    await vi.advanceTimersByTimeAsync(0);
    const pv = t._queue[0];
    expect(pv).toMatchObject({
      eventType: 'page_view',
      timestamp: T0,
      tenantId: 'key-1',
      userId: null,
      pageUrl: 'https://shop.example.com/start?x=1',
      referrer: null,
      deviceInfo: { deviceType: 'desktop', os: 'Windows', browser: 'Chrome' },
      properties: { title: 'Start page' },
      seq: 1,
    });
    expect(pv.eventId).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
    expect(JSON.parse(ss.getItem('tf:key-1:s')!)).toMatchObject({ s: pv.sessionId, n: 1 });
    t._userId = 'u-1';
    document.getElementById('nope');
    document.body.innerHTML = '<button id="buy">Buy</button><p>text</p>';
    document.getElementById('buy')!.click();
    expect(t._queue[1]).toMatchObject({ eventType: 'click', userId: 'u-1', seq: 2, sessionId: pv.sessionId });
  });

  it('records a page_view for initial load and each SPA navigation', async () => {
    const { t } = live();
    await vi.advanceTimersByTimeAsync(0);
    history.pushState({}, '', '/products/42');
    document.title = 'Product';
    await vi.advanceTimersByTimeAsync(100);
    history.replaceState({ scroll: 1 }, ''); // same URL: no new page view
    history.replaceState({}, '', '/products/42?tab=reviews');
    document.title = 'Reviews';
    location.hash = '#specs';
    window.dispatchEvent(new HashChangeEvent('hashchange'));
    await vi.advanceTimersByTimeAsync(100);
    history.back();
    await vi.advanceTimersByTimeAsync(50);
    window.dispatchEvent(new PopStateEvent('popstate'));
    await vi.advanceTimersByTimeAsync(100);
    const views = t._queue.filter((e: any) => e.eventType == 'page_view');
    expect(views.map((e: any) => new URL(e.pageUrl).pathname + new URL(e.pageUrl).search + new URL(e.pageUrl).hash)).toEqual([
      '/start?x=1',
      '/products/42',
      '/products/42?tab=reviews',
      '/products/42?tab=reviews#specs',
      '/products/42?tab=reviews',
    ]);
    expect(views.map((e: any) => e.properties.title)).toEqual(['Start page', 'Product', 'Reviews', 'Reviews', 'Reviews']);
    expect(history.pushState({}, '', '/x')).toBeUndefined(); // wrapper returns what the original returns
  });

  it('reads an SPA page_view title after the app set it, keeping the URL, time and seq of the navigation', async () => {
    const { t } = live();
    await vi.advanceTimersByTimeAsync(0);
    vi.setSystemTime(T0 + 1000);
    history.pushState({}, '', '/spa/2');
    document.title = 'Spa 2';
    document.body.click(); // tracked while the page_view waits for its title
    expect(t._queue.map((e: any) => e.eventType)).toEqual(['page_view', 'click']);
    await vi.advanceTimersByTimeAsync(100); // the next frame, at most 100 ms later
    const pv = t._queue[2];
    expect(pv).toMatchObject({ eventType: 'page_view', pageUrl: 'https://shop.example.com/spa/2', timestamp: T0 + 1000, seq: 2, properties: { title: 'Spa 2' } });
    expect(t._queue[1].seq).toBe(3);
  });

  it('two quick navigations keep their own URLs; page hide queues a page_view still waiting for its title', async () => {
    const { t, ls, f } = live();
    await vi.advanceTimersByTimeAsync(0);
    history.pushState({}, '', '/a');
    history.pushState({}, '', '/b');
    document.title = 'B';
    window.dispatchEvent(new Event('pagehide'));
    const views = t._queue.filter((e: any) => e.eventType == 'page_view').slice(1);
    expect(views.map((e: any) => [new URL(e.pageUrl).pathname, e.properties.title])).toEqual([
      ['/a', 'B'],
      ['/b', 'B'],
    ]);
    expect(ls.keys().filter((k) => k.includes(':e:'))).toHaveLength(3); // persisted before the page goes
    await vi.advanceTimersByTimeAsync(200); // their frame / 100 ms pass: not queued twice
    expect(f.events().filter((e: any) => e.eventType == 'page_view')).toHaveLength(3);
    expect(t._queue).toHaveLength(0);
  });

  it('captures clicks in the capture phase, even when propagation is stopped', async () => {
    const { t } = live();
    document.body.innerHTML = '<div id="wrap"><button id="buy-button">Buy</button><span>no id</span></div><svg id="icon"></svg>';
    document.getElementById('wrap')!.addEventListener('click', (e) => e.stopPropagation());
    document.getElementById('buy-button')!.click();
    document.querySelector('span')!.click();
    document.getElementById('icon')!.dispatchEvent(new MouseEvent('click', { bubbles: true }));
    const clicks = t._queue.filter((e: any) => e.eventType == 'click').map((e: any) => e.properties);
    expect(clicks).toEqual([
      { tag: 'BUTTON', id: 'buy-button' },
      { tag: 'SPAN', id: null },
      { tag: 'SVG', id: 'icon' },
    ]);
  });

  it('reports the nearest interactive ancestor of a click target, else the target itself', () => {
    const { t } = live();
    document.body.innerHTML = `
      <button id="nest"><span id="inner">Buy</span></button>
      <a href="/x"><svg><path id="p"></path></svg></a>
      <label for="elsewhere"><b>Name</b></label><input id="in">
      <div role="button" id="rb"><i>x</i></div>
      <div onclick="void 0"><em>y</em></div>
      <section id="sec"><p>plain</p></section>`;
    for (const sel of ['#inner', '#p', 'label b', '#rb i', 'em', '#sec p', '#in'])
      document.querySelector(sel)!.dispatchEvent(new MouseEvent('click', { bubbles: true }));
    expect(t._queue.filter((e: any) => e.eventType == 'click').map((e: any) => e.properties)).toEqual([
      { tag: 'BUTTON', id: 'nest' },
      { tag: 'A', id: null },
      { tag: 'LABEL', id: null },
      { tag: 'DIV', id: 'rb' },
      { tag: 'DIV', id: null },
      { tag: 'P', id: null },
      { tag: 'INPUT', id: 'in' },
    ]);
  });


  it('captures uncaught errors and unhandled rejections', () => {
    const { t } = live();
    const err = new TypeError("Cannot read properties of undefined (reading 'x')");
    err.stack = "TypeError: Cannot read properties of undefined (reading 'x')\n    at go (https://cdn.example.com/app.js:42:15)";
    window.dispatchEvent(new ErrorEvent('error', { message: 'Uncaught TypeError: boom', filename: 'https://cdn.example.com/app.js', lineno: 42, colno: 15, error: err }));
    window.dispatchEvent(new ErrorEvent('error', { message: 'Script error.' }));
    const rej = new Error('e2e rejection');
    rej.stack = 'Error: e2e rejection\n    at https://static.example.com/page.js:7:11';
    window.dispatchEvent(Object.assign(new Event('unhandledrejection'), { reason: rej }));
    window.dispatchEvent(Object.assign(new Event('unhandledrejection'), { reason: 'plain string' }));
    window.dispatchEvent(new Event('error')); // resource-style error without message: ignored
    const errs = t._queue.filter((e: any) => e.eventType == 'error');
    expect(errs.map((e: any) => e.properties)).toEqual([
      { message: 'Uncaught TypeError: boom', source: 'https://cdn.example.com/app.js', line: 42, col: 15, stack: err.stack },
      {},
      { message: 'e2e rejection', source: 'https://static.example.com/page.js', line: 0, col: 0, stack: rej.stack },
      { message: 'plain string', source: location.href, line: 0, col: 0, stack: null },
    ]);
    // a muted cross-origin error has no filename: the contract's top-level error shape, without a source
    expect(errs[1]).toMatchObject({ name: 'Error', message: 'Script error.', source: null, line: 0, col: 0, stack: null });
    expect('name' in errs[0]).toBe(false);
  });

  it('keeps at most 100 error events per page, messages to 2,000 characters and stacks to 8,000', () => {
    const { t } = live();
    const err = new Error('x');
    err.stack = 's'.repeat(20000);
    for (let i = 0; i < 150; i++)
      window.dispatchEvent(new ErrorEvent('error', { message: 'm'.repeat(5000), filename: 'https://cdn.example.com/app.js', lineno: i, error: err }));
    const errs = t._queue.filter((e: any) => e.eventType == 'error');
    expect(errs).toHaveLength(100);
    expect(errs[0].properties.message).toHaveLength(2000);
    expect(errs[0].properties.stack).toHaveLength(8000);
    expect(errs[99].properties.line).toBe(99);
  });

  it('turns every rejection reason into an error event, also ones whose String() throws', () => {
    const { t } = live();
    const nullProto = Object.assign(Object.create(null), { code: 7 });
    const hostile = {
      get message() {
        throw new Error('getter');
      },
    };
    const reasons = [Object.create(null), nullProto, null, undefined, 42, hostile, Symbol('s'), { toString: () => 'custom' }];
    for (const reason of reasons) window.dispatchEvent(Object.assign(new Event('unhandledrejection'), { reason }));
    const msgs = t._queue.filter((e: any) => e.eventType == 'error').map((e: any) => e.properties.message);
    expect(msgs).toEqual(['{}', '{"code":7}', 'null', 'undefined', '42', 'Unhandled rejection', 'Symbol(s)', 'custom']);
  });


  it('emits one performance event from Navigation Timing once loadEventEnd is set', async () => {
    const entry = { startTime: 0, domContentLoadedEventEnd: 812.4, loadEventEnd: 0 };
    const spy = vi.spyOn(performance, 'getEntriesByType').mockImplementation(((type: string) => (type == 'navigation' ? [entry] : [])) as any);
    const { t, f } = live();
    await vi.advanceTimersByTimeAsync(250);
    expect(t._queue.some((e: any) => e.eventType == 'performance')).toBe(false);
    entry.loadEventEnd = 1530.6;
    await vi.advanceTimersByTimeAsync(10000); // includes a flush
    expect(t._queue).toHaveLength(0);
    const perf = f.events().filter((e: any) => e.eventType == 'performance');
    expect(perf).toHaveLength(1);
    expect(perf[0].properties).toEqual({ loadTime: 1531, domContentLoaded: 812 });
    expect(spy).toHaveBeenCalledWith('navigation');
  });

  it('falls back to performance.timing', async () => {
    vi.spyOn(performance, 'getEntriesByType').mockReturnValue([]);
    const saved = Object.getOwnPropertyDescriptor(performance, 'timing');
    Object.defineProperty(performance, 'timing', {
      value: { navigationStart: 1000, domContentLoadedEventEnd: 1400, loadEventEnd: 2100 },
      configurable: true,
    });
    try {
      const { t } = live();
      await vi.advanceTimersByTimeAsync(10);
      expect(t._queue.find((e: any) => e.eventType == 'performance').properties).toEqual({ loadTime: 1100, domContentLoaded: 400 });
    } finally {
      if (saved) Object.defineProperty(performance, 'timing', saved);
      else delete (performance as any).timing;
    }
  });

  it('never throws into the host page, even with broken storage and fetch', async () => {
    const broken = {
      getItem() {
        throw new Error('SecurityError');
      },
      setItem() {
        throw new Error('QuotaExceededError');
      },
      removeItem() {
        throw new Error('x');
      },
      key() {
        throw new Error('x');
      },
      get length(): number {
        throw new Error('x');
      },
    } as unknown as Storage;
    const fetchFn = vi.fn(() => {
      throw new Error('sync explosion');
    });
    const r = tab(broken as any, { batchSize: 1 }, { autocapture: true, fetch: fetchFn as any, sessionStorage: broken }, broken as any);
    trackers.push(r.t);
    await vi.advanceTimersByTimeAsync(0);
    expect(() => document.body.click()).not.toThrow();
    expect(() => history.pushState({}, '', '/after')).not.toThrow();
    expect(() => window.dispatchEvent(new Event('pagehide'))).not.toThrow();
    await vi.advanceTimersByTimeAsync(5000);
    expect(fetchFn).toHaveBeenCalled();
    expect(r.t._queue.length).toBeGreaterThan(0); // kept in memory for retry
  });

  it('keeps in memory what localStorage has no room for', async () => {
    const ls = new MemStorage();
    const set = ls.setItem.bind(ls);
    ls.setItem = (k: string, v: string) => {
      if (ls.keys().filter((x) => x.includes(':e:')).length >= 5) throw new Error('QuotaExceededError');
      set(k, v);
    };
    const { t } = tab(ls, { batchSize: 100 }, {});
    trackers.push(t);
    for (let i = 0; i < 20; i++) t._track('click', { tag: 'T' + i, id: null });
    expect(t._queue).toHaveLength(20);
    expect(ls.keys().filter((x) => x.includes(':e:'))).toHaveLength(5);
    await t._flush();
    expect(t._queue).toHaveLength(0);
    expect(ls.keys().filter((x) => x.includes(':e:'))).toHaveLength(0);
  });
});

describe('click properties', () => {
  it('reports id as a string or null, also for a form whose field is named "id"', () => {
    const { t } = live();
    document.body.innerHTML = '<form id="signup"><input name="id"></form><form><input name="id"></form>';
    const forms = document.querySelectorAll('form');
    // Browsers expose a form's fields as its properties, so form.id is the <input name="id"> (jsdom does not: emulate)
    for (const form of forms) Object.defineProperty(form, 'id', { get: () => form.querySelector('input') });
    forms[0].dispatchEvent(new MouseEvent('click', { bubbles: true }));
    forms[1].dispatchEvent(new MouseEvent('click', { bubbles: true }));
    const clicks = t._queue.filter((e: any) => e.eventType == 'click').map((e: any) => e.properties);
    expect(clicks).toEqual([
      { tag: 'FORM', id: 'signup' },
      { tag: 'FORM', id: null },
    ]);
  });
});

describe('bfcache restore without room in storage', () => {
  it('keeps events that live in memory only when the page comes back from bfcache', async () => {
    const f = mockFetch(new TypeError('offline'));
    const ls = new MemStorage();
    ls.setItem = () => {
      throw new Error('QuotaExceededError'); // Safari private mode, or a full origin quota
    };
    const r = tab(ls, { batchSize: 100 }, { autocapture: true, fetch: f.fn, sendBeacon: () => true });
    trackers.push(r.t);
    await vi.advanceTimersByTimeAsync(0);
    r.t._track('click', { tag: 'A', id: null });
    window.dispatchEvent(new Event('pagehide')); // into bfcache: beacons sent, nothing acknowledged
    window.dispatchEvent(new PageTransitionEvent('pageshow', { persisted: true }));
    expect(r.t._queue.map((e: any) => e.eventType).sort()).toEqual(['click', 'page_view']);
  });
});
