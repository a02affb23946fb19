"""The book's small CLIP (the offline stand-in for ViT-B/32): its config, building, loading and
training on rendered views of all 16 categories with the objects' captions.

It is built from ``open_clip``'s own :class:`open_clip.CLIP` class with a custom config
(:func:`small_config`), uses open_clip's tokenizer, and is trained with ``open_clip.loss.ClipLoss``
(:func:`train_small_clip`). Checkpoints live in ``artifacts/<profile>/clip/`` (safetensors + JSON).

Choices made here (the paper does not state them):

* Augmentation: random resized crop (scale 0.75–1), horizontal flip, small brightness jitter;
  never hue (colour is semantic: captions say "a red chair").
* The small CLIP's image tower is open_clip's ``ModifiedResNet`` (a CNN), not a ViT: on ~3,000
  training images it generalised clearly better at the same cost (see :func:`small_config`).
* No caption appears twice in a training batch (:func:`_pick_captions`).
"""
from __future__ import annotations

import json
import math
import random
import time
from pathlib import Path

import torch

from p2nlib.clip.encoder import Encoder, _tokenizer
from p2nlib.clip.views import RENDER_SAMPLES, TRAIN_VIEW_SEED, clip_dir, training_views
from p2nlib.core.artifacts import save_tensors, sha256, write_json_atomic
from p2nlib.core.errors import CheckpointMismatchError, EncoderNotFoundError
from p2nlib.core.profiles import Profile, as_profile
from p2nlib.data import world
from p2nlib.data.splits import WORLD_SEED

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
FORMAT = 1


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
    p = as_profile(profile)
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
    p = as_profile(profile)
    return {"objects_per_category": p.clip_objects_per_category,
            "dataset_objects_per_category": p.objects_per_category,
            "views": p.clip_views, "image_size": p.clip_image_size, "render_samples": RENDER_SAMPLES,
            "view_seed": TRAIN_VIEW_SEED, "steps": p.clip_steps, "batch": p.clip_batch, "lr": p.clip_lr,
            "category_caption_p": CATEGORY_CAPTION_P, "crop_scale": list(AUG_CROP_SCALE),
            "unique_captions": True, "world_seed": WORLD_SEED}


def build_small_clip(profile: Profile | str, device: torch.device | str = "cpu", seed: int = 0) -> Encoder:
    """An untrained small CLIP (open_clip's CLIP class, :func:`small_config`), seeded."""
    import open_clip

    p = as_profile(profile)
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
    d = clip_dir(as_profile(profile))
    return d / "small_clip.safetensors", d / "small_clip.json"


def load_small_clip(profile: Profile | str, device: torch.device | str = "cpu") -> Encoder:
    """Load the trained small CLIP of a profile; missing or mismatching checkpoints are clear errors."""
    from safetensors.torch import load_file

    p = as_profile(profile)
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
    encoder.fingerprint = meta.get("weights_sha256") or sha256(weights)
    encoder.info = {"source": "checkpoint", "checkpoint": str(weights), **{k: meta.get(k) for k in
                                                                          ("history", "seconds", "created")}}
    return encoder


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

    p = as_profile(profile)
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
    sha = save_tensors(weights, model.state_dict())
    seconds = {"render": round(render_s, 2), "train": round(train_s, 2), "total": round(render_s + train_s, 2),
               "per_step": round(train_s / max(1, steps), 4)}
    meta = {"format": FORMAT, "profile": p.name, "model_cfg": small_config(p), "train_cfg": train_config(p),
            "weights_sha256": sha, "seed": seed, "n_objects": len(objs), "n_captions": len(texts),
            "history": history, "seconds": seconds, "device": str(device), "threads": torch.get_num_threads(),
            "created": time.strftime("%Y-%m-%dT%H:%M:%S")}
    write_json_atomic(config, meta)
    enc.fingerprint = sha
    info = {"source": "trained", "checkpoint": str(weights), "history": history, "seconds": seconds,
            "created": meta["created"]}
    enc.info = info
    return enc, info
