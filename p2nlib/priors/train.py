"""Training data, training and sampling of the two diffusion priors.

Data: the CLIP training renders (:func:`p2nlib.clip.views.training_views`: all 16 categories,
``clip_views`` views per object at ``clip_image_size``), resized to the prior's size.

* The text prior pairs each view with one of its object's captions (or the plain category caption),
  embedded once by the book's CLIP text encoder (frozen).
* The view prior pairs two views of one object: the reference and the target, with the relative
  camera between them. The poses are known: object group ``g`` was rendered at
  ``cameras.view_set(clip_views, TRAIN_VIEW_SEED + 100 g)``. All cameras of the world orbit at radius
  2, so the radius change is always 0 here; it is encoded all the same, as in Zero-1-to-3.

Training: epsilon-prediction MSE at uniform random timesteps of a cosine DDPM schedule, weighted by
Min-SNR-gamma (``snr_gamma``: each timestep's weight is min(SNR, gamma) / SNR, which stops the many
nearly-clean timesteps from dominating the loss; Hang et al. 2023), the condition dropped for
``cond_drop`` of the samples, AdamW with a short warmup and cosine decay.
Trained priors are cached under ``artifacts/<profile>/priors/`` keyed by their config, the digest of
their training images, the text encoder's fingerprint, the seed and this code, so a change to any of
them trains afresh. Sampling from them is :mod:`p2nlib.priors.sampling` (kept apart, so a change to how
the book samples does not retrain them).
"""
from __future__ import annotations

import dataclasses
import math
import sys
import time

import torch
import torch.nn.functional as F

from p2nlib.core import artifacts, paths
from p2nlib.core.profiles import Profile
from p2nlib.data import cameras, world
from p2nlib.priors import models
from p2nlib.priors.models import PriorConfig, TextPrior, ViewPrior


# ----------------------------------------------------------------------------------------------
# data
# ----------------------------------------------------------------------------------------------

def to_model(images: torch.Tensor, size: int) -> torch.Tensor:
    """uint8 or float [0, 1] images (N, H, W, 3) -> float (N, 3, size, size) in [-1, 1] (antialiased resize)."""
    x = images.float() / 255.0 if images.dtype == torch.uint8 else images.float()
    x = x.permute(0, 3, 1, 2)
    if x.shape[-1] != size:
        x = F.interpolate(x, size=(size, size), mode="bilinear", antialias=True, align_corners=False)
    return x * 2 - 1


def to_images(x: torch.Tensor) -> torch.Tensor:
    """Model space (N, 3, S, S) in [-1, 1] -> images (N, S, S, 3) in [0, 1]."""
    return ((x.clamp(-1, 1) + 1) / 2).permute(0, 2, 3, 1)


@dataclasses.dataclass
class PriorData:
    """What both priors train on: views (N, V, 3, S, S) in [-1, 1], their poses (N, V, 4, 4), each object's
    caption ids and category, and the CLIP text embeddings of every caption (C, D)."""
    views: torch.Tensor
    poses: torch.Tensor
    captions: list[list[int]]
    categories: list[str]
    texts: list[str]
    text_emb: torch.Tensor

    def digest(self) -> str:
        return artifacts.tensor_digest(self.views, self.poses, self.text_emb)


def training_data(p: Profile, encoder, cfg: PriorConfig, progress: bool = True) -> PriorData:
    """The CLIP training renders at the prior's size, with poses, captions and caption embeddings."""
    from p2nlib.clip import views as cviews

    objs, imgs = cviews.training_views(p, progress=progress)
    n, v = imgs.shape[:2]
    x = to_model(imgs.reshape(n * v, *imgs.shape[2:]), cfg.size).reshape(n, v, 3, cfg.size, cfg.size)
    poses = torch.stack([cameras.view_set(v, cviews.TRAIN_VIEW_SEED + 100 * (i // cviews.RENDER_GROUP))
                         for i in range(n)])
    texts = sorted({t for o in objs for t in o.captions} | {world.category_caption(o.category) for o in objs})
    tid = {t: i for i, t in enumerate(texts)}
    caps = [[tid[t] for t in o.captions] + [tid[world.category_caption(o.category)]] for o in objs]
    with torch.no_grad():
        emb = torch.cat([encoder.encode_text(texts[s:s + 256]) for s in range(0, len(texts), 256)]).float().cpu()
    return PriorData(x, poses, caps, [o.category for o in objs], texts, emb)


def _text_batch(data: PriorData, batch: int, gen: torch.Generator):
    n, v = data.views.shape[:2]
    obj = torch.randint(0, n, (batch,), generator=gen)
    view = torch.randint(0, v, (batch,), generator=gen)
    cap = [data.captions[o][int(torch.randint(0, len(data.captions[o]), (1,), generator=gen))] for o in obj.tolist()]
    return data.views[obj, view], (data.text_emb[cap],)


def _view_batch(data: PriorData, batch: int, gen: torch.Generator):
    n, v = data.views.shape[:2]
    obj = torch.randint(0, n, (batch,), generator=gen)
    ref = torch.randint(0, v, (batch,), generator=gen)
    tgt = (ref + torch.randint(1, v, (batch,), generator=gen)) % v        # another view of the same object
    rel = models.relative_camera(data.poses[obj, ref], data.poses[obj, tgt])
    return data.views[obj, tgt], (data.views[obj, ref], models.camera_encoding(rel))


# ----------------------------------------------------------------------------------------------
# training
# ----------------------------------------------------------------------------------------------

def snr_weight(noise_sched, t: torch.Tensor, gamma: float) -> torch.Tensor:
    """Min-SNR-gamma weights (B,) of an epsilon-prediction loss at timesteps ``t``; all ones when ``gamma`` is 0."""
    if gamma <= 0:
        return torch.ones(t.shape)
    a = noise_sched.alphas_cumprod[t]
    snr = a / (1 - a)
    return snr.clamp(max=gamma) / snr


def _fit(model, cfg: PriorConfig, batch_fn, device, seed: int, progress: bool, desc: str) -> dict:
    from tqdm.auto import tqdm

    gen = torch.Generator().manual_seed(seed)
    noise_sched = models.scheduler(cfg)
    model.to(device).train()
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=1e-4)
    warm = max(1, cfg.steps // 20)
    lr_at = lambda s: min(1.0, (s + 1) / warm) * 0.5 * (1 + math.cos(math.pi * min(1.0, s / max(1, cfg.steps))))
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: max(lr_at(s), 0.02))
    hist, t0 = {"step": [], "loss": []}, time.perf_counter()
    run = 0.0
    for step in tqdm(range(cfg.steps), desc=desc, disable=not progress, mininterval=5):
        x0, cond = batch_fn(gen)
        noise = torch.randn(x0.shape, generator=gen)
        t = torch.randint(0, cfg.timesteps, (x0.shape[0],), generator=gen)
        drop = torch.rand(x0.shape[0], generator=gen) < cfg.cond_drop
        x_t = noise_sched.add_noise(x0, noise, t)
        with torch.autocast(torch.device(device).type, dtype=torch.bfloat16, enabled=cfg.bf16):
            pred = model(x_t.to(device), t.to(device), *(c.to(device) for c in cond), drop=drop.to(device))
        pred = pred.float()
        loss = (snr_weight(noise_sched, t, cfg.snr_gamma).to(device)
                * (pred - noise.to(device)).pow(2).mean((1, 2, 3))).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        run = loss.item() if step == 0 else 0.98 * run + 0.02 * loss.item()
        if step % 10 == 0 or step == cfg.steps - 1:
            hist["step"].append(step)
            hist["loss"].append(run)
    model.eval()
    return {"history": hist, "seconds": time.perf_counter() - t0}


def _cached(p: Profile, name: str, key: dict, build, train_fn, seed: int, device):
    def compute():
        with torch.random.fork_rng(devices=[]):          # the initial weights depend on ``seed`` alone
            torch.manual_seed(seed)
            model = build()
        info = train_fn(model)
        return model.cpu().state_dict(), info

    state, info = artifacts.cached(paths.stage_dir(p.name, "priors"), name, key, compute)
    model = build()
    model.load_state_dict(state)
    model.fingerprint = artifacts.key_digest(key)
    model.info = info
    return model.to(device).eval()


def _key(p: Profile, cfg: PriorConfig, data: PriorData, encoder, seed: int, kind: str) -> dict:
    return {"profile": p.name, "kind": kind, "config": dataclasses.asdict(cfg), "data": data.digest(),
            "encoder": encoder.fingerprint, "seed": seed, "code": artifacts.code_digest(models, sys.modules[__name__])}


def text_prior(p: Profile, encoder, data: PriorData | None = None, cfg: PriorConfig | None = None,
               device="cpu", seed: int = 0, progress: bool = True) -> TextPrior:
    """The profile's text-conditioned prior (trained once on ``device``, then read from the cache), returned on
    ``device``. ``model.info`` holds its training curve and seconds; ``model.fingerprint`` what it was trained from."""
    cfg = cfg or PriorConfig.from_profile(p, "text")
    data = data or training_data(p, encoder, cfg, progress)
    dim = data.text_emb.shape[1]
    return _cached(p, "text", _key(p, cfg, data, encoder, seed, "text"), lambda: TextPrior(cfg, dim),
                   lambda m: _fit(m, cfg, lambda g: _text_batch(data, cfg.batch, g), device, seed, progress,
                                  "text prior"), seed, device)


def view_prior(p: Profile, encoder, data: PriorData | None = None, cfg: PriorConfig | None = None,
               device="cpu", seed: int = 0, progress: bool = True) -> ViewPrior:
    """The profile's view-conditioned prior (trained once on ``device``, then read from the cache), on ``device``."""
    cfg = cfg or PriorConfig.from_profile(p, "view")
    data = data or training_data(p, encoder, cfg, progress)
    return _cached(p, "view", _key(p, cfg, data, encoder, seed, "view"), lambda: ViewPrior(cfg),
                   lambda m: _fit(m, cfg, lambda g: _view_batch(data, cfg.batch, g), device, seed, progress,
                                  "view prior"), seed, device)
