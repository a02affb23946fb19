"""The profile table: every size the book uses, as data.

``tiny`` runs every code path in CI in minutes, ``small`` is the default main job on a 2-core
CPU with every figure meaningful, ``paper`` is the paper's scale on one GPU. Code reads sizes
from a :class:`Profile`; there are no ``if profile == ...`` branches elsewhere.
"""
from __future__ import annotations

import os
from dataclasses import asdict, dataclass, fields


@dataclass(frozen=True)
class Profile:
    name: str
    description: str
    # NeRF-parameter dataset (paper §3.1)
    objects_per_category: int      # in-distribution objects fitted per category
    train_views: int               # ground-truth views per object used for fitting
    heldout_views: int             # extra views per object kept for evaluation
    image_size: int                # ground-truth / fitting resolution (pixels, square)
    samples_per_ray: int           # stratified samples inside the object box
    nerf_width: int                # hidden width W of the 7-layer MLP
    nerf_freqs: int                # positional-encoding frequencies for xyz
    warmup_steps: int              # 3D warm start (density/colour regression), stated in 01_dataset
    fit_steps: int                 # photometric-loss steps (paper: 15,000 iterations)
    rays_per_step: int             # rays per object per photometric step
    fit_batch: int                 # objects fitted at once (batched NeRFs)
    fit_lr: float
    # ablation (paper §5.1): same-init vs random-init
    ablation_objects: int          # objects per category for the chair/airplane topology study

    def to_dict(self) -> dict:
        return asdict(self)


PROFILES: dict[str, Profile] = {
    "tiny": Profile(
        name="tiny", description="CI smoke run: every code path, minutes on a 2-core CPU",
        objects_per_category=3, train_views=6, heldout_views=2, image_size=16, samples_per_ray=16,
        nerf_width=32, nerf_freqs=4, warmup_steps=30, fit_steps=30, rays_per_step=64,
        fit_batch=8, fit_lr=5e-3, ablation_objects=3,
    ),
    "small": Profile(
        name="small", description="default main job: all figures meaningful on a 2-core CPU",
        objects_per_category=30, train_views=24, heldout_views=4, image_size=32,
        samples_per_ray=32, nerf_width=48, nerf_freqs=5, warmup_steps=200, fit_steps=250,
        rays_per_step=96, fit_batch=48, fit_lr=3e-3, ablation_objects=20,
    ),
    "paper": Profile(
        name="paper", description="the paper's scale (100 views, 15k iterations) on one GPU",
        objects_per_category=100, train_views=100, heldout_views=10, image_size=128,
        samples_per_ray=96, nerf_width=128, nerf_freqs=6, warmup_steps=1000, fit_steps=15000,
        rays_per_step=1024, fit_batch=100, fit_lr=1e-3, ablation_objects=50,
    ),
}


def get_profile(name: str | None = None) -> Profile:
    """Return the named profile (default: ``$P2N_PROFILE`` or ``small``).

    An unknown name raises ``ValueError`` that lists the valid names.
    """
    name = name or os.environ.get("P2N_PROFILE", "small")
    if name not in PROFILES:
        raise ValueError(
            f"unknown profile {name!r}; choose one of {', '.join(PROFILES)} "
            "(e.g. `make book PROFILE=small` or `-p profile small` with papermill)"
        )
    return PROFILES[name]


def profile_table() -> list[dict]:
    """All profiles as rows (for the book's profile table)."""
    return [p.to_dict() for p in PROFILES.values()]


FIELD_NAMES = tuple(f.name for f in fields(Profile))
