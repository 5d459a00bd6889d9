// Delivery while the endpoint fails, in real headless Chromium, with e2e/proxy.mjs between the tracker and the
// worker (it sees sendBeacon too, which page.route does not):
//
//  1. For 503, 429 and connection resets: 20 clicks queue up while the endpoint fails; the page reloads (its exit
//     beacon reaches the failing endpoint); the endpoint recovers. All 20 clicks must be stored, and nothing may
//     have left localStorage before that.
//  2. The endpoint hangs, then recovers: the hung request is aborted after timeoutMs and the events arrive.
//
//   TRACKFLOW_E2E_BASE_URL=... TRACKFLOW_E2E_API_KEY=... TRACKFLOW_E2E_READ_SECRET=... node e2e/faults.mjs
// (or TRACKFLOW_E2E_MOCK=1; see e2e/common.mjs). Exit code 0 all checks passed, 1 a check failed, 2 set-up problem.
import { check, finish, log, queued, sessionOf, setUp, sleep, stored, trackerHead } from './common.mjs';

const pages = {
  '/': (env, url) => [
    'text/html; charset=utf-8',
    `<!doctype html><html><head>${trackerHead(env, url, 'Faults')}</head>
<body><button id="buy-button" type="button">Buy</button></body></html>`,
  ],
};
const env = await setUp(pages);
const { browser, proxyCtl: proxy, key } = env;
const clicksOf = (list) => list.filter((e) => e.type == 'click').map((e) => e.id);

async function exitWhileFailing(mode) {
  log(`endpoint answers ${mode}: 20 clicks, reload, recover`);
  const context = await browser.newContext();
  const page = await context.newPage();
  try {
    proxy.setMode(mode);
    await page.goto(env.site + '/?flush=500', { waitUntil: 'load' });
    await sleep(800);
    for (let i = 0; i < 20; i++) await page.click('#buy-button');
    await sleep(800);
    const sid = await sessionOf(page, key);
    const before = clicksOf(await queued(page, key));
    check(`${mode}: the 20 clicks are queued in localStorage while the endpoint fails`, before.length == 20, `${before.length} queued`);

    const reloadAt = Date.now();
    await page.reload({ waitUntil: 'load' });
    await sleep(700);
    const after = new Set(clicksOf(await queued(page, key)));
    const kept = before.filter((id) => after.has(id)).length;
    check(`${mode}: after the reload all 20 clicks are still in localStorage`, kept == 20, `${kept} of 20 left`);
    const exit = proxy.batches(reloadAt).filter((r) => r.events.some((e) => before.includes(e.id)));
    check(
      `${mode}: the exit attempt carried the clicks and the endpoint failed it`,
      exit.length > 0 && exit.every((r) => r.outcome != '202' && r.outcome != '200'),
      exit.map((r) => `${r.fetchMode}:${r.outcome}`).join(' '),
    );

    proxy.setMode('pass');
    const rows = await stored(env, sid, (rs) => rs.filter((r) => r.event_type == 'click').length >= 20);
    const ids = new Set(rows.filter((r) => r.event_type == 'click').map((r) => r.event_id));
    const got = before.filter((id) => ids.has(id)).length;
    check(`${mode}: after the endpoint recovers all 20 clicks are stored, once each`, got == 20 && ids.size == 20, `${got} of 20 stored, ${ids.size} click rows`);
    let left = -1;
    for (let i = 0; i < 20 && left != 0; i++, await sleep(250)) left = (await queued(page, key)).length;
    check(`${mode}: localStorage is empty once the worker accepted everything`, left == 0, `${left} left`);
  } catch (e) {
    check(`${mode}: scenario ran to completion`, false, e.message);
  } finally {
    await context.close().catch(() => {});
  }
}

async function hangThenRecover() {
  log('endpoint hangs, then recovers (timeoutMs 1500)');
  const context = await browser.newContext();
  const page = await context.newPage();
  try {
    proxy.setMode('hang');
    const start = Date.now();
    await page.goto(env.site + '/?flush=300&timeout=1500', { waitUntil: 'load' });
    await sleep(500);
    for (let i = 0; i < 3; i++) await page.click('#buy-button');
    const sid = await sessionOf(page, key);
    await sleep(1200);
    const hung = proxy.batches(start).filter((r) => r.mode == 'hang');
    check('hang: the tracker sent a request that got no answer', hung.length > 0, `${hung.length} hung`);
    proxy.setMode('pass');
    const rows = await stored(env, sid, (rs) => rs.length >= 5, 30000);
    const types = rows.map((r) => r.event_type).sort();
    check(
      'hang: after recovery page_view, performance and 3 clicks are stored',
      JSON.stringify(types) == JSON.stringify(['click', 'click', 'click', 'page_view', 'performance']),
      types.join(','),
    );
    check(
      'hang: the hung request was given up by the page (aborted after timeoutMs)',
      hung.some((r) => r.outcome == 'hung, closed by the client'),
      hung.map((r) => r.outcome).join(' | '),
    );
  } catch (e) {
    check('hang: scenario ran to completion', false, e.message);
  } finally {
    await context.close().catch(() => {});
  }
}

for (const mode of ['503', '429', 'reset']) await exitWhileFailing(mode);
await hangThenRecover();

console.log('\nBatch requests the proxy saw:');
for (const r of proxy.state.requests)
  console.log(`  ${new Date(r.at).toISOString().slice(11, 23)} mode=${r.mode} ${r.fetchMode} ${r.contentType} -> ${r.outcome}  ${r.events.length} events`);
await env.tearDown();
finish('E2E faults');
