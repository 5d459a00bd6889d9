// What the tracker captures, in real headless Chromium, checked in the worker's store:
//  - a click on a <span> inside <button id="nest"> is stored as {tag: BUTTON, id: nest}
//  - an SPA navigation `pushState('/spa/2'); document.title = 'Spa 2'` is stored with title "Spa 2"
//  - a muted cross-origin "Script error." is stored without a source (null), in the top-level error shape
//  - a rejection with reason Object.create(null) (String() throws) is stored as an error
//  - a queue in the earlier whole-queue localStorage layout (`q:<tab>`) is picked up by the next page load
//
//   TRACKFLOW_E2E_BASE_URL=... TRACKFLOW_E2E_API_KEY=... TRACKFLOW_E2E_READ_SECRET=... node e2e/capture.mjs
// (or TRACKFLOW_E2E_MOCK=1; see e2e/common.mjs). Exit code 0 all checks passed, 1 a check failed, 2 set-up problem.
import { check, finish, log, props, sessionOf, setUp, sleep, stored, trackerHead } from './common.mjs';

const pages = {
  '/': (env, url) => [
    'text/html; charset=utf-8',
    `<!doctype html><html><head>${trackerHead(env, url, 'Spa 1')}</head>
<body>
  <button id="nest" type="button"><span id="nest-label">Buy</span></button>
  <!-- another origin, no crossorigin attribute: its error reaches window.onerror muted, as "Script error." -->
  <script src="${env.other}/third-party.js"></script>
</body></html>`,
  ],
  '/third-party.js': () => ['application/javascript', "throw new Error('third-party detail that must stay hidden');"],
  // no tracker: writes a queue the way earlier tracker versions stored it, for the tab of this session
  '/seed': (env) => [
    'text/html; charset=utf-8',
    `<!doctype html><html><head><meta charset="utf-8"><title>seed</title><script>
  var key = ${JSON.stringify(env.key)}, sid = crypto.randomUUID(), tab = crypto.randomUUID();
  var ev = function (i) {
    return { eventId: crypto.randomUUID(), eventType: 'click', timestamp: Date.now() - 1000 + i, tenantId: key, sessionId: sid,
      userId: null, pageUrl: location.href, referrer: null, deviceInfo: { deviceType: 'desktop', os: 'Linux', browser: 'Chrome' },
      properties: { tag: 'BUTTON', id: 'old-' + i }, seq: i };
  };
  localStorage.setItem('tf:' + key + ':q:' + tab, JSON.stringify({ d: 0, e: [ev(1), ev(2)] }));
  localStorage.setItem('tf:' + key + ':hb:' + tab, '0');
  sessionStorage.setItem('tf:' + key + ':s', JSON.stringify({ s: sid, n: 2, t: tab }));
</script></head><body>seeded</body></html>`,
  ],
};
const env = await setUp(pages);
const { browser, key } = env;
const consoleLines = [];
let sid = null;
const context = await browser.newContext();
try {
  const page = await context.newPage();
  page.on('console', (m) => consoleLines.push(`console.${m.type()}: ${m.text()}`));
  page.on('pageerror', (e) => consoleLines.push(`pageerror: ${e.message}`));
  log('load, click the span inside button#nest, pushState + title, reject with Object.create(null)');
  await page.goto(env.site + '/?flush=300', { waitUntil: 'load' });
  await sleep(300);
  await page.click('#nest-label');
  await page.evaluate(() => {
    history.pushState({}, '', '/spa/2');
    document.title = 'Spa 2';
  });
  await page.evaluate(() => {
    Promise.reject(Object.create(null));
  });
  sid = await sessionOf(page, key);
  await sleep(1000);
} catch (e) {
  check('browser scenario ran to completion', false, e.message);
}

// earlier layout: seed it without a tracker, then load the tracker page in the same tab
let migrated = null;
const context2 = await browser.newContext();
try {
  const page = await context2.newPage();
  log('earlier localStorage layout: seed a q:<tab> queue, then load the tracker in the same tab');
  await page.goto(env.site + '/seed', { waitUntil: 'load' });
  const seeded = await page.evaluate((k) => {
    const name = Object.keys(localStorage).find((x) => x.startsWith(`tf:${k}:q:`));
    return { sid: JSON.parse(sessionStorage.getItem(`tf:${k}:s`)).s, ids: JSON.parse(localStorage.getItem(name)).e.map((e) => e.eventId) };
  }, key);
  await page.goto(env.site + '/?flush=300', { waitUntil: 'load' });
  await sleep(300);
  const left = await page.evaluate((k) => Object.keys(localStorage).filter((x) => x.startsWith(`tf:${k}:q:`)).length, key);
  migrated = { ...seeded, left };
} catch (e) {
  check('earlier-layout scenario ran to completion', false, e.message);
}

const rows = sid ? await stored(env, sid, (rs) => rs.length >= 6) : [];
const of = (t) => rows.filter((r) => r.event_type == t);
log(`${rows.length} events stored for session ${sid}`);

const clicks = of('click').map(props);
check('the click on <span> inside <button id="nest"> is stored as the button', clicks.length == 1 && clicks[0].tag == 'BUTTON' && clicks[0].id == 'nest', JSON.stringify(clicks));

const views = of('page_view');
const spa = views.find((r) => String(r.page_url).endsWith('/spa/2'));
check('the landing page_view has the title "Spa 1"', views.some((r) => r.page_url == env.site + '/?flush=300' && props(r).title == 'Spa 1'), views.map((r) => `${r.page_url}:${props(r).title}`).join(' '));
check('the SPA page_view for /spa/2 has the title the app set after pushState ("Spa 2")', spa && props(spa).title == 'Spa 2', spa && JSON.stringify(props(spa)));

const errors = of('error').map(props);
const muted = errors.filter((e) => e.message == 'Script error.');
check('the muted cross-origin error is stored once', muted.length == 1, errors.map((e) => e.message).join(' | '));
check('the muted cross-origin error has no source (null), not the page URL', muted.length == 1 && muted[0].source === null, muted[0] && JSON.stringify(muted[0]));
check('nothing of the cross-origin error detail leaked', !JSON.stringify(rows).includes('third-party detail'));
const nullProto = errors.filter((e) => e.message == '{}');
check('the rejection with reason Object.create(null) is stored as an error', nullProto.length == 1, errors.map((e) => e.message).join(' | '));
check('no other errors', errors.length == 2, errors.map((e) => e.message).join(' | '));

if (migrated) {
  const mrows = await stored(env, migrated.sid, (rs) => rs.length >= 4);
  const ids = new Set(mrows.map((r) => r.event_id));
  check('the earlier layout\'s whole-queue key is gone after the next load', migrated.left == 0, `${migrated.left} left`);
  check(
    'its two queued clicks are stored, and the new page continues the session',
    migrated.ids.every((id) => ids.has(id)) && mrows.some((r) => r.event_type == 'page_view' && r.seq == 3),
    mrows.map((r) => `${r.event_type}:${r.seq}`).sort().join(' '),
  );
}
await context2.close().catch(() => {});

console.log('\nEvents stored for the session:');
for (const r of [...rows].sort((a, b) => (a.seq ?? 0) - (b.seq ?? 0)))
  console.log(`  seq=${r.seq} ${r.event_type.padEnd(11)} ${String(r.page_url).replace(env.site, '')} ${JSON.stringify(props(r)).slice(0, 120)}`);
if (!rows.length) for (const l of consoleLines) console.log('  ' + l);
await context.close().catch(() => {});
await env.tearDown();
finish('E2E capture');
