"""Evaluation metrics of the paper's §4.3: CLIP similarity, Fréchet distance (FID / FD-CLIP), PSNR.

* **CLIP similarity.** Image prompts: cosine between the CLIP image embeddings of a generated view
  and the ground-truth view at the same pose, averaged over poses. Text prompts: cosine between the
  prompt's text embedding and each rendered view's image embedding, averaged over views (the paper's
  "analogy of the CLIP retrieval score").
* **Fréchet distance.** The paper uses pytorch-fid's InceptionV3 at ``dims=192``. Its weights cannot
  be downloaded here, so when the file is not on this machine the same Fréchet distance is computed
  on the profile's CLIP image features and called *FD-CLIP*. Both use pytorch-fid's own
  :func:`pytorch_fid.fid_score.calculate_frechet_distance`. A Fréchet distance needs more samples
  than feature dimensions (else the covariance is singular): :func:`frechet` refuses fewer.
* **PSNR** in dB for images in [0, 1] (:func:`p2nlib.fit.psnr`).
"""
from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from p2nlib.data.fit import psnr  # noqa: F401  (re-exported: the book's third metric)

INCEPTION_FILE = "pt_inception-2015-12-05-6726825d.pth"
INCEPTION_DIMS = 192


def _flat(images: torch.Tensor) -> torch.Tensor:
    if images.ndim < 4 or images.shape[-1] != 3:
        raise ValueError(f"images must have shape (..., H, W, 3), got {tuple(images.shape)}")
    return images.reshape(-1, *images.shape[-3:])


def _embed_views(encoder, views: torch.Tensor) -> torch.Tensor:
    """CLIP image embeddings (N, V, D) of renders (N, V, H, W, 3)."""
    return encoder.encode_images(_flat(views)).reshape(*views.shape[:2], -1)


def image_similarity(encoder, generated: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
    """Mean CLIP image–image cosine per object: views (N, V, H, W, 3) vs the same poses -> (N,)."""
    if generated.shape[:2] != reference.shape[:2]:
        raise ValueError(f"generated {tuple(generated.shape[:2])} and reference {tuple(reference.shape[:2])} "
                         "must have the same (objects, views)")
    return (_embed_views(encoder, generated) * _embed_views(encoder, reference)).sum(-1).mean(1)


def text_similarity(encoder, texts: list[str], views: torch.Tensor) -> torch.Tensor:
    """Mean CLIP text–image cosine per prompt: texts (N,) and their renders (N, V, H, W, 3) -> (N,)."""
    if len(texts) != views.shape[0]:
        raise ValueError(f"{len(texts)} texts but renders for {views.shape[0]} prompts")
    return (_embed_views(encoder, views) * encoder.encode_text(texts)[:, None]).sum(-1).mean(1)


def embedding_similarity(encoder, views: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Mean cosine between the renders (N, V, H, W, 3) and one target embedding per object (N, D)."""
    t = torch.nn.functional.normalize(targets.float(), dim=-1)
    return (_embed_views(encoder, views) * t[:, None]).sum(-1).mean(1)


def frechet_distance(mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray, sigma2: np.ndarray,
                     eps: float = 1e-6) -> float:
    """pytorch-fid's ``calculate_frechet_distance``, line for line, except that it calls ``scipy.linalg.sqrtm``
    without the ``disp`` argument that newer SciPy releases no longer accept (pytorch-fid 0.3.0, its latest
    release, raises ``TypeError`` there). The matrix square root is the same one."""
    from scipy import linalg

    diff = mu1 - mu2
    covmean = linalg.sqrtm(sigma1.dot(sigma2))
    if not np.isfinite(covmean).all():          # singular product: add eps to the diagonals
        offset = np.eye(sigma1.shape[0]) * eps
        covmean = linalg.sqrtm((sigma1 + offset).dot(sigma2 + offset))
    if np.iscomplexobj(covmean):
        if not np.allclose(np.diagonal(covmean).imag, 0, atol=1e-3):
            raise ValueError(f"imaginary component {np.max(np.abs(covmean.imag))} in the covariance square root")
        covmean = covmean.real
    return float(diff.dot(diff) + np.trace(sigma1) + np.trace(sigma2) - 2 * np.trace(covmean))


def frechet(feats_a: torch.Tensor | np.ndarray, feats_b: torch.Tensor | np.ndarray) -> float:
    """Fréchet distance between two feature sets (n, d) with pytorch-fid's formula (:func:`frechet_distance`)."""
    a, b = (np.asarray(torch.as_tensor(f).double().cpu()) for f in (feats_a, feats_b))
    if a.ndim != 2 or b.ndim != 2 or a.shape[1] != b.shape[1]:
        raise ValueError(f"features must be (n, d) with the same d, got {a.shape} and {b.shape}")
    n = min(len(a), len(b))
    if n <= a.shape[1]:
        raise ValueError(f"a Fréchet distance on {a.shape[1]}-dim features needs more than {a.shape[1]} samples "
                         f"per set, got {len(a)} and {len(b)}; render more views per object")
    return frechet_distance(a.mean(0), np.cov(a, rowvar=False), b.mean(0), np.cov(b, rowvar=False))


def inception_weights() -> Path | None:
    """The pytorch-fid InceptionV3 weights file when it is on this machine (never downloaded)."""
    home = Path(os.environ.get("TORCH_HOME", Path.home() / ".cache" / "torch"))
    path = home / "hub" / "checkpoints" / INCEPTION_FILE
    return path if path.is_file() else None


@torch.no_grad()
def inception_features(images: torch.Tensor, dims: int = INCEPTION_DIMS, batch: int = 64,
                       device: torch.device | str = "cpu") -> torch.Tensor:
    """pytorch-fid InceptionV3 features (N, dims) of images (..., H, W, 3) in [0, 1]; needs local weights."""
    from pytorch_fid.inception import InceptionV3

    if inception_weights() is None:
        raise FileNotFoundError(f"InceptionV3 weights not found: put {INCEPTION_FILE} in "
                                "$TORCH_HOME/hub/checkpoints (default ~/.cache/torch/hub/checkpoints)")
    model = InceptionV3([InceptionV3.BLOCK_INDEX_BY_DIM[dims]]).to(device).eval()
    x = _flat(images).permute(0, 3, 1, 2)
    out = []
    for s in range(0, len(x), batch):
        pred = model(x[s:s + batch].to(device))[0]
        out.append(torch.nn.functional.adaptive_avg_pool2d(pred, 1).flatten(1).cpu())
    return torch.cat(out)


@dataclass(frozen=True)
class FrechetResult:
    value: float
    metric: str            # "FID (InceptionV3, dims=192)" or "FD-CLIP (<encoder>, dim D)"
    samples: int           # images per set
    dims: int


def frechet_images(encoder, generated: torch.Tensor, reference: torch.Tensor,
                   backend: str = "auto") -> FrechetResult:
    """Fréchet distance between two image sets (..., H, W, 3): Inception FID when its weights are
    local (``backend='auto'`` or ``'inception'``), otherwise FD-CLIP on ``encoder``'s image features."""
    if backend not in ("auto", "inception", "clip"):
        raise ValueError(f"backend must be 'auto', 'inception' or 'clip', got {backend!r}")
    g, r = _flat(generated), _flat(reference)
    if backend == "inception" or (backend == "auto" and inception_weights() is not None):
        fa, fb = inception_features(g), inception_features(r)
        name = f"FID (InceptionV3, dims={INCEPTION_DIMS})"
    else:
        fa, fb = encoder.encode_images(g), encoder.encode_images(r)
        name = f"FD-CLIP ({encoder.name}, dim {fa.shape[1]})"
    return FrechetResult(frechet(fa, fb), name, min(len(g), len(r)), int(fa.shape[1]))


def views_for_frechet(n_objects: int, dims: int, minimum: int = 8, factor: float = 1.5) -> int:
    """Views per object so that a set holds at least ``factor × dims`` samples (and ``minimum`` views)."""
    return max(minimum, math.ceil(factor * (dims + 1) / max(n_objects, 1)))
