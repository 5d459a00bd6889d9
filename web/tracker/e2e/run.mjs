// End-to-end check of the tracker against a running TrackFlow worker, in real headless Chromium.
//
//   TRACKFLOW_E2E_BASE_URL=http://127.0.0.1:6066 TRACKFLOW_E2E_API_KEY=... TRACKFLOW_E2E_READ_SECRET=... npm run e2e
//
// A static page is served from a separate origin (127.0.0.1:<random port>) so that CORS is exercised.
// The page loads ${BASE_URL}/tracker.js, and the scenario below is played; the worker's read API is then
// polled until the session's events show up, and they are compared with what must have been captured.
// Set TRACKFLOW_E2E_MOCK=1 to run against e2e/mock-worker.mjs instead (self-test of this script).
// Exit code: 0 all assertions passed, 1 an assertion failed, 2 setup problem.
import { createServer } from 'node:http';
import { chromium } from 'playwright-core';

const CHROMIUM = process.env.CHROMIUM_PATH || '/usr/bin/chromium';
const ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];
const POLL_TIMEOUT_MS = 60000;
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const log = (...a) => console.log('[e2e]', ...a);

let BASE = process.env.TRACKFLOW_E2E_BASE_URL;
let KEY = process.env.TRACKFLOW_E2E_API_KEY;
let SECRET = process.env.TRACKFLOW_E2E_READ_SECRET;
let mock = null;
if (process.env.TRACKFLOW_E2E_MOCK) {
  const { startMockWorker } = await import('./mock-worker.mjs');
  KEY ||= 'e2e-key';
  SECRET ||= 'e2e-secret';
  mock = await startMockWorker({ apiKey: KEY, readSecret: SECRET });
  BASE = mock.url;
  log('using the mock worker at', BASE);
}
if (!BASE || !KEY || !SECRET) {
  console.error('set TRACKFLOW_E2E_BASE_URL, TRACKFLOW_E2E_API_KEY and TRACKFLOW_E2E_READ_SECRET (or TRACKFLOW_E2E_MOCK=1)');
  process.exit(2);
}
BASE = BASE.replace(/\/+$/, '');

// ------------------------------------------------------------------ checks bookkeeping
const results = [];
function check(name, ok, detail = '') {
  results.push({ name, ok: !!ok, detail });
  console.log(`${ok ? 'PASS' : 'FAIL'}  ${name}${detail ? '  — ' + detail : ''}`);
}

// ------------------------------------------------------------------ static test site (other origin)
const page1 = (origin) => `<!doctype html>
<html><head><meta charset="utf-8"><title>TrackFlow e2e</title>
<script src="${BASE}/tracker.js"></script>
<script>
  window.trackerLoaded = typeof TrackFlow === 'object';
  if (window.trackerLoaded) {
    // ?flush=N overrides the flush interval (the unload scenario uses a long one so only the beacon can deliver)
    var flush = Number(new URLSearchParams(location.search).get('flush')) || 500;
    TrackFlow.init({ apiKey: ${JSON.stringify(KEY)}, endpoint: ${JSON.stringify(BASE)}, flushIntervalMs: flush });
    TrackFlow.identify('user-e2e');
  }
  window.boom = function () { setTimeout(function () { throw new Error('e2e boom'); }, 0); };
  window.rejectIt = function () { Promise.reject(new Error('e2e rejection')); };
</script></head>
<body>
  <h1>TrackFlow e2e (${origin})</h1>
  <button id="buy-button" type="button">Buy</button>
  <p class="plain">An element without id.</p>
</body></html>`;

const site = createServer((req, res) => {
  if (req.url == '/favicon.ico') {
    res.writeHead(204);
    return res.end();
  }
  res.writeHead(200, { 'Content-Type': 'text/html; charset=utf-8', 'Cache-Control': 'no-store' });
  res.end(page1(`http://${req.headers.host}`));
});
await new Promise((r) => site.listen(0, '127.0.0.1', r));
const ORIGIN = `http://127.0.0.1:${site.address().port}`;
log('test site', ORIGIN, '-> worker', BASE);

// ------------------------------------------------------------------ browser scenario
let browser;
const posted = []; // {via, status, ids}
const consoleLines = [];
let trackerResp = null;
let sessionId = null;
try {
  browser = await chromium.launch({ executablePath: CHROMIUM, args: ARGS, headless: true });
} catch (e) {
  console.error('cannot launch Chromium at', CHROMIUM, '-', e.message);
  site.close();
  mock?.server.close();
  process.exit(2);
}

try {
  const context = await browser.newContext();
  const page = await context.newPage();
  page.on('console', (m) => consoleLines.push(`console.${m.type()}: ${m.text()}`));
  page.on('pageerror', (e) => consoleLines.push(`pageerror: ${e.message}`));
  page.on('response', (r) => {
    if (r.url() == `${BASE}/tracker.js`) trackerResp = { status: r.status(), headers: r.headers() };
  });
  page.on('request', (r) => {
    if (!r.url().startsWith(`${BASE}/v1/batch`) || r.method() != 'POST') return;
    let ids = [];
    try {
      ids = JSON.parse(r.postData() || '{}').events.map((e) => `${e.eventType}:${e.eventId.slice(0, 8)}`);
    } catch {}
    const entry = { type: r.resourceType(), ctype: r.headers()['content-type'], ids, status: 'pending' };
    posted.push(entry);
    r.response().then((resp) => (entry.status = resp ? resp.status() : 'no response'), () => (entry.status = 'failed'));
  });
  page.on('requestfailed', (r) => {
    const e = posted.find((p) => p.status == 'pending' && r.url().startsWith(`${BASE}/v1/batch`));
    if (e) e.status = 'failed: ' + (r.failure()?.errorText || '?');
  });

  log('1. load page');
  await page.goto(ORIGIN + '/', { waitUntil: 'load' });
  const loaded = await page.evaluate(() => window.trackerLoaded);
  check('tracker.js loaded and defined window.TrackFlow', loaded);
  if (!loaded) throw new Error('tracker did not load; console: ' + consoleLines.join(' | '));
  await sleep(700); // performance event is taken just after 'load'

  log('2. click #buy-button');
  await page.click('#buy-button');

  log('3. uncaught error + unhandled rejection');
  await page.evaluate(() => window.boom());
  await page.evaluate(() => window.rejectIt());
  await sleep(200);

  log('4. SPA navigation to /second');
  await page.evaluate(() => history.pushState({}, '', '/second'));
  await sleep(1500); // let the online batches go out

  log('5. offline: two clicks on an element without id');
  await context.setOffline(true);
  await page.click('p.plain');
  await page.click('p.plain');
  await sleep(1500); // flush attempt fails -> backoff; events persist in localStorage
  // one localStorage key per queued event: tf:<apiKey>:e:<tabId>:<eventId>
  const queued = await page.evaluate((k) => Object.keys(localStorage).filter((x) => x.startsWith(`tf:${k}:e:`)).length, KEY);
  check('while offline the clicks wait in localStorage', queued == 2, `${queued} queued`);

  log('6. back online, read session id, close page (runBeforeUnload)');
  await context.setOffline(false);
  sessionId = await page.evaluate((k) => {
    try {
      return JSON.parse(sessionStorage.getItem(`tf:${k}:s`)).s;
    } catch {
      return null;
    }
  }, KEY);
  check('session id readable from sessionStorage', !!sessionId, String(sessionId));
  await Promise.all([page.waitForEvent('close'), page.close({ runBeforeUnload: true })]);
  await sleep(1000); // beacons/keepalive requests outlive the page, not necessarily the browser
} catch (e) {
  check('browser scenario ran to completion', false, e.message);
}

// Unload scenario: nothing is flushed by timer (flushIntervalMs 60 s), so the events can only
// reach the worker through the pagehide/visibilitychange exit path (keepalive fetch, then sendBeacon).
let beaconSession = null;
try {
  const context = await browser.newContext();
  const page = await context.newPage();
  log('7. unload scenario: load, click, close before any timed flush');
  await page.goto(ORIGIN + '/?flush=60000', { waitUntil: 'load' });
  await sleep(300);
  await page.click('#buy-button');
  beaconSession = await page.evaluate((k) => JSON.parse(sessionStorage.getItem(`tf:${k}:s`)).s, KEY);
  await Promise.all([page.waitForEvent('close'), page.close({ runBeforeUnload: true })]);
  await sleep(1000);
  await context.close();
} catch (e) {
  check('unload scenario ran to completion', false, e.message);
}

// ------------------------------------------------------------------ tracker.js headers
if (trackerResp) {
  check('GET /tracker.js answered 200', trackerResp.status == 200, `status ${trackerResp.status}`);
  check('GET /tracker.js has Cache-Control', !!trackerResp.headers['cache-control'], trackerResp.headers['cache-control']);
  check(
    'GET /tracker.js has Access-Control-Allow-Origin',
    !!trackerResp.headers['access-control-allow-origin'],
    trackerResp.headers['access-control-allow-origin'],
  );
} else check('browser fetched /tracker.js', false);

// ------------------------------------------------------------------ poll the read API
const EXPECTED = { page_view: 2, click: 3, error: 2, performance: 1 };
const TOTAL = Object.values(EXPECTED).reduce((a, b) => a + b, 0);
let lastErr = '';
async function poll(sid, total) {
  let rows = [];
  const url = `${BASE}/v1/query/events?session_id=${encodeURIComponent(sid)}`;
  const deadline = Date.now() + POLL_TIMEOUT_MS;
  let stableSince = 0;
  while (Date.now() < deadline) {
    try {
      const r = await fetch(url, { headers: { Authorization: `Bearer ${SECRET}` } });
      const text = await r.text();
      if (r.status != 200) lastErr = `HTTP ${r.status}: ${text.slice(0, 300)}`;
      else {
        rows = JSON.parse(text).events || [];
        lastErr = '';
      }
    } catch (e) {
      lastErr = e.message;
    }
    if (rows.length >= total) {
      stableSince ||= Date.now();
      if (Date.now() - stableSince >= 2000) break; // give stragglers/duplicates a chance to show up
    }
    await sleep(1000);
  }
  log(`read API returned ${rows.length} events for session ${sid}${lastErr ? ' (last error: ' + lastErr + ')' : ''}`);
  return rows;
}
const rows = sessionId ? await poll(sessionId, TOTAL) : [];
const beaconRows = beaconSession ? await poll(beaconSession, 3) : [];
await browser?.close().catch(() => {});
site.close();

// ------------------------------------------------------------------ assertions
const byType = (t) => rows.filter((r) => r.event_type == t);
const props = (r) => (typeof r.properties == 'string' ? JSON.parse(r.properties) : r.properties || {});
const counts = Object.fromEntries(Object.keys(EXPECTED).map((t) => [t, byType(t).length]));
const others = rows.filter((r) => !(r.event_type in EXPECTED));

check('read API answered', sessionId && !lastErr, lastErr);
check(`exactly ${TOTAL} events`, rows.length == TOTAL, `got ${rows.length}`);
for (const [t, n] of Object.entries(EXPECTED)) check(`${n} × ${t}`, counts[t] == n, `got ${counts[t]}`);
check('no unexpected event types', others.length == 0, others.map((r) => r.event_type).join(','));
const ids = rows.map((r) => r.event_id);
check('every event_id appears once', new Set(ids).size == ids.length);

const pvs = byType('page_view').sort((a, b) => (a.seq ?? 0) - (b.seq ?? 0) || a.timestamp - b.timestamp);
check('first page_view is the landing page', pvs[0]?.page_url == ORIGIN + '/', pvs[0]?.page_url);
check('second page_view ends in /second', !!pvs[1]?.page_url?.endsWith('/second'), pvs[1]?.page_url);
check('page_view has the title', pvs.every((r) => props(r).title == 'TrackFlow e2e'), pvs.map((r) => props(r).title).join(','));

const clicks = byType('click').map((r) => ({ ...props(r), url: r.page_url }));
const buy = clicks.filter((c) => c.tag == 'BUTTON' && c.id == 'buy-button');
const plain = clicks.filter((c) => c.id == null);
check('one click on BUTTON#buy-button', buy.length == 1, JSON.stringify(clicks));
check('buy-button click on the landing page', buy[0]?.url == ORIGIN + '/', buy[0]?.url);
check('two clicks without id (tag P) on /second', plain.length == 2 && plain.every((c) => c.tag == 'P' && c.url.endsWith('/second')));
// The tracker sends {"tag":"P","id":null}; the contract (ClickProperties.id: string | null) keeps the key.
check(
  'click properties keep "id": null (not dropped by the server)',
  plain.length == 2 && plain.every((c) => 'id' in c && c.id === null),
  plain.map((c) => JSON.stringify({ tag: c.tag, ...('id' in c ? { id: c.id } : {}) })).join(' '),
);

const errs = byType('error').map(props);
const boom = errs.find((e) => String(e.message).includes('e2e boom'));
const rej = errs.find((e) => String(e.message).includes('e2e rejection'));
check("error with message containing 'e2e boom'", !!boom, errs.map((e) => e.message).join(' | '));
check('error from the unhandled rejection', !!rej);
check(
  'error properties have the seed shape',
  errs.every((e) => typeof e.message == 'string' && typeof e.source == 'string' && Number.isInteger(e.line) && Number.isInteger(e.col) && 'stack' in e),
  JSON.stringify(errs.map((e) => ({ source: e.source, line: e.line, col: e.col, stack: typeof e.stack }))),
);
check('uncaught error has a source URL and line', !!boom && boom.source.startsWith(ORIGIN) && boom.line > 0, boom && `${boom.source}:${boom.line}:${boom.col}`);

const perf = byType('performance').map(props)[0];
check(
  'performance has loadTime >= 0 and domContentLoaded >= 0',
  perf && perf.loadTime >= 0 && perf.domContentLoaded >= 0,
  perf && `loadTime=${perf.loadTime} domContentLoaded=${perf.domContentLoaded}`,
);

check('same session_id on all events', rows.length > 0 && rows.every((r) => r.session_id == sessionId));
check("user_id 'user-e2e' on all events (identify runs before the first page_view is built)", rows.length > 0 && rows.every((r) => r.user_id == 'user-e2e'), [...new Set(rows.map((r) => r.user_id))].join(','));
check('device_type desktop', rows.length > 0 && rows.every((r) => r.device_type == 'desktop'), [...new Set(rows.map((r) => r.device_type))].join(','));
check('browser Chrome', rows.length > 0 && rows.every((r) => r.browser == 'Chrome'), [...new Set(rows.map((r) => r.browser))].join(','));
check('os Linux', rows.length > 0 && rows.every((r) => r.os == 'Linux'), [...new Set(rows.map((r) => r.os))].join(','));
check('page_url on the test origin', rows.length > 0 && rows.every((r) => String(r.page_url).startsWith(ORIGIN + '/')));
check('referrer null (direct load)', rows.every((r) => r.referrer == null), [...new Set(rows.map((r) => r.referrer))].join(','));
check('timestamps are integer ms', rows.length > 0 && rows.every((r) => Number.isInteger(r.timestamp) && r.timestamp > 1.6e12));
const seqs = rows.map((r) => r.seq);
check('seq values are integers and unique', rows.length > 0 && seqs.every(Number.isInteger) && new Set(seqs).size == seqs.length, JSON.stringify(seqs));
const sorted = [...seqs].sort((a, b) => a - b);
check('seq values are 1..N without gaps', sorted.every((s, i) => s == i + 1), JSON.stringify(sorted));

const bTypes = beaconRows.map((r) => r.event_type).sort();
check(
  'unload scenario: page_view, performance and click delivered once by the page-hide exit path',
  JSON.stringify(bTypes) == JSON.stringify(['click', 'page_view', 'performance']) && new Set(beaconRows.map((r) => r.event_id)).size == 3,
  bTypes.join(','),
);

// ------------------------------------------------------------------ summary
console.log('\nEvents stored for the session:');
for (const r of [...rows].sort((a, b) => (a.seq ?? 0) - (b.seq ?? 0)))
  console.log(`  seq=${r.seq} ${r.event_type.padEnd(11)} ${String(r.page_url).replace(ORIGIN, '')} user=${r.user_id} ${JSON.stringify(props(r)).slice(0, 90)}`);
console.log('Batches the browser POSTed to /v1/batch:');
for (const p of posted) console.log(`  [${p.type}] ${p.ctype} -> ${p.status}  ${p.ids.join(' ')}`);
if (mock) mock.server.close();
const failed = results.filter((r) => !r.ok);
if (failed.length) {
  console.log('\nBrowser console:');
  for (const l of consoleLines) console.log('  ' + l);
}
console.log(`\nE2E ${failed.length ? 'FAILED' : 'PASSED'}: ${results.length - failed.length}/${results.length} checks passed`);
process.exit(failed.length ? 1 : 0);
