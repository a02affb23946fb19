"""How good a CLIP encoder is on the procedural world (supplement II, 02_clip): zero-shot
classification, text -> image retrieval, and the modality gap."""
from __future__ import annotations

from typing import Sequence

import numpy as np
import torch

from p2nlib.data import world


def zero_shot(encoder, image_emb: torch.Tensor, labels: Sequence[str],
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
