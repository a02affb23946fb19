"""The claims of the results chapters, computed from their results: each function returns
``claims.record`` arguments (id, value, the measurements its bar compares it with, note; the verdict is
computed by the claims spec), and every
note says which stage-1 recipe "Ours" was trained with."""
from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from p2nlib.chapters.controls import HEADLINE_ORDER, SCRATCH_SKIPPED
from p2nlib.eval import stats

if TYPE_CHECKING:
    import pandas as pd

    from p2nlib.chapters.base import Chapter
    from p2nlib.chapters.in_distribution import (GenerationScores, InDistribution, SubsetScores, TextBaseline,
                                                 TextGenerations)
    from p2nlib.chapters.controls import Suite
    from p2nlib.chapters.out_of_distribution import OODResults, OutOfDistribution


def _named(chapter: Chapter, recs: list[dict]) -> list[dict]:
    """Claims whose notes say which stage-1 recipe "Ours" was trained with, and, for a claim measured through the
    per-prompt baselines (its spec's ``through``), which prior those baselines used (its verdict is gated on that
    prior's controls)."""
    from p2nlib.book.claims_spec import SPECS

    out = []
    for r in recs:
        r = {**r, "note": f"{r['note']}; stage 1: {chapter.recipe}"}
        spec = SPECS.get(r["id"])
        if spec is not None and spec.through:
            r["through"] = {m: chapter.prior for m in spec.through}
        out.append(r)
    return out


#: the speed-up claims in words, for figures
SPEEDUP_LABELS = {"ood.speedup_vs_scratch": "S / Ours, convergence test",
                  "ood.speedup_to_quality_vs_scratch": "S / Ours, to 95% quality",
                  "ood.speedup_to_built_vs_scratch": "S / Ours, to built",
                  "ood.speedup_vs_pretrained": "P / Ours, convergence test"}


def control_claims(suite: Suite) -> list[dict]:
    """The six controls of one prior's two baselines (:func:`p2nlib.chapters.controls.suite`) as claims of kind
    ``check``: ``controls.<text|image>.<prior>.<positive|negative|scratch>``; scratch controls the suite did not run
    are recorded as not measured (verdict "not judged", ``skipped``: why)."""
    t, i = suite.text.table, suite.image.table
    v_text, v_image = suite.passed("text"), suite.passed("image")
    pre = f"controls.{{}}.{suite.prior}"
    n_pos = lambda tab, kind: int((tab.control == kind).sum())                              # noqa: E731
    if suite.ran_scratch:
        scratch = _scratch_claims(suite, pre, v_text, v_image)
    else:
        scratch = [dict(id=f"{pre.format(m)}.scratch", value=None, skipped=SCRATCH_SKIPPED,
                        note="the runs from scratch of this prior's baselines were not made") for m in ("text", "image")]
    first = [
        dict(id=f"{pre.format('text')}.positive", value=round(v_text["positive"], 4), n=n_pos(t, "positive"),
             note=f"{t[t.control == 'positive'].prompt.nunique()} text prompts × seeds, each from the fitted NeRF of "
                  "an object of its category nearest it (the controls object set), run to the cap; share of runs "
                  "built at the cap"),
        dict(id=f"{pre.format('text')}.negative", value=round(v_text["negative"], 4), n=n_pos(t, "negative"),
             note="the same starts with the prompt of another category; share of runs no longer built as the "
                  "start's category, or built as the new one, at the cap"),
        dict(id=f"{pre.format('image')}.positive", value=round(v_image["positive"], 4), n=n_pos(i, "positive"),
             note=f"{i[i.control == 'positive'].prompt.nunique()} image prompts (05's subset, 06's new objects) × "
                  "seeds from the fitted NeRF of the prompt's own object, run to the cap; share of runs whose "
                  "novel-view PSNR stays within 1 dB of the start with mask IoU >= 0.8"),
        dict(id=f"{pre.format('image')}.negative", value=round(v_image["negative"], 4), n=n_pos(i, "negative"),
             note="the same starts with the image of another object; share of runs that move toward it (novel-view "
                  "PSNR +1 dB or mask IoU +0.1)"),
    ]
    return first[:2] + scratch[:1] + first[2:] + scratch[1:]            # text, then image; scratch last of each


def _scratch_claims(suite: Suite, pre: str, v_text: dict, v_image: dict) -> list[dict]:
    """The two scratch controls of a suite that ran them."""
    c = suite.scratch.counts()
    return [
        dict(id=f"{pre.format('text')}.scratch", value=int(v_text["scratch"]),
             refs={"runs failed": round(v_text["scratch failed"], 4)},
             note=f"of {int(c.loc['S', 'prompts'])} text prompts (05 and 06) × seeds from the blob (S); built where "
                  "the convergence test stopped the run for more than half the seeds; "
                  + "; ".join(f"{k}: {int(c.loc[k, 'prompts built'])} prompts, {c.loc[k, 'runs failed']:.0%} of runs "
                              "failed" for k in c.index) + f"; SDS: {suite.scratch.schedule}"),
        dict(id=f"{pre.format('image')}.scratch", value=round(v_image["scratch"], 4), n=len(suite.image_scratch),
             note="05's image-baseline runs from the blob (its scenes × seeds); share that reach novel-view mask "
                  "IoU >= 0.7 (views >= 60 degrees from the reference) before the cap"),
    ]


def passes(recorded) -> bool:
    """Whether every control claim among ``recorded`` (``claims.record`` results) holds."""
    ctrl = [c for c in recorded if c.id.startswith("controls.")]
    return bool(ctrl) and all(c.verdict == "holds" for c in ctrl)


def headline_prior(recorded_by_prior: dict) -> tuple[str, str]:
    """The prior the chapter's tables and headline claims use, and why: the first of :data:`HEADLINE_ORDER` whose
    controls all hold; when none does, the first of them all the same (its claims are then undecided, gated on
    the failed controls)."""
    for prior in HEADLINE_ORDER:
        if prior in recorded_by_prior and passes(recorded_by_prior[prior]):
            return prior, f"the {prior} priors pass every control"
    prior = next(p for p in HEADLINE_ORDER if p in recorded_by_prior)
    failed = {p: [c.id for c in recs if c.id.startswith("controls.") and c.verdict != "holds"]
              for p, recs in recorded_by_prior.items()}
    why = "; ".join(f"{p}: {', '.join(f) or 'none failed'}" for p, f in failed.items())
    return prior, (f"no prior passes every control ({why}): the tables use the {prior} priors and every claim "
                   "measured through a baseline that failed a control is undecided")


def id_claims(chapter: InDistribution, gen: GenerationScores, sub: SubsetScores, text: TextGenerations,
              baseline: TextBaseline) -> list[dict]:
    """Notebook 05's claims: ours on the train and test splits and against the image baseline on every test
    scene (``gen``, ``sub``), and ours on the text prompts against the text baseline (``text``,
    ``baseline``)."""
    sc, seeds = gen.scores, chapter.seeds
    sim_base = [sub.baseline[("converged", s)]["similarity"] for s in seeds]
    fd_base = [sub.baseline[("converged", s)]["frechet"] for s in seeds]
    psnr_base = np.mean([sub.baseline[("converged", s)]["psnr"] for s in seeds])
    # (scenes, seeds) of the image baseline's similarity at convergence, for its interval
    sim_base_runs = np.stack([np.asarray(sub.baseline[("converged", s)]["similarity_per_object"], dtype=float)
                              for s in seeds], axis=1)
    base_interval = _mean_interval(sim_base_runs, chapter.seed)
    t = baseline.table()
    conv = t.groupby("prompt").sim_converged.mean()
    bud = t.groupby("prompt")[f"sim_at_{baseline.budget}"].mean()
    conv_runs = t.pivot(index="prompt", columns="seed", values="sim_converged").to_numpy(float)
    bud_runs = t.pivot(index="prompt", columns="seed", values=f"sim_at_{baseline.budget}").to_numpy(float)
    speed = float(t.seconds_converged.median() / np.median([g.seconds for g in text.generations]))
    fd_name = sc["test"]["metric"]
    return _named(chapter, [
        dict(id="id.image.sim_train", value=round(sc["train"]["similarity"], 4),
             note=f"{len(chapter.train_idx)} train scenes × {sc['train']['views']} views"),
        dict(id="id.image.sim_test", value=round(sc["test"]["similarity"], 4),
             refs={"train split": round(sc["train"]["similarity"], 4),
                   "ours on the same scenes": round(sub.ours["similarity"], 4),
                   "image baseline's upper 95% end": base_interval["ci95"][1]},
             note=f"the paper: the test split 'does not drastically decrease' from train and beats Zero-1-to-3; "
                  f"retrieval of the nearest training scene reaches {sc['retrieval']['similarity']:.3f}"),
        dict(id="id.image.fd_train", value=round(sc["train"]["frechet"], 4),
             note=f"{fd_name}; {sc['train']['samples']} images per set; not comparable to Inception FID"),
        dict(id="id.image.fd_test", value=round(sub.ours["frechet"], 4),
             refs={"image baseline": round(float(np.mean(fd_base)), 4)},
             note=f"{fd_name}; ours at the image baseline's views ({len(sub.subset)} test scenes × {sub.views}; the baseline: mean "
                  f"of {len(seeds)} seeds); at {sc['test']['views']} views per scene ours is {sc['test']['frechet']:.3f}"),
        dict(id="id.image.sim_baseline", value=round(float(np.mean(sim_base)), 4),
             **base_interval, refs={"ours on the same scenes": round(sub.ours["similarity"], 4)},
             note=f"image baseline ({chapter.guidance_name}) at convergence, mean of {len(seeds)} seeds "
                  f"(best {max(sim_base):.3f}), PSNR {psnr_base:.2f} dB vs ours {sub.ours['psnr']:.2f} dB"),
        dict(id="id.text.sim_ours", value=round(float(text.similarity.mean()), 4),
             refs={"text baseline at convergence": round(float(conv.mean()), 4)},
             note=f"mean over {len(text.prompts)} prompts; the text baseline: {chapter.guidance_name}"),
        dict(id="id.text.sim_baseline_budget", value=round(float(bud.mean()), 4), **_mean_interval(bud_runs, chapter.seed),
             note=f"at {baseline.budget} iterations, mean over prompts and seeds"),
        dict(id="id.text.sim_baseline_converged", value=round(float(conv.mean()), 4),
             **_mean_interval(conv_runs, chapter.seed),
             note=f"{int(t.converged.sum())}/{len(t)} runs converged within the cap"),
        dict(id="id.text.speedup_wall_time", value=round(speed, 1),
             note="median baseline wall time to convergence / median ours (prompt → parameters)"),
    ])


def _mean_interval(runs: np.ndarray, seed: int, digits: int = 4) -> dict:
    """``ci95`` and ``n`` of the mean of a baseline's (prompts or scenes, seeds) runs: the two-level bootstrap."""
    ci = stats.bootstrap(lambda a: float(np.mean(a)), runs, seed=seed)
    return {"ci95": [round(ci[0], digits), round(ci[1], digits)], "n": int(runs.size)}


def _speedup(chapter: OutOfDistribution, res: OODResults, column: str, other: str = "S",
             modality: str | None = None, floor: float = 0.0) -> tuple[float, tuple[float, float], int]:
    """Median over prompts of (median over seeds) ``other`` / Ours (NRS) ``column``, its 95% interval (two-level
    bootstrap over prompts and seeds) and n = prompts × seeds."""
    num = chapter.pairs(res, column, other, modality)
    den = chapter.pairs(res, column, "Ours (NRS)", modality)

    def stat(a, b):
        return stats.median_ratio(a, b, floor)

    return stat(num, den), stats.bootstrap(stat, num, den, seed=chapter.seed), num.size


def _judged(claim_id: str, value: float, ci: tuple[float, float], n: int, ceiling: float, note: str) -> dict:
    return dict(id=claim_id, value=round(value, 2),
                ci95=[round(ci[0], 2), round(ci[1], 2)], n=n, ceiling=round(ceiling, 2), note=note)


def ood_claims(chapter: OutOfDistribution, res: OODResults) -> list[dict]:
    """Notebook 06's claims from the chapter's runs ``res``:
    those its initialisations can measure (the speed-up over P needs P, NRS vs DI needs Ours (DI)). Every
    speed-up carries its 95% interval over prompts × seeds, n, and its ceiling (the largest ratio its
    measure can report); its verdict is the interval's, by the rule of the claims spec."""
    s = chapter.summary(res)
    runs, cfg = res.table, chapter.cfg
    cap, epoch = cfg.max_epochs * cfg.epoch_iters, cfg.epoch_iters
    d_sim = float(s["Ours - S similarity (conv.)"].mean())
    conv = runs.groupby("init").converged.mean()
    conv_raw = runs.groupby("init").converged_raw.mean()
    sp_s, ci_s, n = _speedup(chapter, res, "iterations")
    sp_raw, ci_raw, _ = _speedup(chapter, res, "iterations_raw")
    sp_q, ci_q, _ = _speedup(chapter, res, "iterations_to_quality", floor=epoch)
    test = (f"the convergence test of supplement VI on the weights{' averaged over each epoch' if cfg.average else ''}"
            f" (eps {cfg.eps:g}, k {cfg.k}, epochs of {epoch} iterations, cap {cap})")
    recs = [
        _judged("ood.speedup_vs_scratch", sp_s, ci_s, n, cfg.ceiling,
                f"median over prompts (text and image) of S / Ours (NRS) iterations by {test}; converged before the "
                f"cap: S {conv['S']:.0%}, Ours (NRS) {conv['Ours (NRS)']:.0%} of runs; the paper's test on the raw "
                f"weights: {sp_raw:.2f}× [{ci_raw[0]:.2f}, {ci_raw[1]:.2f}] (converged: S {conv_raw['S']:.0%}, "
                f"Ours {conv_raw['Ours (NRS)']:.0%}); S = {chapter.scratch_name}"),
        _judged("ood.speedup_to_quality_vs_scratch", sp_q, ci_q, n, cap / epoch,
                "median over prompts of S / Ours (NRS) iterations to reach 95% of the best similarity any run of the "
                "prompt reached (median over seeds; runs that never reach it count at the cap, Ours floored at one "
                "epoch); a stall cannot pass this test, unlike the pixel-change test"),
    ]
    if "iterations_to_built" in runs:
        sp_b, ci_b, n_b = _speedup(chapter, res, "iterations_to_built", floor=epoch)
        stays = runs.groupby(["modality", "init"]).stays_built.mean()
        km = chapter.time_to_built(res)
        recs.append(_judged(
            "ood.speedup_to_built_vs_scratch", sp_b, ci_b, n_b, cap / epoch,
            "median over prompts (text and image) of S / Ours (NRS) iterations until the run is built and stays "
            "built to the cap (text: the book's CLIP names the prompt's category from most check views and the "
            "silhouette is the category's size; image: novel-view mask IoU >= 0.7 against the prompt's object on "
            "views >= 60 degrees from the reference; never: the cap; Ours floored at one epoch); runs built for good: "
            + ", ".join(f"{m} {k} {stays[(m, k)]:.0%}" for m in ("text", "image") for k in chapter.inits
                        if (m, k) in stays)
            + f"; with censoring (Kaplan-Meier medians over prompts × seeds, runs never built censored at the cap): "
              f"{km.loc['S / Ours (NRS)', 'ratio']}"))
    if "P" in chapter.inits:
        sp_p, ci_p, n_p = _speedup(chapter, res, "iterations", other="P")
        recs.append(_judged("ood.speedup_vs_pretrained", sp_p, ci_p, n_p, cfg.ceiling,
                            f"median over prompts of P / Ours (NRS) iterations by {test}"))
    a, b = chapter.pairs(res, "sim_converged", "Ours (NRS)"), chapter.pairs(res, "sim_converged", "S")
    ci = stats.bootstrap(stats.mean_median_difference, a, b, seed=chapter.seed)
    recs.append(dict(id="ood.sim_ours_minus_scratch", value=round(d_sim, 4), ci95=[round(ci[0], 4), round(ci[1], 4)],
                     n=a.size, note="mean over prompts of the median-over-seeds CLIP similarity at convergence, "
                                    "Ours (NRS) minus S; 95% interval over prompts × seeds"))
    if "Ours (DI)" in chapter.inits:
        text_rows = s.loc["text"]
        nrs_di = float(text_rows["NRS - DI similarity (conv.)"].mean())
        a = chapter.pairs(res, "sim_converged", "Ours (NRS)", "text")
        b = chapter.pairs(res, "sim_converged", "Ours (DI)", "text")
        ci = stats.bootstrap(stats.mean_median_difference, a, b, seed=chapter.seed)
        recs.append(dict(id="ablation.nrs_minus_di_sim", value=round(nrs_di, 4),
                         ci95=[round(ci[0], 4), round(ci[1], 4)], n=a.size,
                         note=f"text prompts, mean over {len(text_rows)} prompts of median over seeds; 95% interval "
                              "over prompts × seeds"))
    return _named(chapter, recs)


# ---- chapters 03, 04 and 07: stages 1-2 and the generator study --------------------------------------------------

def vae_claims(rec: pd.DataFrame, recipe: str) -> list[dict]:
    """Notebook 03's claim, from its reconstruction table (``stages.vae_reconstruction_table``)."""
    psnr_test = float(rec.loc["test", "PSNR vs ground truth (dB)"])
    return [dict(id="vae.recon_psnr_test", value=round(psnr_test, 2),
                 note=f"recipe: {recipe}; decoded test NeRFs vs ground-truth held-out views; original NeRFs reach "
                      f"{rec.loc['test', 'original NeRF vs ground truth (dB)']:.2f} dB, decoded vs original "
                      f"{rec.loc['test', 'PSNR vs original NeRF (dB)']:.2f} dB")]


def generation_claims(gen: pd.DataFrame, recipe: str) -> list[dict]:
    """Notebook 04's generation claim, from its table of generated NeRFs (rows ``train`` and ``test``)."""
    return [dict(id="generation.psnr_test", value=round(gen.loc["test", "PSNR vs ground truth (dB)"], 2),
                 note=f"stage-1 recipe: {recipe}; unseen test scenes, generated from view 0 of the embedding "
                      f"cache; train scenes {gen.loc['train', 'PSNR vs ground truth (dB)']:.2f} dB")]


def rotation_claims(rot: pd.DataFrame, per_scene: dict[str, pd.DataFrame], seed: int = 0) -> list[dict]:
    """Notebook 04's rotation-invariance claims (supplement I), from ``stages.rotation_study`` of the random-view
    and the fixed-view aligner (rows ``random-view training``, ``fixed-view training`` of ``rot``; ``per_scene``
    their per-scene frames). The two comparisons are paired differences over the test scenes with a bootstrap
    interval over scenes."""
    r, f = rot.loc["random-view training"], rot.loc["fixed-view training"]

    def paired(col: str, what: str) -> dict:
        a, b = per_scene["random-view training"], per_scene["fixed-view training"]
        if list(a.index) != list(b.index):
            raise ValueError("the two aligners' rotation studies ran on different scenes: pass the same test scenes")
        diff = (a[col] - b[col]).to_numpy(float)[:, None]                  # (scenes, 1)
        return dict(value=round(float(diff.mean()), 2), **_mean_interval(diff, seed, 2),
                    note=f"random-view minus fixed-view model, {what} per test scene ({r[col]:.2f} against "
                         f"{f[col]:.2f} dB on average); interval: bootstrap over scenes")

    return [
        dict(id="rotation.psnr_random_view_training",
             **paired("PSNR vs ground truth (dB)", "PSNR vs ground truth (mean over input views)")),
        dict(id="rotation.psnr_fixed_view_training", value=round(f["PSNR vs ground truth (dB)"], 2),
             refs={"its training view": round(f["PSNR from view 0 (dB)"], 2)},
             note="mean over test scenes and input views, against its PSNR from its training view alone"),
        dict(id="rotation.consistency_random", **paired(
            "consistency (dB)", "consistency (mean pairwise PSNR between renders of NeRFs generated from different "
                                "views)")),
        dict(id="rotation.consistency_fixed", value=round(f["consistency (dB)"], 2)),
    ]


def split_claims(splits: pd.DataFrame, train_cap: int) -> list[dict]:
    """Notebook 07's claims over dataset splits (``study.split_study``, one row per split): each the mean over
    splits with its 95% Student-t interval, the per-split values in its note."""
    def over(col: str, digits: int) -> dict:
        mean, ci = stats.t_interval(splits[col])
        return dict(value=round(mean, digits), ci95=[round(ci[0], digits), round(ci[1], digits)], n=len(splits))

    def per(col: str, digits: int) -> str:
        return ", ".join(f"{v:.{digits}f}" for v in splits[col])

    train_sim = float(splits["generation train similarity"].mean())
    return [
        dict(id="splits.vae_recon_psnr_test", **over("recon test vs GT (dB)", 2),
             note=f"adopted recipe, per split {per('recon test vs GT (dB)', 2)} dB"),
        dict(id="splits.generation_psnr_test", **over("generation test PSNR (dB)", 2),
             note=f"from the prompt view of 05; per split {per('generation test PSNR (dB)', 2)} dB"),
        dict(id="splits.id_image_sim_test", **over("generation test similarity", 4),
             refs={"train split": round(train_sim, 4)},
             note=f"per split {per('generation test similarity', 3)}; train split (up to {train_cap} scenes spread "
                  f"over the categories) {per('generation train similarity', 3)}; retrieval "
                  f"{per('retrieval test similarity', 3)}"),
        dict(id="splits.sim_ratio_to_retrieval", **over("ours / retrieval", 3),
             note=f"per split {per('ours / retrieval', 3)}"),
    ]


def study_claims(table: pd.DataFrame, ceiling) -> list[dict]:
    """Notebook 07's claims on the paper's stage-1 recipe, from the study table (``study.run``) and the fitted
    NeRFs' own PSNR (``ceiling``)."""
    paper = table.loc["paper: parameter MSE"]
    return [
        dict(id="study.recon_psnr_test_paper_recipe", value=round(paper["recon test vs GT (dB)"], 2),
             note=f"the paper's parameter-MSE VAE on the test split; train {paper['recon train vs GT (dB)']:.2f} dB; "
                  f"the fitted NeRFs reach {ceiling['fitted NeRFs: PSNR vs GT (dB)']:.2f} dB"),
        dict(id="study.generation_psnr_test_paper_recipe", value=round(paper["aligner: PSNR vs GT (dB)"], 2),
             note="generated from the prompt view of 05 with the paper's VAE recipe; "
                  f"from the true latent means {paper['true latents: PSNR vs GT (dB)']:.2f} dB"),
    ]
