"""Rendered views of the procedural world for CLIP: the training and held-out object sets and their
views, rendered once and cached as safetensors in ``artifacts/<profile>/clip/``.

Choices made here (the paper does not state them):

* Views for CLIP are rendered with :data:`RENDER_SAMPLES` samples per ray (x2 supersampling in
  :func:`p2nlib.data.fit.render_ground_truth`): enough for 32–128 px inputs, and rendering counts
  towards the training time budget.
* Training views use pose seeds ``11 + 100 g`` (object group ``g``), distinct from the NeRF
  fitting seeds 1 and 2; held-out evaluation views use seed 31 and the embedding cache seed 21.
* The object sets themselves (which indices, which seed) are in :mod:`p2nlib.data.splits`.
"""
from __future__ import annotations

import json
import math
import time
from pathlib import Path
from typing import Sequence

import torch

from p2nlib.core import paths
from p2nlib.core.artifacts import save_tensors, sha256, write_json_atomic
from p2nlib.core.profiles import Profile, as_profile
from p2nlib.data import cameras, splits, world

#: samples per ray for CLIP input renders (the renderer supersamples ground truth 2x)
RENDER_SAMPLES = 20
#: objects rendered together (one pose set per group)
RENDER_GROUP = 16
#: pose seeds: training group g uses TRAIN_VIEW_SEED + 100 g; evaluation and cache views fixed
TRAIN_VIEW_SEED, EVAL_VIEW_SEED, CACHE_VIEW_SEED = 11, 31, 21
FORMAT = 1


def clip_dir(profile: Profile) -> Path:
    """``artifacts/<profile>/clip``: CLIP checkpoints, rendered views and the embedding cache."""
    return paths.stage_dir(profile.name, "clip")


def training_objects(profile: Profile | str) -> list[world.WorldObject]:
    """The ``clip_train`` object set (:mod:`p2nlib.data.splits`), index-major: each group of 16 holds one
    object per category (in-distribution categories include the NeRF-dataset objects)."""
    p = as_profile(profile)
    s = splits.OBJECT_SETS["clip_train"]
    ranges = {c: s.indices(p, c) for c in s.categories}
    n = max(len(r) for r in ranges.values())
    return [world.make_object(c, i, splits.WORLD_SEED) for i in range(n) for c in s.categories if i in ranges[c]]


def eval_objects(profile: Profile | str) -> list[world.WorldObject]:
    """The ``clip_eval`` object set: ``clip_eval_objects`` per category, category-major."""
    return splits.objects("clip_eval", as_profile(profile))


def n_eval_views(profile: Profile | str) -> int:
    """Views per held-out object: half the training views, at least 2 (image–image pairs need 2)."""
    return max(2, as_profile(profile).clip_views // 2)


def render_views(objects: Sequence[world.WorldObject], n_views: int, seeds: int | Sequence[int], size: int,
                 cache: Path | None = None, samples: int = RENDER_SAMPLES, progress: bool = True,
                 device: torch.device | str = "cpu", desc: str = "render") -> torch.Tensor:
    """Views (N, V, size, size, 3) uint8 of procedural objects, cached as safetensors.

    Objects are rendered in groups of :data:`RENDER_GROUP`; group ``g`` uses poses
    ``cameras.view_set(n_views, seeds[g])`` (an int: the same poses for every object). With
    ``cache``, a file whose recorded key matches is reused and otherwise (re)written.
    """
    from tqdm import tqdm

    from p2nlib.data import fit

    groups = [list(objects[s:s + RENDER_GROUP]) for s in range(0, len(objects), RENDER_GROUP)]
    seeds = [seeds] * len(groups) if isinstance(seeds, int) else list(seeds)
    if len(seeds) != len(groups):
        raise ValueError(f"need one pose seed per group of {RENDER_GROUP} objects: {len(groups)}, got {len(seeds)}")
    key = {"format": FORMAT, "objects": [o.object_id for o in objects], "views": n_views, "seeds": seeds,
           "size": size, "samples": samples, "group": RENDER_GROUP}
    if cache is not None:
        meta_path = cache.with_suffix(".json")
        if cache.exists() and meta_path.exists():
            try:
                meta = json.loads(meta_path.read_text())
                if meta.get("key") == key and meta.get("sha256") == sha256(cache):
                    from safetensors.torch import load_file

                    return load_file(str(cache))["images"]
            except (OSError, json.JSONDecodeError, KeyError):
                pass
    t0 = time.perf_counter()
    out = []
    for g, group in enumerate(tqdm(groups, desc=desc, disable=not progress, leave=False, mininterval=5)):
        poses = cameras.view_set(n_views, seeds[g])
        img = fit.render_ground_truth(group, poses, size, samples, device=device).cpu()
        out.append((img.clamp(0, 1) * 255).round().to(torch.uint8))
    images = torch.cat(out) if out else torch.zeros(0, n_views, size, size, 3, dtype=torch.uint8)
    if cache is not None:
        sha = save_tensors(cache, {"images": images})
        write_json_atomic(cache.with_suffix(".json"), {"key": key, "sha256": sha,
                                                  "seconds": round(time.perf_counter() - t0, 2)})
    return images


def training_views(profile: Profile | str, progress: bool = True,
                   device: torch.device | str = "cpu") -> tuple[list[world.WorldObject], torch.Tensor]:
    """(objects, uint8 views (N, clip_views, S, S, 3)) of the CLIP training set, cached."""
    p = as_profile(profile)
    objs = training_objects(p)
    n_groups = math.ceil(len(objs) / RENDER_GROUP)
    seeds = [TRAIN_VIEW_SEED + 100 * g for g in range(n_groups)]
    imgs = render_views(objs, p.clip_views, seeds, p.clip_image_size, cache=clip_dir(p) / "train_views.safetensors",
                        progress=progress, device=device, desc="render CLIP training views")
    return objs, imgs


def eval_views(profile: Profile | str, progress: bool = True,
               device: torch.device | str = "cpu") -> tuple[list[world.WorldObject], torch.Tensor]:
    """(held-out objects, uint8 views (N, V, S, S, 3)), poses ``view_set(V, 31)``, cached."""
    p = as_profile(profile)
    objs = eval_objects(p)
    imgs = render_views(objs, n_eval_views(p), EVAL_VIEW_SEED, p.clip_image_size,
                        cache=clip_dir(p) / "eval_views.safetensors", progress=progress, device=device,
                        desc="render held-out views")
    return objs, imgs
