// Browser check of the TrackFlow dashboard in headless Debian Chromium (no browser download).
//
//   TRACKFLOW_E2E_BASE_URL=http://127.0.0.1:6066 TRACKFLOW_E2E_READ_SECRET=... node dashboard.mjs
//
// Optional: TRACKFLOW_E2E_INGEST_KEY (tried first: the dashboard must refuse it),
// TRACKFLOW_E2E_HASH (URL fragment, e.g. "from=2024-05-01T00:00:00Z&to=2024-05-02T00:00:00Z"),
// TRACKFLOW_E2E_SCREENSHOT (PNG path), CHROMIUM_PATH (default /usr/bin/chromium).
// Opens /dashboard, enters the secret, waits for every panel, opens the first error group's
// drill-down, and prints the rendered figures as one JSON document on stdout.
// Exit code: 0 printed, 1 the page misbehaved, 2 setup problem.
import { chromium } from 'playwright-core';

const BASE = (process.env.TRACKFLOW_E2E_BASE_URL || '').replace(/\/+$/, '');
const SECRET = process.env.TRACKFLOW_E2E_READ_SECRET || '';
const INGEST_KEY = process.env.TRACKFLOW_E2E_INGEST_KEY || '';
const HASH = process.env.TRACKFLOW_E2E_HASH || '';
const SCREENSHOT = process.env.TRACKFLOW_E2E_SCREENSHOT || '';
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
const log = (...a) => console.error('[dashboard-e2e]', ...a);

if (!BASE || !SECRET) {
  log('set TRACKFLOW_E2E_BASE_URL and TRACKFLOW_E2E_READ_SECRET');
  process.exit(2);
}

let browser;
try {
  browser = await chromium.launch({ executablePath: CHROMIUM, args: ARGS, headless: true });
} catch (error) {
  log('cannot start Chromium at', CHROMIUM, error.message);
  process.exit(2);
}

const problems = [];
try {
  const context = await browser.newContext({ viewport: { width: 1360, height: 900 } });
  const page = await context.newPage();
  page.on('pageerror', (error) => problems.push('page error: ' + error.message));
  let phase = 'start';
  page.on('console', (msg) => {
    if (msg.type() !== 'error') return;
    // The browser logs the refused ingest key's one 401 response; nothing else may fail.
    if (phase === 'ingest-key' && / 401 /.test(msg.text())) return;
    problems.push('console error: ' + msg.text());
  });
  // The network is closed: any request leaving the worker's origin is a defect.
  const origin = new URL(BASE).origin;
  await page.route('**/*', (route) => {
    const url = route.request().url();
    if (!url.startsWith(origin) && !url.startsWith('data:')) {
      problems.push('external request: ' + url);
      return route.abort();
    }
    return route.continue();
  });

  await page.goto(`${BASE}/dashboard${HASH ? '#' + HASH : ''}`, { waitUntil: 'load' });
  await page.waitForSelector('#login:not([hidden])', { timeout: 15000 });

  let ingestKeyRefused = null;
  if (INGEST_KEY) {
    phase = 'ingest-key';
    await page.fill('[data-testid="secret-input"]', INGEST_KEY);
    await page.click('[data-testid="secret-submit"]');
    await page.waitForSelector('[data-testid="login-error"]:not([hidden])', { timeout: 30000 });
    ingestKeyRefused = (await page.textContent('[data-testid="login-error"]')).trim();
    const stored = await page.evaluate(() => localStorage.getItem('trackflow.readSecret'));
    if (stored) problems.push('a refused key stayed in localStorage');
  }

  phase = 'secret';
  await page.fill('[data-testid="secret-input"]', SECRET);
  await page.click('[data-testid="secret-submit"]');
  await page.waitForSelector('[data-testid="status"][data-state="ready"]', { timeout: 60000 });

  const firstError = await page.$('[data-testid="error-row"]');
  if (firstError) {
    await firstError.click();
    await page.waitForSelector('[data-testid="error-detail"][data-state="ready"]', { timeout: 30000 });
  }

  // A reload keeps the secret (localStorage) and the range (URL fragment).
  await page.reload({ waitUntil: 'load' });
  await page.waitForSelector('[data-testid="status"][data-state="ready"]', { timeout: 60000 });
  const hashAfterReload = await page.evaluate(() => location.hash);
  if (firstError) {
    await page.click('[data-testid="error-row"]');
    await page.waitForSelector('[data-testid="error-detail"][data-state="ready"]', { timeout: 30000 });
  }

  const figures = await page.evaluate(() => {
    const num = (v) => (v === '' || v === undefined || v === null ? null : Number(v));
    const value = (testid) => num(document.querySelector(`[data-testid="${testid}"]`).dataset.value);
    const rows = (selector, fields) =>
      [...document.querySelectorAll(selector)].map((tr) => {
        const out = {};
        for (const [field, numeric] of Object.entries(fields)) {
          const cell = tr.querySelector(`[data-field="${field}"]`);
          const raw = cell ? cell.dataset.value : undefined;
          out[field] = numeric ? num(raw) : raw === '' ? null : raw;
        }
        return out;
      });
    const perf = (tr) => {
      const out = {};
      for (const f of ['samples', 'load_p50', 'load_p75', 'load_p95', 'dcl_p50', 'dcl_p75', 'dcl_p95']) {
        out[f] = num(tr.querySelector(`[data-field="${f}"]`).dataset.value);
      }
      return out;
    };
    const chart = document.querySelector('[data-testid="traffic-chart"]');
    const duration = document.querySelector('[data-testid="avg-duration"]');
    const detail = document.querySelector('[data-testid="error-detail"]');
    const breakdowns = {};
    for (const dim of ['device_type', 'os', 'browser', 'country']) {
      breakdowns[dim] = rows(`#breakdown-${dim} [data-testid="breakdown-row"]`, { value: false, sessions: true, page_views: true });
    }
    return {
      status: document.querySelector('[data-testid="status"]').dataset.state,
      include_bots: document.querySelector('[data-testid="include-bots"]').checked,
      traffic: {
        page_views: value('total-page-views'),
        sessions: value('total-sessions'),
        users: value('total-users'),
        points: num(chart.dataset.points),
        interval: chart.dataset.interval,
        series_page_views: num(chart.dataset.sumPageViews),
        polylines: chart.querySelectorAll('polyline').length,
      },
      sessions: {
        sessions: num(duration.dataset.sessions),
        bounces: num(duration.dataset.bounces),
        pages_per_session: value('pages-per-session'),
        bounce_rate: value('bounce-rate'),
        avg_duration_ms: value('avg-duration'),
      },
      pages: rows('[data-testid="pages-row"]', { page_url: false, page_views: true, sessions: true }),
      referrers: rows('[data-testid="referrers-row"]', { referrer: false, page_views: true, sessions: true }),
      breakdowns,
      errors: {
        total_errors: value('errors-total'),
        total_groups: value('errors-groups'),
        groups: [...document.querySelectorAll('[data-testid="error-row"]')].map((tr) => ({
          fingerprint: tr.dataset.fingerprint,
          message: tr.querySelector('[data-field="message"]').dataset.value,
          count: num(tr.querySelector('[data-field="count"]').dataset.value),
          sessions: num(tr.querySelector('[data-field="sessions"]').dataset.value),
          first_seen: num(tr.querySelector('[data-field="first_seen"]').dataset.value),
          last_seen: num(tr.querySelector('[data-field="last_seen"]').dataset.value),
        })),
        detail: detail.hidden
          ? null
          : {
              fingerprint: detail.dataset.fingerprint,
              stack: document.querySelector('[data-testid="error-stack"]').textContent,
              occurrences: num(detail.dataset.occurrences),
            },
      },
      performance: {
        overall: perf(document.querySelector('[data-testid="perf-overall"]')),
        pages: [...document.querySelectorAll('[data-testid="perf-row"]')].map((tr) => ({
          page_url: tr.querySelector('[data-field="page_url"]').dataset.value,
          ...perf(tr),
        })),
      },
      health: {
        events: value('health-events'),
        dead_lettered_total: value('health-dead-total'),
        sink_buffered_rows: value('health-buffered'),
        dead_lettered: Object.fromEntries(
          [...document.querySelectorAll('[data-testid="dead-letter-row"]')].map((tr) => [
            tr.querySelector('[data-field="reason"]').dataset.value,
            num(tr.querySelector('[data-field="events"]').dataset.value),
          ])
        ),
      },
    };
  });
  figures.ingest_key_refused = ingestKeyRefused;
  figures.hash_after_reload = hashAfterReload;
  figures.problems = problems;

  if (SCREENSHOT) {
    await page.screenshot({ path: SCREENSHOT, fullPage: true });
    log('screenshot saved to', SCREENSHOT);
  }
  process.stdout.write(JSON.stringify(figures) + '\n');
  await browser.close();
  process.exit(problems.length ? 1 : 0);
} catch (error) {
  log('failed:', error.stack || error.message);
  for (const p of problems) log(p);
  await browser.close().catch(() => {});
  process.exit(1);
}
