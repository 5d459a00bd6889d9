// Shared set-up of the browser tests that put e2e/proxy.mjs between the tracker and the worker
// (e2e/faults.mjs, e2e/capture.mjs). Same environment as e2e/run.mjs:
//   TRACKFLOW_E2E_BASE_URL, TRACKFLOW_E2E_API_KEY, TRACKFLOW_E2E_READ_SECRET   a running worker
//   TRACKFLOW_E2E_MOCK=1                                                        or e2e/mock-worker.mjs
//   TRACKFLOW_E2E_BUNDLE=path/to/trackflow.min.js   serve this build instead of the worker's /tracker.js
//                                                   (e.g. an older build, to see a test fail on it)
import { createServer } from 'node:http';
import { chromium } from 'playwright-core';
import { startProxy } from './proxy.mjs';

const CHROMIUM = process.env.CHROMIUM_PATH || '/usr/bin/chromium';
const ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'];

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
export const log = (...a) => console.log('[e2e]', ...a);

const results = [];
export function check(name, ok, detail = '') {
  results.push({ name, ok: !!ok });
  console.log(`${ok ? 'PASS' : 'FAIL'}  ${name}${detail ? '  — ' + detail : ''}`);
}

/** Worker (or mock), proxy in front of it, a test site on its own origin, Chromium. */
export async function setUp(pages) {
  let base = process.env.TRACKFLOW_E2E_BASE_URL;
  let key = process.env.TRACKFLOW_E2E_API_KEY;
  let secret = process.env.TRACKFLOW_E2E_READ_SECRET;
  let mock = null;
  if (process.env.TRACKFLOW_E2E_MOCK) {
    const { startMockWorker } = await import('./mock-worker.mjs');
    key ||= 'e2e-key';
    secret ||= 'e2e-secret';
    mock = await startMockWorker({ apiKey: key, readSecret: secret });
    base = mock.url;
  }
  if (!base || !key || !secret) {
    console.error('set TRACKFLOW_E2E_BASE_URL, TRACKFLOW_E2E_API_KEY and TRACKFLOW_E2E_READ_SECRET (or TRACKFLOW_E2E_MOCK=1)');
    process.exit(2);
  }
  base = base.replace(/\/+$/, '');
  const bundle = process.env.TRACKFLOW_E2E_BUNDLE || null;
  const proxy = await startProxy({ target: base, bundle });
  const env = { base, key, secret, proxy: proxy.url };
  const site = createServer((req, res) => {
    const url = new URL(req.url, 'http://x');
    const page = pages[url.pathname];
    if (!page) {
      res.writeHead(404);
      return res.end();
    }
    const [type, body] = page(env, url);
    res.writeHead(200, { 'Content-Type': type, 'Cache-Control': 'no-store' });
    res.end(body);
  });
  await new Promise((r) => site.listen(0, '127.0.0.1', r));
  env.site = `http://127.0.0.1:${site.address().port}`;
  // a second origin (another port) for cross-origin scripts
  const other = createServer((req, res) => site.emit('request', req, res));
  await new Promise((r) => other.listen(0, '127.0.0.1', r));
  env.other = `http://127.0.0.1:${other.address().port}`;
  log('site', env.site, '-> proxy', proxy.url, '-> worker', base, bundle ? `(tracker bundle ${bundle})` : '');
  let browser;
  try {
    browser = await chromium.launch({ executablePath: CHROMIUM, args: ARGS, headless: true });
  } catch (e) {
    console.error('cannot launch Chromium at', CHROMIUM, '-', e.message);
    process.exit(2);
  }
  const tearDown = async () => {
    await browser.close().catch(() => {});
    proxy.close();
    site.close();
    other.close();
    mock?.server.close();
  };
  return { ...env, proxyCtl: proxy, browser, tearDown };
}

/** The tracker page: loads /tracker.js through the proxy and sends to the proxy. ?flush= and ?timeout= tune it. */
export function trackerHead(env, url, title) {
  const flush = Number(url.searchParams.get('flush')) || 500;
  const timeout = Number(url.searchParams.get('timeout')) || 10000;
  return `<meta charset="utf-8"><title>${title}</title>
<script src="${env.proxy}/tracker.js"></script>
<script>
  TrackFlow.init({ apiKey: ${JSON.stringify(env.key)}, endpoint: ${JSON.stringify(env.proxy)}, flushIntervalMs: ${flush}, timeoutMs: ${timeout} });
</script>`;
}

/** Events queued in the page's localStorage (this layout: one key per event; the earlier one: a queue per key). */
export function queued(page, key) {
  return page.evaluate((k) => {
    const out = [];
    for (const name of Object.keys(localStorage)) {
      if (!name.startsWith(`tf:${k}:`)) continue;
      let v = null;
      try {
        v = JSON.parse(localStorage.getItem(name));
      } catch {}
      if (v && v.eventId) out.push(v);
      else if (v && Array.isArray(v.e)) out.push(...v.e);
    }
    return out.map((e) => ({ id: e.eventId, type: e.eventType }));
  }, key);
}

export function sessionOf(page, key) {
  return page.evaluate((k) => JSON.parse(sessionStorage.getItem(`tf:${k}:s`)).s, key);
}

/** Poll the read API until `done(rows)` holds (then 1.5 s more for stragglers) or the timeout passes. */
export async function stored(env, sessionId, done, timeoutMs = 40000) {
  const url = `${env.base}/v1/query/events?session_id=${encodeURIComponent(sessionId)}`;
  const deadline = Date.now() + timeoutMs;
  let rows = [];
  let settled = 0;
  while (Date.now() < deadline) {
    try {
      const r = await fetch(url, { headers: { Authorization: `Bearer ${env.secret}` } });
      if (r.status == 200) rows = (await r.json()).events || [];
    } catch {}
    if (done(rows)) {
      settled ||= Date.now();
      if (Date.now() - settled > 1500) break;
    } else settled = 0;
    await sleep(500);
  }
  return rows;
}

export const props = (r) => (typeof r.properties == 'string' ? JSON.parse(r.properties) : r.properties || {});

export function finish(label) {
  const failed = results.filter((r) => !r.ok);
  console.log(`\n${label} ${failed.length ? 'FAILED' : 'PASSED'}: ${results.length - failed.length}/${results.length} checks passed`);
  process.exit(failed.length ? 1 : 0);
}
