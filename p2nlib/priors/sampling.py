"""Using a trained prior: classifier-free guided noise predictions (what score distillation asks for),
whole sampling chains (chapter 08's samples) and the denoising error of an image under a condition.

Two samplers, both ``diffusers`` schedulers over the prior's own training schedule
(:func:`p2nlib.priors.models.scheduler`: cosine, 1,000 steps, epsilon prediction):

* ``"ddpm"`` (the default, ours) — ancestral sampling (``DDPMScheduler``, strided over ``steps`` of the
  1,000 training timesteps): each step draws fresh noise, which corrects the small priors' errors as
  the chain goes.
* ``"ddim"`` — deterministic DDIM (``DDIMScheduler``, eta = 0, diffusers' defaults), the book's former
  sampler. With these small priors its chain drifts: it clips the predicted clean image to [-1, 1]
  but keeps the predicted noise, and nothing pulls the chain back. Chapter 08 measures both.

Kept apart from :mod:`p2nlib.priors.train`, whose source is part of the trained priors' cache key: a
change here samples differently without retraining them.
"""
from __future__ import annotations

import torch

from p2nlib.priors import models
from p2nlib.priors.train import to_images

SAMPLERS = ("ddpm", "ddim")


def guided_eps(model, x_t: torch.Tensor, t: torch.Tensor, cond: tuple, scale: float) -> torch.Tensor:
    """Classifier-free guided noise prediction: eps_u + scale (eps_c - eps_u), in one batched call."""
    b = x_t.shape[0]
    drop = torch.cat([torch.zeros(b, dtype=torch.bool), torch.ones(b, dtype=torch.bool)]).to(x_t.device)
    eps = model(torch.cat([x_t, x_t]), torch.cat([t, t]), *(torch.cat([c, c]) for c in cond), drop=drop).float()
    e_c, e_u = eps.chunk(2)                  # combined in float32 (under bf16 autocast the scale would amplify rounding)
    return e_u + scale * (e_c - e_u)


def _scheduler(cfg: models.PriorConfig, sampler: str):
    from diffusers import DDIMScheduler, DDPMScheduler

    if sampler not in SAMPLERS:
        raise ValueError(f"unknown sampler {sampler!r}: use one of {', '.join(SAMPLERS)}")
    cls = DDPMScheduler if sampler == "ddpm" else DDIMScheduler
    return cls.from_config(models.scheduler(cfg).config)


@torch.no_grad()
def sample(model, cond: tuple, scale: float = 3.0, steps: int = 50, seed: int = 0,
           sampler: str = "ddpm") -> torch.Tensor:
    """Samples (B, S, S, 3) in [0, 1], one per condition row (``cond`` as the model's forward takes it), by
    ``steps`` steps of ``sampler`` (``"ddpm"`` ancestral or ``"ddim"`` deterministic) with classifier-free
    guidance ``scale``. The same ``seed`` gives the same samples."""
    sched = _scheduler(model.cfg, sampler)
    sched.set_timesteps(steps)
    size = model.cfg.size
    dev = next(model.parameters()).device
    gen = torch.Generator().manual_seed(seed)
    b = cond[0].shape[0]
    x = torch.randn(b, 3, size, size, generator=gen).to(dev)
    cond = tuple(c.to(dev) for c in cond)
    for t in sched.timesteps:
        eps = guided_eps(model, x, t.expand(b).to(dev), cond, scale)
        x = sched.step(eps, t, x, generator=gen).prev_sample      # DDPM draws its noise from gen (on the CPU)
    return to_images(x).cpu()


def denoising_error(model, x0: torch.Tensor, cond: tuple, t: int, seed: int = 0) -> torch.Tensor:
    """Per-image conditional noise-prediction error at timestep ``t`` (B,) for images in model space."""
    gen = torch.Generator().manual_seed(seed)
    noise = torch.randn(x0.shape, generator=gen)
    tt = torch.full((x0.shape[0],), t, dtype=torch.long)
    x_t = models.scheduler(model.cfg).add_noise(x0, noise, tt)
    with torch.no_grad():
        eps = model(x_t, tt, *cond)
    return (eps - noise).pow(2).mean((1, 2, 3))
