#!/usr/bin/env bash
# POST the seed's four example events plus the second error shape to a running worker,
# with fresh eventIds and current timestamps (the seed's 2021 timestamps are past retention).
#   deploy/examples/post-seed-examples.sh [base-url] [api-key]
set -euo pipefail
base="${1:-http://127.0.0.1:${TRACKFLOW_WEB_PORT:-6066}}"
key="${2:-${TRACKFLOW_API_KEYS:-dev-key}}"
key="${key%%,*}"
body="$(python3 - "$key" <<'PY'
import json, sys, time, uuid
key, now = sys.argv[1], int(time.time() * 1000)
base = {"tenantId": key, "sessionId": "session-123", "userId": "user-456",
        "pageUrl": "https://example.com", "referrer": "https://google.com",
        "deviceInfo": {"deviceType": "desktop", "os": "Windows", "browser": "Chrome"}}
def event(kind, offset, **fields):
    return {"eventId": str(uuid.uuid4()), "eventType": kind, "timestamp": now + offset, **base, **fields}
print(json.dumps({"events": [
    event("page_view", 0, properties={"title": "Example Page"}),
    event("click", 1, properties={"tag": "BUTTON", "id": "submit-button"}),
    event("error", 2, properties={"message": "Cannot read property 'x' of undefined",
          "source": "https://example.com/app.js", "line": 42, "col": 15,
          "stack": "TypeError: Cannot read property 'x' of undefined\n    at doSomething (app.js:42:15)"}),
    event("performance", 3, properties={"loadTime": 2450, "domContentLoaded": 1200}),
    event("error", 4, name="TypeError", message="x is not a function", source="https://example.com/app.js",
          line=7, col=3, stack="TypeError: x is not a function\n    at main (app.js:7:3)", properties={}),
]}))
PY
)"
# --fail-with-body: a refusal (a wrong key, a worker not ready) prints its JSON and exits 22.
curl -sS --fail-with-body -X POST "$base/v1/batch" -H 'Content-Type: application/json' --data-binary "$body"
echo
