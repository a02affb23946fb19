"""The generated book pages: claims discussion, running page with recorded wall times, coverage table."""
import json
import re

from p2nlib.book import claims
from p2nlib.book import build as book
from p2nlib.core import paths


def _claims_file(tmp_path, rows):
    data = {"schema_version": claims.SCHEMA_VERSION, "generated": "2026-01-01T00:00:00+00:00", "claims": rows}
    path = tmp_path / "claims.json"
    path.write_text(json.dumps(data))
    return path


def _row(id, holds):
    return {"id": id, "section": "§4.6", "value": 1.2, "unit": "×", "paper": "3–5×", "holds": holds, "note": "n",
            "notebook": "06", "profile": "small", "device": "cpu", "torch": "2", "commit": "abc", "date": "d"}


def test_discussion_is_shown_for_failed_claims_only(tmp_path):
    disc = tmp_path / "disc.md"
    disc.write_text("intro text\n\n## ood.speedup\n\nWhy it fails here.\n\n## ok.claim\n\nNever shown.\n")
    assert book.discussion(disc) == {"ood.speedup": "Why it fails here.", "ok.claim": "Never shown."}
    page = book.claims_page(_claims_file(tmp_path, [_row("ood.speedup", False), _row("ok.claim", True)]), disc)
    assert "Why it fails here." in page and "Never shown." not in page
    assert 'data-count="2"' in page
    assert book.discussion(tmp_path / "missing.md") == {}


def test_running_page_reads_wall_times_from_notebooks(tmp_path):
    nb = {"cells": [], "metadata": {"p2n": {"wall_time_s": 12.5},
                                    "papermill": {"parameters": {"profile": "small", "device": "cpu"}}},
          "nbformat": 4, "nbformat_minor": 5}
    (tmp_path / "05_x.ipynb").write_text(json.dumps(nb))
    page = book.running_page(tmp_path)
    assert "| `05_x` | small | cpu | 12.5 |" in page
    assert "opt_eps" in page and "make book" in page


def test_every_claim_discussed_exists_and_every_coverage_file_is_made():
    """The discussion only names real claim ids; the coverage table only names files a notebook writes."""
    ids = {c["id"] for c in claims.load(paths.ROOT / "figures" / "claims.json")["claims"]}
    assert set(book.discussion(paths.ROOT / "book" / "claims_discussion.md")) <= ids
    intro = (paths.ROOT / "book" / "intro.md").read_text()
    named = set(re.findall(r"`((?:0\d)_[\w.]+\.(?:png|gif|md|csv))`", intro))
    sources = " ".join(p.read_text() for p in (paths.ROOT / "notebooks").glob("0*.py"))
    missing = [f for f in named if f.rsplit(".", 1)[0] not in sources and f.split(".")[0] not in sources]
    assert not missing, f"coverage table names files no notebook writes: {missing}"
