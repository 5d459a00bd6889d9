// Main-thread cost of one tracked event, in real headless Chromium (`npm run bench`; Linux only).
//
// A page loads the tracker bundle (dist/trackflow.min.js, or --bundle PATH) with sending held back (huge
// batchSize and flushIntervalMs), so the queue only grows. It is filled to `queued` events by clicks, then
// `events` more clicks on a button are dispatched synchronously in one loop; each runs the tracker's
// capture-phase listener, which builds the event and persists it. Two configurations per queue length:
//   below the bound  maxQueue above the queue, so the queue grows from `queued`
//   at the bound     maxQueue = queued, so each event also drops (and unpersists) the oldest one
// Figures per tracked event, each minus the same page without a tracker (click dispatch alone):
//   cpu      CPU time of the renderer's main thread (/proc/<pid>/task/<pid>/schedstat) across the loop,
//            so time the thread spent preempted by other processes does not count
//   fastest  wall time of the fastest batch of 10 clicks (performance.now, cross-origin isolated: 5 µs steps)
//   mean     wall time of the whole loop
// Every run is a fresh browser context; --runs sets how many; the medians are printed with all runs.
//
//   node scripts/bench.mjs [--runs 5] [--events 500] [--queued 100,1000] [--bundle path/to/trackflow.min.js]
import { createServer } from 'node:http';
import { readFileSync, readdirSync } from 'node:fs';
import { chromium } from 'playwright-core';

const arg = (name, dflt) => {
  const i = process.argv.indexOf('--' + name);
  return i > 0 ? process.argv[i + 1] : dflt;
};
const RUNS = +arg('runs', 5);
const EVENTS = +arg('events', 500);
const QUEUED = arg('queued', '100,1000').split(',').map(Number);
const BUNDLE = arg('bundle', new URL('../dist/trackflow.min.js', import.meta.url).pathname);
const CHROMIUM = process.env.CHROMIUM_PATH || '/usr/bin/chromium';

const js = readFileSync(BUNDLE);
const page = (tracker, maxQueue) => `<!doctype html><html><head><meta charset="utf-8"><title>bench</title>
${tracker ? `<script src="/tracker.js"></script><script>
  TrackFlow.init({ apiKey: 'bench', endpoint: location.origin, batchSize: 1e9, flushIntervalMs: 1e9, maxQueue: ${maxQueue} });
</script>` : ''}</head><body><button id="b" type="button">b</button></body></html>`;
// cross-origin isolated, so performance.now() has 5 µs resolution instead of 100 µs
const ISOLATED = { 'Cross-Origin-Opener-Policy': 'same-origin', 'Cross-Origin-Embedder-Policy': 'require-corp' };
const server = createServer((req, res) => {
  const url = new URL(req.url, 'http://x');
  if (url.pathname == '/tracker.js') {
    res.writeHead(200, { 'Content-Type': 'application/javascript', ...ISOLATED });
    return res.end(js);
  }
  if (url.pathname == '/') {
    res.writeHead(200, { 'Content-Type': 'text/html', ...ISOLATED });
    return res.end(page(url.searchParams.get('t') == '1', +url.searchParams.get('max') || 1000));
  }
  res.writeHead(503);
  res.end();
});
await new Promise((r) => server.listen(0, '127.0.0.1', r));
const origin = `http://127.0.0.1:${server.address().port}`;
const browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: ['--headless', '--no-sandbox', '--disable-gpu'] });

/** Pids of Chromium renderer processes right now. */
function renderers() {
  const out = new Set();
  for (const pid of readdirSync('/proc').filter((d) => /^\d+$/.test(d))) {
    try {
      if (readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes('--type=renderer')) out.add(pid);
    } catch {}
  }
  return out;
}
/** ns the main thread of process `pid` has run on a CPU (NaN once the process has exited:
 * Chromium may start a spare renderer that is gone before the measurement ends). */
const cpuNs = (pid) => {
  try {
    return Number(readFileSync(`/proc/${pid}/task/${pid}/schedstat`, 'utf8').split(' ')[0]);
  } catch {
    return NaN;
  }
};

/** Per click: {cpu, fastest, mean} in ms, `n` clicks after `fill` clicks, on a fresh page. */
async function perClick(tracker, fill, n, maxQueue) {
  const old = renderers();
  const context = await browser.newContext();
  const p = await context.newPage();
  await p.goto(`${origin}/?t=${tracker ? 1 : 0}&max=${maxQueue}`, { waitUntil: 'load' });
  const mine = [...renderers()].filter((pid) => !old.has(pid));
  await p.waitForTimeout(300); // page_view and performance are queued by now
  const queued = await p.evaluate((fill) => {
    if (!crossOriginIsolated) throw new Error('page is not cross-origin isolated: timer resolution too coarse');
    const b = document.getElementById('b');
    for (let i = 0; i < fill; i++) b.click();
    let q = 0; // events in localStorage, in either layout (one key per event, or one queue per tab)
    for (const k of Object.keys(localStorage)) {
      if (!k.startsWith('tf:bench:')) continue;
      const v = JSON.parse(localStorage.getItem(k));
      q += v && v.eventId ? 1 : v && v.e ? v.e.length : 0;
    }
    return q;
  }, fill);
  await p.waitForTimeout(500); // let the page settle before the CPU window opens
  const cpu0 = mine.map(cpuNs);
  const r = await p.evaluate((n) => {
    const b = document.getElementById('b');
    let fastest = Infinity;
    const start = performance.now();
    for (let done = 0; done < n; done += 10) {
      const t0 = performance.now();
      for (let i = 0; i < 10; i++) b.click();
      fastest = Math.min(fastest, (performance.now() - t0) / 10);
    }
    return { fastest, mean: (performance.now() - start) / n };
  }, n);
  // the renderer that ran the loop is the one whose main thread used the most CPU in it
  const used = mine.map((pid, i) => cpuNs(pid) - cpu0[i]).filter((ns) => Number.isFinite(ns));
  const cpu = Math.max(...used) / 1e6 / n;
  await context.close();
  return { ...r, cpu, queued };
}

const median = (a) => [...a].sort((x, y) => x - y)[Math.floor(a.length / 2)];
const us = (ms) => (ms * 1000).toFixed(1) + ' µs';
console.log(`bundle ${BUNDLE}`);
console.log(`${RUNS} runs × ${EVENTS} clicks; per tracked event = per click with the tracker − per click without`);
const base = { cpu: [], fastest: [], mean: [] };
for (let i = 0; i < RUNS; i++) {
  const r = await perClick(false, 0, EVENTS, 0);
  for (const k in base) base[k].push(r[k]);
}
console.log(`without tracker, per click: cpu ${us(median(base.cpu))}, fastest ${us(median(base.fastest))}, mean ${us(median(base.mean))}`);
for (const queued of QUEUED) {
  for (const [label, maxQueue] of [
    ['below the bound', queued + EVENTS + 100],
    ['at the bound', queued],
  ]) {
    const per = { cpu: [], fastest: [], mean: [] };
    let seen = 0;
    for (let i = 0; i < RUNS; i++) {
      const r = await perClick(true, queued - 2, EVENTS, maxQueue); // + page_view + performance
      for (const k in per) per[k].push(r[k] - median(base[k]));
      seen = r.queued;
    }
    console.log(`${queued} queued (${seen} in localStorage), ${label}:`);
    for (const k in per) console.log(`  ${k.padEnd(8)} median ${us(median(per[k])).padStart(10)}   runs ${per[k].map(us).join(', ')}`);
  }
}
await browser.close();
server.close();
