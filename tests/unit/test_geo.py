from __future__ import annotations

from pathlib import Path

from agents.geo import open_geo_lookup
from agents.validate import GeoInfo
from tests.support.geoip import LONDON_IP, build_city_database


def test_lookup_reads_a_real_city_database(tmp_path: Path) -> None:
    lookup = open_geo_lookup(str(build_city_database(tmp_path / "city.mmdb")))
    assert lookup is not None
    assert lookup(LONDON_IP) == GeoInfo(country="GB", region="England", city="London")
    assert lookup("8.8.8.8") is None  # not in the database
    assert lookup("127.0.0.1") is None  # private and loopback addresses are never looked up
    assert lookup("not an ip") is None


def test_no_database_configured_means_no_lookup() -> None:
    assert open_geo_lookup("") is None
