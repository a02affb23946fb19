"""Labelled runs and their cache, the claims table, the object sets, and the one error family."""
import dataclasses
import inspect
import json

import pytest
import torch

from p2nlib import clip
from p2nlib.baselines import guidance, optimize
from p2nlib.baselines.runs import Runs, mean_std
from p2nlib.book import claims, claims_spec
from p2nlib.core import errors, paths
from p2nlib.core.profiles import PROFILES, get_profile
from p2nlib.data import nerf, splits
from p2nlib.generate import cli

TINY = get_profile("tiny")
CFG = optimize.OptimConfig(size=8, samples=8, views=1, lr=1e-2, epoch_iters=2, eps=1e-12, k=1, max_epochs=2,
                           check_views=2, check_size=8)


@pytest.fixture(scope="module")
def encoder():
    return clip.build_small_clip(TINY)


def _labels():
    return [{"prompt": p, "init": i, "seed": s} for p in ("a chair", "a car") for i in ("S", "P") for s in (0, 1)]


def _runs(encoder, cfg=CFG, text="a chair"):
    spec = nerf.NerfSpec.from_profile(TINY)
    labels = _labels()
    targets = encoder.encode_text([lab["prompt"] for lab in labels])
    init = optimize.template_init(spec, len(labels))
    return Runs.optimise(labels, init, guidance.TextGuidance(encoder, targets), spec, cfg, targets, encoder,
                         profile="tiny", name="test-runs", progress=False)


def test_labelled_runs_select_best_and_table(encoder):
    runs = _runs(encoder)
    assert runs.select(prompt="a car") == [4, 5, 6, 7]
    assert runs.select(prompt="a car", init=["S", "P"], seed=1) == [5, 7]
    assert runs.one(prompt="a chair", init="P", seed=0) == 2
    with pytest.raises(KeyError, match="2 runs match"):
        runs.one(prompt="a chair", init="P")
    with pytest.raises(KeyError, match="no label 'colour'"):
        runs.select(colour="red")
    best = runs.best(prompt="a car", init="S")
    assert best in (4, 5)
    assert runs.result.final_similarity(best) == max(runs.result.final_similarity(r) for r in (4, 5))
    p = runs.params([1, 6], "final")
    assert torch.equal(p["l0.weight"][1], runs.result.final_params["l0.weight"][6])
    table = runs.table(budget=2)
    assert list(table.columns[:3]) == ["prompt", "init", "seed"] and len(table) == 8
    assert (table.iterations == runs.result.cap).all() and not table.converged.any()
    assert mean_std([1.0, 2.0, 3.0]) == "2.000 ± 1.000" and mean_std([float("nan")]) == "n/a"
    # failed = an empty or uniform scene where the run stopped: blank one run's snapshots, draw a pattern in another
    runs.result.snapshots[0] = 255
    runs.result.snapshots[1, :, :4] = 0
    runs.result.snapshots[1, :, 4:] = 255
    table = runs.table()
    assert bool(table.failed[0]) and not bool(table.failed[1])


def test_runs_are_cached_by_what_produced_them(encoder, monkeypatch):
    first = _runs(encoder)
    calls = []
    real = optimize.optimize
    monkeypatch.setattr("p2nlib.baselines.runs.optimize", lambda *a, **k: calls.append(1) or real(*a, **k))
    again = _runs(encoder)                                      # same inputs: read from disk, identical
    assert calls == []
    assert again.result.similarity == first.result.similarity and again.result.iterations == first.result.iterations
    assert all(torch.equal(again.result.params[k], first.result.params[k]) for k in first.result.params)
    _runs(encoder, cfg=dataclasses.replace(CFG, lr=2e-2))      # another config: computed afresh
    assert calls == [1]
    files = sorted(paths.stage_dir("tiny", "baselines").glob("test-runs-*.json"))
    assert len(files) == 2 and json.loads(files[0].read_text())["key"]["profile"] == "tiny"


def test_object_sets_never_overlap():
    for p in PROFILES.values():
        assert splits.overlaps(p) == [], p.name
        assert splits.OBJECT_SETS["dataset"].members(p) <= splits.OBJECT_SETS["clip_train"].members(p)
    # the test can fail: an evaluation set reaching into the training indices is reported
    bad = dataclasses.replace(PROFILES["tiny"], clip_eval_objects=splits.OOD_START - splits.CLIP_EVAL_START + 1)
    assert ("clip_eval", "ood_prompts", 8) in splits.overlaps(bad)


def test_claims_come_from_the_spec(tmp_path, monkeypatch):
    monkeypatch.setenv("P2N_NOTEBOOK", "00_spec")
    claims.start("tiny", "cpu")
    c = claims.record("dataset.psnr_mean", 31.0)
    assert (c.section, c.paper, c.unit, c.holds) == ("§3.1", 33.82, "dB", True)
    assert claims.record("dataset.psnr_mean", 29.99).holds is False
    assert claims.record("dataset.nerfs_per_hour", 5.0).holds is None        # not judged
    with pytest.raises(ValueError, match="claims_spec.py"):
        claims.record("dataset.psnr_mean", 31.0, section="§9")
    with pytest.raises(ValueError, match="verdict come from"):
        claims.record("dataset.psnr_mean", 20.0, holds=True)               # no verdict at a call site
    with pytest.raises(ValueError, match="not in p2nlib/book/claims_spec.py"):
        claims.record("made.up", 1.0)


def test_bars_compare_with_named_measurements_and_intervals(monkeypatch):
    monkeypatch.setenv("P2N_NOTEBOOK", "00_spec")
    claims.start("tiny", "cpu")
    for cid in claims_spec.control_ids("image", "trained"):        # the image baseline passed its controls
        claims.record(cid, 1.0)
    c = claims.record("id.image.fd_test", 0.2, refs={"image baseline": 0.25}, through={"image": "trained"})
    assert c.holds is True and c.refs == {"image baseline": 0.25}
    assert claims.record("id.image.fd_test", 0.3, refs={"image baseline": 0.25},
                         through={"image": "trained"}).holds is False
    with pytest.raises(ValueError, match="pass refs"):
        claims.record("id.image.fd_test", 0.2)
    with pytest.raises(ValueError, match="compares with"):
        claims.record("id.image.fd_test", 0.2, refs={"image baseline": 0.25, "other": 1.0})
    # two comparisons, both must hold: within 0.05 of train and above the baseline on the subset
    spec = claims_spec.SPECS["id.image.sim_test"]
    refs = {"train split": 0.83, "ours on the same scenes": 0.70, "image baseline's upper 95% end": 0.60}
    assert spec.judge(0.79, refs=refs) == "holds"
    assert spec.judge(0.77, refs=refs) == "does not hold"
    assert spec.judge(0.79, refs={**refs, "image baseline's upper 95% end": 0.71}) == "does not hold"
    assert "value ≥ train split − 0.05 (= 0.78)" in spec.bar_text(refs)
    # an interval rule reads the interval's lower end, and needs one
    sp = claims_spec.SPECS["ood.speedup_vs_scratch"]
    assert sp.judge(3.5, (3.1, 4.0)) == "holds" and sp.judge(3.5, (2.9, 4.0)) == "undecided"
    assert sp.judge(2.5, (2.0, 2.9)) == "does not hold"
    with pytest.raises(ValueError, match="ci95"):
        sp.judge(3.5)
    assert sp.bar_text() == "95% interval's lower end ≥ 3×"
    # the fixed-view model is judged against its own training view (it should lose >= 1 dB off it)
    fx = claims_spec.SPECS["rotation.psnr_fixed_view_training"]
    assert fx.judge(19.0, refs={"its training view": 20.5}) == "holds"
    assert fx.judge(20.0, refs={"its training view": 20.5}) == "does not hold"
    # a missing value fails a judged claim instead of passing it
    assert claims_spec.SPECS["dataset.psnr_mean"].judge(None) == "does not hold"


def test_no_verdict_is_computed_at_a_call_site():
    import re

    sources = [*sorted((paths.ROOT / "notebooks").glob("[0-9][0-9]_*.py")),
               *sorted((paths.ROOT / "p2nlib/chapters").glob("*.py"))]
    found = [f"{p.name}: {m}" for p in sources for m in re.findall(r"holds=[^\n,)]*", p.read_text())]
    assert not found, f"verdicts written at call sites instead of the claims spec's bars: {found}"


def test_every_recorded_claim_is_in_the_spec_and_every_spec_row_is_recorded():
    import re

    recorded = set()
    for nb in sorted((paths.ROOT / "notebooks").glob("[0-9][0-9]_*.py")):
        recorded |= set(re.findall(r'claims\.record\("([\w.]+)"', nb.read_text()))
    verdicts = (paths.ROOT / "p2nlib/chapters/verdicts.py").read_text()
    recorded |= set(re.findall(r'id="([\w.]+)"', verdicts)) | set(re.findall(r'_judged\(\s*"([\w.]+)"', verdicts))
    # the twelve controls are written per prior and modality by verdicts.control_claims (tests/test_controls.py
    # records all six of a prior and checks their ids)
    controls = {c for c in claims_spec.SPECS if c.startswith("controls.")}
    assert "def control_claims" in verdicts and len(controls) == 12
    assert recorded | controls == set(claims_spec.SPECS)


def test_every_project_error_is_one_family():
    classes = [c for _, c in inspect.getmembers(errors, inspect.isclass) if c.__module__ == errors.__name__]
    assert len(classes) >= 8 and all(issubclass(c, errors.P2NError) for c in classes)


@pytest.mark.parametrize("error", [errors.CheckpointMismatchError, errors.StoreError, errors.ArtifactError,
                                   errors.EncoderNotFoundError, errors.InputError])
def test_every_project_error_reaches_the_cli_as_one_line(error, monkeypatch, capsys, tmp_path):
    from p2nlib.generate import pipeline

    def fail(*a, **k):
        raise error("what is wrong, and the command that fixes it")

    monkeypatch.setattr(pipeline.Prompt2NeRF, "load", classmethod(fail))
    assert cli.main(["generate", "--text", "a chair", "--out", str(tmp_path / "x.gif"), "--profile", "tiny"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("p2n: error: what is wrong") and "Traceback" not in err


def test_a_stale_clip_checkpoint_is_a_project_error():
    weights, config = clip.checkpoint_paths(TINY)
    weights.write_bytes(b"")
    config.write_text(json.dumps({"profile": "tiny", "model_cfg": {"embed_dim": 1}, "train_cfg": {}}))
    with pytest.raises(errors.P2NError, match="make book ONLY=02"):
        clip.load_encoder(TINY)


def test_a_claim_is_judged_exactly_when_its_rule_says_so():
    unjudged_rule = {cid for cid, s in claims_spec.SPECS.items() if s.rule.startswith("not judged")}
    no_bar = {cid for cid, s in claims_spec.SPECS.items() if not s.judged}
    assert unjudged_rule == no_bar
