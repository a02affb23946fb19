"""Orbit cameras looking at the origin, and their rays. y is up; objects fit [-0.5, 0.5]^3."""
from __future__ import annotations

import math

import torch


def look_at(eye: torch.Tensor) -> torch.Tensor:
    """Camera-to-world matrices (n, 4, 4) for eyes (n, 3) looking at the origin (OpenGL: -z forward)."""
    forward = -eye / eye.norm(dim=-1, keepdim=True)
    up = torch.tensor([0.0, 1.0, 0.0]).expand_as(forward)
    right = torch.linalg.cross(forward, up)
    right = right / right.norm(dim=-1, keepdim=True).clamp_min(1e-8)
    true_up = torch.linalg.cross(right, forward)
    c2w = torch.zeros(eye.shape[0], 4, 4)
    c2w[:, :3, 0], c2w[:, :3, 1], c2w[:, :3, 2], c2w[:, :3, 3] = right, true_up, -forward, eye
    c2w[:, 3, 3] = 1.0
    return c2w


def orbit(azimuth_deg, elevation_deg, radius: float = 2.0) -> torch.Tensor:
    """Poses (n, 4, 4) on a sphere of ``radius`` at the given azimuths/elevations (degrees)."""
    az = torch.as_tensor(azimuth_deg, dtype=torch.float32).reshape(-1)
    el = torch.as_tensor(elevation_deg, dtype=torch.float32).reshape(-1).expand_as(az)
    az, el = torch.deg2rad(az), torch.deg2rad(el)
    eye = torch.stack([radius * torch.cos(el) * torch.sin(az), radius * torch.sin(el),
                       radius * torch.cos(el) * torch.cos(az)], dim=-1)
    return look_at(eye)


def view_set(n: int, seed: int, elevation=(10.0, 40.0), radius: float = 2.0) -> torch.Tensor:
    """``n`` views spread in azimuth (golden-angle spiral with jitter) and elevation, seeded."""
    if n <= 0:
        raise ValueError(f"number of views must be positive, got {n}")
    gen = torch.Generator().manual_seed(seed)
    golden = 180.0 * (3 - math.sqrt(5))
    az = (torch.arange(n) * golden + torch.rand(n, generator=gen) * 20 + seed * 7.3) % 360
    el = elevation[0] + (elevation[1] - elevation[0]) * torch.rand(n, generator=gen)
    return orbit(az, el, radius)


def turntable(n: int, elevation: float = 25.0, radius: float = 2.0) -> torch.Tensor:
    return orbit(torch.arange(n) * 360.0 / n, elevation, radius)


def rays(c2w: torch.Tensor, size: int, fov_deg: float = 40.0) -> tuple[torch.Tensor, torch.Tensor]:
    """Pixel-centre rays for square images: origins, unit directions, each (n, size*size, 3)."""
    focal = 0.5 * size / math.tan(0.5 * math.radians(fov_deg))
    j, i = torch.meshgrid(torch.arange(size) + 0.5, torch.arange(size) + 0.5, indexing="ij")
    dirs = torch.stack([(i - size / 2) / focal, -(j - size / 2) / focal, -torch.ones_like(i)], -1).reshape(-1, 3)
    world = dirs @ c2w[:, :3, :3].transpose(1, 2)
    world = world / world.norm(dim=-1, keepdim=True)
    return c2w[:, None, :3, 3].expand_as(world).contiguous(), world
