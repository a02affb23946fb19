"""Fit many NeRFs at once from one shared initialisation (paper §3.1).

All objects of a batch are one stacked parameter dict (:mod:`p2nlib.data.nerf`), so one Adam step
updates every NeRF; the loss is the sum of per-object losses, so each object's gradient is the
one it would get alone. Two phases:

1. *3D warm start* (stated in ``01_dataset``): regress the NeRF's opacity and colour at 3D points
   (uniform in the box and near the surface) onto the procedural object's field. A point costs one
   MLP evaluation instead of the ``samples_per_ray`` evaluations of a rendered ray, so this gets
   the coarse shape in cheaply.
2. *Photometric fitting*, the paper's loss: MSE between rendered and ground-truth pixels of the
   training views, rays drawn at random from all views, stratified jittered samples.

Held-out views (never used for fitting) give the PSNR stored in the manifest.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

import torch
from tqdm import tqdm

from p2nlib.core.device import native_bf16
from p2nlib.core.profiles import Profile
from p2nlib.data import cameras, nerf, render, world

VIEW_SEED_TRAIN, VIEW_SEED_HELDOUT = 1, 2
GT_SUPERSAMPLE = 2  # ground truth uses twice the profile's samples per ray
#: sample points per chunk of a NeRF render on the CPU (all NeRFs together): small enough that each layer's
#: activations stay in cache. 48 NeRFs × 4 views × 32 px × 16 samples: 0.94 s against 2.3 s at 2^18, bit-identical
NERF_CPU_CHUNK = 1 << 15


@dataclass(frozen=True)
class FitConfig:
    train_views: int
    heldout_views: int
    image_size: int
    samples: int
    warmup_steps: int
    fit_steps: int
    rays: int
    lr: float
    warm_points: int = 2048
    # Ours, not the paper's (0 = off): a proximal pull toward the shared template while fitting. After each
    # Adam step, theta <- theta - lr_t * proximal * (theta - theta_template) (a decoupled decay toward the
    # template rather than toward zero), so similar objects keep similar weights.
    proximal: float = 0.0
    # Ours, a speed lever (False = the paper's float32): the MLP's products in bfloat16 while fitting (the
    # parameters, Adam and the held-out PSNR stay float32). Adopted only where the fitted PSNR holds.
    bf16: bool = False

    @classmethod
    def from_profile(cls, p: Profile) -> "FitConfig":
        if p.train_views <= 0 or p.heldout_views <= 0:
            raise ValueError(f"profile {p.name!r}: train_views and heldout_views must be positive")
        return cls(p.train_views, p.heldout_views, p.image_size, p.samples_per_ray, p.warmup_steps,
                   p.fit_steps, p.rays_per_step, p.fit_lr, bf16=p.fit_bf16 and native_bf16())

    def to_dict(self) -> dict:
        d = dict(self.__dict__)
        for k in ("proximal", "bf16"):   # the paper's recipe: absent, so its datasets keep their fingerprint
            if not d[k]:
                d.pop(k)
        return d


@dataclass
class FitResult:
    params: dict[str, torch.Tensor]
    psnr_heldout: torch.Tensor                 # (B,)
    history: dict[str, list] = field(default_factory=dict)
    seconds: float = 0.0


def train_poses(cfg: FitConfig) -> torch.Tensor:
    return cameras.view_set(cfg.train_views, VIEW_SEED_TRAIN)


def heldout_poses(cfg: FitConfig) -> torch.Tensor:
    return cameras.view_set(cfg.heldout_views, VIEW_SEED_HELDOUT)


def world_field(objects) -> render.Field:
    return lambda pts: world.density_color(objects, pts)


def nerf_field(params: dict[str, torch.Tensor], spec: nerf.NerfSpec, bf16: bool = False) -> render.Field:
    return lambda pts: nerf.forward(params, pts, spec.freqs, bf16=bf16)


def render_ground_truth(objects, c2w: torch.Tensor, size: int, samples: int,
                        device: torch.device | str = "cpu", opacity: bool = False):
    """Ground-truth images (B, V, size, size, 3) of procedural objects (and their opacities with ``opacity``)."""
    return render.render_images(world_field(objects), c2w, size, samples * GT_SUPERSAMPLE, len(objects),
                                device=device, opacity=opacity)


def render_nerfs(params, spec: nerf.NerfSpec, c2w: torch.Tensor, size: int, samples: int, opacity: bool = False):
    """Images (B, V, size, size, 3) of B NeRFs (and their opacities (B, V, size, size) with ``opacity``)."""
    dev = next(iter(params.values())).device
    batch = next(iter(params.values())).shape[0]
    chunk = NERF_CPU_CHUNK if torch.device(dev).type == "cpu" else None
    return render.render_images(nerf_field(params, spec), c2w, size, samples, batch, chunk=chunk, device=dev,
                                opacity=opacity)


def psnr(a: torch.Tensor, b: torch.Tensor, dims: tuple[int, ...] | None = None) -> torch.Tensor:
    """Peak signal-to-noise ratio in dB for images in [0, 1]; per leading index when ``dims`` given."""
    mse = (a - b).pow(2).mean(dim=dims) if dims else (a - b).pow(2).mean()
    return -10.0 * torch.log10(mse.clamp_min(1e-10))


def _warm_pool(objects, n: int, device, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Points (B, n, 3) in the box, half uniform and half near the surface, with target sigma and rgb."""
    B = len(objects)
    pts = torch.rand(B, 4 * n, 3, generator=gen) - 0.5
    sigma, _ = world.density_color(objects, pts)
    frac = sigma / sigma.amax(dim=1, keepdim=True).clamp_min(1e-6)
    near = (frac > 0.02) & (frac < 0.98)
    score = near.float() + torch.rand(B, 4 * n, generator=gen) * 0.5   # prefer edge points, keep some others
    idx = score.topk(n // 2, dim=1).indices
    edge = torch.gather(pts, 1, idx[..., None].expand(-1, -1, 3))
    edge = (edge + 0.01 * torch.randn(edge.shape, generator=gen)).clamp(-0.5, 0.5)
    pool = torch.cat([pts[:, : n - n // 2], edge], dim=1)
    s, c = world.density_color(objects, pool)
    return pool.to(device), s.to(device), c.to(device)


@torch.no_grad()
def _proximal_step(params: dict[str, torch.Tensor], template: dict[str, torch.Tensor] | None, rate: float) -> None:
    """theta <- theta - rate * (theta - template), in place (nothing when there is no template)."""
    if template is not None and rate:
        for k, v in params.items():
            v.sub_(rate * (v - template[k]))


def template_distance(params: dict[str, torch.Tensor], spec: nerf.NerfSpec, seed: int = 0) -> torch.Tensor:
    """Per NeRF, the root-mean-square distance of its parameters from the shared template (B,)."""
    tpl = nerf.init_params(spec, 1, "shared", seed)
    sq = sum((v.float().cpu() - tpl[k]).pow(2).flatten(1).sum(1) for k, v in params.items())
    n = sum(v[0].numel() for v in params.values())
    return (sq / n).sqrt()


@dataclass
class GroundTruth:
    """The views a fit needs of its objects: training views (B, V, H, W, 3) and held-out views."""
    train: torch.Tensor
    heldout: torch.Tensor


def ground_truth(objects, cfg: FitConfig, device: torch.device | str = "cpu") -> GroundTruth:
    """Render the training and held-out views of ``objects`` once (what :func:`fit` would render itself)."""
    return GroundTruth(render_ground_truth(objects, train_poses(cfg), cfg.image_size, cfg.samples, device),
                       render_ground_truth(objects, heldout_poses(cfg), cfg.image_size, cfg.samples, device))


def _check_views(gt: GroundTruth, n: int, cfg: FitConfig) -> None:
    for name, views, tensor in (("train", cfg.train_views, gt.train), ("heldout", cfg.heldout_views, gt.heldout)):
        want = (n, views, cfg.image_size, cfg.image_size, 3)
        if tuple(tensor.shape) != want:
            raise ValueError(f"ground_truth.{name} has shape {tuple(tensor.shape)}, expected {want} for {n} "
                             f"objects under this FitConfig; render it with fit.ground_truth(objects, cfg)")


def fit(objects, spec: nerf.NerfSpec, cfg: FitConfig, init: str = "shared", seed: int = 0,
        device: torch.device | str = "cpu", progress: bool = True, log_every: int = 25,
        views: GroundTruth | None = None) -> FitResult:
    """Fit one NeRF per object, all at once. Returns parameters, held-out PSNR and curves.

    ``views``: the objects' ground truth rendered beforehand (:func:`ground_truth`); rendered here when
    absent. The fit is the same either way; passing them keeps the rendering out of a timed loop."""
    if not objects:
        raise ValueError("no objects to fit")
    t0 = time.perf_counter()
    device = torch.device(device)
    gen = torch.Generator().manual_seed(seed)                       # CPU draws (indices, pools)
    gen_dev = torch.Generator(device=device).manual_seed(seed + 1)  # on-device draws (ray jitter)
    B = len(objects)
    if views is not None:
        _check_views(views, B, cfg)
    else:
        views = ground_truth(objects, cfg, device)
    gt = views.train.to(device)                                                                 # (B,V,H,W,3)
    o, d = cameras.rays(train_poses(cfg), cfg.image_size)                                      # (V,P,3)
    o, d, gt_flat = o.reshape(-1, 3).to(device), d.reshape(-1, 3).to(device), gt.reshape(B, -1, 3)
    params = {k: v.requires_grad_(True) for k, v in nerf.init_params(spec, B, init, seed, device).items()}
    template = nerf.init_params(spec, 1, "shared", seed, device) if cfg.proximal else None
    opt = torch.optim.Adam(params.values(), lr=cfg.lr)
    field_ = nerf_field(params, spec, bf16=cfg.bf16)
    hist: dict[str, list] = {"phase": [], "step": [], "loss": [], "psnr": []}
    delta = math.sqrt(3) / cfg.samples

    if cfg.warmup_steps:
        pool, t_sigma, t_rgb = _warm_pool(objects, max(cfg.warm_points * 4, 4096), device, gen)
        t_alpha = 1 - torch.exp(-t_sigma * delta)
        for step in tqdm(range(cfg.warmup_steps), desc="3D warm start", disable=not progress, mininterval=2):
            idx = torch.randint(0, pool.shape[1], (B, cfg.warm_points), generator=gen).to(device)
            pts = torch.gather(pool, 1, idx[..., None].expand(-1, -1, 3))
            a_t = torch.gather(t_alpha, 1, idx)
            c_t = torch.gather(t_rgb, 1, idx[..., None].expand(-1, -1, 3))
            sigma, rgb = field_(pts)
            alpha = 1 - torch.exp(-sigma * delta)
            w = (a_t > 0.05).float().unsqueeze(-1)
            loss = ((alpha - a_t).pow(2).mean(1) + (w * (rgb - c_t).pow(2)).mean((1, 2))).sum()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            _proximal_step(params, template, cfg.lr * cfg.proximal)
            if step % log_every == 0 or step == cfg.warmup_steps - 1:
                hist["phase"].append("warm"); hist["step"].append(step)
                hist["loss"].append(loss.item() / B); hist["psnr"].append(float("nan"))

    opt = torch.optim.Adam(params.values(), lr=cfg.lr)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, max(cfg.fit_steps, 1), eta_min=cfg.lr * 0.1)
    n_rays = o.shape[0]
    for step in tqdm(range(cfg.fit_steps), desc="photometric fit", disable=not progress, mininterval=2):
        idx = torch.randint(0, n_rays, (B, cfg.rays), generator=gen).to(device)
        color, _ = render.render_rays(field_, o[idx], d[idx], cfg.samples, perturb=True, generator=gen_dev)
        target = torch.gather(gt_flat, 1, idx[..., None].expand(-1, -1, 3))
        mse = (color - target).pow(2).mean((1, 2))
        opt.zero_grad(set_to_none=True)
        mse.sum().backward()
        opt.step()
        _proximal_step(params, template, sched.get_last_lr()[0] * cfg.proximal)
        sched.step()
        if step % log_every == 0 or step == cfg.fit_steps - 1:
            hist["phase"].append("photo"); hist["step"].append(cfg.warmup_steps + step)
            m = mse.detach().mean().item()
            hist["loss"].append(m); hist["psnr"].append(-10 * math.log10(max(m, 1e-10)))

    params = {k: v.detach() for k, v in params.items()}
    held_gt = views.heldout.to(device)
    held = render_nerfs(params, spec, heldout_poses(cfg), cfg.image_size, cfg.samples)
    return FitResult(params={k: v.cpu() for k, v in params.items()},
                     psnr_heldout=psnr(held, held_gt, dims=(1, 2, 3, 4)).cpu(),
                     history=hist, seconds=time.perf_counter() - t0)
