// A recording, failing HTTP proxy in front of the TrackFlow worker, for the browser tests.
//
// `page.route` interception does not see navigator.sendBeacon, so the tests point the tracker at this proxy
// instead: it records every request that reaches it (fetch and beacon alike) and, depending on `mode`, forwards
// it to the worker or fails it:
//   pass   forward to the worker, answer with the worker's response
//   503    answer 503 (with CORS headers, so the page can read the status)
//   429    answer 429 with Retry-After: 1
//   hang   never answer (the request stays open until the client gives up)
//   reset  destroy the connection without an answer
// GET /tracker.js is forwarded too, unless `bundle` names a file to serve instead (to run a test against an
// older build of the tracker).
import { createServer, request as httpRequest } from 'node:http';
import { readFileSync } from 'node:fs';

const CORS = {
  'Access-Control-Allow-Origin': '*',
  'Access-Control-Allow-Methods': 'POST, OPTIONS',
  'Access-Control-Allow-Headers': 'Content-Type',
  'Access-Control-Expose-Headers': 'Retry-After',
};

/** Event ids and types in a batch body, or [] if it is not one. */
function eventsOf(body) {
  try {
    return JSON.parse(body).events.map((e) => ({ id: e.eventId, type: e.eventType }));
  } catch {
    return [];
  }
}

export async function startProxy({ target, bundle = null }) {
  const upstream = new URL(target);
  const state = { mode: 'pass', requests: [], hung: new Set() };
  const server = createServer((req, res) => {
    const chunks = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', () => {
      const body = Buffer.concat(chunks);
      const entry = {
        at: Date.now(),
        method: req.method,
        path: req.url,
        mode: state.mode,
        // sendBeacon sends no-cors requests, fetch() sends cors ones
        fetchMode: req.headers['sec-fetch-mode'] || null,
        contentType: req.headers['content-type'] || null,
        events: req.method == 'POST' ? eventsOf(body.toString('utf8')) : [],
        outcome: 'pending',
      };
      if (req.url.startsWith('/v1/batch') && req.method == 'POST') state.requests.push(entry);
      const done = (outcome) => (entry.outcome = outcome);
      if (req.method == 'GET' && req.url.startsWith('/tracker.js') && bundle) {
        res.writeHead(200, { 'Content-Type': 'application/javascript', 'Cache-Control': 'no-store', ...CORS });
        return res.end(readFileSync(bundle));
      }
      if (req.method == 'OPTIONS') {
        res.writeHead(204, CORS);
        return res.end();
      }
      const isBatch = req.url.startsWith('/v1/batch');
      const mode = isBatch ? state.mode : 'pass';
      if (mode == '503' || mode == '429') {
        done(mode);
        res.writeHead(+mode, { 'Content-Type': 'application/json', ...CORS, ...(mode == '429' ? { 'Retry-After': '1' } : {}) });
        return res.end(JSON.stringify({ error: mode == '429' ? 'rate_limited' : 'unavailable' }));
      }
      if (mode == 'reset') {
        done('reset');
        return req.socket.destroy();
      }
      if (mode == 'hang') {
        done('hung');
        state.hung.add(res);
        req.socket.on('close', () => {
          state.hung.delete(res);
          if (!res.writableEnded) done('hung, closed by the client');
        });
        return;
      }
      const fwd = httpRequest(
        {
          host: upstream.hostname,
          port: upstream.port,
          method: req.method,
          path: req.url,
          headers: { ...req.headers, host: upstream.host },
        },
        (up) => {
          done(String(up.statusCode));
          res.writeHead(up.statusCode, up.headers);
          up.pipe(res);
        },
      );
      fwd.on('error', (e) => {
        done('upstream error: ' + e.message);
        res.writeHead(502, CORS);
        res.end();
      });
      fwd.end(body);
    });
  });
  await new Promise((r) => server.listen(0, '127.0.0.1', r));
  return {
    url: `http://127.0.0.1:${server.address().port}`,
    state,
    setMode(mode) {
      state.mode = mode;
    },
    /** Batch requests seen since `since` (ms), optionally only those that carried event `id`. */
    batches(since = 0) {
      return state.requests.filter((r) => r.at >= since);
    },
    close() {
      for (const res of state.hung) res.destroy();
      server.closeAllConnections?.();
      server.close();
    },
  };
}
