#!/usr/bin/env python3
"""Summarize a Robot Framework output.xml from an ETSI NGSI-LD conformance run.

Prints pass/fail counts per folder of the suite (by default two levels below
TP/NGSI-LD, with the `ContextInformation/` level dropped, e.g.
`Provision/Entities`, `jsonldContext/Provision`), the failures grouped by
likely cause, and every failing test with the first useful line of its
failure message. With --markdown it also writes the same as a Markdown file.

    summarize.py results/output.xml [--depth N] [--exclude PATTERN ...]
                 [--markdown summary.md] [--max-list N]

--exclude drops folders whose path matches PATTERN (a glob such as
'*Temporal*', or a plain substring, case-insensitive); repeatable.
Standard library only; runs on Python 3.9+.
"""

from __future__ import annotations

import argparse
import fnmatch
import json
import re
import sys
import xml.etree.ElementTree as ET
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class TestResult:
    folder: str
    file: str
    name: str
    status: str  # PASS, FAIL, SKIP, NOT RUN
    message: str
    exchanges: list[tuple[dict, dict | None]] = field(default_factory=list)

    def failing_exchange(self) -> tuple[dict, dict | None] | None:
        """The request most likely behind a failure (not one of the teardown's)."""
        if not self.exchanges:
            return None
        _, actual = _expected_actual(self.message)
        if actual:
            for request, response in reversed(self.exchanges):
                if response is not None and str(response.get("status_code")) == actual:
                    return request, response
        return self.exchanges[-1]


# ---------------------------------------------------------------------------
# Reading output.xml


def folder_of(source: str, depth: int) -> tuple[str, str]:
    """Return (folder, file) for a suite source path, relative to TP/NGSI-LD."""
    parts = Path(source).parts
    rel: tuple[str, ...] = parts
    for i in range(len(parts) - 1):
        if parts[i] == "TP" and parts[i + 1] == "NGSI-LD":
            rel = parts[i + 2:]
            break
    else:
        if "TP" in parts:
            rel = parts[parts.index("TP") + 1:]
        else:
            rel = parts[-2:]
    if rel and rel[0] == "ContextInformation":
        rel = rel[1:]
    dirs, file = rel[:-1], rel[-1] if rel else "?"
    return ("/".join(dirs[:depth]) or "(top)"), file


def read_results(output_xml: Path, depth: int) -> list[TestResult]:
    results: list[TestResult] = []
    sources: list[str] = []
    for event, elem in ET.iterparse(output_xml, events=("start", "end")):
        tag = elem.tag
        if event == "start":
            if tag == "suite":
                sources.append(elem.get("source", ""))
            continue
        if tag == "suite":
            sources.pop()
            elem.clear()
        elif tag == "test":
            status_el = None
            for child in elem:
                if child.tag == "status":
                    status_el = child  # the test's own status is its last direct <status>
            status = status_el.get("status", "?") if status_el is not None else "?"
            message = (status_el.text or "") if status_el is not None else ""
            source = next((s for s in reversed(sources) if s), "")
            folder, file = folder_of(source, depth)
            exchanges = collect_exchanges(elem) if status == "FAIL" else []
            results.append(TestResult(folder, file, elem.get("name", "?"), status, message, exchanges))
            elem.clear()
    return results


def collect_exchanges(test_el: ET.Element) -> list[tuple[dict, dict | None]]:
    """Request/response pairs the suite logged (its `Output` keyword), outside teardown."""
    exchanges: list[tuple[dict, dict | None]] = []

    def walk(el: ET.Element) -> None:
        for child in el:
            if child.tag == "kw" and child.get("type") == "TEARDOWN":
                continue
            if child.tag == "msg":
                text = (child.text or "").lstrip()
                if not text.startswith("{") or '"method"' not in text and '"status_code"' not in text:
                    continue
                try:
                    doc = json.loads(text)
                except ValueError:
                    continue
                if not isinstance(doc, dict):
                    continue
                if "method" in doc and "url" in doc:
                    exchanges.append((doc, None))
                elif "status_code" in doc and exchanges and exchanges[-1][1] is None:
                    exchanges[-1] = (exchanges[-1][0], doc)
            else:
                walk(child)

    walk(test_el)
    return exchanges


_ID_SEGMENT = re.compile(r"^(urn:.*|[0-9a-fA-F-]{16,}|\d+|[A-Za-z0-9]*%3A.*)$")


def endpoint_of(request: dict) -> str:
    """`METHOD /path` with ids replaced by {id} and query values dropped."""
    url = str(request.get("url", ""))
    path, _, query = url.partition("?")
    if "/ngsi-ld/v1" in path:
        path = path.split("/ngsi-ld/v1", 1)[1]
    else:
        path = "/" + path.split("://", 1)[-1].partition("/")[2]
    segments = ["{id}" if _ID_SEGMENT.match(s) else s for s in path.split("/")]
    path = "/".join(segments) or "/"  # keep a trailing slash: brokers may route it differently
    params = sorted({kv.split("=", 1)[0] for kv in query.split("&") if kv})
    return f"{request.get('method', '?')} {path}" + (f" ?{'&'.join(params)}" if params else "")


def describe_response(response: dict | None) -> str:
    if response is None:
        return "no response"
    out = str(response.get("status_code", "?"))
    body = response.get("body")
    if isinstance(body, dict) and ("type" in body or "title" in body):
        kind = str(body.get("type", "")).rsplit("/", 1)[-1]
        title = str(body.get("title") or body.get("detail") or "")[:100]
        out += f" {kind}" + (f" ({title})" if title else "")
    return out


# ---------------------------------------------------------------------------
# Failure messages and causes

_NOISE = re.compile(
    r"^((Parent suite |Suite )?[Ss]etup failed:|Teardown failed:|Several failures occurred:|Also teardown failed:)\s*$"
)
_NUMBERED = re.compile(r"^\d+\)\s*")


def first_line(message: str) -> str:
    for line in message.splitlines():
        line = _NUMBERED.sub("", line.strip())
        if line and not _NOISE.match(line):
            return line
    return message.strip().splitlines()[0] if message.strip() else "(no message)"


_STATUS = re.compile(r"HTTP status code comparison failed.*?:\s*'?(\d{3})'?\s*!=\s*'?(\d{3})'?")
# RequestsLibrary's own check (expected_status=...) puts the actual status first.
_REQUESTS_STATUS = re.compile(r"Expected status:\s*(\d{3})\s*!=\s*(\d{3})")


def _expected_actual(message: str) -> tuple[str, str] | tuple[None, None]:
    m = _STATUS.search(message)
    if m:
        return m.group(1), m.group(2)
    m = _REQUESTS_STATUS.search(message)
    if m:
        return m.group(2), m.group(1)
    return None, None


def cause_of(message: str) -> tuple[str, str]:
    """Group a failure message into (coarse category, finer detail)."""
    line = first_line(message)
    head = message.lstrip()
    if head.startswith("Parent suite setup failed"):
        phase = " (in suite setup)"
    elif head.startswith("Setup failed"):
        phase = " (in setup)"
    else:
        phase = ""
    expected, actual = _expected_actual(message)
    if expected:
        detail = f"expected {expected}, got {actual}{phase}"
        if actual == "404" and expected != "404":
            return "wrong status: 404 (route missing, or resource not found)", detail
        if actual in ("405", "501") and expected not in ("405", "501"):
            return "wrong status: 405/501 (method not supported)", detail
        if actual.startswith("5"):
            return "wrong status: 5xx server error", detail
        return "wrong status: other", detail
    for pattern, label in _CHECKS:
        if re.search(pattern, line):
            return label, line[:120]
    # Connection problems sometimes show up only further down the message.
    if re.search(_CHECKS[0][0], message):
        return _CHECKS[0][1], line[:120]
    return "other", line[:120]


_CHECKS = [
    (r"Connection ?refused|ConnectionError|Max retries exceeded|RemoteDisconnected|Connection aborted",
     "broker unreachable or connection dropped"),
    (r"Test timeout .* exceeded", "test timeout (hung request or long wait)"),
    (r"ReadTimeout|Read timed out", "request timed out (broker did not answer)"),
    (r"No request was received|Wait For Request|[Nn]otification", "expected notification never came"),
    (r"errors/\w+ != https://uri\.etsi\.org/ngsi-ld/errors/", "wrong ProblemDetails error type"),
    (r"JSONDecodeError|Expecting value|Extra data|Invalid control character",
     "response body is not JSON (or empty)"),
    (r"[Rr]eason", "wrong HTTP reason phrase"),
    (r"Content-Type|content-type|Content type|Link|Location|[Hh]eaders? do(es)? not contain|Accept-Patch|"
     r"NGSILD-Tenant|header",
     "wrong or missing response header"),
    (r"Dictionary does not contain key|KeyError|IndexError|has no key|Resolving variable .*failed|not found in",
     "missing member in response body"),
    (r"dictionary_item_added|dictionary_item_removed|values_changed|iterable_item|type_changes|"
     r"Type of root changed|[Vv]alue of root|Item root\[|root\[.*\] (added|removed|changed)|"
     r"DeepDiff|Dictionaries? (are|is) (not )?equal|Following keys have different values",
     "response body differs from expectation"),
    (r"Length of|should have length|Lengths are different|[Ll]ength",
     "wrong number of items in response"),
    (r"No keyword with name|Variable .* not found|Resource file .* does not exist|"
     r"Importing (library|test library)",
     "suite-side error (keyword/variable/import)"),
    (r"!=|should be|should not be|does not match|is not", "value mismatch in response"),
]


# ---------------------------------------------------------------------------
# Reporting


def excluded(folder: str, patterns: list[str]) -> bool:
    low = folder.lower()
    for pat in patterns:
        p = pat.lower()
        if any(c in p for c in "*?["):
            if fnmatch.fnmatch(low, p):
                return True
        elif p in low:
            return True
    return False


def pct(n: int, d: int) -> str:
    return f"{100.0 * n / d:.0f}%" if d else "-"


def build_report(results: list[TestResult], max_list: int) -> tuple[str, str]:
    by_folder: dict[str, Counter] = defaultdict(Counter)
    for r in results:
        by_folder[r.folder][r.status] += 1
    total = Counter(r.status for r in results)
    failures = [r for r in results if r.status == "FAIL"]
    causes: dict[str, list[TestResult]] = defaultdict(list)
    details: dict[str, Counter] = defaultdict(Counter)
    for r in failures:
        category, detail = cause_of(r.message)
        causes[category].append(r)
        details[category][detail] += 1
    ordered_causes = sorted(causes.items(), key=lambda kv: (-len(kv[1]), kv[0]))
    width = max([len(f) for f in by_folder] + [len("TOTAL")])
    n_total = sum(total.values())

    # --- plain text ---
    t: list[str] = []
    t.append(f"{'folder':<{width}}  {'pass':>5} {'fail':>5} {'skip':>5} {'total':>6}  pass%")
    for folder in sorted(by_folder):
        c = by_folder[folder]
        n = sum(c.values())
        t.append(f"{folder:<{width}}  {c['PASS']:>5} {c['FAIL']:>5} {c['SKIP'] + c['NOT RUN']:>5} {n:>6}  "
                 f"{pct(c['PASS'], n):>5}")
    t.append(f"{'TOTAL':<{width}}  {total['PASS']:>5} {total['FAIL']:>5} "
             f"{total['SKIP'] + total['NOT RUN']:>5} {n_total:>6}  {pct(total['PASS'], n_total):>5}")
    if failures:
        t.append("")
        t.append("Failures by likely cause:")
        for cause, items in ordered_causes:
            t.append(f"  {len(items):4d}  {cause}")
            if cause.startswith("wrong status"):
                for detail, n in details[cause].most_common(8):
                    t.append(f"          {n:4d}  {detail}")
        by_endpoint_t: Counter = Counter()
        for r in failures:
            ex = r.failing_exchange()
            if ex and _expected_actual(r.message)[0]:
                by_endpoint_t[(endpoint_of(ex[0]), describe_response(ex[1]).split(" (")[0])] += 1
        if by_endpoint_t:
            t.append("")
            t.append("Wrong statuses by request (top 20):")
            for (endpoint, answer), n in by_endpoint_t.most_common(20):
                t.append(f"  {n:4d}  {endpoint}  -> {answer}")
        t.append("")
        t.append("Failing tests:")
        for r in failures[:max_list] if max_list else failures:
            t.append(f"  [{r.folder}] {r.name}")
            t.append(f"      {first_line(r.message)[:300]}")
            ex = r.failing_exchange()
            if ex:
                t.append(f"      last request: {endpoint_of(ex[0])} -> {describe_response(ex[1])}")
        if max_list and len(failures) > max_list:
            t.append(f"  ... and {len(failures) - max_list} more (see the Markdown summary or log.html)")

    # --- markdown ---
    md: list[str] = ["# NGSI-LD conformance summary", ""]
    md.append(f"{total['PASS']} of {n_total} tests passed ({pct(total['PASS'], n_total)}), "
              f"{total['FAIL']} failed, {total['SKIP'] + total['NOT RUN']} skipped.")
    md += ["", "| Folder | Pass | Fail | Skip | Total | Pass % |", "|---|---:|---:|---:|---:|---:|"]
    for folder in sorted(by_folder):
        c = by_folder[folder]
        n = sum(c.values())
        md.append(f"| {folder} | {c['PASS']} | {c['FAIL']} | {c['SKIP'] + c['NOT RUN']} | {n} | "
                  f"{pct(c['PASS'], n)} |")
    md.append(f"| **Total** | **{total['PASS']}** | **{total['FAIL']}** | "
              f"**{total['SKIP'] + total['NOT RUN']}** | **{n_total}** | **{pct(total['PASS'], n_total)}** |")
    if failures:
        md += ["", "## Failures by likely cause", "", "| Count | Cause | Examples |", "|---:|---|---|"]
        for cause, items in ordered_causes:
            examples = ", ".join(sorted({r.name.split(" ")[0] for r in items})[:6])
            md.append(f"| {len(items)} | {_md(cause)} | {_md(examples)} |")
        status_rows = [(n, cause, detail) for cause in causes if cause.startswith("wrong status")
                       for detail, n in details[cause].items()]
        if status_rows:
            md += ["", "### Status mismatches", "", "| Count | Expected / actual | Category |", "|---:|---|---|"]
            for n, cause, detail in sorted(status_rows, key=lambda row: (-row[0], row[2])):
                md.append(f"| {n} | {_md(detail)} | {_md(cause)} |")
        by_endpoint: Counter = Counter()
        for r in failures:
            ex = r.failing_exchange()
            if ex and _expected_actual(r.message)[0]:
                by_endpoint[(endpoint_of(ex[0]), describe_response(ex[1]).split(" (")[0])] += 1
        if by_endpoint:
            md += ["", "### Wrong statuses by endpoint", "", "| Count | Request | Broker answered |",
                   "|---:|---|---|"]
            for (endpoint, answer), n in by_endpoint.most_common(60):
                md.append(f"| {n} | `{_md(endpoint)}` | {_md(answer)} |")
        md += ["", "## Failing tests", ""]
        current = None
        for r in sorted(failures, key=lambda r: (r.folder, r.file, r.name)):
            if r.folder != current:
                current = r.folder
                md += ["", f"### {current}", ""]
            line = f"- **{_md(r.name)}** (`{r.file}`): {_md(first_line(r.message)[:300])}"
            ex = r.failing_exchange()
            if ex:
                line += f" — `{_md(endpoint_of(ex[0]))}` → {_md(describe_response(ex[1]))}"
            md.append(line)
    return "\n".join(t) + "\n", "\n".join(md) + "\n"


def _md(s: str) -> str:
    return s.replace("|", "\\|").replace("\n", " ")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Summarize an NGSI-LD conformance run (Robot output.xml).")
    parser.add_argument("output_xml", type=Path)
    parser.add_argument("--depth", type=int, default=2,
                        help="folder levels below TP/NGSI-LD to group by (default 2)")
    parser.add_argument("--exclude", action="append", default=[], metavar="PATTERN",
                        help="leave out folders matching PATTERN (glob or substring); repeatable")
    parser.add_argument("--markdown", type=Path, help="also write a Markdown summary here")
    parser.add_argument("--max-list", type=int, default=200,
                        help="at most this many failing tests on stdout (0 = all)")
    args = parser.parse_args(argv)

    if not args.output_xml.is_file():
        print(f"{args.output_xml}: no such file", file=sys.stderr)
        return 2
    results = [r for r in read_results(args.output_xml, args.depth) if not excluded(r.folder, args.exclude)]
    text, md = build_report(results, args.max_list)
    sys.stdout.write(text)
    if args.markdown:
        args.markdown.write_text(md)
    failed = sum(1 for r in results if r.status == "FAIL")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
