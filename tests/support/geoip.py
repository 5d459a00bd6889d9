"""A small MaxMind-format City database, built for tests with mmdb-writer."""

from __future__ import annotations

from pathlib import Path

from mmdb_writer import MMDBWriter
from netaddr import IPSet

LONDON_NETWORK = "81.2.69.0/24"
LONDON_IP = "81.2.69.142"


def build_city_database(path: Path) -> Path:
    writer = MMDBWriter(
        ip_version=6,
        database_type="GeoIP2-City",
        languages=["en"],
        description="TrackFlow test City database",
        ipv4_compatible=True,
    )
    writer.insert_network(
        IPSet([LONDON_NETWORK]),
        {
            "country": {"iso_code": "GB", "names": {"en": "United Kingdom"}},
            "subdivisions": [{"iso_code": "ENG", "names": {"en": "England"}}],
            "city": {"names": {"en": "London"}},
        },
    )
    writer.to_db_file(str(path))
    return path
