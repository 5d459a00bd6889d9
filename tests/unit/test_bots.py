"""agents.bots: which User-Agents are flagged as bots, and the flag on processed events."""

from __future__ import annotations

import pytest

from agents.bots import UA_CACHE_SIZE, is_bot
from agents.validate import process_batch
from tests.unit.factories import build, make_batch, policy

GOOGLEBOT = (
    "Mozilla/5.0 (Linux; Android 6.0.1; Nexus 5X Build/MMB29P) AppleWebKit/537.36 (KHTML, like "
    "Gecko) Chrome/120.0.6099.129 Mobile Safari/537.36 (compatible; Googlebot/2.1; "
    "+http://www.google.com/bot.html)"
)
BINGBOT = "Mozilla/5.0 (compatible; bingbot/2.0; +http://www.bing.com/bingbot.htm)"
CHROME = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/124.0.0.0 Safari/537.36"
)
IPHONE_SAFARI = (
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like "
    "Gecko) Version/17.4 Mobile/15E148 Safari/604.1"
)
FIREFOX = "Mozilla/5.0 (X11; Linux x86_64; rv:127.0) Gecko/20100101 Firefox/127.0"
HEADLESS_CHROME = (
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "HeadlessChrome/120.0.0.0 Safari/537.36"
)


@pytest.mark.parametrize(
    "user_agent",
    [
        GOOGLEBOT,
        BINGBOT,
        "curl/8.5.0",
        "python-requests/2.31.0",
        "Wget/1.21.4",
        HEADLESS_CHROME,
        "Mozilla/5.0 (compatible; YandexBot/3.0; +http://yandex.com/bots)",
        "facebookexternalhit/1.1 (+http://www.facebook.com/externalhit_uatext.php)",
    ],
)
def test_crawlers_headless_browsers_and_http_libraries_are_bots(user_agent: str) -> None:
    assert is_bot(user_agent) is True


@pytest.mark.parametrize("user_agent", [CHROME, IPHONE_SAFARI, FIREFOX, ""])
def test_browsers_are_not_bots(user_agent: str) -> None:
    assert is_bot(user_agent) is False


def test_answers_are_cached_per_user_agent() -> None:
    is_bot.cache_clear()
    for _ in range(3):
        assert is_bot(GOOGLEBOT) is True
        assert is_bot(CHROME) is False
    info = is_bot.cache_info()
    assert (info.misses, info.hits, info.maxsize) == (2, 4, UA_CACHE_SIZE)


@pytest.mark.parametrize(("user_agent", "flagged"), [(GOOGLEBOT, True), (CHROME, False)])
def test_processed_events_carry_the_flag_of_their_batch(user_agent: str, flagged: bool) -> None:
    events = [build("page_view"), build("click")]
    outcome = process_batch(make_batch(events, user_agent=user_agent), policy())
    assert outcome.rejected == []
    assert [event["is_bot"] for event in outcome.processed] == [flagged, flagged]
    assert outcome.processed[0]["user_agent"] == user_agent
