#!/usr/bin/env python3
"""Static @context server for offline ETSI NGSI-LD conformance runs.

The suite's test data point at @context documents hosted on GitHub
(raw.githubusercontent.com, easy-global-market.github.io, fiware.github.io).
There is no internet here, so run.sh rewrites those URLs to this server, which
listens on 127.0.0.1 only and serves, as application/ld+json:

  /suite/<file>      the suite's own resources/jsonld-contexts/<file>
  /egm/ngsildTestSuite.jsonld
                     the same document as /suite/ngsi-ld-test-suite.jsonld
                     (the EGM copy is byte-identical to it)
  /egm/ngsildTestSuiteV1.8-compound.jsonld
                     an array of the above and the ETSI core context v1.8,
                     which is what the EGM compound context holds
  /fiware/data-models/context.jsonld
  /fiware/NGSI-LD_TestSuite/ldContext/testContext.jsonld
                     small stand-ins written for this runner; the tests only
                     need them to be retrievable JSON-LD contexts

Every request is logged (one line each) so a run shows which contexts the
broker actually fetched. With --port 0 the chosen port is written to
--port-file once the socket is listening.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

CORE_V18 = "https://uri.etsi.org/ngsi-ld/v1/ngsi-ld-core-context-v1.8.jsonld"

# Stand-in for https://fiware.github.io/data-models/context.jsonld (the real
# one is a large legacy FIWARE context; no test looks inside it).
FIWARE_DATA_MODELS_STANDIN = {
    "@context": {
        "fiware": "https://uri.fiware.org/ns/data-models#",
        "schema": "https://schema.org/",
        "address": "schema:address",
        "category": "fiware:category",
        "source": "fiware:source",
        "dataProvider": "fiware:dataProvider",
        "Building": "fiware:Building",
    }
}

# Stand-in for https://fiware.github.io/NGSI-LD_TestSuite/ldContext/testContext.jsonld
# (a handful of example.org terms; the suite only uses it as one entry of a
# subscription's @context).
FIWARE_TEST_CONTEXT_STANDIN = {
    "@context": {
        "ex": "http://example.org/",
        **{f"T{i}": f"http://example.org/T{i}" for i in range(1, 6)},
        **{f"P{i}": f"http://example.org/P{i}" for i in range(1, 6)},
        **{f"R{i}": f"http://example.org/R{i}" for i in range(1, 6)},
    }
}


def build_routes(suite_contexts: Path, base_url: str) -> dict[str, bytes | Path]:
    """Map URL paths to documents. Suite files are read at request time: run.sh
    patches them (their URLs point at this server) after the server started."""
    routes: dict[str, bytes | Path] = {}
    for path in sorted(suite_contexts.iterdir()):
        if path.is_file() and path.suffix in (".jsonld", ".json"):
            routes[f"/suite/{path.name}"] = path
    test_suite_ctx = suite_contexts / "ngsi-ld-test-suite.jsonld"
    if test_suite_ctx.is_file():
        routes["/egm/ngsildTestSuite.jsonld"] = test_suite_ctx
    compound = {"@context": [f"{base_url}/egm/ngsildTestSuite.jsonld", CORE_V18]}
    routes["/egm/ngsildTestSuiteV1.8-compound.jsonld"] = _dump(compound)
    routes["/fiware/data-models/context.jsonld"] = _dump(FIWARE_DATA_MODELS_STANDIN)
    routes["/fiware/NGSI-LD_TestSuite/ldContext/testContext.jsonld"] = _dump(
        FIWARE_TEST_CONTEXT_STANDIN
    )
    return routes


def _dump(doc: object) -> bytes:
    return (json.dumps(doc, indent=2) + "\n").encode()


class Handler(BaseHTTPRequestHandler):
    routes: dict[str, bytes | Path] = {}
    log_lock = threading.Lock()
    server_version = "calanque-conformance-contexts/1"

    def do_GET(self) -> None:  # noqa: N802 - http.server naming
        self._answer(with_body=True)

    def do_HEAD(self) -> None:  # noqa: N802
        self._answer(with_body=False)

    def _answer(self, with_body: bool) -> None:
        path = self.path.split("?", 1)[0]
        body = self.routes.get(path)
        if isinstance(body, Path):
            try:
                body = body.read_bytes()
            except OSError:
                body = None
        if body is None:
            status, ctype = 404, "application/json"
            body = _dump({"error": "not served here", "path": path})
        else:
            status, ctype = 200, "application/ld+json"
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Access-Control-Allow-Origin", "*")
        self.end_headers()
        if with_body:
            self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002
        with self.log_lock:
            sys.stderr.write(f"{self.log_date_time_string()} {format % args}\n")
            sys.stderr.flush()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--suite-contexts", required=True, type=Path,
                        help="the suite's resources/jsonld-contexts folder")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--port-file", type=Path,
                        help="write the listening port here once ready")
    args = parser.parse_args()

    server = ThreadingHTTPServer((args.host, args.port), Handler)
    server.daemon_threads = True
    port = server.server_address[1]
    Handler.routes = build_routes(args.suite_contexts, f"http://{args.host}:{port}")
    if args.port_file:
        tmp = args.port_file.with_suffix(".tmp")
        tmp.write_text(f"{port}\n")
        os.replace(tmp, args.port_file)
    sys.stderr.write(f"serving {len(Handler.routes)} contexts on http://{args.host}:{port}\n")
    for route in Handler.routes:
        sys.stderr.write(f"  {route}\n")
    sys.stderr.flush()
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
