"""GeoIP lookup with geoip2 over a MaxMind-format (.mmdb) City database."""

from __future__ import annotations

import ipaddress
import logging
from functools import lru_cache

import geoip2.database
import geoip2.errors

from agents.validate import GeoInfo, GeoLookup

log = logging.getLogger(__name__)


def open_geo_lookup(database_path: str) -> GeoLookup | None:
    """A cached lookup function, or None when no database is configured."""
    if not database_path:
        return None
    reader = geoip2.database.Reader(database_path)
    log.info("geoip database=%s type=%s", database_path, reader.metadata().database_type)

    @lru_cache(maxsize=65_536)
    def lookup(ip: str) -> GeoInfo | None:
        try:
            address = ipaddress.ip_address(ip)
        except ValueError:
            return None
        if not address.is_global:
            return None
        try:
            city = reader.city(ip)
        except (geoip2.errors.AddressNotFoundError, ValueError, TypeError):
            return None
        return GeoInfo(
            country=city.country.iso_code,
            region=city.subdivisions.most_specific.name or None,
            city=city.city.name or None,
        )

    return lookup
