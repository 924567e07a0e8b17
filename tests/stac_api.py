"""A minimal STAC API on 127.0.0.1 for the tests that search one (pystac-client, ``from_stac``):
landing page, conformance, and GET ``/search`` with ``collections`` and pages of ``limit`` items
(default 2) linked by ``next``. :func:`stac_api` serves a list of item dicts and yields the handler
class, whose ``base`` is the URL and whose ``requests`` / ``queries`` record what was asked."""

from __future__ import annotations

import contextlib
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlparse

CONFORMS = ["https://api.stacspec.org/v1.0.0/core", "https://api.stacspec.org/v1.0.0/item-search"]


class StacApi(BaseHTTPRequestHandler):
    features: list[dict] = []
    base = ""
    requests: list[str] = []
    """The path of every request."""
    queries: list[dict[str, str]] = []
    """The query parameters of each ``/search`` request."""

    def log_message(self, *args: Any) -> None:  # quiet
        pass

    def _send(self, obj: dict) -> None:
        body = json.dumps(obj).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _search(self, params: dict[str, str]) -> None:
        page, limit = int(params.get("page", 0)), int(params.get("limit", 2))
        colls = params["collections"].split(",") if "collections" in params else None
        hits = [f for f in self.features if not colls or f.get("collection") in colls]
        out = {"type": "FeatureCollection", "features": hits[page * limit : (page + 1) * limit], "links": []}
        if (page + 1) * limit < len(hits):
            q = f"page={page + 1}&limit={limit}" + (f"&collections={','.join(colls)}" if colls else "")
            out["links"].append({"rel": "next", "href": f"{self.base}/search?{q}", "type": "application/geo+json"})
        self._send(out)

    def do_GET(self) -> None:  # noqa: N802 - the stdlib's hook name
        url = urlparse(self.path)
        self.requests.append(url.path)
        if url.path in ("", "/"):
            links = [
                {"rel": "self", "href": self.base + "/"}, {"rel": "root", "href": self.base + "/"},
                {"rel": "conformance", "href": self.base + "/conformance"},
                {"rel": "search", "href": self.base + "/search", "method": "GET", "type": "application/geo+json"},
            ]  # fmt: skip
            self._send({"type": "Catalog", "id": "api", "stac_version": "1.0.0", "description": "test API",
                        "conformsTo": CONFORMS, "links": links})  # fmt: skip
        elif url.path == "/conformance":
            self._send({"conformsTo": CONFORMS})
        elif url.path == "/search":
            params = {k: v[0] for k, v in parse_qs(url.query).items()}
            self.queries.append(dict(params))
            self._search(params)
        else:
            self.send_error(404)


@contextlib.contextmanager
def stac_api(features: list[dict]) -> Iterator[type[StacApi]]:
    """Serve ``features`` as a STAC API on 127.0.0.1 (a free port) while the context lasts."""
    handler = type("Api", (StacApi,), {"features": features, "requests": [], "queries": []})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    handler.base = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield handler
    finally:
        server.shutdown()
        server.server_close()
        thread.join()
