"""Guidances for per-prompt optimisation: what pulls a NeRF toward a prompt.

The paper's baselines are DreamFusion (text) and Zero-1-to-3 (image), both score distillation from
diffusion models that cannot be had offline. The stand-ins here are CLIP-guided, in the spirit of
Dream Fields:

* :class:`TextGuidance` — ``1 - cos(CLIP(render), CLIP(text))`` at random views, plus Dream Fields'
  transmittance regulariser (mean opacity above a target is penalised, so the scene stays sparse).
* :class:`ImageGuidance` — a photometric loss on the reference view plus
  ``1 - cos(CLIP(render), CLIP(reference image))`` at random novel views.

A guidance is any object with ``name`` and ``loss(render_fn, c2w, size, idx)`` returning one loss per
run; :func:`p2nlib.baselines.optimize.optimize` takes any of them.
"""
from __future__ import annotations

from contextlib import contextmanager

import torch
import torch.nn.functional as F

from p2nlib.core.artifacts import tensor_digest


def clip_embed(encoder, images: torch.Tensor) -> torch.Tensor:
    """Differentiable, L2-normalised CLIP image embeddings of float images (N, H, W, 3) in [0, 1]."""
    x = images.permute(0, 3, 1, 2)
    if x.shape[-1] != encoder.image_size:
        x = F.interpolate(x, size=(encoder.image_size,) * 2, mode="bilinear", align_corners=False)
    mean = torch.tensor(encoder.mean, device=x.device).view(1, 3, 1, 1)
    std = torch.tensor(encoder.std, device=x.device).view(1, 3, 1, 1)
    return encoder.model.encode_image((x - mean) / std, normalize=True).float()


def clip_loss(encoder, rgb: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Mean ``1 - cos`` between renders (b, n, H, W, 3) and one unit target embedding per run (b, D)."""
    b, n = rgb.shape[:2]
    emb = clip_embed(encoder, rgb.reshape(b * n, *rgb.shape[2:])).reshape(b, n, -1)
    return (1 - (emb * targets.to(emb.device)[:, None]).sum(-1)).mean(1)


@contextmanager
def frozen(model):
    """Evaluation mode and no parameter gradients while guiding (restored afterwards)."""
    flags = [p.requires_grad for p in model.parameters()]
    was_training = model.training
    model.eval()
    for p in model.parameters():
        p.requires_grad_(False)
    try:
        yield model
    finally:
        for p, f in zip(model.parameters(), flags):
            p.requires_grad_(f)
        model.train(was_training)


class TextGuidance:
    """CLIP text guidance with a transmittance regulariser (Dream Fields); stands in for DreamFusion."""

    name = "CLIP text guidance + transmittance (stands in for DreamFusion)"

    def __init__(self, encoder, targets: torch.Tensor, max_opacity: float = 0.3, reg_weight: float = 0.5):
        self.encoder, self.targets = encoder, F.normalize(targets.float(), dim=-1)
        self.max_opacity, self.reg_weight = max_opacity, reg_weight

    def key(self) -> dict:
        """What determines this guidance's effect (for caching runs made with it)."""
        return {"name": self.name, "targets": tensor_digest(self.targets), "max_opacity": self.max_opacity,
                "reg_weight": self.reg_weight, "encoder": self.encoder.fingerprint}

    def loss(self, render_fn, c2w: torch.Tensor, size: int, idx: torch.Tensor) -> torch.Tensor:
        rgb, opacity = render_fn(c2w, size)                                     # (b, n, H, W, 3)
        reg = F.relu(opacity.mean((1, 2, 3)) - self.max_opacity)
        return clip_loss(self.encoder, rgb, self.targets[idx]) + self.reg_weight * reg


class ImageGuidance:
    """Reference-view photometric loss + CLIP image guidance at novel views; stands in for Zero-1-to-3."""

    name = "reference-view photometric + CLIP image guidance (stands in for Zero-1-to-3)"

    def __init__(self, encoder, reference: torch.Tensor, reference_pose: torch.Tensor, clip_weight: float = 0.5):
        """``reference`` (R, H, W, 3) images at poses ``reference_pose`` (R, 4, 4), one per run."""
        if reference.shape[0] != reference_pose.shape[0]:
            raise ValueError("one reference pose per reference image")
        self.encoder, self.reference, self.pose = encoder, reference.float(), reference_pose.float()
        self.targets = encoder.encode_images(reference)        # unit-norm (encode_images normalises)
        self.clip_weight = clip_weight

    def key(self) -> dict:
        """What determines this guidance's effect (for caching runs made with it)."""
        return {"name": self.name, "reference": tensor_digest(self.reference), "pose": tensor_digest(self.pose),
                "clip_weight": self.clip_weight, "encoder": self.encoder.fingerprint}

    def loss(self, render_fn, c2w: torch.Tensor, size: int, idx: torch.Tensor) -> torch.Tensor:
        ref = self.reference[idx]
        if ref.shape[1] != size:
            ref = F.interpolate(ref.permute(0, 3, 1, 2), size=(size, size), mode="bilinear",
                                antialias=True, align_corners=False).permute(0, 2, 3, 1)
        poses = torch.cat([self.pose[idx][:, None], c2w], 1)                  # reference view first
        rgb, _ = render_fn(poses, size)
        photo = (rgb[:, 0] - ref.to(rgb.device)).pow(2).mean((1, 2, 3))
        return photo + self.clip_weight * clip_loss(self.encoder, rgb[:, 1:], self.targets[idx])
