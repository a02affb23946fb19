"""Shared evaluation for the results notebooks (§4.5, §4.6, §5.2): prompt images, evaluation renders,
per-run tables of the per-prompt optimisations and their summaries over seeds."""
from __future__ import annotations

import numpy as np
import pandas as pd
import torch

from p2nlib.baselines import optimize
from p2nlib.core.profiles import Profile
from p2nlib.data import cameras, fit, nerf
from p2nlib.eval import metrics

PROMPT_AZIMUTH, PROMPT_ELEVATION = 30.0, 25.0


def prompt_pose() -> torch.Tensor:
    """The pose (1, 4, 4) image prompts are rendered from (also the baselines' reference view)."""
    return cameras.orbit([PROMPT_AZIMUTH], [PROMPT_ELEVATION])


def prompt_images(objects, p: Profile, device: torch.device | str = "cpu") -> torch.Tensor:
    """Ground-truth image prompts (N, S, S, 3) at the CLIP render size, from :func:`prompt_pose`."""
    return fit.render_ground_truth(objects, prompt_pose(), p.clip_image_size, p.samples_per_ray, device)[:, 0].cpu()


def eval_poses(n: int) -> torch.Tensor:
    """``n`` evaluation views evenly spaced in azimuth at 25° elevation."""
    return cameras.turntable(n, elevation=PROMPT_ELEVATION)


def render_views(params, spec: nerf.NerfSpec, p: Profile, n: int, size: int | None = None) -> torch.Tensor:
    """Renders (B, n, H, W, 3) of NeRFs at :func:`eval_poses`."""
    return fit.render_nerfs(params, spec, eval_poses(n), size or p.image_size, p.samples_per_ray).cpu()


def gt_views(objects, p: Profile, n: int, size: int | None = None) -> torch.Tensor:
    return fit.render_ground_truth(objects, eval_poses(n), size or p.image_size, p.samples_per_ray).cpu()


def image_prompt_metrics(encoder, generated: torch.Tensor, truth: torch.Tensor) -> dict:
    """CLIP similarity (mean over objects and poses) and Fréchet distance of two view sets."""
    sim = metrics.image_similarity(encoder, generated, truth)
    fd = metrics.frechet_images(encoder, generated, truth)
    return {"similarity": float(sim.mean()), "similarity_per_object": sim, "frechet": fd.value,
            "metric": fd.metric, "samples": fd.samples}


def fmt(values, digits: int = 3) -> str:
    """'mean ± std' of a sequence (the std over seeds; a single value is shown alone)."""
    v = np.asarray([x for x in values if x is not None and np.isfinite(x)], dtype=float)
    if len(v) == 0:
        return "n/a"
    return f"{v.mean():.{digits}f}" if len(v) == 1 else f"{v.mean():.{digits}f} ± {v.std(ddof=1):.{digits}f}"


def run_table(res: optimize.OptimResult, labels: list[dict], budget: int | None = None,
              quality: list[float] | None = None) -> pd.DataFrame:
    """One row per run: its labels, iterations to convergence (the supplement VI test), similarity at
    convergence and at the end, wall time, and optionally similarity at a fixed ``budget`` and the
    iterations to reach a ``quality`` level (one per run)."""
    cap = res.cap
    rows = []
    for r, lab in enumerate(labels):
        it = res.iterations[r]
        row = dict(lab)
        row.update({"converged": it is not None, "iterations": it if it is not None else cap,
                    "sim_init": res.similarity[r][0], "sim_converged": res.converged_similarity(r),
                    "sim_final": res.final_similarity(r), "seconds_converged": res.seconds_to(r, it),
                    "seconds_total": res.seconds[r]})
        if budget is not None:
            row[f"sim_at_{budget}"] = res.similarity_at(r, budget)
        if quality is not None:
            hit = res.iterations_to_reach(r, quality[r])
            row["quality_level"] = quality[r]
            row["iterations_to_quality"] = hit if hit is not None else cap
            row["reached_quality"] = hit is not None
        rows.append(row)
    return pd.DataFrame(rows)


def convergence_sensitivity(res: optimize.OptimResult, eps_values, k: int) -> pd.DataFrame:
    """Iterations to convergence of every run under other thresholds (recomputed from logged curves;
    valid for runs that went on to the cap)."""
    cap = res.cap
    out = {}
    for eps in eps_values:
        its = []
        for ch in res.changes:
            e = optimize.converged_epoch(ch, eps, k)
            its.append(cap if e is None else e * res.config.epoch_iters)
        out[f"eps={eps:g}"] = its
    return pd.DataFrame(out)


OOD_START = 20_000   # object indices never used by the NeRF dataset (0..), CLIP training (0..) or CLIP eval (10_000..)


def ood_objects(categories, start: int = OOD_START) -> list:
    """One new object per out-of-distribution category, seen by no model of the book."""
    from p2nlib import clip
    from p2nlib.data import world

    bad = [c for c in categories if c in world.IN_DISTRIBUTION]
    if bad:
        raise ValueError(f"{bad} are dataset categories; out-of-distribution prompts need one of "
                         f"{', '.join(world.OUT_OF_DISTRIBUTION)}")
    return [world.make_object(c, start, clip.WORLD_SEED) for c in categories]


def nearest_train_scenes(cache: torch.Tensor, emb: torch.Tensor, train_idx: list[int]) -> tuple[list[int], list[float]]:
    """Semantically nearest *training* scene (dataset index) of each embedding (M, D), by cosine to
    the scenes' mean image embedding, as the paper does for text and out-of-distribution prompts."""
    from p2nlib import clip

    j, score = clip.nearest_scene(emb, cache[train_idx])
    return [train_idx[int(i)] for i in j], [float(s) for s in score]
