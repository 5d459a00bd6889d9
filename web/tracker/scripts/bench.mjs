// Main-thread cost of one tracked event, in real headless Chromium (`npm run bench`).
//
// A page loads the tracker bundle (dist/trackflow.min.js, or --bundle PATH), with sending held back
// (huge batchSize and flushIntervalMs), so the queue only grows. Clicks on a button are dispatched
// synchronously in a loop; each runs the tracker's capture-phase listener, which builds the event and
// persists it. The time per click minus the time per click on the same page without a tracker is the
// tracker's cost per event. Measured with `queued` events already in the queue (maxQueue above it), and at
// the queue bound (maxQueue = queued, so each event also drops the oldest). Every figure is from a fresh
// browser context; --runs sets how many.
//
//   node scripts/bench.mjs [--runs 5] [--events 200] [--queued 100,1000] [--bundle path/to/trackflow.min.js]
import { createServer } from 'node:http';
import { readFileSync } from 'node:fs';
import { chromium } from 'playwright-core';

const arg = (name, dflt) => {
  const i = process.argv.indexOf('--' + name);
  return i > 0 ? process.argv[i + 1] : dflt;
};
const RUNS = +arg('runs', 5);
const EVENTS = +arg('events', 200);
const QUEUED = arg('queued', '100,1000').split(',').map(Number);
const BUNDLE = arg('bundle', new URL('../dist/trackflow.min.js', import.meta.url).pathname);
const CHROMIUM = process.env.CHROMIUM_PATH || '/usr/bin/chromium';

const js = readFileSync(BUNDLE);
const page = (tracker, maxQueue) => `<!doctype html><html><head><meta charset="utf-8"><title>bench</title>
${tracker ? `<script src="/tracker.js"></script><script>
  TrackFlow.init({ apiKey: 'bench', endpoint: location.origin, batchSize: 1e9, flushIntervalMs: 1e9, maxQueue: ${maxQueue} });
</script>` : ''}</head><body><button id="b" type="button">b</button></body></html>`;
const server = createServer((req, res) => {
  const url = new URL(req.url, 'http://x');
  if (url.pathname == '/tracker.js') {
    res.writeHead(200, { 'Content-Type': 'application/javascript' });
    return res.end(js);
  }
  if (url.pathname == '/') {
    res.writeHead(200, { 'Content-Type': 'text/html' });
    return res.end(page(url.searchParams.get('t') == '1', +url.searchParams.get('max') || 1000));
  }
  res.writeHead(503);
  res.end();
});
await new Promise((r) => server.listen(0, '127.0.0.1', r));
const origin = `http://127.0.0.1:${server.address().port}`;
const browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: ['--headless', '--no-sandbox', '--disable-gpu'] });

/** ms per click, `n` clicks after `fill` clicks, on a fresh page. */
async function perClick(tracker, fill, n, maxQueue) {
  const context = await browser.newContext();
  const p = await context.newPage();
  await p.goto(`${origin}/?t=${tracker ? 1 : 0}&max=${maxQueue}`, { waitUntil: 'load' });
  await p.waitForTimeout(300); // page_view and performance are queued by now
  const r = await p.evaluate(
    ([fill, n]) => {
      const b = document.getElementById('b');
      const queued = () => Object.keys(localStorage).filter((k) => k.startsWith('tf:bench:') && !k.includes(':hb:')).length;
      for (let i = 0; i < fill; i++) b.click();
      const before = queued();
      const t0 = performance.now();
      for (let i = 0; i < n; i++) b.click();
      const ms = performance.now() - t0;
      return { ms: ms / n, before };
    },
    [fill, n],
  );
  await context.close();
  return r;
}

const median = (a) => [...a].sort((x, y) => x - y)[Math.floor(a.length / 2)];
const us = (ms) => (ms * 1000).toFixed(1).padStart(7) + ' µs';
console.log(`bundle ${BUNDLE}`);
console.log(`${RUNS} runs × ${EVENTS} clicks each; cost per tracked event = per click with tracker − per click without`);
const base = [];
for (let i = 0; i < RUNS; i++) base.push((await perClick(false, 0, EVENTS, 0)).ms);
console.log(`no tracker (click dispatch alone): median ${us(median(base))}`);
for (const queued of QUEUED) {
  for (const [label, maxQueue] of [
    ['below the bound', queued + EVENTS + 100],
    ['at the bound   ', queued],
  ]) {
    const per = [];
    let seen = 0;
    for (let i = 0; i < RUNS; i++) {
      const r = await perClick(true, queued - 2, EVENTS, maxQueue); // + page_view + performance
      per.push(r.ms - median(base));
      seen = r.before;
    }
    console.log(
      `${String(queued).padStart(5)} queued, ${label}: per event median ${us(median(per))}, runs ${per.map((x) => us(x).trim()).join(', ')}  (localStorage had ${seen} queue keys)`,
    );
  }
}
await browser.close();
server.close();
