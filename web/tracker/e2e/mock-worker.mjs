// A minimal stand-in for the TrackFlow worker, used only to self-test e2e/run.mjs
// (`TRACKFLOW_E2E_MOCK=1 npm run e2e`). It implements just what the e2e touches:
//   GET  /tracker.js            -> dist/trackflow.min.js with Cache-Control + ACAO
//   POST /v1/batch              -> text/plain JSON envelope, dedup by eventId, 202
//   GET  /v1/query/events       -> {"events":[row...]} for ?session_id=, bearer read secret
import { createServer } from 'node:http';
import { readFileSync } from 'node:fs';

// The seed's second error shape keeps its fields at the top level; the worker stores them as properties.
const errorProperties = (e) =>
  e.eventType == 'error' && ('message' in e || 'name' in e)
    ? { ...e.properties, name: e.name, message: e.message, source: e.source ?? null, line: e.line ?? null, col: e.col ?? null, stack: e.stack ?? null }
    : e.properties;

export function startMockWorker({ apiKey, readSecret, port = 0 } = {}) {
  const rows = new Map();
  const batches = [];
  const cors = { 'Access-Control-Allow-Origin': '*' };
  const server = createServer((req, res) => {
    const url = new URL(req.url, 'http://x');
    const json = (status, body, extra = {}) => {
      res.writeHead(status, { 'Content-Type': 'application/json', ...cors, ...extra });
      res.end(JSON.stringify(body));
    };
    if (req.method == 'GET' && url.pathname == '/tracker.js') {
      const js = readFileSync(new URL('../dist/trackflow.min.js', import.meta.url));
      res.writeHead(200, { 'Content-Type': 'application/javascript', 'Cache-Control': 'public, max-age=3600', ...cors });
      return res.end(js);
    }
    if (req.method == 'OPTIONS') {
      res.writeHead(204, { ...cors, 'Access-Control-Allow-Methods': 'POST', 'Access-Control-Allow-Headers': 'Content-Type' });
      return res.end();
    }
    if (req.method == 'POST' && url.pathname == '/v1/batch') {
      let body = '';
      req.on('data', (c) => (body += c));
      req.on('end', () => {
        let env;
        try {
          env = JSON.parse(body);
        } catch {
          return json(400, { error: 'bad_json' });
        }
        const evs = Array.isArray(env.events) ? env.events : [];
        if (!evs.length || evs.some((e) => e.tenantId !== apiKey)) return json(401, { error: 'unknown_api_key' });
        batches.push({ contentType: req.headers['content-type'], env });
        const now = Date.now();
        for (const e of evs) {
          if (rows.has(e.eventId)) continue;
          rows.set(e.eventId, {
            event_id: e.eventId,
            event_type: e.eventType,
            timestamp: e.timestamp,
            client_timestamp: e.timestamp,
            tenant_id: e.tenantId,
            session_id: e.sessionId,
            user_id: e.userId,
            page_url: e.pageUrl,
            referrer: e.referrer,
            device_type: e.deviceInfo.deviceType,
            os: e.deviceInfo.os,
            browser: e.deviceInfo.browser,
            ip_address: req.socket.remoteAddress,
            country: null,
            region: null,
            city: null,
            properties: errorProperties(e),
            received_at: now,
            seq: e.seq ?? null,
          });
        }
        return json(202, { status: 'accepted', accepted: evs.length });
      });
      return;
    }
    if (req.method == 'GET' && url.pathname == '/v1/query/events') {
      if (req.headers.authorization !== `Bearer ${readSecret}`) return json(401, { error: 'unauthorized' });
      const sid = url.searchParams.get('session_id');
      return json(200, { events: [...rows.values()].filter((r) => r.session_id == sid) });
    }
    json(404, { error: 'not_found' });
  });
  return new Promise((resolve) =>
    server.listen(port, '127.0.0.1', () => resolve({ server, batches, url: `http://127.0.0.1:${server.address().port}` })),
  );
}
