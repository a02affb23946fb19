"""The results chapters on the tiny profile: each step returns its results and the tables, figures and claims
take them; the scenes drawn do not depend on the order of the steps; a chapter run with fewer
initialisations gives the claims it can measure. CLIP guidance throughout (no prior to train)."""
import dataclasses
from types import SimpleNamespace

import pandas as pd
import pytest
import torch

from p2nlib.book import claims, claims_spec
from p2nlib.chapters import verdicts
from p2nlib.eval import stats
from p2nlib.chapters.base import ID_TEXT_PROMPTS, INITS, OOD_TEXT_PROMPTS, SCRATCH_INITS, TEMPLATE
from p2nlib.chapters.in_distribution import (GenerationScores, ImageBaseline, InDistribution, SubsetScores,
                                             TextBaseline, TextGenerations)
from p2nlib.eval import views as ev
from p2nlib.chapters.out_of_distribution import EMPTY_SCENE, Initialisations, OODResults, OutOfDistribution
from p2nlib.generate.pipeline import Prompt2NeRF

pytestmark = pytest.mark.slow        # the tiny pipeline is trained once per session (about a minute)

OOD_CLAIMS = ["ood.speedup_vs_scratch", "ood.speedup_to_quality_vs_scratch", "ood.speedup_to_built_vs_scratch",
              "ood.speedup_vs_pretrained", "ood.sim_ours_minus_scratch", "ablation.nrs_minus_di_sim"]
SPEEDUPS = ("ood.speedup_vs_scratch", "ood.speedup_to_quality_vs_scratch", "ood.speedup_to_built_vs_scratch",
            "ood.speedup_vs_pretrained")
ID_CLAIMS = ["id.image.sim_train", "id.image.sim_test", "id.image.fd_train", "id.image.fd_test",
             "id.image.sim_baseline", "id.text.sim_ours", "id.text.sim_baseline_budget",
             "id.text.sim_baseline_converged", "id.text.speedup_wall_time"]


@pytest.fixture(scope="module")
def pipe(tiny_parts):
    mp = pytest.MonkeyPatch()
    mp.setenv("P2N_ARTIFACTS", str(tiny_parts[0]))
    try:
        yield Prompt2NeRF.load("tiny", "cpu")
    finally:
        mp.undo()


def _controls(holding: bool = True) -> None:
    """Record the twelve controls of the baselines (all holding, or the trained text prior's scratch control
    failing) in the running record file, as chapter 05 does before any claim measured through them."""
    for m in ("text", "image"):
        for prior in ("trained", "ideal"):
            for kind in ("positive", "negative", "scratch"):
                cid = f"controls.{m}.{prior}.{kind}"
                fail = not holding and cid == "controls.text.trained.scratch"
                value = (3 if fail else 9) if (m, kind) == ("text", "scratch") else 1.0
                refs = {"runs failed": 0.0} if (m, kind) == ("text", "scratch") else None
                claims.record(cid, value, refs=refs, note="recorded by the test")


def _recorded(recs: list[dict]) -> list[str]:
    """The claims' ids, after recording each (which checks it against the claims spec and its controls)."""
    claims.start("tiny", "cpu")
    _controls()
    return [claims.record(**c).id for c in recs]


def test_ood_chapter_without_p_and_di_gives_the_claims_it_can_measure(pipe, tiny_artifacts):
    A = OutOfDistribution(pipe, "cpu", 0, guidance="clip", inits=("S", "Ours (NRS)"))
    res = A.run(progress=False)
    assert isinstance(res, OODResults) and isinstance(res.initialisations, Initialisations)
    assert set(res.table.init) == {"S", "Ours (NRS)"} and len(res.table) == 2 * 8 * len(A.seeds)
    assert list(A.summary(res).columns) == ["S / Ours iterations (test)", "S / Ours iterations (raw-weights test)",
                                            "S / Ours iterations to 95% quality", "S / Ours iterations to built",
                                            "Ours - S similarity (conv.)"]
    assert not any("P " in c or "DI" in c for c in A.paper_table(res, "text").columns)
    assert list(A.table4(res).columns) == ["Ours (NRS): similarity", "S: similarity", "Ours (NRS): iterations",
                                           "S: iterations"]
    grid = A.table3_images(res)
    assert grid["titles"] == ["prompt", "Ours (conv.)", "S (same it.)", "S (conv.)"]
    assert grid["images"].shape[0] == 4 * len(grid["titles"])
    ncols = len(grid["titles"])         # the text rows carry their prompt where an image prompt would be
    assert [grid["texts"][r * ncols] for r in (2, 3)] == [f'"{p}"' for p in A.text[:2]]
    assert all(v == EMPTY_SCENE and ev.empty_render(grid["images"][k])
               for k, v in grid["texts"].items() if k % ncols)
    assert {c["init"] for c in A.curves(res, "image", A.image_names[0])} == {"S", "Ours (NRS)"}
    assert _recorded(verdicts.ood_claims(A, res)) == [c for c in OOD_CLAIMS if c not in
                                                      ("ood.speedup_vs_pretrained", "ablation.nrs_minus_di_sim")]
    with pytest.raises(ValueError, match="must include 'S' and 'Ours \\(NRS\\)'"):
        OutOfDistribution(pipe, "cpu", 0, guidance="clip", inits=("S", "P"))


def test_ood_chapter_with_every_initialisation_gives_every_claim(pipe, tiny_artifacts):
    X = OutOfDistribution(pipe, "cpu", 0, guidance="clip")
    inits = X.initialisations()
    assert list(inits.table().prompt) == list(OOD_TEXT_PROMPTS) + X.image_names
    assert set(inits.text) == set(inits.image) == set(INITS) | {TEMPLATE}
    assert X.initialisation_views(inits)["images"].shape[0] == 8 * len(INITS)
    res = X.run(inits, progress=False)
    pd.testing.assert_frame_equal(X.run(progress=False).table, res.table)     # its own initialisations: the same
    assert res.runs("text") is res.text_runs and res.runs("image") is res.image_runs
    assert set(X.summary(res).columns) >= {"P / Ours iterations (test)", "NRS - DI similarity (conv.)"}
    assert X.paper_table(res, "image").shape == (4, 8) and X.table4(res).shape == (4, 6)
    assert "converged" in X.table_header(res, "text")
    assert X.table3_images(res)["titles"][-1] == "P (conv.)"
    assert X.multiview(res)["images"].shape[0] == 8 * 8
    recs = verdicts.ood_claims(X, res)
    assert _recorded(recs) == OOD_CLAIMS
    # the similarity differences carry the interval of the statistic they show, and are judged on it
    by_id = {r["id"]: r for r in recs}
    s = X.summary(res)
    for cid, col, other, modality in (("ood.sim_ours_minus_scratch", "Ours - S similarity (conv.)", "S", None),
                                      ("ablation.nrs_minus_di_sim", "NRS - DI similarity (conv.)", "Ours (DI)", "text")):
        c, rows = by_id[cid], (s if modality is None else s.loc[modality])
        a, b = X.pairs(res, "sim_converged", "Ours (NRS)", modality), X.pairs(res, "sim_converged", other, modality)
        assert c["value"] == pytest.approx(rows[col].mean(), abs=1e-4)
        assert c["value"] == pytest.approx(stats.mean_median_difference(a, b), abs=1e-4)
        assert c["ci95"][0] <= c["value"] + 1e-4 and c["value"] - 1e-4 <= c["ci95"][1] and c["n"] == a.size
        want = "holds" if c["ci95"][0] > 0 else "does not hold" if c["ci95"][1] <= 0 else "undecided"
        assert claims_spec.SPECS[cid].judge(c["value"], c["ci95"]) == want


def test_sds_chapter_starts_from_the_blob_judges_built_and_gives_intervals(pipe, tiny_artifacts):
    X = OutOfDistribution(pipe, "cpu", 0, inits=("S", "Ours (NRS)"))
    assert X.cfg.average and X.cfg.ceiling >= 10 and "blob" in X.scratch_name
    inits = X.initialisations()
    assert not torch.equal(inits.text["S"]["l6.bias"], inits.text[TEMPLATE]["l6.bias"])
    res = X.run(inits, progress=False)
    text, image = res.table[res.table.modality == "text"], res.table[res.table.modality == "image"]
    assert {"built", "iterations_to_built", "iterations_raw"} <= set(text.columns)
    assert image.iou_converged.between(0, 1).all() and image.psnr_converged.notna().all()
    assert X.pairs(res, "iterations", "S").shape == (8, len(X.seeds))
    study = X.scratch_study(prompts=OOD_TEXT_PROMPTS[:2] + ID_TEXT_PROMPTS[:1], progress=False)
    assert set(study.table.init) == set(SCRATCH_INITS) and len(study.table) == 3 * 3 * len(X.seeds)
    assert list(study.counts().index) == list(SCRATCH_INITS) and (study.counts().prompts == 3).all()
    assert OutOfDistribution.scratch_views(study, 0)["images"].shape[0] == 3 * len(SCRATCH_INITS)
    assert {"novel_iou_converged", "stays_built"} <= set(image.columns) and image.novel_iou_converged.between(0, 1).all()
    km = X.time_to_built(res)
    assert list(km.index) == ["S / Ours (NRS)", "Ours (NRS) / Ours (NRS)"] and "ratio" in km
    recs = {c["id"]: c for c in verdicts.ood_claims(X, res)}
    assert set(recs) == {"ood.speedup_vs_scratch", "ood.speedup_to_quality_vs_scratch",
                         "ood.speedup_to_built_vs_scratch", "ood.sim_ours_minus_scratch"}
    assert recs["ood.speedup_vs_scratch"]["through"] == {"text": "trained", "image": "trained"}
    for cid in set(SPEEDUPS) & set(recs):
        c = recs[cid]
        assert c["ci95"][0] <= c["value"] <= c["ci95"][1] and c["n"] >= len(X.seeds) and c["ceiling"] >= 10
        want = "holds" if c["ci95"][0] >= 3.0 else "does not hold" if c["ci95"][1] < 3.0 else "undecided"
        assert claims_spec.SPECS[cid].judge(c["value"], c["ci95"]) == want                # the interval's rule
    claims.start("tiny", "cpu")
    _controls(holding=True)
    rec = claims.record(**recs["ood.speedup_vs_scratch"])
    assert rec.ci95 == recs["ood.speedup_vs_scratch"]["ci95"] and rec.verdict == claims_spec.SPECS[
        "ood.speedup_vs_scratch"].judge(rec.value, rec.ci95)
    _controls(holding=False)                                   # a failed control: undecided, the value still shown
    rec = claims.record(**recs["ood.speedup_vs_scratch"])
    assert rec.verdict == "undecided" and rec.gated and rec.value == recs["ood.speedup_vs_scratch"]["value"]


def test_in_distribution_draws_do_not_depend_on_the_order_of_the_steps(pipe, tiny_artifacts):
    one, two = (InDistribution(pipe, "cpu", 0, guidance="clip") for _ in range(2))
    first = (one.baseline_subset(), one.gallery_scenes(), one.multiview_scenes())
    two.multiview_scenes()
    two.gallery_scenes()
    base = two.image_baseline(progress=False)
    assert first[0] == two.baseline_subset()
    assert two.gallery_scenes() == first[1] and two.multiview_scenes() == first[2]
    assert len(set(first[0])) == len(first[0]) and all(i in one.test_idx for i in first[0])
    assert base.subset == first[0]                 # tiny: Table 1's image baseline on the random subset
    every = SimpleNamespace(P=dataclasses.replace(one.P, baseline_every_test_scene=True), test_idx=one.test_idx)
    assert InDistribution.baseline_scenes(every) == list(one.test_idx)      # the book's profiles: every test scene


def test_in_distribution_steps_return_what_the_tables_and_claims_take(pipe, tiny_artifacts):
    X = InDistribution(pipe, "cpu", 0, guidance="clip")
    gen = X.generation_scores()
    assert isinstance(gen, GenerationScores) and list(gen.table().columns) == ["train", "test", "retrieval"]
    img = X.image_baseline(progress=False)
    assert isinstance(img, ImageBaseline) and len(img.table()) == len(img.subset) * len(X.seeds)
    sub = X.subset_scores(gen, img, ablation=img)
    assert isinstance(sub, SubsetScores) and set(sub.baseline) == {(w, s) for w in ("converged", "final")
                                                                    for s in X.seeds}
    table1, caption = X.table1(gen, sub)
    assert table1.shape == (4, 7) and caption.startswith("Table 1")
    assert "Ours (test split, the baseline's views)" in table1.columns        # tiny: the baseline ran on a subset
    every = dataclasses.replace(sub, subset=list(X.test_idx), views=gen.scores["test"]["views"])
    assert "Ours (test split, the baseline's views)" not in X.table1(gen, every)[0].columns   # no duplicate column
    with pytest.raises(ValueError, match="same seed"):
        X.subset_scores(gen, img, ablation=dataclasses.replace(img, subset=img.subset[::-1]))
    assert X.test_gallery(gen)["row_labels"] == sorted({o["category"] for o in X.ds.objects})
    assert X.ours_vs_baseline(gen, img)["images"].shape[0] == 10 * len(X.baseline_subset())

    prompts = ID_TEXT_PROMPTS[:2]
    text, txt = X.text_generations(prompts), X.text_baseline(prompts, progress=False)
    assert isinstance(text, TextGenerations) and isinstance(txt, TextBaseline)
    assert f"sim_at_{txt.budget}" in txt.table().columns
    table2, _ = X.table2(text, txt, ablation=txt)
    assert list(table2.index) == list(prompts) and "ablation (CLIP) converged: similarity" in table2.columns
    assert X.text_vs_baseline(text, txt)["images"].shape[0] == 4 * len(prompts)
    assert list(X.sensitivity(img, txt).index) == ["image", "text"]
    mv = X.multiview(gen, text, n=2)
    assert mv["row_labels"][2:] == list(prompts) and mv["images"].shape[0] == 4 * 8
    assert torch.equal(gen.params(X.multiview_scenes(2)[:1])["l0.weight"],
                       gen.gen_test["l0.weight"][[X.test_idx.index(X.multiview_scenes(2)[0])]])
    recs = verdicts.id_claims(X, gen, sub, text, txt)
    assert _recorded(recs) == ID_CLAIMS
    # the baselines' means over scenes or prompts × seeds carry their bootstrap interval and n
    recs = {r["id"]: r for r in recs}
    for cid, n in (("id.image.sim_baseline", len(img.subset)), ("id.text.sim_baseline_budget", len(prompts)),
                   ("id.text.sim_baseline_converged", len(prompts))):
        lo, hi = recs[cid]["ci95"]
        assert recs[cid]["n"] == n * len(X.seeds) and lo - 1e-4 <= recs[cid]["value"] <= hi + 1e-4


def test_an_empty_render_is_told_from_a_faint_object():
    blank = torch.ones(16, 16, 3)
    assert ev.empty_render(blank) and ev.empty_render(blank - 0.05)       # white, or a uniform faint haze
    faint = blank.clone()
    faint[6:10, 6:10] = 0.6                                                 # a small, pale object
    assert not ev.empty_render(faint)
