"""The embedding cache: CLIP image embeddings of every NeRF-dataset scene from fixed views, computed
once per encoder; and the nearest scene of a prompt by cosine to those embeddings (paper §3.2)."""
from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F

from p2nlib.clip.encoder import Encoder
from p2nlib.clip.views import CACHE_VIEW_SEED, RENDER_SAMPLES, clip_dir, render_views
from p2nlib.core.artifacts import save_tensors, sha256, write_json_atomic
from p2nlib.core.profiles import Profile, as_profile
from p2nlib.data.splits import WORLD_SEED


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

    from p2nlib.data.store import dataset_objects

    p = as_profile(profile)
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
            if not stale and meta.get("sha256") == sha256(path):
                return EmbeddingCache(load_file(str(path))["image"], ids, meta, path)
            print(f"embedding cache {path} is out of date ({', '.join(stale) or 'checksum'} changed); recomputing")
        except (OSError, json.JSONDecodeError, KeyError) as err:
            print(f"embedding cache {path} unreadable ({err!r}); recomputing")
    views = render_views(objs, p.cache_views, CACHE_VIEW_SEED, size, cache=folder / "cache_views.safetensors",
                         progress=progress, device=device, desc="render dataset views")
    image = encoder.encode_images(views)
    sha = save_tensors(path, {"image": image})
    meta = {**want, "shape": list(image.shape), "sha256": sha, "created": time.strftime("%Y-%m-%dT%H:%M:%S")}
    write_json_atomic(meta_path, meta)
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
