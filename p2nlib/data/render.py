"""Emission–absorption volume rendering on a white background, batched over objects and rays.

The same renderer makes ground-truth views of procedural objects and renders NeRFs: a *field*
is any function ``points (B, N, 3) -> (sigma (B, N), rgb (B, N, 3))``. Samples are placed only
inside the object box [-BOX, BOX]^3 (ray–box clipping), which is where all density lives.
"""
from __future__ import annotations

from typing import Callable

import torch

Field = Callable[[torch.Tensor], tuple[torch.Tensor, torch.Tensor]]
BOX = 0.5


def box_interval(origins: torch.Tensor, dirs: torch.Tensor, half: float = BOX) -> tuple[torch.Tensor, torch.Tensor]:
    """Entry and exit distances of rays through the axis-aligned box; empty rays get near == far."""
    inv = 1.0 / torch.where(dirs.abs() < 1e-9, torch.full_like(dirs, 1e-9), dirs)
    t0, t1 = (-half - origins) * inv, (half - origins) * inv
    near = torch.minimum(t0, t1).amax(-1).clamp_min(0.0)
    far = torch.maximum(t0, t1).amin(-1)
    far = torch.maximum(far, near)
    return near, far


def composite(sigma: torch.Tensor, rgb: torch.Tensor, delta: torch.Tensor,
              background: float = 1.0) -> tuple[torch.Tensor, torch.Tensor]:
    """sigma (..., S), rgb (..., S, 3), delta (..., S) -> pixel rgb (..., 3), opacity (...)."""
    alpha = 1.0 - torch.exp(-sigma * delta)
    trans = torch.cumprod(torch.cat([torch.ones_like(alpha[..., :1]), 1.0 - alpha[..., :-1] + 1e-10], -1), -1)
    weights = alpha * trans
    opacity = weights.sum(-1)
    color = (weights.unsqueeze(-1) * rgb).sum(-2) + background * (1.0 - opacity).unsqueeze(-1)
    return color, opacity


def render_rays(field: Field, origins: torch.Tensor, dirs: torch.Tensor, samples: int,
                perturb: bool = False, generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Render rays (B, R, 3) through ``field`` with ``samples`` stratified samples in the box."""
    if samples <= 0:
        raise ValueError(f"samples per ray must be positive, got {samples}")
    near, far = box_interval(origins, dirs)
    u = torch.arange(samples, device=origins.device, dtype=origins.dtype) + 0.5
    if perturb:
        u = u + torch.rand(*near.shape, samples, device=origins.device, generator=generator) - 0.5
    step = (far - near) / samples
    t = near.unsqueeze(-1) + step.unsqueeze(-1) * u
    pts = origins.unsqueeze(-2) + dirs.unsqueeze(-2) * t.unsqueeze(-1)          # (B, R, S, 3)
    B, R, S = pts.shape[:3]
    sigma, rgb = field(pts.reshape(B, R * S, 3))
    return composite(sigma.reshape(B, R, S), rgb.reshape(B, R, S, 3), step.unsqueeze(-1).expand(B, R, S))


@torch.no_grad()
def render_images(field: Field, c2w: torch.Tensor, size: int, samples: int, batch: int,
                  chunk: int | None = None, device: torch.device | str = "cpu", opacity: bool = False):
    """Render ``batch`` objects from the same poses ``c2w`` (V, 4, 4) -> images (B, V, size, size, 3), and
    with ``opacity=True`` also their opacities (B, V, size, size).

    ``chunk`` bounds the sample points evaluated at once (memory; default 2^18 on CPU, 2^23 on GPU)."""
    from p2nlib.data.cameras import rays

    o, d = rays(c2w.cpu(), size)
    if chunk is None:
        chunk = 1 << (23 if torch.device(device).type == "cuda" else 18)
    V, P = o.shape[:2]
    o, d = o.reshape(1, V * P, 3).to(device), d.reshape(1, V * P, 3).to(device)
    out, alpha = [], []
    per = max(1, chunk // (samples * batch))
    for s in range(0, V * P, per):
        oo, dd = o[:, s:s + per], d[:, s:s + per]
        color, acc = render_rays(field, oo.expand(batch, -1, -1), dd.expand(batch, -1, -1), samples)
        out.append(color)
        alpha.append(acc)
    images = torch.cat(out, 1).reshape(batch, V, size, size, 3)
    return (images, torch.cat(alpha, 1).reshape(batch, V, size, size)) if opacity else images
