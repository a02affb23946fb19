"""The README, written from its template and the run (``make readme``).

``README.md`` is :data:`~p2nlib.book.prose.README_TEMPLATE` with every reference to the run rendered
(:mod:`p2nlib.book.prose`): the claims' values and counts from ``figures/claims.json``, the wall times
from the executed notebooks' metadata, the test run from ``book/test_run.json``, which ``make test``
writes (``record-test``). A test fails when ``README.md`` differs from a fresh render, so the README
cannot drift from the run: edit the template, then ``make readme``.
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import xml.etree.ElementTree as ET
from pathlib import Path

from p2nlib.book import prose
from p2nlib.core import paths

README = paths.ROOT / "README.md"
HEADER = ("<!-- Written by `make readme` from book/README.template.md and the run (figures/claims.json, the "
          "executed notebooks, book/test_run.json): edit the template, not this file. -->\n")


def render(template: Path | None = None, sources: prose.Sources | None = None) -> str:
    template = template or paths.ROOT / prose.README_TEMPLATE
    sources = sources or prose.Sources(figures=paths.ROOT / "figures", notebooks=paths.ROOT / "notebooks")
    return HEADER + prose.render(template.read_text(), sources, where=str(template.name))


def record_test(seconds: float, junit: Path, out: Path = prose.TEST_RUN) -> dict:
    """Write the record of a test run (wall time, counts from pytest's JUnit XML, date, commit)."""
    from p2nlib.book import claims

    root = ET.parse(junit).getroot()
    suites = [root] if root.tag == "testsuite" else list(root.iter("testsuite"))
    total = sum(int(s.get("tests", 0)) for s in suites)
    failed = sum(int(s.get("failures", 0)) + int(s.get("errors", 0)) for s in suites)
    skipped = sum(int(s.get("skipped", 0)) for s in suites)
    data = {"seconds": round(seconds), "minutes": f"{int(seconds // 60)} min {int(seconds % 60)} s",
            "passed": total - failed - skipped, "failed": failed, "skipped": skipped,
            "date": dt.date.today().isoformat(), "commit": claims.git_commit()}
    out.write_text(json.dumps(data, indent=1) + "\n")
    return data


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="write README.md from its template and the run")
    sub = ap.add_subparsers(dest="cmd")
    rec = sub.add_parser("record-test", help="record a test run's time and counts (make test does this)")
    rec.add_argument("--seconds", type=float, required=True)
    rec.add_argument("--junit", type=Path, required=True)
    sub.add_parser("check", help="exit 1 when README.md is not its template rendered from the run")
    args = ap.parse_args(argv)
    if args.cmd == "record-test":
        data = record_test(args.seconds, args.junit)
        print(f"test run recorded in {prose.TEST_RUN.relative_to(paths.ROOT)}: {data}; `make readme` puts it in the README")
        return 0
    text = render()
    if args.cmd == "check":
        ok = README.read_text() == text
        print("README.md is up to date" if ok else "README.md differs from its template rendered from the run: make readme")
        return 0 if ok else 1
    README.write_text(text)
    print(f"wrote {README.relative_to(paths.ROOT)} from {prose.README_TEMPLATE}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
