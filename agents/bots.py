"""Bot flagging: whether a User-Agent is a crawler, a headless browser or an HTTP library.

The patterns are CrawlerDetect's (the ``crawlerdetect`` package, a port of the maintained
JayBizzle/Crawler-Detect list): search-engine crawlers (Googlebot, Bingbot), monitoring and
preview fetchers, headless browsers and HTTP clients (curl, python-requests, Go-http-client).
An empty User-Agent is not flagged (the library finds nothing in it).

One uncached look-up matches about 1,500 patterns (0.2-0.6 ms, see README "Bots"); user agents
repeat from batch to batch, so answers are kept in an LRU cache.
"""

from __future__ import annotations

from functools import lru_cache

from crawlerdetect import CrawlerDetect

UA_CACHE_SIZE = 8192

_DETECTOR = CrawlerDetect()


@lru_cache(maxsize=UA_CACHE_SIZE)
def is_bot(user_agent: str) -> bool:
    """True when ``user_agent`` names a crawler, a headless browser or an HTTP library."""
    return bool(_DETECTOR.is_crawler(user_agent))
