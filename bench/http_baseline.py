"""B-http: an aiohttp server whose handler only reads and parses the body, then answers 202.

``python -m bench.http_baseline --port N``; prints ``ready`` once it listens. Driven by the same
load generator as the real edge, it is the ceiling for "HTTP + JSON parse" on this machine.
"""

from __future__ import annotations

import argparse
import asyncio

import orjson
import uvloop
from aiohttp import web


async def batch(request: web.Request) -> web.Response:
    document = orjson.loads(await request.read())
    accepted = len(document["events"])
    return web.Response(
        status=202,
        body=orjson.dumps({"status": "accepted", "accepted": accepted}),
        content_type="application/json",
    )


async def serve(host: str, port: int) -> None:
    app = web.Application()
    app.router.add_post("/v1/batch", batch)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, host, port, backlog=1024).start()
    print("ready", flush=True)
    await asyncio.Event().wait()


def main() -> None:
    p = argparse.ArgumentParser(prog="python -m bench.http_baseline")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, required=True)
    args = p.parse_args()
    uvloop.run(serve(args.host, args.port))


if __name__ == "__main__":
    main()
