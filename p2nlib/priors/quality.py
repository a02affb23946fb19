"""How good the trained priors are (chapter 08), and what score distillation through them builds.

* Text prior: samples per category from the plain category caption; FD-CLIP between samples and real
  renders of held-out objects (the CLIP evaluation set, same size), and the book's CLIP zero-shot
  accuracy on the samples next to its accuracy on those real renders.
* View prior: for held-out objects, a reference view and the relative camera to each other view;
  the sampled novel view against the ground truth (PSNR, CLIP image similarity), next to simply
  copying the reference (what a prior that ignores the camera would score).
* Score distillation from the shared template (the "from scratch" start of chapter 06), a few runs
  at a fixed number of iterations, to see that it builds objects.
"""
from __future__ import annotations

import torch

from p2nlib.core.profiles import Profile
from p2nlib.data import fit, world
from p2nlib.eval import clip_quality, metrics
from p2nlib.priors import models, sampling, train


def held_out(p: Profile, cfg: models.PriorConfig, progress: bool = False):
    """The CLIP evaluation objects (never trained on by CLIP or the priors), their views resized to the
    prior's size (N, V, S, S, 3) in [0, 1], and their poses (N, V, 4, 4)."""
    from p2nlib.clip import views as cviews
    from p2nlib.data import cameras

    objs, imgs = cviews.eval_views(p, progress=progress)
    n, v = imgs.shape[:2]
    x = train.to_images(train.to_model(imgs.reshape(n * v, *imgs.shape[2:]), cfg.size)).reshape(n, v, cfg.size,
                                                                                                cfg.size, 3)
    poses = cameras.view_set(v, cviews.EVAL_VIEW_SEED)[None].expand(n, -1, -1, -1)
    return objs, x, poses


def text_samples(prior, encoder, per_category: int, scale: float = 3.0, steps: int = 50,
                 seed: int = 0, sampler: str = "ddpm") -> tuple[torch.Tensor, list[str]]:
    """``per_category`` samples (16 * per_category, S, S, 3) from each category's plain caption, category-major."""
    cats = list(world.CATEGORIES)
    emb = encoder.encode_text([world.category_caption(c) for c in cats]).float().cpu()
    cond = emb.repeat_interleave(per_category, 0)
    return (sampling.sample(prior, (cond,), scale, steps, seed, sampler),
            [c for c in cats for _ in range(per_category)])


def text_quality(encoder, samples: torch.Tensor, labels: list[str], real: torch.Tensor,
                 real_labels: list[str]) -> dict:
    """FD-CLIP of samples vs real renders, and zero-shot top-1 on both (same size, same encoder)."""
    fd = metrics.frechet_images(encoder, samples[:, None], real[:, None], backend="clip")
    zs = clip_quality.zero_shot(encoder, encoder.encode_images(samples), labels)
    zr = clip_quality.zero_shot(encoder, encoder.encode_images(real), real_labels)
    return {"FD-CLIP samples vs real": fd.value, "FD-CLIP metric": fd.metric, "samples": len(samples),
            "zero-shot top-1 on samples": zs["top1"], "zero-shot top-1 on real renders": zr["top1"],
            "per category (samples)": zs["per_category"]}


def text_prior_quality(prior, encoder, objs: list, real: torch.Tensor, seed: int = 0,
                       sampler: str = "ddpm") -> tuple[dict, torch.Tensor, list[str], int]:
    """Chapter 08's measure of a text prior: enough samples per category for a Fréchet distance, from each
    category's plain caption, scored by :func:`text_quality` against the held-out objects ``objs`` and their
    views ``real`` (N, V, S, S, 3) at the prior's size (:func:`held_out`). Returns the scores, the samples
    (category-major), their labels and the samples per category."""
    per = metrics.views_for_frechet(16, encoder.embed_dim)
    samples, labels = text_samples(prior, encoder, per, seed=seed, sampler=sampler)
    scores = text_quality(encoder, samples, labels, real.reshape(-1, *real.shape[2:]),
                          [o.category for o in objs for _ in range(real.shape[1])])
    return scores, samples, labels, per


def novel_views(prior, reference: torch.Tensor, ref_pose: torch.Tensor, target_pose: torch.Tensor,
                scale: float = 3.0, steps: int = 50, seed: int = 0, sampler: str = "ddpm") -> torch.Tensor:
    """Sampled views (N, S, S, 3) of the object in ``reference`` (N, S, S, 3) from ``target_pose`` (N, 4, 4)."""
    rel = models.relative_camera(ref_pose, target_pose)
    return sampling.sample(prior, (train.to_model(reference, prior.cfg.size), models.camera_encoding(rel)),
                           scale, steps, seed, sampler)


def view_quality(prior, encoder, views: torch.Tensor, poses: torch.Tensor, scale: float = 3.0,
                 seed: int = 0, sampler: str = "ddpm") -> tuple[dict, torch.Tensor]:
    """Reference = view 0 of each object, targets = every other view. Returns the scores (PSNR and CLIP
    similarity of the sampled view vs ground truth, and of the copied reference) and the samples
    (N, V - 1, S, S, 3)."""
    n, v = views.shape[:2]
    ref = views[:, 0].repeat_interleave(v - 1, 0)
    ref_pose = poses[:, 0].repeat_interleave(v - 1, 0)
    tgt, tgt_pose = views[:, 1:].reshape(-1, *views.shape[2:]), poses[:, 1:].reshape(-1, 4, 4)
    out = novel_views(prior, ref, ref_pose, tgt_pose, scale, seed=seed, sampler=sampler)
    score = lambda a: {"PSNR vs ground truth (dB)": float(fit.psnr(a, tgt, (1, 2, 3)).mean()),
                       "CLIP similarity to ground truth": float(metrics.image_similarity(
                           encoder, a[:, None], tgt[:, None]).mean())}
    return {"view prior": score(out), "copy the reference": score(ref)}, out.reshape(n, v - 1, *out.shape[1:])


@torch.no_grad()
def one_step_denoising(prior, views: torch.Tensor, poses: torch.Tensor, timesteps=(100, 300, 500, 700),
                       seed: int = 0) -> dict:
    """What score distillation uses: one denoising step, not a whole sampling chain. For each held-out object
    (reference = view 0, target = view 1), noise the target to timestep ``t`` and let the view prior predict the
    clean target from it (x0 = (x_t - sqrt(1 - abar) eps) / sqrt(abar)): PSNR against the target, with the
    reference and camera given and with the condition dropped, next to copying the reference."""
    ref, tgt = views[:, 0], views[:, 1]
    cond = (train.to_model(ref, prior.cfg.size),
            models.camera_encoding(models.relative_camera(poses[:, 0], poses[:, 1])))
    x0 = train.to_model(tgt, prior.cfg.size)
    sched = models.scheduler(prior.cfg)
    gen = torch.Generator().manual_seed(seed)
    out = {}
    for t in timesteps:
        noise = torch.randn(x0.shape, generator=gen)
        tt = torch.full((len(x0),), t, dtype=torch.long)
        x_t = sched.add_noise(x0, noise, tt)
        a = sched.alphas_cumprod[t]
        row = {}
        for name, drop in (("with reference and camera", None), ("condition dropped", torch.ones(len(x0), dtype=torch.bool))):
            eps = prior(x_t, tt, *cond, drop=drop)
            pred = train.to_images((x_t - (1 - a).sqrt() * eps) / a.sqrt())
            row[name] = float(fit.psnr(pred, tgt, (1, 2, 3)).mean())
        row["copy the reference"] = float(fit.psnr(ref, tgt, (1, 2, 3)).mean())
        out[f"t = {t}"] = row
    return out
