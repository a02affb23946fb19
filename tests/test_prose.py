"""Prose that cannot go stale: the book's words name the run's numbers instead of typing them
(p2nlib.book.prose), the README is its template rendered from the run (p2nlib.book.readme)."""
import json
import re

import pytest

from p2nlib.book import build, prose, readme
from p2nlib.core import paths
from p2nlib.core.profiles import PROFILES


def _ledger(tmp_path, claims):
    figs = tmp_path / "figures"
    figs.mkdir()
    base = {"section": "§4.6", "paper": "3–5×", "unit": "×", "note": "", "notebook": "06_x", "profile": "small",
            "device": "cpu", "torch": "2", "commit": "abc", "date": "2026-01-01", "kind": "paper"}
    rows = [{**base, **c} for c in claims]
    (figs / "claims.json").write_text(json.dumps({"schema_version": 2, "generated": "now", "claims": rows}))
    (figs / "06_table.md").write_text("caption\n\n| start | median | built |\n|:--|--:|:--|\n"
                                      "| S / Ours | 30 | 71% |\n| `P` / Ours | 20 | 75% |\n")
    return prose.Sources(figures=figs, notebooks=tmp_path / "nb", test_run=tmp_path / "run.json")


def test_references_render_from_the_ledger_and_tables(tmp_path):
    src = _ledger(tmp_path, [{"id": "ood.speedup", "value": 1.27, "ci95": [0.83, 2.25], "n": 24,
                              "holds": None, "verdict": "undecided", "refs": {"train": 0.836}}])
    text = ("S / Ours {claim}`ood.speedup` {claim}`ood.speedup.ci95` over {claim}`ood.speedup.n` runs "
            "(paper {claim}`ood.speedup.paper`, {claim}`ood.speedup.verdict`; train {claim}`ood.speedup.refs.train`); "
            "KM median {cell}`06_table|S / Ours|median`, P built {cell}`06_table|P / Ours|built`, every median "
            "{cell}`06_table|*|median`; {profile}`small.objects_per_category` per category; {paper}`30–40%`, "
            "{fixed}`0.7`.")
    per = PROFILES["small"].objects_per_category
    assert prose.render(text, src) == (
        "S / Ours 1.27× [0.83, 2.25] over 24 runs (paper 3–5×, undecided; train 0.836); KM median 30, P built "
        f"75%, every median 30 and 20; {per} per category; 30–40%, 0.7.")
    assert prose.hand_typed(text) == []


@pytest.mark.parametrize("ref, says", [
    ("{claim}`ood.nope`", "no claim 'ood.nope'"),
    ("{claim}`ood.speedup.ceiling`", "has no 'ceiling'"),
    ("{cell}`06_table|Q / Ours|median`", "no row 'Q / Ours'"),
    ("{cell}`06_table|median`", "<table>|<row>|<column>"),
    ("{profile}`huge.objects_per_category`", "<profile>.<field>"),
])
def test_an_unknown_reference_is_a_clear_error(tmp_path, ref, says):
    src = _ledger(tmp_path, [{"id": "ood.speedup", "value": 1.27, "holds": None, "verdict": "not judged"}])
    with pytest.raises(prose.ProseError, match=re.escape(says)):
        prose.render(f"see {ref}", src, where="the discussion of x")


def test_hand_typed_numbers_are_found_and_names_are_not():
    ok = ("Table 3 and Fig. 9 of §4.6 (supplement VI) in chapter 05 and 03–06; stage 1 and stages 1–2, "
          "stage-1/2; ViT-B/32, float32, Zero-1-to-3, 3D, top-1, AVX-512, Python 3.10+; `0.5 in code`;\n"
          "1. a list item\n[a link](https://x.org/2303.09556)")
    assert prose.hand_typed(ok) == []
    bad = prose.hand_typed("The ratio is 1.27× [0.83, 2.25]\nand 7 of 10 prompts built.\nNo number here.")
    assert bad == ["The ratio is 1.27× [0.83, 2.25]", "and 7 of 10 prompts built."]
    assert prose.hand_typed("within 0.05 of train") == ["within 0.05 of train"]


def test_every_committed_text_names_its_numbers():
    """The discussions, the notebooks' Markdown and the README's template: no hand-typed number, and every
    reference resolves against the committed ledger, tables and notebooks."""
    sources = prose.Sources(figures=paths.ROOT / "figures", notebooks=paths.ROOT / "notebooks")
    texts = prose.checked_texts()
    assert {"book/claims_discussion.md", prose.README_TEMPLATE} <= set(texts)
    assert sum(t.startswith("notebooks/") for t in texts) >= 9
    problems = [p for where, text in texts.items() for p in prose.check_text(text, sources, where)]
    assert not problems, "\n".join(problems)


def test_a_number_typed_into_a_discussion_is_caught():
    """Replace one reference of the committed discussions by the number it renders to: the check fails."""
    sources = prose.Sources(figures=paths.ROOT / "figures", notebooks=paths.ROOT / "notebooks")
    text = (paths.ROOT / "book" / "claims_discussion.md").read_text()
    m = next(m for m in prose.ROLE.finditer(text) if m.group(1) == "claim")
    typed = text[:m.start()] + sources.resolve(m.group(1), m.group(2)) + text[m.end():]
    assert prose.check_text(text, sources, "d") == []
    assert prose.check_text(typed, sources, "d"), "a hand-typed number went unnoticed"


def test_every_claim_has_a_discussion():
    ids = {c["id"] for c in json.loads((paths.ROOT / "figures" / "claims.json").read_text())["claims"]}
    discussed = set(build.discussion(paths.ROOT / "book" / "claims_discussion.md"))
    assert ids - discussed == set(), f"claims without a discussion: {sorted(ids - discussed)}"


def test_the_claims_page_shows_rendered_discussions():
    page = build.claims_page(paths.ROOT / "figures" / "claims.json", paths.ROOT / "book" / "claims_discussion.md")
    assert not prose.ROLE.search(page), "a reference was left unrendered on the claims page"


def test_readme_is_its_template_rendered_from_the_run():
    assert (paths.ROOT / "README.md").read_text() == readme.render(), \
        "README.md differs from book/README.template.md rendered from the run: edit the template, then `make readme`"


def test_notebook_markdown_is_rendered_in_the_books_copy(tmp_path):
    src = _ledger(tmp_path, [{"id": "a.b", "value": 0.5, "unit": "", "holds": None, "verdict": "not judged"}])
    nb = tmp_path / "05_x.ipynb"
    nb.write_text(json.dumps({"cells": [{"cell_type": "markdown", "metadata": {}, "source": ["It is {claim}`a.b`."]},
                                        {"cell_type": "code", "metadata": {}, "source": "x = '{claim}`a.b`'",
                                         "outputs": [], "execution_count": None}],
                              "metadata": {}, "nbformat": 4, "nbformat_minor": 5}))
    prose.render_notebook(nb, src)
    cells = json.loads(nb.read_text())["cells"]
    assert cells[0]["source"] == "It is 0.5." and cells[1]["source"] == "x = '{claim}`a.b`'"


def test_a_missing_test_record_says_so(tmp_path):
    src = _ledger(tmp_path, [])
    assert prose.render("{testrun}`minutes`", src) == "(not recorded yet)"


def test_the_measured_times_are_read_against_their_budgets(tmp_path):
    src = _ledger(tmp_path, [])
    (tmp_path / "run.json").write_text(json.dumps({"seconds": 478, "minutes": "7 min 58 s"}))
    assert prose.render("{testrun}`target`", src) == "within the 8-minute target"
    (tmp_path / "run.json").write_text(json.dumps({"seconds": 761}))
    assert prose.render("{testrun}`target`", src) == "over the 8-minute target (by 5 min)"
    nb = tmp_path / "nb"
    nb.mkdir()
    for stem, secs in (("01_a", 2000.0), ("02_b", 1500.0)):
        (nb / f"{stem}.ipynb").write_text(json.dumps({"cells": [], "nbformat": 4, "nbformat_minor": 5, "metadata": {
            "p2n": {"profile": "small", "device": "cpu", "wall_time_s": secs}}}))
    assert prose.render("{wall}`total` s, {wall}`target`", src) == "3,500 s, within the hour target"
    (nb / "03_c.ipynb").write_text(json.dumps({"cells": [], "nbformat": 4, "nbformat_minor": 5, "metadata": {
        "p2n": {"profile": "small", "device": "cpu", "wall_time_s": 520.0}}}))
    src = prose.Sources(figures=tmp_path / "figures", notebooks=nb, test_run=tmp_path / "run.json")   # read afresh
    assert prose.render("{wall}`target`", src) == "over the hour target (by 7 min)"


def test_record_test_reads_pytests_junit(tmp_path):
    junit = tmp_path / "j.xml"
    junit.write_text('<testsuites><testsuite tests="10" failures="0" errors="0" skipped="2"/></testsuites>')
    data = readme.record_test(125.4, junit, out=tmp_path / "run.json")
    assert (data["passed"], data["skipped"], data["seconds"], data["minutes"]) == (8, 2, 125, "2 min 5 s")
    assert json.loads((tmp_path / "run.json").read_text())["passed"] == 8
