"""Verdicts in four words (holds, does not hold, undecided, not judged), read on values, references and 95%
intervals, and the verdicts of claims measured through the per-prompt baselines, gated on their controls."""
import json

import pytest

from p2nlib.book import claims, claims_spec
from p2nlib.book.claims_spec import Bar, ClaimSpec
from p2nlib.core import paths

ALL_PRIORS = {"text": "ideal", "image": "trained"}


# ---- the interval rule and the combination of bars ---------------------------------------------------------

@pytest.mark.parametrize("op, ci95, expected", [
    (">=", (3.1, 4.0), "holds"),              # the lower end clears the bar
    (">=", (3.0, 4.0), "holds"),              # ... on the bar itself
    (">=", (2.9, 4.0), "undecided"),          # straddles it
    (">=", (2.0, 3.0), "undecided"),          # the far end on the bar: still straddles
    (">=", (1.5, 2.9), "does not hold"),      # the whole interval below
    ("<=", (1.0, 2.9), "holds"),              # the upper end clears the bar
    ("<=", (2.5, 3.5), "undecided"),
    ("<=", (3.1, 4.0), "does not hold"),      # the whole interval above
    (">", (3.0, 4.0), "undecided"),           # strict: the lower end on the bar does not clear it
    (">", (2.0, 3.0), "does not hold"),       # strict: the far end on the bar fails too
    ("<", (2.0, 3.0), "undecided"),
    ("<", (3.0, 4.0), "does not hold"),
])
def test_a_bar_on_the_interval_has_three_outcomes(op, ci95, expected):
    bar = Bar(op, 3.0, of="interval")
    assert bar.verdict(3.5, ci95) == expected
    assert bar.holds(3.5, ci95) is (expected == "holds")
    assert ClaimSpec("a.b", "§1", bar=(bar,), rule="r").judge(3.5, ci95) == expected


def test_an_interval_bar_against_a_reference_and_with_missing_ends():
    bar = Bar(">=", -0.05, ref="train split", of="interval")
    assert bar.verdict(0.8, (0.79, 0.81), {"train split": 0.83}) == "holds"
    assert bar.verdict(0.8, (0.76, 0.81), {"train split": 0.83}) == "undecided"
    assert bar.verdict(0.7, (0.70, 0.75), {"train split": 0.83}) == "does not hold"
    assert bar.verdict(0.8, (0.79, 0.81), {"train split": None}) == "does not hold"     # a missing reference
    assert bar.verdict(0.8, (None, 0.9), {"train split": 0.83}) == "does not hold"      # a missing end
    assert Bar(">=", 3.0, of="interval").verdict(3.5, (2.0, float("nan"))) == "does not hold"
    # on the value (not the interval) there is no undecided: holds or does not hold
    assert Bar(">=", 3.0).verdict(2.9, (2.0, 4.0)) == "does not hold"


def test_several_bars_combine_worst_first():
    spec = ClaimSpec("a.b", "§1", bar=(Bar(">=", 3.0, of="interval"), Bar("<=", 10.0, of="interval")), rule="r")
    assert spec.judge(5, (4, 6)) == "holds"
    assert spec.judge(5, (2, 6)) == "undecided"
    assert spec.judge(5, (2, 11)) == "undecided"
    assert spec.judge(12, (11, 13)) == "does not hold"
    mixed = ClaimSpec("a.c", "§1", bar=(Bar(">=", 3.0, of="interval"), Bar(">", ref="other")), rule="r")
    assert mixed.judge(5, (2, 6), {"other": 6}) == "does not hold"        # a failing bar beats an undecided one
    assert mixed.judge(5, (2, 6), {"other": 4}) == "undecided"
    assert ClaimSpec("a.d", "§1").judge(5) == "not judged"
    assert spec.judge(None, (4, 6)) == "does not hold"


def test_a_reference_on_the_left_compares_with_a_level():
    spec = claims_spec.SPECS["controls.text.trained.scratch"]
    assert spec.refs == {"runs failed"}
    assert spec.judge(9, refs={"runs failed": 0.05}) == "holds"
    assert spec.judge(9, refs={"runs failed": 0.2}) == "does not hold"
    assert spec.judge(7, refs={"runs failed": 0.0}) == "does not hold"
    text = spec.bar_text({"runs failed": 0.05})
    assert text == "value ≥ 8 prompts of 10 and runs failed (0.05) ≤ 0.1"       # the unit is the value's only
    with pytest.raises(ValueError, match="pass refs"):
        spec.judge(9)


# ---- the spec: controls, baselines, renamed ids ------------------------------------------------------------

def test_the_spec_has_twelve_controls_and_names_the_baselines_claims_run_through():
    controls = [cid for cid in claims_spec.SPECS if cid.startswith("controls.")]
    assert len(controls) == 12 and len(claims_spec.SPECS) == 51
    assert controls == [cid for m in ("text", "image") for p in ("trained", "ideal")
                        for cid in claims_spec.control_ids(m, p)]
    for cid in controls:
        s = claims_spec.SPECS[cid]
        assert s.kind == "check" and s.paper is None and s.judged and s.section.startswith("§4.5–4.6")
    assert claims_spec.SPECS["controls.image.ideal.scratch"].judge(0.8) == "holds"
    assert claims_spec.SPECS["controls.text.trained.positive"].judge(0.85) == "does not hold"
    through = {cid: s.through for cid, s in claims_spec.SPECS.items() if s.through}
    assert through == {**dict.fromkeys(("ood.speedup_vs_scratch", "ood.speedup_to_quality_vs_scratch",
                                        "ood.speedup_to_built_vs_scratch", "ood.speedup_vs_pretrained",
                                        "ood.sim_ours_minus_scratch"), ("text", "image")),
                       **dict.fromkeys(("ablation.nrs_minus_di_sim",
                                        "id.text.sim_ours", "id.text.speedup_wall_time"), ("text",)),
                       **dict.fromkeys(("id.image.sim_test", "id.image.fd_test", "id.image.sim_baseline"), ("image",))}
    assert "ood.scratch_prompts_built" not in claims_spec.SPECS
    assert claims_spec.RENAMED == {"ood.scratch_prompts_built": "controls.text.trained.scratch"}
    with pytest.raises(ValueError, match="no controls"):
        claims_spec.control_ids("text", "perfect")


# ---- recording: verdicts gated on the controls -------------------------------------------------------------

def _start(monkeypatch, notebook="06_test"):
    monkeypatch.setenv("P2N_NOTEBOOK", notebook)
    return claims.start("tiny", "cpu")


def _controls(modality, prior, fail: str | None = None):
    """Record the three controls of one baseline, all holding but ``fail``."""
    for cid in claims_spec.control_ids(modality, prior):
        refs = {"runs failed": 0.0} if claims_spec.SPECS[cid].refs else None
        value = (10 if refs else 1.0) if not cid.endswith(f".{fail}") else 0.0
        claims.record(cid, value, refs=refs)


def test_a_claim_through_baselines_that_passed_their_controls_gets_its_bar_verdict(monkeypatch):
    _start(monkeypatch)
    _controls("text", "ideal")
    _controls("image", "trained")
    c = claims.record("ood.speedup_vs_scratch", 3.5, ci95=(3.1, 4.0), through=ALL_PRIORS)
    assert (c.verdict, c.holds, c.gated, c.through) == ("holds", True, None, ALL_PRIORS)
    c = claims.record("ood.speedup_vs_scratch", 3.5, ci95=(2.5, 4.0), through=ALL_PRIORS)
    assert (c.verdict, c.holds, c.gated) == ("undecided", None, None)
    c = claims.record("ood.speedup_vs_scratch", 2.0, ci95=(1.5, 2.5), through=ALL_PRIORS)
    assert (c.verdict, c.holds) == ("does not hold", False)
    # a claim through the text baseline only keeps only that baseline's prior
    c = claims.record("ablation.nrs_minus_di_sim", 0.05, ci95=(0.01, 0.08), through=ALL_PRIORS)
    assert c.through == {"text": "ideal"} and c.verdict == "holds"


def test_a_failing_control_leaves_the_claim_undecided_and_names_it(monkeypatch):
    path = _start(monkeypatch)
    _controls("text", "ideal", fail="scratch")
    _controls("image", "trained")
    c = claims.record("ood.speedup_vs_scratch", 3.5, ci95=(3.1, 4.0), n=30, through=ALL_PRIORS, note="kept")
    assert (c.verdict, c.holds) == ("undecided", None)
    assert c.gated == ("the text baseline (ideal prior) did not pass its controls: controls.text.ideal.scratch "
                       "(does not hold)")
    assert (c.value, c.ci95, c.n, c.note) == (3.5, [3.1, 4.0], 30, "kept")     # the measurement is still recorded
    # a claim through the image baseline alone is not gated by the text baseline's controls
    assert claims.record("id.image.fd_test", 0.2, refs={"image baseline": 0.25},
                         through={"image": "trained"}).verdict == "holds"
    # the same claim with the image baseline's ideal prior, whose controls fail twice
    _controls("image", "ideal", fail="positive")
    claims.record("controls.image.ideal.negative", 0.4)
    c = claims.record("id.image.fd_test", 0.2, refs={"image baseline": 0.25}, through={"image": "ideal"})
    assert c.verdict == "undecided" and c.gated.endswith(
        "controls.image.ideal.positive (does not hold), controls.image.ideal.negative (does not hold)")
    entry = {e["id"]: e for e in json.loads(path.read_text())["claims"]}["ood.speedup_vs_scratch"]
    assert (entry["verdict"], entry["holds"]) == ("undecided", None)
    assert entry["gated"] == "the text baseline (ideal prior) did not pass its controls: controls.text.ideal.scratch " \
                             "(does not hold)"
    assert entry["through"] == ALL_PRIORS
    frame = claims.frame([claims.record("dataset.psnr_mean", 31.0), c])
    assert list(frame.verdict) == ["holds", "undecided"] and frame.loc["id.image.fd_test", "gated"] == c.gated
    assert "gated" not in claims.frame([claims.record("dataset.psnr_mean", 31.0)]).columns


def test_controls_are_read_from_the_merged_ledger_when_this_notebook_has_none(monkeypatch):
    _start(monkeypatch, "08_controls")
    _controls("text", "trained")
    _controls("image", "trained", fail="negative")
    claims.merge_into(claims._record_file("08_controls"))
    _start(monkeypatch, "06_test")
    c = claims.record("ood.sim_ours_minus_scratch", 0.02, ci95=(0.01, 0.03),
                      through={"text": "trained", "image": "trained"})
    assert c.verdict == "undecided" and "controls.image.trained.negative (does not hold)" in c.gated
    assert "text baseline" not in c.gated
    # this notebook's own records come first
    _controls("image", "trained")
    c = claims.record("ood.sim_ours_minus_scratch", 0.02, ci95=(0.01, 0.03),
                      through={"text": "trained", "image": "trained"})
    assert (c.verdict, c.gated) == ("holds", None)


def test_controls_recorded_nowhere_and_missing_priors_are_errors(monkeypatch):
    _start(monkeypatch)
    claims.record("controls.text.ideal.positive", 0.95)
    with pytest.raises(ValueError, match=r"runs through the text baseline \(ideal prior\): record its controls "
                                         r"controls\.text\.ideal\.negative, controls\.text\.ideal\.scratch first"):
        claims.record("id.text.sim_ours", 0.3, refs={"text baseline at convergence": 0.28}, through={"text": "ideal"})
    with pytest.raises(ValueError, match=r"image baseline \(trained prior\): record its controls "
                                         r"controls\.image\.trained\.positive"):
        claims.record("ood.speedup_vs_scratch", 3.5, ci95=(3.1, 4.0), through=ALL_PRIORS)
    with pytest.raises(ValueError, match="runs through the image baseline: pass through="):
        claims.record("ood.speedup_vs_scratch", 3.5, ci95=(3.1, 4.0), through={"text": "ideal"})
    with pytest.raises(ValueError, match="runs through the text and image baseline"):
        claims.record("ood.speedup_vs_scratch", 3.5, ci95=(3.1, 4.0))
    with pytest.raises(ValueError, match="one of trained, ideal"):
        claims.record("id.text.sim_ours", 0.3, refs={"text baseline at convergence": 0.28}, through={"text": "best"})
    with pytest.raises(ValueError, match="does not run through"):
        claims.record("dataset.psnr_mean", 31.0, through={"text": "ideal"})
    with pytest.raises(ValueError, match="is now 'controls.text.trained.scratch'"):
        claims.record("ood.scratch_prompts_built", 2)


# ---- the ledger: schema, counts, older files ---------------------------------------------------------------

def test_a_ledger_with_gated_claims_validates_and_counts_four_verdicts(tmp_path, monkeypatch):
    _start(monkeypatch)
    _controls("text", "ideal", fail="negative")
    _controls("image", "trained")
    claims.record("ood.speedup_vs_scratch", 3.5, ci95=(3.1, 4.0), through=ALL_PRIORS)     # undecided: gated
    claims.record("id.image.sim_baseline", 0.6, ci95=(0.55, 0.65), refs={"ours on the same scenes": 0.62},
                  through={"image": "trained"})                                            # undecided: straddles
    claims.record("id.image.fd_test", 0.2, refs={"image baseline": 0.25}, through={"image": "trained"})  # holds
    claims.record("dataset.nerfs_per_hour", 5.0)                                           # not judged
    out = tmp_path / "claims.json"
    data = claims.merge_into(claims._record_file(), out)
    assert data["schema_version"] == claims.SCHEMA_VERSION == 2
    by_id = {c["id"]: c for c in data["claims"]}
    assert by_id["ood.speedup_vs_scratch"]["through"] == ALL_PRIORS and by_id["ood.speedup_vs_scratch"]["gated"]
    assert by_id["id.image.sim_baseline"]["verdict"] == "undecided" and "gated" not in by_id["id.image.sim_baseline"]
    assert "through" not in by_id["dataset.nerfs_per_hour"]
    assert claims.load(out) == data
    counts = claims.kind_counts(data)
    assert counts["paper"] == {"holds": 1, "does not hold": 0, "undecided": 2, "not judged": 1}
    # six controls hold; controls.text.ideal.negative does not
    assert counts["check"] == {"holds": 5, "does not hold": 1, "undecided": 0, "not judged": 0}
    assert counts["stand-in"] == dict.fromkeys(claims_spec.VERDICTS, 0)
    assert "| 0.6 |  | undecided |" in claims.render_markdown(data)


def _v1_ledger(path, rows):
    stamp = {"notebook": "06", "profile": "small", "device": "cpu", "torch": "2", "commit": "x", "date": "d"}
    path.write_text(json.dumps({"schema_version": 1, "generated": "d", "claims": [
        {"id": cid, "section": "§4.6", "value": 1.0, "unit": "", "paper": None, "holds": h, "note": "", **stamp}
        for cid, h in rows]}))
    return path


def test_a_version_1_ledger_is_read_with_verdicts_from_holds_and_current_ids(tmp_path):
    path = _v1_ledger(tmp_path / "claims.json", [("a.one", True), ("a.two", False), ("a.three", None),
                                                 ("ood.scratch_prompts_built", False)])
    data = claims.load(path)
    assert data["schema_version"] == 2
    assert {c["id"]: c["verdict"] for c in data["claims"]} == {
        "a.one": "holds", "a.two": "does not hold", "a.three": "not judged",
        "controls.text.trained.scratch": "does not hold"}
    moved = data["claims"][-1]
    assert moved["section"] == claims_spec.SPECS["controls.text.trained.scratch"].section
    assert moved["note"] == "recorded as ood.scratch_prompts_built, judged by the bar it had then"
    # an old id next to its new one: the new one is kept
    path = _v1_ledger(tmp_path / "both.json", [("ood.scratch_prompts_built", False),
                                               ("controls.text.trained.scratch", True)])
    assert [(c["id"], c["verdict"]) for c in claims.load(path)["claims"]] == [("controls.text.trained.scratch",
                                                                                "holds")]
    # a version-2 ledger must say its verdicts
    data = json.loads((tmp_path / "claims.json").read_text())
    data["schema_version"] = 2
    (tmp_path / "v2.json").write_text(json.dumps(data))
    with pytest.raises(claims.ClaimsFileError, match="'verdict' is a required property"):
        claims.load(tmp_path / "v2.json")
    # the schema describes version 1 too (a merge by code of that version stays valid), never a third
    import jsonschema

    old = json.loads((tmp_path / "claims.json").read_text())
    old["claims"][0]["verdict"] = "holds"                 # an entry recorded by this version, merged by the older
    jsonschema.validate(old, claims.schema())
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({**old, "schema_version": 3}, claims.schema())


def test_an_older_record_file_still_merges_into_a_version_1_ledger(tmp_path, monkeypatch):
    ledger = _v1_ledger(tmp_path / "claims.json", [("a.kept", True)])
    rec = _start(monkeypatch, "07_old")
    old = json.loads(rec.read_text())
    old["claims"] = [{"id": "b.old", "section": "§1", "value": 2.0, "unit": "", "paper": None, "holds": False,
                      "note": ""}]
    rec.write_text(json.dumps(old))
    data = claims.merge_into(rec, ledger)
    assert data["schema_version"] == 2
    assert {c["id"]: (c["verdict"], c["holds"]) for c in data["claims"]} == {"a.kept": ("holds", True),
                                                                             "b.old": ("does not hold", False)}


def test_the_committed_ledger_reads_under_the_current_schema():
    data = claims.load(paths.ROOT / "figures" / "claims.json")
    assert all(c["verdict"] in claims_spec.VERDICTS for c in data["claims"])
    assert not set(claims_spec.RENAMED) & {c["id"] for c in data["claims"]}


def test_merging_reads_the_other_notebooks_verdicts_again_from_their_bars(tmp_path, monkeypatch):
    """A bar's rule that changed since a notebook ran applies to its claims at the next merge (an interval that
    straddles the bar is undecided now); the notebook's own claims come from its record file."""
    ledger = tmp_path / "claims.json"
    _start(monkeypatch, "07_old")
    claims.record("splits.id_image_sim_test", 0.793, ci95=(0.725, 0.861), refs={"train split": 0.836})
    claims.merge_into(claims._record_file("07_old"), ledger)
    data = json.loads(ledger.read_text())
    old = data["claims"][0]
    assert old["verdict"] == "undecided"
    old.update(verdict="does not hold", holds=False)           # as judged by the rule it had when it ran
    ledger.write_text(json.dumps(data))
    _start(monkeypatch, "08_new")
    claims.record("priors.view_psnr_gain", 1.0)
    out = claims.merge_into(claims._record_file("08_new"), ledger)
    by = {c["id"]: c for c in out["claims"]}
    assert (by["splits.id_image_sim_test"]["verdict"], by["splits.id_image_sim_test"]["holds"]) == ("undecided", None)
    assert by["priors.view_psnr_gain"]["verdict"] == "holds"


def test_a_control_not_run_is_not_judged_gates_its_claims_and_keeps_its_verdict_at_the_merge(tmp_path, monkeypatch):
    """A claim recorded as not measured (``skipped``) has no value and the verdict "not judged", whatever its bar;
    a claim through its baseline is undecided and names it; the next merge does not judge it again as missing."""
    ledger = tmp_path / "claims.json"
    _start(monkeypatch, "05_old")
    with pytest.raises(ValueError, match="has no value"):
        claims.record("controls.text.trained.scratch", 3, skipped="why")
    _controls("image", "trained")
    claims.record("controls.text.ideal.positive", 1.0)
    claims.record("controls.text.ideal.negative", 1.0)
    c = claims.record("controls.text.ideal.scratch", None, skipped="not run: the positive control failed first")
    assert (c.verdict, c.holds, c.value, c.skipped) == ("not judged", None, None, "not run: the positive control "
                                                                                 "failed first")
    g = claims.record("ood.speedup_vs_scratch", 3.5, ci95=(3.1, 4.0), through=ALL_PRIORS)
    assert g.verdict == "undecided" and "controls.text.ideal.scratch (not judged)" in g.gated
    claims.merge_into(claims._record_file("05_old"), ledger)
    _start(monkeypatch, "08_new")
    claims.record("priors.view_psnr_gain", 1.0)
    by = {c["id"]: c for c in claims.merge_into(claims._record_file("08_new"), ledger)["claims"]}
    assert by["controls.text.ideal.scratch"]["verdict"] == "not judged"
    assert by["controls.text.ideal.scratch"]["skipped"].startswith("not run")
    page = claims.render_claim_details({"claims": list(by.values())})
    assert "*Not measured:* not run: the positive control failed first" in page
