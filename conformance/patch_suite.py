#!/usr/bin/env python3
"""Patch a throw-away copy of the ETSI NGSI-LD suite for an offline local run.

Run by run.sh on the copy it made; never point it at the original checkout.

1. resources/variables.py: the broker URL, the mock-server hosts and ports,
   the MQTT host and port, and the core context (v1.8, which Calanque serves
   as its default).
2. In data/, TP/ and resources/: every URL of a GitHub-hosted test context is
   rewritten to the local static server (context_server.py):
     raw.githubusercontent.com/<owner>/ngsi-ld-test-suite/<branch>/resources/jsonld-contexts/
     forge.etsi.org/rep/cim/ngsi-ld-test-suite/-/raw/<branch>/resources/jsonld-contexts/
                                                     -> <ctx>/suite/
     easy-global-market.github.io/ngsild-api-data-models/ngsildTestSuite/
                                                     -> <ctx>/egm/
     fiware.github.io/                               -> <ctx>/fiware/
3. In TP/: `http://localhost:9090`, which two jsonldContext tests hard-code as
   the broker's origin, becomes the real broker origin.

Prints how many replacements each rule made.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path
from urllib.parse import urlsplit

TEXT_SUFFIXES = {".robot", ".resource", ".py", ".json", ".jsonld", ".txt", ".geojson", ".md"}


def url_rules(ctx_base: str) -> list[tuple[str, re.Pattern[str], str]]:
    return [
        (
            "suite contexts (GitHub raw)",
            re.compile(
                r"https?://raw\.githubusercontent\.com/[A-Za-z0-9_.-]+/ngsi-ld-test-suite/"
                r"[A-Za-z0-9_.-]+/resources/jsonld-contexts/"
            ),
            f"{ctx_base}/suite/",
        ),
        (
            "suite contexts (ETSI forge)",
            re.compile(
                r"https?://forge\.etsi\.org/rep/cim/ngsi-ld-test-suite/-/raw/"
                r"[A-Za-z0-9_.-]+/resources/jsonld-contexts/"
            ),
            f"{ctx_base}/suite/",
        ),
        (
            "easy-global-market contexts",
            re.compile(r"https?://easy-global-market\.github\.io/ngsild-api-data-models/ngsildTestSuite/"),
            f"{ctx_base}/egm/",
        ),
        (
            "fiware.github.io contexts",
            re.compile(r"https?://fiware\.github\.io/"),
            f"{ctx_base}/fiware/",
        ),
    ]


def set_variable(text: str, name: str, value: object) -> str:
    """Replace the top-level assignment `name = ...` (or append it)."""
    line = f"{name} = {value!r}"
    pattern = re.compile(rf"^{re.escape(name)}\s*=.*$", re.MULTILINE)
    if pattern.search(text):
        return pattern.sub(lambda _m: line, text, count=1)
    return text.rstrip("\n") + "\n" + line + "\n"


def patch_variables(suite: Path, args: argparse.Namespace) -> None:
    path = suite / "resources" / "variables.py"
    text = path.read_text()
    values = {
        "url": args.broker_url,
        "temporal_api_url": args.temporal_url or args.broker_url,
        "notification_server_host": "127.0.0.1",
        "notification_server_port": args.notification_port,
        "mqtt_broker_host": "127.0.0.1",
        "mqtt_broker_non_default_port": args.mqtt_port,
        "context_source_host": "127.0.0.1",
        "context_source_port": args.context_source_port,
        "context_server_host": "127.0.0.1",
        "context_server_port": args.context_server_port,
        "core_context": args.core_context,
    }
    for name, value in values.items():
        text = set_variable(text, name, value)
    path.write_text(text)
    print(f"patched {path.relative_to(suite)}:")
    for name, value in values.items():
        print(f"  {name} = {value!r}")


def rewrite_tree(suite: Path, rules, folders: list[str]) -> dict[str, int]:
    counts = {label: 0 for label, _, _ in rules}
    for folder in folders:
        root = suite / folder
        if not root.is_dir():
            continue
        for path in root.rglob("*"):
            if not path.is_file() or path.suffix not in TEXT_SUFFIXES:
                continue
            try:
                text = path.read_text(encoding="utf-8")
            except UnicodeDecodeError:
                continue
            new = text
            for label, pattern, replacement in rules:
                new, n = pattern.subn(replacement, new)
                counts[label] += n
            if new != text:
                path.write_text(new, encoding="utf-8")
    return counts


def main() -> int:
    parser = argparse.ArgumentParser(description="Patch a copy of the ETSI NGSI-LD suite for a local run.")
    parser.add_argument("--suite", required=True, type=Path, help="the throw-away copy to patch")
    parser.add_argument("--broker-url", required=True, help="e.g. http://127.0.0.1:1026/ngsi-ld/v1")
    parser.add_argument("--temporal-url")
    parser.add_argument("--context-base", required=True, help="base URL of context_server.py")
    parser.add_argument("--notification-port", type=int, required=True)
    parser.add_argument("--context-source-port", type=int, required=True)
    parser.add_argument("--context-server-port", type=int, required=True)
    parser.add_argument("--mqtt-port", type=int, required=True)
    parser.add_argument("--core-context",
                        default="https://uri.etsi.org/ngsi-ld/v1/ngsi-ld-core-context-v1.8.jsonld")
    args = parser.parse_args()

    suite: Path = args.suite
    if not (suite / "resources" / "variables.py").is_file():
        print(f"{suite} does not look like the ETSI suite (no resources/variables.py)", file=sys.stderr)
        return 2

    patch_variables(suite, args)

    ctx_base = args.context_base.rstrip("/")
    counts = rewrite_tree(suite, url_rules(ctx_base), ["data", "TP", "resources"])

    origin = urlsplit(args.broker_url)
    broker_origin = f"{origin.scheme}://{origin.netloc}"
    origin_rule = [("hard-coded broker origin localhost:9090",
                    re.compile(r"http://localhost:9090(?![0-9])"),
                    broker_origin)]
    counts.update(rewrite_tree(suite, origin_rule, ["TP"]))

    print("rewrote URLs:")
    for label, n in counts.items():
        print(f"  {n:4d}  {label}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
