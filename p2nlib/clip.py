"""CLIP encoders (paper §3.2, §4.2, supplement II) and the embedding cache.

The paper embeds prompts and rendered views with CLIP ViT-B/32 (openai weights). This module
gives one interface, :class:`Encoder`, over two encoders:

* ``"small"``: a small CLIP trained in the book on the procedural world (all 16 categories, the
  objects' captions). It is built from ``open_clip``'s own :class:`open_clip.CLIP` class with a
  custom config (:func:`small_config`) and uses open_clip's tokenizer; it is trained with
  ``open_clip.loss.ClipLoss`` (:func:`train_small_clip`). This is the default offline stand-in.
* ``"ViT-B-32"``: open_clip's ViT-B-32 with the ``openai`` weights, read from the local Hugging
  Face cache or from ``$P2N_CLIP_WEIGHTS``; the network is never touched.

:func:`get_or_train` is what notebooks call: it loads what exists and trains only what is
missing, so a rerun is cheap. Checkpoints, rendered training views and the embedding cache live
in ``artifacts/<profile>/clip/`` (safetensors + a JSON config next to each file).

Choices made here (the paper does not state them):

* Views for CLIP are rendered with :data:`RENDER_SAMPLES` samples per ray (x2 supersampling in
  :func:`p2nlib.fit.render_ground_truth`): enough for 32–128 px inputs, and rendering counts
  towards the training time budget.
* Training views use pose seeds ``11 + 100 g`` (object group ``g``), distinct from the NeRF
  fitting seeds 1 and 2; held-out evaluation views use seed 31 and the embedding cache seed 21.
* Held-out evaluation objects are indices ``10_000 ..`` of every category; training objects are
  indices ``0 ..`` and include the NeRF-dataset objects (real CLIP has seen ShapeNet-like things).
* Augmentation: random resized crop (scale 0.75–1), horizontal flip, small brightness jitter;
  never hue (colour is semantic: captions say "a red chair").
* The small CLIP's image tower is open_clip's ``ModifiedResNet`` (a CNN), not a ViT: on ~3,000
  training images it generalised clearly better at the same cost (see :func:`small_config`).
* No caption appears twice in a training batch (:func:`_pick_captions`).
"""
from __future__ import annotations

import json
import math
import os
import random
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from . import cameras, paths, world
from .profiles import Profile, get_profile

__all__ = [
    "EncoderNotFoundError", "EncoderWeightsError", "CheckpointMismatchError", "Encoder",
    "small_config", "train_config", "build_small_clip", "load_encoder", "load_small_clip", "load_vit_b32",
    "get_or_train", "train_small_clip", "training_objects", "eval_objects", "training_views", "eval_views",
    "render_views", "EmbeddingCache", "embedding_cache", "nearest_scene", "zero_shot",
    "retrieval", "modality_gap", "clip_dir", "checkpoint_paths", "find_vit_b32_weights", "n_eval_views",
]

#: samples per ray for CLIP input renders (the renderer supersamples ground truth 2x)
RENDER_SAMPLES = 20
#: objects rendered together (one pose set per group)
RENDER_GROUP = 16
#: pose seeds: training group g uses TRAIN_VIEW_SEED + 100 g; evaluation and cache views fixed
TRAIN_VIEW_SEED, EVAL_VIEW_SEED, CACHE_VIEW_SEED = 11, 31, 21
#: first object index of the held-out evaluation objects (training objects start at 0)
EVAL_START = 10_000
#: world seed of every object (the NeRF dataset uses seed 0 too)
WORLD_SEED = 0
#: the small model's text context: every caption of the world is at most 16 tokens with its
#: start/end tokens; longer prompts are truncated
SMALL_CONTEXT = 20
#: image tower of the small CLIP ("resnet" or "vit"; see :func:`small_config`)
SMALL_VISION = "resnet"
#: probability that a training image is paired with the plain category caption ("a chair");
#: 0.5 gave a higher zero-shot accuracy than 0.25 in a one-run comparison (0.83 vs 0.77, ViT tower)
CATEGORY_CAPTION_P = 0.5
#: random-resized-crop scale range of the training augmentation
AUG_CROP_SCALE = (0.75, 1.0)
#: ViT-B-32 openai weights on the Hugging Face hub (open_clip's pretrained table)
VIT_REPO = "timm/vit_base_patch32_clip_224.openai"
VIT_FILES = ("open_clip_model.safetensors", "open_clip_pytorch_model.bin")
FORMAT = 1


class EncoderNotFoundError(RuntimeError):
    """An encoder checkpoint is missing; the message names the path and how to create it."""


class EncoderWeightsError(EncoderNotFoundError):
    """The ViT-B-32 openai weights are not on this machine; the message says where to put them."""


class CheckpointMismatchError(RuntimeError):
    """A checkpoint was made for another profile or config; the message says how to fix it."""


def clip_dir(profile: Profile) -> Path:
    path = paths.artifacts_dir(profile.name) / "clip"
    path.mkdir(parents=True, exist_ok=True)
    return path


def _profile(profile: Profile | str | None) -> Profile:
    return profile if isinstance(profile, Profile) else get_profile(profile)


_sha256, _atomic_json = paths.sha256, paths.write_json_atomic


def _save_tensors(path: Path, tensors: dict[str, torch.Tensor]) -> str:
    from safetensors.torch import save_file

    tmp = path.with_name(path.name + ".tmp")
    save_file({k: v.detach().cpu().contiguous() for k, v in tensors.items()}, str(tmp))
    os.replace(tmp, path)
    return _sha256(path)


# ----------------------------------------------------------------------------------------------
# The encoder interface
# ----------------------------------------------------------------------------------------------


@dataclass
class Encoder:
    """A CLIP model with its tokenizer and input preprocessing.

    ``encode_images`` takes a float tensor/array (..., H, W, 3) in [0, 1], a uint8 array/tensor,
    or a list of PIL images; ``encode_text`` a list of strings. Both return L2-normalised float
    embeddings on the CPU (leading dims kept for tensors, (N, D) for lists).
    """

    model: Any
    tokenizer: Any
    name: str
    embed_dim: int
    image_size: int            # the model's input size (images are resized to it)
    render_size: int           # the size views are rendered at for this encoder
    device: torch.device
    fingerprint: str           # changes when the weights change (embedding caches key on it)
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    context_length: int
    batch_size: int = 256
    info: dict = field(default_factory=dict)

    def tokenize(self, texts: Sequence[str]) -> torch.Tensor:
        return self.tokenizer(list(texts), context_length=self.context_length)

    def preprocess(self, images) -> torch.Tensor:
        """Images in any accepted form -> normalised float (N, 3, S, S) on the CPU."""
        x = _as_float_images(images)
        x = x.permute(0, 3, 1, 2)
        if x.shape[-1] != self.image_size or x.shape[-2] != self.image_size:
            x = F.interpolate(x, size=(self.image_size, self.image_size), mode="bicubic",
                              antialias=True, align_corners=False).clamp(0, 1)
        mean = torch.tensor(self.mean).view(1, 3, 1, 1)
        std = torch.tensor(self.std).view(1, 3, 1, 1)
        return (x - mean) / std

    @torch.no_grad()
    def encode_images(self, images) -> torch.Tensor:
        lead = None
        if isinstance(images, (torch.Tensor, np.ndarray)) and images.ndim > 4:
            lead = tuple(images.shape[:-3])
            images = images.reshape(-1, *images.shape[-3:])
        self.model.eval()
        out = []
        n = len(images)
        for s in range(0, n, self.batch_size):
            x = self.preprocess(images[s:s + self.batch_size]).to(self.device)
            out.append(self.model.encode_image(x, normalize=True).float().cpu())
        emb = torch.cat(out) if out else torch.zeros(0, self.embed_dim)
        return emb.reshape(*lead, self.embed_dim) if lead else emb

    @torch.no_grad()
    def encode_text(self, texts: Sequence[str]) -> torch.Tensor:
        if isinstance(texts, str):
            texts = [texts]
        self.model.eval()
        tokens = self.tokenize(texts)
        out = [self.model.encode_text(tokens[s:s + self.batch_size].to(self.device), normalize=True).float().cpu()
               for s in range(0, len(tokens), self.batch_size)]
        return torch.cat(out) if out else torch.zeros(0, self.embed_dim)


def _as_float_images(images) -> torch.Tensor:
    """(N, H, W, 3) float in [0, 1] from a float/uint8 tensor or array, or a list of PIL images."""
    if isinstance(images, (list, tuple)):
        images = np.stack([np.asarray(im.convert("RGB") if hasattr(im, "convert") else im) for im in images])
    x = torch.as_tensor(np.asarray(images)) if isinstance(images, np.ndarray) else images
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"images must be a tensor, an array or a list of PIL images, got {type(images)}")
    x = x.detach().cpu()
    if x.ndim != 4 or x.shape[-1] != 3:
        raise ValueError(f"images must have shape (N, H, W, 3), got {tuple(x.shape)}")
    if x.dtype == torch.uint8:
        return x.float() / 255.0
    return x.float().clamp(0, 1)


def _tokenizer():
    import open_clip

    return open_clip.get_tokenizer("ViT-B-32")


# ----------------------------------------------------------------------------------------------
# The small CLIP
# ----------------------------------------------------------------------------------------------


def small_config(profile: Profile | str, vision: str | None = None) -> dict:
    """open_clip model config of the small CLIP, derived from the profile's embedding size.

    Text tower (both variants): a transformer of width = embedding size clamped to [32, 256],
    4 layers (2 below embedding 64), 32-wide heads, context :data:`SMALL_CONTEXT`.

    Image tower, ``vision`` (default :data:`SMALL_VISION`):

    * ``"resnet"``: open_clip's ``ModifiedResNet`` (the tower of OpenAI's RN50 CLIP: a 3-conv
      stem, 4 bottleneck stages, attention pooling), stage width 24 with blocks [1, 2, 2, 1] for
      embeddings 64..255 (the ``small`` profile), width 8 with [1, 1, 1, 1] below 64, width 48
      with [2, 2, 2, 2] from 256. Needs images of at least 32 px.
    * ``"vit"``: a ViT of the text tower's width and depth, patch = image size / 8 (64 tokens).

    Why the ResNet by default (measured on the ``small`` profile, one run each, on a GPU):
    zero-shot top-1 on held-out objects 0.88 with the ResNet vs 0.77 with the ViT (width 128 x 4,
    patch 6) after the same 1000 steps, at the same CPU cost per step (about 0.37 s at batch 64 on
    2 threads). With about 3,000 training images, a convolutional tower generalises better.
    """
    p = _profile(profile)
    vision = vision or SMALL_VISION
    d, size = int(p.clip_embed_dim), int(p.clip_image_size)
    width = int(min(max(d, 32), 256))
    layers = 2 if d < 64 else 4
    if vision == "resnet":
        if size < 32:
            raise ValueError(f"profile {p.name!r}: the ResNet image tower needs clip_image_size >= 32, got {size}")
        rn_width, blocks = (8, [1, 1, 1, 1]) if d < 64 else (24, [1, 2, 2, 1]) if d < 256 else (48, [2, 2, 2, 2])
        vision_cfg = {"image_size": size, "layers": blocks, "width": rn_width, "head_width": 32}
    elif vision == "vit":
        vision_cfg = {"image_size": size, "layers": layers, "width": width, "patch_size": max(2, size // 8),
                      "head_width": 32}
    else:
        raise ValueError(f"unknown small-CLIP image tower {vision!r}; use 'resnet' or 'vit'")
    return {
        "embed_dim": d,
        "vision_cfg": vision_cfg,
        "text_cfg": {"context_length": SMALL_CONTEXT, "vocab_size": 49408, "width": width,
                     "heads": max(1, width // 32), "layers": layers},
    }


def train_config(profile: Profile | str) -> dict:
    """Everything about the training data and schedule that a checkpoint must match."""
    p = _profile(profile)
    return {"objects_per_category": p.clip_objects_per_category,
            "dataset_objects_per_category": p.objects_per_category,
            "views": p.clip_views, "image_size": p.clip_image_size, "render_samples": RENDER_SAMPLES,
            "view_seed": TRAIN_VIEW_SEED, "steps": p.clip_steps, "batch": p.clip_batch, "lr": p.clip_lr,
            "category_caption_p": CATEGORY_CAPTION_P, "crop_scale": list(AUG_CROP_SCALE),
            "unique_captions": True, "world_seed": WORLD_SEED}


def build_small_clip(profile: Profile | str, device: torch.device | str = "cpu", seed: int = 0) -> Encoder:
    """An untrained small CLIP (open_clip's CLIP class, :func:`small_config`), seeded."""
    import open_clip

    p = _profile(profile)
    cfg = small_config(p)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = open_clip.CLIP(embed_dim=cfg["embed_dim"], vision_cfg=cfg["vision_cfg"], text_cfg=cfg["text_cfg"])
    return _small_encoder(model, p, torch.device(device), fingerprint="untrained")


def _small_encoder(model, p: Profile, device: torch.device, fingerprint: str, info: dict | None = None) -> Encoder:
    from open_clip import OPENAI_DATASET_MEAN, OPENAI_DATASET_STD

    cfg = small_config(p)
    v = cfg["vision_cfg"]
    tower = (f"rn{v['width']}-{'.'.join(map(str, v['layers']))}" if isinstance(v["layers"], list)
             else f"vit{v['width']}x{v['layers']}")
    return Encoder(model=model.to(device).eval(), tokenizer=_tokenizer(),
                   name=f"small-clip-{tower}-e{cfg['embed_dim']}", embed_dim=cfg["embed_dim"],
                   image_size=cfg["vision_cfg"]["image_size"], render_size=p.clip_image_size, device=device,
                   fingerprint=fingerprint, mean=tuple(OPENAI_DATASET_MEAN), std=tuple(OPENAI_DATASET_STD),
                   context_length=SMALL_CONTEXT, info=info or {})


def checkpoint_paths(profile: Profile | str) -> tuple[Path, Path]:
    """(weights .safetensors, config .json) of the small CLIP of a profile."""
    d = clip_dir(_profile(profile))
    return d / "small_clip.safetensors", d / "small_clip.json"


def load_small_clip(profile: Profile | str, device: torch.device | str = "cpu") -> Encoder:
    """Load the trained small CLIP of a profile; missing or mismatching checkpoints are clear errors."""
    from safetensors.torch import load_file

    p = _profile(profile)
    weights, config = checkpoint_paths(p)
    if not weights.exists() or not config.exists():
        raise EncoderNotFoundError(
            f"no small CLIP checkpoint at {weights} (profile {p.name!r}): run notebooks/02_clip "
            f"(make book ONLY=02), or call p2nlib.clip.get_or_train(profile) to train it.")
    meta = json.loads(config.read_text())
    want_model, want_train = small_config(p), train_config(p)
    if meta.get("profile") != p.name or meta.get("model_cfg") != want_model or meta.get("train_cfg") != want_train:
        raise CheckpointMismatchError(
            f"{weights} was trained for profile {meta.get('profile')!r} with another config than profile "
            f"{p.name!r} needs (model {meta.get('model_cfg')} vs {want_model}; training "
            f"{meta.get('train_cfg')} vs {want_train}). Delete {weights.parent} and rerun notebooks/02_clip "
            f"(make book ONLY=02).")
    encoder = build_small_clip(p, device)
    state = load_file(str(weights))
    encoder.model.load_state_dict(state, strict=True)
    encoder.model.to(encoder.device).eval()
    encoder.fingerprint = meta.get("weights_sha256") or _sha256(weights)
    encoder.info = {"source": "checkpoint", "checkpoint": str(weights), **{k: meta.get(k) for k in
                                                                          ("history", "seconds", "created")}}
    return encoder


# ----------------------------------------------------------------------------------------------
# The real ViT-B-32
# ----------------------------------------------------------------------------------------------


def _hf_cache_dir() -> Path:
    if os.environ.get("HF_HUB_CACHE"):
        return Path(os.environ["HF_HUB_CACHE"])
    home = os.environ.get("HF_HOME") or os.path.join(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache"),
                                                     "huggingface")
    return Path(home) / "hub"


def find_vit_b32_weights() -> Path:
    """The local ViT-B-32 openai weights file: ``$P2N_CLIP_WEIGHTS`` or the Hugging Face cache."""
    env = os.environ.get("P2N_CLIP_WEIGHTS")
    cache = _hf_cache_dir()
    where = (f"put open_clip's file in the Hugging Face cache ({cache}/models--"
             f"{VIT_REPO.replace('/', '--')}/snapshots/<rev>/{VIT_FILES[1]}, e.g. on a machine with internet: "
             f"`huggingface-cli download {VIT_REPO} {VIT_FILES[1]}` and copy the cache), or set "
             f"P2N_CLIP_WEIGHTS=/path/to/{VIT_FILES[1]} (or .safetensors). Without them the book trains "
             f"its small CLIP stand-in: run notebooks/02_clip (make book ONLY=02).")
    if env:
        path = Path(env).expanduser()
        if not path.is_file():
            raise EncoderWeightsError(f"P2N_CLIP_WEIGHTS={env} does not exist. The ViT-B-32 openai weights are "
                                      f"needed for the paper's CLIP: {where}")
        return path
    if cache.is_dir():
        from huggingface_hub import try_to_load_from_cache

        for name in VIT_FILES:
            found = try_to_load_from_cache(VIT_REPO, name, cache_dir=str(cache))
            if isinstance(found, str) and os.path.isfile(found):
                return Path(found)
    raise EncoderWeightsError(f"the ViT-B-32 openai weights are not on this machine (looked in {cache} for "
                              f"{VIT_REPO}; P2N_CLIP_WEIGHTS is unset). To use them, {where}")


def load_vit_b32(device: torch.device | str = "cpu") -> Encoder:
    """open_clip ViT-B-32 with the local openai weights (never the network)."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")  # before open_clip touches huggingface_hub: no retries
    path = find_vit_b32_weights()
    import open_clip
    from open_clip import OPENAI_DATASET_MEAN, OPENAI_DATASET_STD

    device = torch.device(device)
    model, _, preprocess = open_clip.create_model_and_transforms(
        "ViT-B-32", pretrained=str(path), force_quick_gelu=True, device=device)
    cfg = open_clip.get_model_config("ViT-B-32")
    return Encoder(model=model.eval(), tokenizer=_tokenizer(), name="ViT-B-32/openai", embed_dim=cfg["embed_dim"],
                   image_size=cfg["vision_cfg"]["image_size"], render_size=0, device=device,
                   fingerprint=f"ViT-B-32/openai/{path.stat().st_size}", mean=tuple(OPENAI_DATASET_MEAN),
                   std=tuple(OPENAI_DATASET_STD), context_length=cfg["text_cfg"]["context_length"],
                   batch_size=64, info={"source": "pretrained", "weights": str(path), "preprocess": str(preprocess)})


def load_encoder(profile: Profile | str | None = None, device: torch.device | str = "cpu") -> Encoder:
    """The profile's encoder, loaded (never trained here; see :func:`get_or_train`).

    ``clip_model == "ViT-B-32"``: the real weights, else the small stand-in if 02_clip trained one,
    else :class:`EncoderWeightsError`. ``"small"``: the checkpoint, else :class:`EncoderNotFoundError`.
    """
    p = _profile(profile)
    if p.clip_model == "ViT-B-32":
        try:
            enc = load_vit_b32(device)
        except EncoderWeightsError as err:
            if checkpoint_paths(p)[0].exists():
                print(f"NOTICE: ViT-B-32 weights missing ({err}); using the small CLIP stand-in trained by 02_clip.")
                enc = load_small_clip(p, device)
            else:
                raise
        enc.render_size = p.clip_image_size
        return enc
    if p.clip_model == "small":
        return load_small_clip(p, device)
    raise ValueError(f"profile {p.name!r}: unknown clip_model {p.clip_model!r} (use 'small' or 'ViT-B-32')")


def get_or_train(profile: Profile | str | None = None, device: torch.device | str = "cpu",
                 progress: bool = True) -> tuple[Encoder, dict]:
    """Load the profile's encoder, training the small CLIP when it is missing or out of date.

    Returns ``(encoder, info)``; ``info["source"]`` is ``pretrained``, ``checkpoint`` or ``trained``.
    """
    p = _profile(profile)
    notice = ""
    if p.clip_model == "ViT-B-32":
        try:
            enc = load_vit_b32(device)
            enc.render_size = p.clip_image_size
            return enc, {"source": "pretrained", "notice": "", **enc.info}
        except EncoderWeightsError as err:
            notice = (f"!!! NOTICE: the ViT-B-32 openai weights are not on this machine, so this run uses the "
                      f"book's small CLIP trained at embedding size {p.clip_embed_dim} instead. {err}")
            print(notice)
    try:
        enc = load_small_clip(p, device)
        return enc, {"notice": notice, **enc.info}
    except CheckpointMismatchError as err:
        print(f"retraining: {err}")
    except EncoderNotFoundError:
        pass
    enc, info = train_small_clip(p, device, progress=progress)
    return enc, {"notice": notice, **info}


# ----------------------------------------------------------------------------------------------
# Data: rendered views of the procedural world (cached)
# ----------------------------------------------------------------------------------------------


def training_objects(profile: Profile | str) -> list[world.WorldObject]:
    """Training objects: indices 0.. of all 16 categories, grouped so each group of 16 holds one
    object per category (in-distribution categories include the NeRF-dataset objects)."""
    p = _profile(profile)
    n_in = max(p.clip_objects_per_category, p.objects_per_category)
    out = []
    for i in range(n_in):
        for c in world.CATEGORIES:
            if c in world.IN_DISTRIBUTION or i < p.clip_objects_per_category:
                out.append(world.make_object(c, i, WORLD_SEED))
    return out


def eval_objects(profile: Profile | str) -> list[world.WorldObject]:
    """Held-out objects (indices 10_000..), ``clip_eval_objects`` per category, category-major."""
    p = _profile(profile)
    return world.make_objects(world.CATEGORIES, p.clip_eval_objects, seed=WORLD_SEED, start=EVAL_START)


def n_eval_views(profile: Profile | str) -> int:
    """Views per held-out object: half the training views, at least 2 (image–image pairs need 2)."""
    return max(2, _profile(profile).clip_views // 2)


def render_views(objects: Sequence[world.WorldObject], n_views: int, seeds: int | Sequence[int], size: int,
                 cache: Path | None = None, samples: int = RENDER_SAMPLES, progress: bool = True,
                 device: torch.device | str = "cpu", desc: str = "render") -> torch.Tensor:
    """Views (N, V, size, size, 3) uint8 of procedural objects, cached as safetensors.

    Objects are rendered in groups of :data:`RENDER_GROUP`; group ``g`` uses poses
    ``cameras.view_set(n_views, seeds[g])`` (an int: the same poses for every object). With
    ``cache``, a file whose recorded key matches is reused and otherwise (re)written.
    """
    from tqdm import tqdm

    from . import fit

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
                if meta.get("key") == key and meta.get("sha256") == _sha256(cache):
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
        sha = _save_tensors(cache, {"images": images})
        _atomic_json(cache.with_suffix(".json"), {"key": key, "sha256": sha,
                                                  "seconds": round(time.perf_counter() - t0, 2)})
    return images


def training_views(profile: Profile | str, progress: bool = True,
                   device: torch.device | str = "cpu") -> tuple[list[world.WorldObject], torch.Tensor]:
    """(objects, uint8 views (N, clip_views, S, S, 3)) of the CLIP training set, cached."""
    p = _profile(profile)
    objs = training_objects(p)
    n_groups = math.ceil(len(objs) / RENDER_GROUP)
    seeds = [TRAIN_VIEW_SEED + 100 * g for g in range(n_groups)]
    imgs = render_views(objs, p.clip_views, seeds, p.clip_image_size, cache=clip_dir(p) / "train_views.safetensors",
                        progress=progress, device=device, desc="render CLIP training views")
    return objs, imgs


def eval_views(profile: Profile | str, progress: bool = True,
               device: torch.device | str = "cpu") -> tuple[list[world.WorldObject], torch.Tensor]:
    """(held-out objects, uint8 views (N, V, S, S, 3)), poses ``view_set(V, 31)``, cached."""
    p = _profile(profile)
    objs = eval_objects(p)
    imgs = render_views(objs, n_eval_views(p), EVAL_VIEW_SEED, p.clip_image_size,
                        cache=clip_dir(p) / "eval_views.safetensors", progress=progress, device=device,
                        desc="render held-out views")
    return objs, imgs


# ----------------------------------------------------------------------------------------------
# Training
# ----------------------------------------------------------------------------------------------


def _recorded_seconds(meta_path: Path, default: float) -> float:
    try:
        return float(json.loads(meta_path.read_text())["seconds"])
    except (OSError, json.JSONDecodeError, KeyError, TypeError, ValueError):
        return default


def _pick_captions(objects: list[int], caps: list[list[int]], cat_id: list[int], rng: random.Random) -> list[int]:
    """One caption id per object: the category caption with probability :data:`CATEGORY_CAPTION_P`,
    else a random caption of the object; a caption already in the batch is replaced by another of the
    object's captions. (InfoNCE treats every other pair in the batch as a negative: two identical
    captions, e.g. two "a sofa" in one batch, would be pushed apart from each other's images.)"""
    used: set[int] = set()
    out = []
    for i in objects:
        options = ([cat_id[i]] if rng.random() < CATEGORY_CAPTION_P else []) + rng.sample(caps[i], len(caps[i]))
        pick = next((t for t in options if t not in used), options[0])
        used.add(pick)
        out.append(pick)
    return out


def _augmenter(size: int):
    from torchvision.transforms import v2

    return v2.Compose([
        v2.RandomResizedCrop(size, scale=AUG_CROP_SCALE, ratio=(0.9, 1.1), antialias=True),
        v2.RandomHorizontalFlip(),
        v2.ColorJitter(brightness=0.1),  # no hue/saturation: colour words are in the captions
    ])


def train_small_clip(profile: Profile | str, device: torch.device | str = "cpu", progress: bool = True,
                     seed: int = 0) -> tuple[Encoder, dict]:
    """Train the small CLIP on rendered views of all 16 categories and save the checkpoint.

    Each step draws ``clip_batch`` distinct objects, one random view each (augmented), and one
    caption each (a random caption of the object, or with probability :data:`CATEGORY_CAPTION_P`
    the plain category caption). Loss: ``open_clip.loss.ClipLoss`` with the model's learnable
    logit scale (clamped at 100, as in open_clip); AdamW, linear warmup then cosine decay.
    Returns ``(encoder, info)`` with the loss history and wall times.
    """
    from open_clip.loss import ClipLoss
    from tqdm import tqdm

    p = _profile(profile)
    device = torch.device(device)
    t0 = time.perf_counter()
    objs, views = training_views(p, progress=progress, device=device)
    # the time these views took to render, also when an earlier call rendered them (cached)
    render_s = _recorded_seconds(clip_dir(p) / "train_views.json", time.perf_counter() - t0)

    enc = build_small_clip(p, device, seed=seed)
    model = enc.model.train()
    # Captions: tokenise every distinct caption once.
    cat_caps = {c: world.category_caption(c) for c in world.CATEGORIES}
    texts = sorted({t for o in objs for t in o.captions} | set(cat_caps.values()))
    text_id = {t: i for i, t in enumerate(texts)}
    tokens = enc.tokenize(texts)
    caps = [[text_id[t] for t in o.captions] for o in objs]
    cat_id = [text_id[cat_caps[o.category]] for o in objs]

    mean = torch.tensor(enc.mean).view(1, 3, 1, 1)
    std = torch.tensor(enc.std).view(1, 3, 1, 1)
    aug = _augmenter(p.clip_image_size)
    decay = [q for n, q in model.named_parameters() if q.ndim >= 2 and "positional_embedding" not in n]
    no_decay = [q for n, q in model.named_parameters() if not (q.ndim >= 2 and "positional_embedding" not in n)]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.1}, {"params": no_decay, "weight_decay": 0.0}],
                            lr=p.clip_lr, betas=(0.9, 0.98), eps=1e-6)
    steps, batch = p.clip_steps, min(p.clip_batch, len(objs))
    warm = max(1, steps // 20)

    def lr_factor(s: int) -> float:  # linear warmup, then cosine decay to 0
        return (s + 1) / warm if s < warm else 0.5 * (1 + math.cos(math.pi * (s - warm) / max(1, steps - warm)))

    sched = torch.optim.lr_scheduler.LambdaLR(opt, lr_factor)
    loss_fn = ClipLoss()
    rng = random.Random(seed)
    gen = torch.Generator().manual_seed(seed)
    log_every = max(1, steps // 100)
    history: list[dict] = []
    torch.manual_seed(seed)  # v2 transforms draw from the global generator
    t1 = time.perf_counter()
    bar = tqdm(range(steps), desc="train small CLIP", disable=not progress, mininterval=5)
    for step in bar:
        idx = torch.randperm(len(objs), generator=gen)[:batch]
        vidx = torch.randint(0, views.shape[1], (batch,), generator=gen)
        img = views[idx, vidx].permute(0, 3, 1, 2).float() / 255.0
        img = torch.stack([aug(im) for im in img]).clamp(0, 1)
        img = ((img - mean) / std).to(device)
        tid = _pick_captions(idx.tolist(), caps, cat_id, rng)
        tok = tokens[tid].to(device)
        img_f = model.encode_image(img, normalize=True)
        txt_f = model.encode_text(tok, normalize=True)
        loss = loss_fn(img_f, txt_f, model.logit_scale.exp())
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        with torch.no_grad():
            model.logit_scale.clamp_(0, math.log(100))
        if step % log_every == 0 or step == steps - 1:
            rec = {"step": step, "loss": round(loss.item(), 5),
                   "logit_scale": round(model.logit_scale.exp().item(), 3), "lr": sched.get_last_lr()[0]}
            history.append(rec)
            bar.set_postfix(loss=f"{rec['loss']:.3f}", scale=f"{rec['logit_scale']:.1f}")
    train_s = time.perf_counter() - t1
    model.eval()

    weights, config = checkpoint_paths(p)
    sha = _save_tensors(weights, model.state_dict())
    seconds = {"render": round(render_s, 2), "train": round(train_s, 2), "total": round(render_s + train_s, 2),
               "per_step": round(train_s / max(1, steps), 4)}
    meta = {"format": FORMAT, "profile": p.name, "model_cfg": small_config(p), "train_cfg": train_config(p),
            "weights_sha256": sha, "seed": seed, "n_objects": len(objs), "n_captions": len(texts),
            "history": history, "seconds": seconds, "device": str(device), "threads": torch.get_num_threads(),
            "created": time.strftime("%Y-%m-%dT%H:%M:%S")}
    _atomic_json(config, meta)
    enc.fingerprint = sha
    info = {"source": "trained", "checkpoint": str(weights), "history": history, "seconds": seconds,
            "created": meta["created"]}
    enc.info = info
    return enc, info


# ----------------------------------------------------------------------------------------------
# Embedding cache of the NeRF-dataset objects
# ----------------------------------------------------------------------------------------------


@dataclass
class EmbeddingCache:
    image: torch.Tensor        # (N_objects, V, D) normalised image embeddings
    object_ids: list[str]
    manifest: dict
    path: Path

    @property
    def mean(self) -> torch.Tensor:
        """Per-object mean image embedding, re-normalised (N, D)."""
        return F.normalize(self.image.mean(1), dim=-1)


def embedding_cache(profile: Profile | str, encoder: Encoder, device: torch.device | str = "cpu",
                    progress: bool = True) -> EmbeddingCache:
    """Image embeddings of ``cache_views`` views of every NeRF-dataset object, computed once.

    Views: ``cameras.view_set(cache_views, 21)`` at the encoder's render size. Stored as
    ``clip/embeddings.safetensors`` (``image``: (N, V, D)) + ``embeddings.json`` (object ids,
    encoder name and fingerprint, embed dim, view seed, sha256). A cache made with another
    encoder, profile or object list is recomputed.
    """
    from safetensors.torch import load_file

    from .store import dataset_objects

    p = _profile(profile)
    objs = dataset_objects(p, seed=WORLD_SEED)
    ids = [o.object_id for o in objs]
    size = encoder.render_size or p.clip_image_size
    folder = clip_dir(p)
    path, meta_path = folder / "embeddings.safetensors", folder / "embeddings.json"
    want = {"profile": p.name, "encoder": encoder.name, "fingerprint": encoder.fingerprint,
            "embed_dim": encoder.embed_dim, "view_seed": CACHE_VIEW_SEED, "views": p.cache_views,
            "render_size": size, "render_samples": RENDER_SAMPLES, "object_ids": ids}
    if path.exists() and meta_path.exists():
        try:
            meta = json.loads(meta_path.read_text())
            stale = [k for k, v in want.items() if meta.get(k) != v]
            if not stale and meta.get("sha256") == _sha256(path):
                return EmbeddingCache(load_file(str(path))["image"], ids, meta, path)
            print(f"embedding cache {path} is out of date ({', '.join(stale) or 'checksum'} changed); recomputing")
        except (OSError, json.JSONDecodeError, KeyError) as err:
            print(f"embedding cache {path} unreadable ({err!r}); recomputing")
    views = render_views(objs, p.cache_views, CACHE_VIEW_SEED, size, cache=folder / "cache_views.safetensors",
                         progress=progress, device=device, desc="render dataset views")
    image = encoder.encode_images(views)
    sha = _save_tensors(path, {"image": image})
    meta = {**want, "shape": list(image.shape), "sha256": sha, "created": time.strftime("%Y-%m-%dT%H:%M:%S")}
    _atomic_json(meta_path, meta)
    return EmbeddingCache(image, ids, meta, path)


def nearest_scene(text_emb: torch.Tensor, cache: EmbeddingCache | torch.Tensor):
    """Nearest training scene of a text embedding: cosine to each object's mean image embedding.

    ``text_emb`` (D,) -> ``(index, score)`` as Python numbers; (M, D) -> ``(indices, scores)`` tensors.
    ``cache`` is an :class:`EmbeddingCache` or image embeddings (N, V, D) / (N, D).
    """
    if isinstance(cache, EmbeddingCache):
        ref = cache.mean
    else:
        ref = F.normalize(cache.mean(1) if cache.ndim == 3 else cache, dim=-1)
    t = F.normalize(torch.as_tensor(text_emb, dtype=ref.dtype), dim=-1)
    single = t.ndim == 1
    sims = t.reshape(-1, ref.shape[-1]) @ ref.T
    score, index = sims.max(dim=1)
    return (int(index[0]), float(score[0])) if single else (index, score)


# ----------------------------------------------------------------------------------------------
# Metrics
# ----------------------------------------------------------------------------------------------


def zero_shot(encoder: Encoder, image_emb: torch.Tensor, labels: Sequence[str],
              categories: Sequence[str] = world.CATEGORIES) -> dict:
    """Zero-shot classification of image embeddings (N, D) against ``category_caption`` of each
    category. Returns overall top-1, per-category top-1 and the predictions."""
    text = encoder.encode_text([world.category_caption(c) for c in categories])
    pred_idx = (image_emb @ text.T).argmax(1)
    pred = [categories[i] for i in pred_idx.tolist()]
    correct = np.array([a == b for a, b in zip(pred, labels)])
    labels_arr = np.array(labels)
    per_cat = {c: float(correct[labels_arr == c].mean()) for c in categories if (labels_arr == c).any()}
    return {"top1": float(correct.mean()), "per_category": per_cat, "pred": pred}


def retrieval(text_emb: torch.Tensor, image_emb: torch.Tensor, ks: Sequence[int] = (1, 5)) -> dict:
    """Text -> image retrieval: text ``m`` (M, D) against all images (M, V, D); a retrieved image is
    correct when it shows object ``m``. Returns ``{"top1": .., "top5": ..}``."""
    M, V, D = image_emb.shape
    sims = text_emb @ image_emb.reshape(M * V, D).T                       # (M, M*V)
    owner = torch.arange(M).repeat_interleave(V)                           # object of each image
    order = sims.argsort(dim=1, descending=True)
    hit = owner[order] == torch.arange(M)[:, None]                         # (M, M*V)
    return {f"top{k}": float(hit[:, :k].any(1).float().mean()) for k in ks}


def modality_gap(text_emb: torch.Tensor, image_emb: torch.Tensor) -> dict[str, np.ndarray]:
    """Cosine similarities (supplement II): text ``m`` (M, D) vs images (M, V, D).

    ``matched_text_image``: caption of an object vs its own views; ``unmatched_text_image``: vs
    the views of every other object; ``matched_image_image``: two different views of one object.
    """
    M, V, _ = image_emb.shape
    ti = torch.einsum("md,nvd->mnv", text_emb, image_emb)                  # (M, M, V)
    eye = torch.eye(M, dtype=torch.bool)
    ii = torch.einsum("mvd,mwd->mvw", image_emb, image_emb)                # (M, V, V)
    upper = torch.triu(torch.ones(V, V, dtype=torch.bool), diagonal=1)
    return {"matched_text_image": ti[eye].flatten().numpy(),
            "unmatched_text_image": ti[~eye].flatten().numpy(),
            "matched_image_image": ii[:, upper].flatten().numpy()}
