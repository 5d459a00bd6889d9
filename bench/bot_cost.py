"""CPU cost of bot flagging (agents.bots.is_bot) per call, for a User-Agent seen for the first
time and for one already in the LRU cache.

    .venv/bin/python -m bench.bot_cost [--user-agents 2000]

Not a test: the figures behind README "Bots". Process CPU time, so other load on the host
matters less than with wall time (it still slows a shared core's caches).
"""

from __future__ import annotations

import argparse
import time

from agents.bots import is_bot
from bench.workload import USER_AGENTS

GOOGLEBOT = (
    "Mozilla/5.0 (Linux; Android 6.0.1; Nexus 5X Build/MMB29P) AppleWebKit/537.36 (KHTML, like "
    "Gecko) Chrome/120.0.6099.129 Mobile Safari/537.36 (compatible; Googlebot/2.1; "
    "+http://www.google.com/bot.html)"
)


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.bot_cost")
    parser.add_argument("--user-agents", type=int, default=2000)
    args = parser.parse_args()
    is_bot("warm-up")  # compiles the patterns once
    for name, user_agent in (("Chrome", USER_AGENTS["Chrome"]), ("Googlebot", GOOGLEBOT)):
        fresh = [f"{user_agent} v{i}" for i in range(args.user_agents)]  # each one a cache miss
        started = time.process_time()
        for text in fresh:
            is_bot(text)
        miss_us = (time.process_time() - started) / len(fresh) * 1e6
        calls = 200_000
        started = time.process_time()
        for _ in range(calls):
            is_bot(user_agent)
        hit_ns = (time.process_time() - started) / calls * 1e9
        print(f"{name}: first sight {miss_us:.0f} us/call, cached {hit_ns:.0f} ns/call")


if __name__ == "__main__":
    main()
