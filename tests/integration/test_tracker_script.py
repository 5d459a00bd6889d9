"""GET /tracker.js on a real worker: brotli, gzip or identity by Accept-Encoding, each with its
own ETag, ``Vary: Accept-Encoding``, and 304 on a matching If-None-Match."""

from __future__ import annotations

import gzip

import brotli
import httpx

from harness.stack import ROOT, Worker

BUNDLE = ROOT / "web" / "tracker" / "dist" / "trackflow.min.js"


def fetch(worker: Worker, **headers: str) -> tuple[httpx.Response, bytes]:
    """The response and its body exactly as sent (no client-side decoding)."""
    with httpx.stream("GET", f"{worker.base_url}/tracker.js", headers=headers, timeout=30) as r:
        return r, b"".join(r.iter_raw())


def test_tracker_script_is_served_precompressed_and_revalidates(worker: Worker) -> None:
    script = BUNDLE.read_bytes()  # `make tracker` builds it (make test does)
    plain, plain_body = fetch(worker, **{"Accept-Encoding": "identity"})
    gzipped, gzip_body = fetch(worker, **{"Accept-Encoding": "gzip, deflate"})
    brotlied, br_body = fetch(worker, **{"Accept-Encoding": "gzip, deflate, br"})

    assert plain.status_code == gzipped.status_code == brotlied.status_code == 200
    assert plain_body == script
    assert "content-encoding" not in plain.headers
    assert gzipped.headers["content-encoding"] == "gzip"
    assert gzip.decompress(gzip_body) == script
    assert brotlied.headers["content-encoding"] == "br"
    assert brotli.decompress(br_body) == script
    assert len(br_body) < len(gzip_body) < len(script) / 2
    for response, body in ((plain, plain_body), (gzipped, gzip_body), (brotlied, br_body)):
        assert response.headers["vary"] == "Accept-Encoding"
        assert response.headers["content-type"].startswith("application/javascript")
        assert int(response.headers["content-length"]) == len(body)
        assert response.headers["access-control-allow-origin"] == "*"
        assert "max-age=3600" in response.headers["cache-control"]
    etags = {r.headers["etag"] for r in (plain, gzipped, brotlied)}
    assert len(etags) == 3  # one representation each
    # Without Accept-Encoding (curl's default) the script goes as is.
    bare = httpx.get(f"{worker.base_url}/tracker.js", headers={"Accept-Encoding": ""}, timeout=30)
    assert bare.content == script and bare.headers["etag"] == plain.headers["etag"]

    # Revalidation: the tag of the representation the request selects answers 304.
    for accept, response in (("identity", plain), ("gzip", gzipped), ("br, gzip", brotlied)):
        tag = response.headers["etag"]
        for if_none_match in (tag, "W/" + tag, f'"other", {tag}'):
            again, body = fetch(
                worker, **{"Accept-Encoding": accept, "If-None-Match": if_none_match}
            )
            assert again.status_code == 304, (accept, if_none_match)
            assert body == b""
            assert again.headers["etag"] == tag
            assert again.headers["vary"] == "Accept-Encoding"
    # Another representation's tag does not: the gzip tag asked with identity gets the script.
    mismatch, body = fetch(
        worker, **{"Accept-Encoding": "identity", "If-None-Match": gzipped.headers["etag"]}
    )
    assert mismatch.status_code == 200 and body == script
