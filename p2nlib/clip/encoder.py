"""The encoder interface every stage calls (:class:`Encoder`: tokenizer, preprocessing, normalised
embeddings) and the real ViT-B-32, read from local weights only.

The paper embeds prompts and rendered views with CLIP ViT-B/32 (openai weights). ``ViT-B-32``
here is open_clip's model with those weights, read from the local Hugging Face cache or from
``$P2N_CLIP_WEIGHTS``; the network is never touched. The book's offline stand-in, a small CLIP
trained on the procedural world, is built in :mod:`p2nlib.clip.small` and uses the same interface.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from p2nlib.core.errors import EncoderWeightsError

#: ViT-B-32 openai weights on the Hugging Face hub (open_clip's pretrained table)
VIT_REPO = "timm/vit_base_patch32_clip_224.openai"
VIT_FILES = ("open_clip_model.safetensors", "open_clip_pytorch_model.bin")


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
