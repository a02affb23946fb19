"""The generated book pages: the claims page (per-section tables, details, discussion), running page with
recorded wall times, coverage table."""
import json
import re

from p2nlib.book import claims, claims_spec
from p2nlib.book import build as book
from p2nlib.core import paths


def _claims_file(tmp_path, rows):
    data = {"schema_version": claims.SCHEMA_VERSION, "generated": "2026-01-01T00:00:00+00:00", "claims": rows}
    path = tmp_path / "claims.json"
    path.write_text(json.dumps(data))
    return path


_WORD = {True: "holds", False: "does not hold", None: "not judged"}


def _row(id, holds, verdict=None):
    """A ledger entry; ``verdict`` defaults to the one ``holds`` stands for (pass "undecided" with holds None)."""
    return {"id": id, "section": "§4.6", "value": 1.2, "unit": "×", "paper": "3–5×", "holds": holds,
            "verdict": verdict or _WORD[holds], "note": "n",
            "notebook": "06", "profile": "small", "device": "cpu", "torch": "2", "commit": "abc", "date": "d"}


def test_discussion_is_shown_whatever_the_verdict(tmp_path):
    disc = tmp_path / "disc.md"
    disc.write_text("intro text\n\n## ood.speedup\n\n*Written for the verdict: does not hold.*\n\nWhy it fails here."
                    "\n\n## ok.claim\n\nWhat it still hides.\n")
    assert book.discussion(disc)["ok.claim"] == "What it still hides."
    assert book.discussion_verdicts(disc) == {"ood.speedup": "does not hold", "ok.claim": None}
    page = book.claims_page(_claims_file(tmp_path, [_row("ood.speedup", False), _row("ok.claim", True)]), disc)
    assert "Why it fails here." in page and "What it still hides." in page
    assert 'data-count="2"' in page
    assert book.discussion(tmp_path / "missing.md") == {}


def test_claims_page_is_one_compact_table_per_paper_section(tmp_path):
    rows = [_row("ood.speedup", False), {**_row("ood.extra", None), "section": "§4.6 (our complementary measure)"},
            {**_row("id.sim", True), "section": "§4.5, Table 1", "unit": "", "value": 0.5},
            {**_row("rot.x", None), "section": "supp. I"}, {**_row("clip.y", None), "section": "supp. II"},
            {**_row("data.z", True), "section": "§3.1", "paper": "a | b", "note": "x_y *z*"}]
    page = book.claims_page(_claims_file(tmp_path, rows), tmp_path / "none.md")
    headings = re.findall(r"^## (.+)$", page, flags=re.M)
    assert headings == ["§3.1", "§4.5", "§4.6", "supp. I", "supp. II", "Details of every claim"]
    tables = re.findall(r":::\{table\}\n:class: p2n-claims\n\n(.*?)\n:::", page, flags=re.S)
    assert len(tables) == 5
    assert all(t.splitlines()[0] == "| claim | paper | ours | verdict |" for t in tables)
    body = [line for t in tables for line in t.splitlines()[2:]]
    assert len(body) == len(rows)
    assert all(len(re.split(r"(?<!\\)\|", line)) == 6 for line in body)      # 4 cells per row, "|" escaped
    [speedup] = [line for line in body if "#claim-ood-speedup)" in line]
    assert "| 3–5× | 1.2 × |" in speedup and 'p2n-verdict-fails">does not hold</span>' in speedup
    assert "| 0.5 |" in next(line for line in body if "#claim-id-sim)" in line)
    assert sum("p2n-verdict-unjudged" in line for line in body) == 3
    # each claim's details sit under the anchor its row links to: note, run (profile, commit), back link
    details = page.split("## Details of every claim", 1)[1]
    for c in rows:
        anchor = claims.claim_anchor(c["id"])
        assert f"](#{anchor})" in page and f":name: {anchor}" in details
    assert "profile small, device cpu" in details and "commit `abc`" in details
    assert r"x\_y \*z\*" in details and "[back to §4.6](#claims-4-6)" in details
    assert "(claims-4-6)=\n## §4.6" in page


def test_section_group_and_order():
    assert claims.section_group("§4.6, Tables 3, 5, 6") == "§4.6"
    assert claims.section_group("§4.6 (our complementary measure)") == "§4.6"
    assert claims.section_group("supp. II") == "supp. II"
    assert claims.section_group("§4.5–4.6 (controls of the stand-ins)") == "§4.5–4.6"
    data = {"claims": [{"id": f"a.{i}", "section": s} for i, s in
                       enumerate(["supp. IV", "§10.1", "§4.6", "§4.5–4.6 (controls)", "§4.5", "supp. II", "misc",
                                  "§4.10", "supp. IX"])]}
    assert [g for g, _ in claims.group_claims(data)] == ["§4.5", "§4.5–4.6", "§4.6", "§4.10", "§10.1", "supp. II",
                                                         "supp. IV", "supp. IX", "misc"]


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
    discussed = set(book.discussion(paths.ROOT / "book" / "claims_discussion.md"))
    assert discussed <= ids
    assert not discussed & set(claims_spec.RENAMED), "a discussion under a claim's old id"
    intro = (paths.ROOT / "book" / "intro.md").read_text()
    named = set(re.findall(r"`((?:0\d)_[\w.]+\.(?:png|gif|md|csv))`", intro))
    sources = " ".join(p.read_text() for p in (paths.ROOT / "notebooks").glob("0*.py"))
    missing = [f for f in named if f.rsplit(".", 1)[0] not in sources and f.split(".")[0] not in sources]
    assert not missing, f"coverage table names files no notebook writes: {missing}"


def test_no_discussion_argues_a_verdict_the_ledger_does_not_have():
    """Every discussion names the verdict it was written for, and that is the ledger's verdict now."""
    ledger = {c["id"]: claims.verdict(c) for c in claims.load(paths.ROOT / "figures" / "claims.json")["claims"]}
    written = book.discussion_verdicts(paths.ROOT / "book" / "claims_discussion.md")
    assert written, "book/claims_discussion.md has no sections"
    missing = sorted(cid for cid, v in written.items() if v is None)
    assert not missing, f"discussions without a '*Written for the verdict: ...*' line: {missing}"
    stale = {cid: (v, ledger.get(cid)) for cid, v in written.items() if v != ledger.get(cid)}
    assert not stale, f"discussions written for another verdict than figures/claims.json's (written, ledger): {stale}"


def test_every_claim_has_a_kind_and_the_page_counts_them_apart(tmp_path):
    assert {s.kind for s in claims_spec.SPECS.values()} == set(claims_spec.KINDS)
    assert claims_spec.SPECS["overview.nerf_param_tensors"].kind == "check"
    assert claims_spec.SPECS["controls.image.ideal.negative"].kind == "check"
    assert claims_spec.SPECS["priors.text_zero_shot_samples"].kind == "stand-in"
    assert claims_spec.SPECS["ood.speedup_vs_scratch"].kind == "paper"
    rows = [{**_row("ood.speedup_vs_scratch", False)}, {**_row("overview.nerf_param_tensors", True)},
            {**_row("priors.text_zero_shot_samples", True)}, _row("ood.sim_ours_minus_scratch", None, "undecided")]
    page = book.claims_page(_claims_file(tmp_path, rows), tmp_path / "none.md")
    assert "4 claims; 2 hold, 1 does not hold, 1 undecided, 0 not judged." in page
    assert "**paper** (the paper says it): 2, of which 0 hold, 1 does not hold, 1 undecided, 0 not judged" in page
    assert ("**check** (true by construction, or a control a stand-in must pass): 1, of which 1 holds, "
            "0 do not hold") in page
    assert "Claims left undecided: [ood.sim\\_ours\\_minus\\_scratch](#claim-ood-sim-ours-minus-scratch)." in page
    ledger = claims.load(paths.ROOT / "figures" / "claims.json")["claims"]
    assert all(c.get("kind") in claims_spec.KINDS for c in ledger), "claims.json entries without a kind"


def test_an_undecided_claim_says_why_and_which_priors_judged_it(tmp_path):
    gated = ("the text baseline (ideal prior) did not pass its controls: controls.text.ideal.scratch "
             "(does not hold)")
    rows = [{**_row("ood.speedup_vs_scratch", None, "undecided"), "through": {"text": "ideal", "image": "trained"},
             "gated": gated, "ci95": [0.9, 1.5]},
            {**_row("ood.sim_ours_minus_scratch", None, "undecided"), "ci95": [-0.01, 0.03]},
            {**_row("ood.speedup_vs_pretrained", True), "through": {"text": "ideal", "image": "trained"}}]
    page = book.claims_page(_claims_file(tmp_path, rows), tmp_path / "none.md")
    tables, details = page.split("## Details of every claim", 1)
    assert tables.count('p2n-verdict-undecided" title="') == 2 and tables.count(">undecided</span>") == 2
    blocks = {c["id"]: details.split(f":name: {claims.claim_anchor(c['id'])}", 1)[1].split(":::{rubric}")[0]
              for c in rows}
    assert f"*Undecided:* {claims.md_text(gated)}; judged on its value alone, it would not hold" in \
        blocks["ood.speedup_vs_scratch"]
    assert "*Judged through:* text baseline (ideal prior), image baseline (trained prior)" in \
        blocks["ood.speedup_vs_scratch"]
    assert "*Undecided:* its 95% interval straddles the bar" in blocks["ood.sim_ours_minus_scratch"]
    assert "Judged through" not in blocks["ood.sim_ours_minus_scratch"]
    assert "Undecided" not in blocks["ood.speedup_vs_pretrained"]
    assert "*Judged through:* text baseline" in blocks["ood.speedup_vs_pretrained"]
    css = (paths.ROOT / "book" / "_static" / "p2n.css").read_text()
    assert all(f".p2n-verdict-{c} " in css for c in claims.VERDICT_CLASS.values())


def test_discussions_may_be_written_for_an_undecided_verdict(tmp_path):
    disc = tmp_path / "disc.md"
    disc.write_text("## a.b\n\n*Written for the verdict: undecided.*\n\nIt straddles.\n")
    assert book.discussion_verdicts(disc) == {"a.b": "undecided"}


def test_profiles_that_disagree_name_both_verdicts_in_four_words(tmp_path):
    here = {"claims": [_row("a.x", True), _row("a.y", None, "undecided"), _row("a.z", None), _row("a.w", False)]}
    there = {"claims": [_row("a.x", None, "undecided"), _row("a.y", None, "undecided"), _row("a.z", True),
                        _row("a.w", True)]}
    assert claims.disagreements(here, there) == [("a.x", "holds", "undecided"), ("a.w", "does not hold", "holds")]
