"""Controls of the per-prompt baselines (ours): a stand-in judges a paper claim only after it behaves like what it
stands in for. Three controls per baseline, each a claim of kind ``check`` (``controls.<modality>.<prior>.<control>``):

* **positive** — start from a correct object and run to the cap: sound score distillation leaves it where it is.
  Text: the fitted NeRF of a world object of the prompt's category nearest the prompt (its colour too: the
  candidate of the ``controls`` object set whose captions are nearest the prompt's CLIP embedding); it passes
  when the run ends ``built`` (:mod:`p2nlib.eval.built`). Image: the fitted NeRF of the prompt's own object; it
  passes when its novel-view PSNR stays within :data:`POSITIVE_PSNR_DROP` dB of the start and its novel-view
  mask IoU is at least :data:`POSITIVE_IOU`.
* **negative** — the same starts, each with the prompt of another category: the run must move. Text: no longer
  built as the start's category, or built as the new prompt's. Image: the novel-view PSNR to the new prompt's
  object rises by :data:`NEGATIVE_PSNR_RISE` dB, or its mask IoU by :data:`NEGATIVE_IOU_RISE`.
* **scratch** — from DreamFusion's blob: text, the from-scratch study of 06 (``S`` builds the object for most
  seeds of at least 8 of the 10 prompts, at most 10% failed runs); image, the image baseline's runs from the blob
  reach the novel-view quality bar (mask IoU at least :data:`IMAGE_IOU_BAR`) before the cap.

The controls run in that order. A prior whose positive or negative control fails judges nothing whatever its runs
from scratch would give, so those runs (the costliest: every text prompt × start × seed, every test scene × seed)
are made only for a prior that passed both, and for the first prior of :data:`HEADLINE_ORDER`, whose tables need
them when no prior passes (:func:`suite`); the scratch controls of any other prior are recorded as not measured.

Image quality is measured where the view prior matters: on the check views at least :data:`NOVEL_DEGREES` degrees
of azimuth from the reference view, against the ground-truth object, at every logged epoch.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch

from p2nlib.baselines.runs import Runs
from p2nlib.chapters.base import ID_TEXT_PROMPTS, OOD_TEXT_PROMPTS, PROMPT_CATEGORIES, Chapter
from p2nlib.core import artifacts, paths
from p2nlib.data import cameras, fit, splits
from p2nlib.eval import metrics
from p2nlib.eval import views as ev
from p2nlib.eval.built import OPACITY_LEVEL, first_stays

#: the text prompts every text control runs: those of 05 and 06
TEXT_PROMPTS = ID_TEXT_PROMPTS + OOD_TEXT_PROMPTS
#: check views at least this far in azimuth from the reference view count as novel views
NOVEL_DEGREES = 60.0
#: the image positive control: novel-view PSNR drops by at most this (dB) and the mask IoU is at least this
POSITIVE_PSNR_DROP, POSITIVE_IOU = 1.0, 0.8
#: the image negative control: the run moves toward the new prompt's object by this much PSNR (dB) or IoU
NEGATIVE_PSNR_RISE, NEGATIVE_IOU_RISE = 1.0, 0.1
#: the novel-view quality bar of image runs (mask IoU on novel views): "built", for an image prompt
IMAGE_IOU_BAR = 0.7
#: the negative control pairs prompt i's start with prompt (i + NEGATIVE_SHIFT) mod n: another category each
NEGATIVE_SHIFT = 5
#: the priors the headline may use, in the order it prefers them (the first is the tables' prior when none passes)
HEADLINE_ORDER = ("ideal", "trained")
#: why a prior's scratch controls were not run (:func:`suite`)
SCRATCH_SKIPPED = ("not run: this prior failed its positive or negative control, so it cannot judge a claim "
                   "whatever its runs from scratch give; those runs are made only for a prior that passes both and "
                   f"for the {HEADLINE_ORDER[0]} prior, whose runs the tables use when no prior passes")


def novel_views(check_views: int, reference_azimuth: float = ev.PROMPT_AZIMUTH) -> list[int]:
    """Indices of the check views (``turntable(check_views)``) at least :data:`NOVEL_DEGREES` from the reference."""
    az = torch.arange(check_views) * (360.0 / check_views)
    d = (az - reference_azimuth).abs() % 360
    d = torch.minimum(d, 360 - d)
    out = [int(i) for i in torch.nonzero(d >= NOVEL_DEGREES).flatten()]
    if not out:
        raise ValueError(f"no check view of {check_views} is {NOVEL_DEGREES:g} degrees from the reference")
    return out


def novel_scores(runs: Runs, gt: torch.Tensor, gt_alpha: torch.Tensor, novel: list[int]) -> tuple[np.ndarray, np.ndarray]:
    """Per run and logged epoch, novel-view PSNR (dB) and mask IoU (opacity > 0.5) against each run's ground truth
    ``gt`` (R, V, H, W, 3) / ``gt_alpha`` (R, V, H, W) at the check poses: two (R, epochs + 1) arrays."""
    res = runs.result
    if res.views is None:
        raise ValueError("these runs were optimised without check-view logs; rerun them")
    v, a = res.views[:, :, novel].float() / 255.0, res.alphas[:, :, novel].float() / 255.0
    g, ga = gt[:, None, novel].float(), gt_alpha[:, None, novel] > OPACITY_LEVEL
    psnr = metrics.psnr(v, g.expand_as(v), (2, 3, 4, 5))
    m = a > OPACITY_LEVEL
    inter = (m & ga).flatten(2).sum(-1).float()
    union = (m | ga).flatten(2).sum(-1).float().clamp_min(1)
    return psnr.numpy(), (inter / union).numpy()


def check_truth(objects, chapter: Chapter) -> tuple[torch.Tensor, torch.Tensor]:
    """Ground truth (N, V, H, W, 3) and opacity of world objects at the optimiser's check poses and size."""
    cfg = chapter.cfg
    poses = cameras.turntable(cfg.check_views, elevation=25.0)
    gt, alpha = fit.render_ground_truth(objects, poses, cfg.check_size, chapter.P.samples_per_ray, opacity=True)
    return gt.cpu(), alpha.cpu()


def fitted(chapter: Chapter, objects) -> dict[str, torch.Tensor]:
    """NeRFs of world objects fitted exactly as the dataset's (the profile's fitting recipe, from the shared
    initialisation), cached under ``artifacts/<profile>/controls/``."""
    cfg = fit.FitConfig.from_profile(chapter.P)
    key = {"profile": chapter.P.name, "objects": [o.object_id for o in objects], "fit": cfg.to_dict(),
           "spec": chapter.spec.to_dict(), "code": artifacts.code_digest(fit)}

    def compute():
        res = fit.fit(list(objects), chapter.spec, cfg, device=chapter.device, progress=False)
        return {k: v.detach().cpu() for k, v in res.params.items()}, {"psnr_heldout": res.psnr_heldout.tolist()}

    params, _ = artifacts.cached(paths.stage_dir(chapter.P.name, "controls"), "fitted", key, compute)
    return params


def text_control_objects(chapter: Chapter, prompts=TEXT_PROMPTS) -> list:
    """Per text prompt, the candidate of the ``controls`` object set of the prompt's category whose captions are
    nearest the prompt (CLIP text cosine): an object the prompt describes, colour included where the captions say it."""
    out = []
    emb = chapter.enc.encode_text(list(prompts)).float()
    for i, prompt in enumerate(prompts):
        cands = splits.objects("controls", chapter.P, [PROMPT_CATEGORIES[prompt]])
        best, score = None, -2.0
        for o in cands:
            c = chapter.enc.encode_text(list(o.captions)).float()
            s = float((torch.nn.functional.normalize(c, dim=-1) @ torch.nn.functional.normalize(emb[i], dim=0)).max())
            if s > score:
                best, score = o, s
        out.append(best)
    return out


@dataclass
class ControlRuns:
    """The positive and negative controls of one baseline: the runs (labels ``control``, ``prompt``, ``start``,
    ``seed``) and one row per run with whether it ``passed``, and the prior (``"trained"`` / ``"ideal"``)."""
    modality: str
    prior: str
    runs: Runs
    table: pd.DataFrame

    def share(self, control: str) -> float:
        """Share of runs of ``control`` (``"positive"`` or ``"negative"``) that passed."""
        t = self.table[self.table.control == control]
        return float(t.passed.mean())

    def per_prompt(self) -> pd.DataFrame:
        """Per prompt (the start's prompt) and control, the share of seeds that passed."""
        return self.table.groupby(["start prompt", "control"], sort=False).passed.mean().unstack("control")


def _pairs(n: int) -> list[tuple[int, int, str]]:
    """(start index, prompt index, control) of every control run: each start with its prompt and with another's."""
    return [(i, i, "positive") for i in range(n)] + [(i, (i + NEGATIVE_SHIFT) % n, "negative") for i in range(n)]


def text_controls(chapter: Chapter, seeds, progress: bool = True) -> ControlRuns:
    """The text baseline's positive and negative controls on every text prompt of 05 and 06 × ``seeds``, one batch,
    to the cap."""
    prompts = list(TEXT_PROMPTS)
    objs = text_control_objects(chapter, prompts)
    starts = fitted(chapter, objs)
    emb = chapter.enc.encode_text(prompts)
    order = [(i, j, c, s) for i, j, c in _pairs(len(prompts)) for s in seeds]
    init = {k: v[[i for i, _, _, _ in order]] for k, v in starts.items()}
    rows = [j for _, j, _, _ in order]
    labels = [{"control": c, "prompt": prompts[j], "start prompt": prompts[i], "start": objs[i].object_id, "seed": s}
              for i, j, c, s in order]
    runs = Runs.optimise(labels, init, chapter.text_guidance(emb[rows]), chapter.spec, chapter.cfg, emb[rows],
                         chapter.enc, profile=chapter.P.name, name=chapter.run_name("controls-text"),
                         device=chapter.device, stop_at_convergence=False, progress=progress,
                         raw_test=False)
    rule = chapter.rule()
    rows_out = []
    for r, lab in runs.labels.iterrows():
        old, new = PROMPT_CATEGORIES[lab["start prompt"]], PROMPT_CATEGORIES[lab["prompt"]]
        as_old = runs.built_flags(r, rule, old)
        as_new = runs.built_flags(r, rule, new) if new != old else as_old
        start_built, end_old, end_new = as_old[0], as_old[-1], as_new[-1]
        passed = end_new if lab["control"] == "positive" else (not end_old) or end_new
        rows_out.append({"start built": start_built, "built as the start's category at the cap": end_old,
                         "built as the prompt's category at the cap": end_new, "passed": bool(passed)})
    table = pd.concat([runs.labels.reset_index(drop=True), pd.DataFrame(rows_out)], axis=1)
    return ControlRuns("text", chapter.prior, runs, table)


def image_controls(chapter: Chapter, objects, names, seeds, progress: bool = True) -> ControlRuns:
    """The image baseline's positive and negative controls on image prompts of world ``objects`` (shown from the
    prompt pose; ``names`` label them) × ``seeds``, one batch, to the cap."""
    objects, names = list(objects), list(names)
    refs = ev.prompt_images(objects, chapter.P)
    starts = fitted(chapter, objects)
    gt, gt_alpha = check_truth(objects, chapter)
    order = [(i, j, c, s) for i, j, c in _pairs(len(objects)) for s in seeds]
    init = {k: v[[i for i, _, _, _ in order]] for k, v in starts.items()}
    rows = [j for _, j, _, _ in order]
    labels = [{"control": c, "prompt": names[j], "start prompt": names[i], "seed": s} for i, j, c, s in order]
    guid = chapter.image_guidance(refs[rows], ev.prompt_pose().expand(len(rows), 4, 4))
    runs = Runs.optimise(labels, init, guid, chapter.spec, chapter.cfg, chapter.enc.encode_images(refs[rows]),
                         chapter.enc, profile=chapter.P.name, name=chapter.run_name("controls-image"),
                         device=chapter.device, stop_at_convergence=False, progress=progress,
                         raw_test=False)
    novel = novel_views(chapter.cfg.check_views)
    psnr, iou = novel_scores(runs, gt[rows], gt_alpha[rows], novel)          # against each run's prompt object
    rows_out = []
    for r, (_, _, control, _) in enumerate(order):
        if control == "positive":
            passed = psnr[r, -1] >= psnr[r, 0] - POSITIVE_PSNR_DROP and iou[r, -1] >= POSITIVE_IOU
        else:
            passed = psnr[r, -1] >= psnr[r, 0] + NEGATIVE_PSNR_RISE or iou[r, -1] >= iou[r, 0] + NEGATIVE_IOU_RISE
        rows_out.append({"novel PSNR at the start": psnr[r, 0], "novel PSNR at the cap": psnr[r, -1],
                         "novel IoU at the start": iou[r, 0], "novel IoU at the cap": iou[r, -1],
                         "passed": bool(passed)})
    table = pd.concat([runs.labels.reset_index(drop=True), pd.DataFrame(rows_out)], axis=1)
    return ControlRuns("image", chapter.prior, runs, table)


def image_quality(runs: Runs, objects_per_run, chapter: Chapter) -> pd.DataFrame:
    """Per image run, novel-view quality against its prompt's ground-truth object: PSNR and mask IoU at the start,
    where the convergence test stopped the run and at the cap, whether it is ``built`` (mask IoU at least
    :data:`IMAGE_IOU_BAR`) where it stopped, and the iterations until it reached that bar for good
    (``iterations_to_built``; the cap when never; ``stays_built``); ``reached``: at any logged epoch."""
    uniq = list(dict.fromkeys(objects_per_run))
    gt, gt_alpha = check_truth(uniq, chapter)
    idx = [uniq.index(o) for o in objects_per_run]
    psnr, iou = novel_scores(runs, gt[idx], gt_alpha[idx], novel_views(chapter.cfg.check_views))
    res, out = runs.result, []
    for r in range(len(runs)):
        e = res._epoch(r, runs.iterations(r))
        flags = [bool(x >= IMAGE_IOU_BAR) for x in iou[r, :len(res.similarity[r])]]
        stays = first_stays(flags)
        out.append({"novel_psnr_start": float(psnr[r, 0]), "novel_psnr_converged": float(psnr[r, e]),
                    "novel_psnr_final": float(psnr[r, -1]), "novel_iou_converged": float(iou[r, e]),
                    "novel_iou_final": float(iou[r, -1]), "built": flags[e], "built_final": flags[-1],
                    "iterations_to_built": stays * res.config.epoch_iters if stays is not None else res.cap,
                    "stays_built": stays is not None, "reached": any(flags)})
    return pd.DataFrame(out)


def start_and_end(control: ControlRuns, seed: int) -> dict:
    """The controls' figure: per start (rows: the start's prompt → the negative control's prompt), the start, then
    where its positive run (same prompt) and negative run (the other prompt) stood at the cap (seed ``seed``, check
    view 0), with ✓ / ✗ for passed. Returns ``image_grid`` arguments."""
    runs, t = control.runs, control.table
    images, labels = [], []
    for prompt in dict.fromkeys(t["start prompt"]):
        pos = runs.one(**{"start prompt": prompt, "control": "positive", "seed": seed})
        neg = runs.one(**{"start prompt": prompt, "control": "negative", "seed": seed})
        res = runs.result
        images += [res.snapshot_at(pos, 0), res.snapshot_at(pos, res.cap), res.snapshot_at(neg, res.cap)]
        marks = " ".join("✓" if t.passed[r] else "✗" for r in (pos, neg))
        labels.append(f"{_short(prompt)} → {_short(t.prompt[neg])} ({marks})")
    return dict(images=torch.stack(images), ncols=3, size=1.2, row_labels=labels,
                titles=["start", "positive", "negative"])


def _short(prompt: str, n: int = 22) -> str:
    return prompt if len(prompt) <= n else prompt[:n - 1] + "…"


@dataclass
class Suite:
    """Every control of one prior's two baselines (:func:`suite`): the text and image positive / negative controls,
    the from-scratch study of the text baseline and the image baseline's from-scratch runs with their novel-view
    quality (``image_scratch``: one row per run)."""
    prior: str
    text: ControlRuns
    image: ControlRuns
    scratch: "ScratchStudy | None" = None          # None: not run (:data:`SCRATCH_SKIPPED`)
    image_scratch: pd.DataFrame | None = None

    @property
    def ran_scratch(self) -> bool:
        return self.scratch is not None

    def passed(self, modality: str) -> dict[str, float | None]:
        """The measured value of each control of one modality's baseline, by control name (None: not run)."""
        if modality == "text":
            c = self.scratch.counts() if self.ran_scratch else None
            return {"positive": self.text.share("positive"), "negative": self.text.share("negative"),
                    "scratch": None if c is None else float(c.loc["S", "prompts built"]),
                    "scratch failed": None if c is None else float(c.loc["S", "runs failed"])}
        return {"positive": self.image.share("positive"), "negative": self.image.share("negative"),
                "scratch": float(self.image_scratch.reached.mean()) if self.ran_scratch else None}

    def summary(self) -> pd.DataFrame:
        """One row per baseline: what each control measured."""
        return pd.DataFrame({m: self.passed(m) for m in ("text", "image")}).T


def image_control_objects(chapter) -> tuple[list, list[str]]:
    """The image controls' prompts: the scenes of 05's image-baseline subset and 06's out-of-distribution objects."""
    from p2nlib.chapters.base import OOD_IMAGE_CATEGORIES
    from p2nlib.chapters.in_distribution import InDistribution

    sub = InDistribution.baseline_subset(chapter)
    objs = list(chapter.ds.world_objects(sub)) + ev.ood_objects(OOD_IMAGE_CATEGORIES, chapter.P)
    names = [chapter.ds.objects[i]["category"] for i in sub] + [f"{c} (new)" for c in OOD_IMAGE_CATEGORIES]
    return objs, names


def first_controls_hold(prior: str, text: ControlRuns, image: ControlRuns) -> bool:
    """Whether the positive and negative controls of both baselines of ``prior`` reach their bars."""
    from p2nlib.book.claims_spec import HOLDS, SPECS

    return all(SPECS[f"controls.{runs.modality}.{prior}.{control}"].judge(runs.share(control)) == HOLDS
               for runs in (text, image) for control in ("positive", "negative"))


def suite(pipe, device, seed: int, prior: str, progress: bool = True, scratch: bool | None = None) -> Suite:
    """Every control of the ``prior``'s baselines (``"trained"`` or ``"ideal"``): cached runs, so a second chapter
    that asks for them reads them from disk. The runs from scratch (``scratch``; None: for the first prior of
    :data:`HEADLINE_ORDER` and for a prior whose positive and negative controls hold) come last."""
    from p2nlib.chapters.in_distribution import InDistribution
    from p2nlib.chapters.out_of_distribution import OutOfDistribution

    idc = InDistribution(pipe, device, seed, prior=prior)
    ood = OutOfDistribution(pipe, device, seed, prior=prior)
    seeds = idc.seeds[:idc.P.control_seeds]      # each prompt × seed is a run
    text = text_controls(idc, seeds, progress)
    objs, names = image_control_objects(idc)
    image = image_controls(idc, objs, names, seeds, progress)
    if scratch is None:
        scratch = prior == HEADLINE_ORDER[0] or first_controls_hold(prior, text, image)
    if not scratch:
        return Suite(prior, text, image)
    study = ood.scratch_study(inits=("S", "Ours (NRS)"), progress=progress)
    base = idc.image_baseline(progress=progress)
    by_id = {o.object_id: o for o in idc.ds.world_objects(base.subset)}
    q = image_quality(base.runs, [by_id[s] for s in base.runs.labels.scene], idc)
    return Suite(prior, text, image, study, pd.concat([base.runs.labels.reset_index(drop=True), q], axis=1))
