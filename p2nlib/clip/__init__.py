"""CLIP, the bridge between prompts and NeRFs (paper §3.2, §4.2, supplement II).

* ``encoder``: the :class:`Encoder` interface every stage calls, and the real ViT-B-32 (local weights only);
* ``small``: the book's small CLIP, trained on the procedural world (the offline stand-in);
* ``load``: which encoder a profile gets (:func:`load_encoder`, :func:`get_or_train`);
* ``views``: rendered views of the CLIP object sets, cached;
* ``cache``: the embedding cache of the dataset scenes and the nearest scene of a prompt.

The names notebooks use are re-exported here (``from p2nlib import clip; clip.get_or_train(...)``).
How good an encoder is (zero-shot, retrieval, modality gap) is measured in
:mod:`p2nlib.eval.clip_quality`.
"""
from p2nlib.clip.cache import EmbeddingCache, embedding_cache, nearest_scene
from p2nlib.clip.encoder import Encoder, find_vit_b32_weights, load_vit_b32
from p2nlib.clip.load import get_or_train, load_encoder
from p2nlib.clip.small import (SMALL_CONTEXT, build_small_clip, checkpoint_paths, load_small_clip, small_config,
                               train_config, train_small_clip)
from p2nlib.clip.views import (clip_dir, eval_objects, eval_views, n_eval_views, render_views, training_objects,
                               training_views)
from p2nlib.core.errors import CheckpointMismatchError, EncoderNotFoundError, EncoderWeightsError

__all__ = [
    "EmbeddingCache", "embedding_cache", "nearest_scene", "Encoder", "find_vit_b32_weights", "load_vit_b32",
    "get_or_train", "load_encoder", "SMALL_CONTEXT", "build_small_clip", "checkpoint_paths", "load_small_clip",
    "small_config", "train_config", "train_small_clip", "clip_dir", "eval_objects", "eval_views", "n_eval_views",
    "render_views", "training_objects", "training_views", "CheckpointMismatchError", "EncoderNotFoundError",
    "EncoderWeightsError",
]
