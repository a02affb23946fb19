"""Score distillation (SDS) from the book's diffusion priors: the guidances of the per-prompt baselines.

The paper's baselines are DreamFusion (text) and Zero-1-to-3 (image), both score distillation from
diffusion models whose weights cannot be had offline. The book trains its own small priors
(:mod:`p2nlib.priors`) and distils them the same way:

* :class:`TextSDSGuidance` — SDS from the text-conditioned prior at random views (DreamFusion).
* :class:`ImageSDSGuidance` — a photometric loss on the reference view plus SDS from the
  view-conditioned prior at random novel views (stable-dreamfusion's Zero-1-to-3 mode).

They plug into :func:`p2nlib.baselines.optimize.optimize` like the CLIP guidances of
:mod:`p2nlib.baselines.guidance`, which the book keeps as a measured ablation.
"""
from __future__ import annotations

import torch

from p2nlib.core.artifacts import tensor_digest


def _prior_key(prior) -> str:
    return getattr(prior, "fingerprint", None) or tensor_digest(prior.state_dict())


class _SDS:
    """Score distillation sampling (DreamFusion): render, noise the render to a random timestep, let the
    frozen prior predict the noise (classifier-free guidance), and push the render along
    ``w(t) (eps_pred - eps)`` with ``w(t) = 1 - alpha_bar_t``; the prior's Jacobian is skipped. Renders are
    made at the prior's own size. Noise and timesteps come from the guidance's own seeded generator.

    ``anneal=(t_end, iterations)`` (ours, after ProlificDreamer / LucidDreamer): the largest timestep falls
    linearly from ``t_range[1]`` to ``t_end`` over the first ``iterations`` calls (one call per optimiser
    step), so late steps refine the shape instead of repainting it from heavy noise."""

    def __init__(self, prior, scale: float, t_range: tuple[float, float], seed: int,
                 anneal: tuple[float, int] | None = None):
        from p2nlib.priors import models

        self.prior, self.scale, self.t_range, self.seed = prior.eval(), float(scale), tuple(t_range), seed
        self.anneal = None if not anneal else (float(anneal[0]), int(anneal[1]))
        self.size = prior.cfg.size
        self.alphas = models.scheduler(prior.cfg).alphas_cumprod
        self.gen = torch.Generator().manual_seed(seed)
        self.calls = 0

    def _key(self) -> dict:
        key = {"name": self.name, "prior": _prior_key(self.prior), "scale": self.scale,
               "t_range": list(self.t_range), "seed": self.seed}
        return {**key, "anneal": list(self.anneal)} if self.anneal else key

    def t_max(self) -> float:
        """The largest timestep (a fraction of the schedule) of the current call."""
        if not self.anneal:
            return self.t_range[1]
        end, its = self.anneal
        return self.t_range[1] - (self.t_range[1] - end) * min(1.0, self.calls / max(its, 1))

    def sds(self, rgb: torch.Tensor, cond: tuple) -> torch.Tensor:
        """Per-image SDS surrogate loss (N,) for renders (N, S, S, 3) whose gradient is the SDS gradient."""
        from p2nlib.priors.sampling import guided_eps
        from p2nlib.priors.train import to_model

        x = to_model(rgb, self.size)
        n, T = x.shape[0], self.alphas.shape[0]
        lo, hi = int(self.t_range[0] * T), max(int(self.t_max() * T), int(self.t_range[0] * T) + 1)
        self.calls += 1
        t = torch.randint(lo, hi, (n,), generator=self.gen)
        noise = torch.randn(x.shape, generator=self.gen)
        a = self.alphas[t].view(-1, 1, 1, 1).to(x.device)
        with torch.no_grad():                       # the prior's Jacobian is skipped: no graph through it
            x_t = a.sqrt() * x + (1 - a).sqrt() * noise.to(x.device)
            eps = guided_eps(self.prior, x_t, t.to(x.device), cond, self.scale)
        grad = (1 - a) * (eps - noise.to(x.device))
        return 0.5 * (x - (x - grad).detach()).pow(2).sum((1, 2, 3))


class TextSDSGuidance(_SDS):
    """Text score distillation from the book's text-conditioned prior; stands in for DreamFusion."""

    name = "text SDS from the book's diffusion prior (stands in for DreamFusion)"

    def __init__(self, prior, text_emb: torch.Tensor, scale: float = 20.0, t_range=(0.02, 0.98), seed: int = 0,
                 anneal: tuple[float, int] | None = None):
        """``text_emb`` (R, D): the CLIP text embedding of each run's prompt, as the prior was trained on."""
        super().__init__(prior, scale, t_range, seed, anneal)
        self.text_emb = text_emb.float()

    def key(self) -> dict:
        return {**self._key(), "text": tensor_digest(self.text_emb)}

    def loss(self, render_fn, c2w: torch.Tensor, size: int, idx: torch.Tensor) -> torch.Tensor:
        from p2nlib.priors import models

        rgb, _ = render_fn(c2w, self.size)                                     # (b, n, S, S, 3)
        b, n = rgb.shape[:2]
        cond = (self.text_emb[idx].repeat_interleave(n, 0).to(rgb.device),)
        if getattr(self.prior, "camera_aware", False):          # a prior that reads the camera (the ideal one)
            with torch.autocast("cpu", enabled=False):
                cond += (models.camera_angles(c2w.reshape(b * n, 4, 4).float())[:, :2].to(rgb.device),)
        return self.sds(rgb.reshape(b * n, *rgb.shape[2:]), cond).reshape(b, n).mean(1)


class ImageSDSGuidance(_SDS):
    """Reference-view photometric loss + view-conditioned score distillation at random novel views, as
    stable-dreamfusion's Zero-1-to-3 mode; stands in for Zero-1-to-3."""

    name = "reference view + view-conditioned SDS from the book's diffusion prior (stands in for Zero-1-to-3)"

    def __init__(self, prior, reference: torch.Tensor, reference_pose: torch.Tensor, scale: float = 3.0,
                 ref_weight: float = 1.0, t_range=(0.02, 0.98), seed: int = 0, anneal: tuple[float, int] | None = None):
        """``reference`` (R, H, W, 3) in [0, 1] at poses ``reference_pose`` (R, 4, 4), one per run."""
        from p2nlib.priors.train import to_model

        if reference.shape[0] != reference_pose.shape[0]:
            raise ValueError("one reference pose per reference image")
        super().__init__(prior, scale, t_range, seed, anneal)
        self.reference, self.pose, self.ref_weight = reference.float(), reference_pose.float(), float(ref_weight)
        self.ref_model = to_model(self.reference, self.size)                  # (R, 3, S, S) in [-1, 1]

    def key(self) -> dict:
        return {**self._key(), "reference": tensor_digest(self.reference), "pose": tensor_digest(self.pose),
                "ref_weight": self.ref_weight}

    def loss(self, render_fn, c2w: torch.Tensor, size: int, idx: torch.Tensor) -> torch.Tensor:
        from p2nlib.priors import models

        b, n = c2w.shape[:2]
        poses = torch.cat([self.pose[idx][:, None], c2w], 1)                  # reference view first
        rgb, _ = render_fn(poses, self.size)
        ref = ((self.ref_model[idx] + 1) / 2).permute(0, 2, 3, 1).to(rgb.device)
        photo = (rgb[:, 0] - ref).pow(2).sum((1, 2, 3))
        with torch.autocast("cpu", enabled=False):                  # the camera condition in float32 under bf16
            rel = models.relative_camera(self.pose[idx].repeat_interleave(n, 0), c2w.reshape(b * n, 4, 4).float())
        cond = (self.ref_model[idx].repeat_interleave(n, 0).to(rgb.device),
                models.camera_encoding(rel).to(rgb.device))
        sds = self.sds(rgb[:, 1:].reshape(b * n, *rgb.shape[2:]), cond).reshape(b, n).mean(1)
        return self.ref_weight * photo + sds
