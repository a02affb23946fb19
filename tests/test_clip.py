"""CLIP encoders, checkpoints, the embedding cache and the metrics (p2nlib.clip). Offline and fast."""
import dataclasses
import time

import numpy as np
import pytest
import torch
from PIL import Image

from p2nlib import clip
from p2nlib.core.profiles import get_profile
from p2nlib.data import world
from p2nlib.eval import clip_quality

TINY = get_profile("tiny")
# a micro profile: 16 categories x 1 object x 2 views at 32 px (the ResNet tower's minimum), 3 steps
MICRO = dataclasses.replace(TINY, name="micro", objects_per_category=1, clip_embed_dim=16, clip_image_size=32,
                            clip_objects_per_category=1, clip_eval_objects=1, clip_views=2, clip_steps=3,
                            clip_batch=8, cache_views=2)


@pytest.fixture(scope="module")
def small_encoder():
    return clip.build_small_clip(TINY)


def test_small_config_sizes():
    cfg = clip.small_config(get_profile("small"))
    assert cfg["embed_dim"] == 128
    assert cfg["vision_cfg"] == {"image_size": 48, "layers": [1, 2, 2, 1], "width": 24, "head_width": 32}
    assert cfg["text_cfg"]["context_length"] == clip.SMALL_CONTEXT and cfg["text_cfg"]["layers"] == 4
    assert clip.small_config(TINY)["vision_cfg"]["width"] == 8
    vit = clip.small_config(get_profile("small"), vision="vit")["vision_cfg"]
    assert vit["patch_size"] == 6 and vit["width"] == 128
    with pytest.raises(ValueError, match="clip_image_size >= 32"):
        clip.small_config(dataclasses.replace(TINY, clip_image_size=16))


def test_vit_variant_builds_and_embeds(monkeypatch):
    monkeypatch.setattr(clip.small, "SMALL_VISION", "vit")
    enc = clip.build_small_clip(TINY)
    assert enc.name.startswith("small-clip-vit")
    assert enc.encode_images(torch.rand(2, 32, 32, 3)).shape == (2, TINY.clip_embed_dim)


def test_untrained_encoder_shapes_and_norms(small_encoder):
    enc, d = small_encoder, TINY.clip_embed_dim
    assert enc.embed_dim == d and enc.image_size == TINY.clip_image_size
    gen = torch.Generator().manual_seed(0)
    floats = torch.rand(3, 40, 40, 3, generator=gen)          # resized to the model's 32 px
    uint8 = (floats.numpy() * 255).astype(np.uint8)
    pil = [Image.fromarray(a) for a in uint8]
    outs = [enc.encode_images(floats), enc.encode_images(uint8), enc.encode_images(pil)]
    for e in outs:
        assert e.shape == (3, d) and e.device.type == "cpu"
        assert torch.allclose(e.norm(dim=-1), torch.ones(3), atol=1e-5)
    assert torch.allclose(outs[1], outs[2], atol=1e-5)          # uint8 and PIL are the same pixels
    assert torch.allclose(outs[0], outs[1], atol=0.05)
    lead = enc.encode_images(torch.rand(2, 2, 32, 32, 3))      # leading dims kept
    assert lead.shape == (2, 2, d)
    t = enc.encode_text(["a red chair", "an airplane"])
    assert t.shape == (2, d) and torch.allclose(t.norm(dim=-1), torch.ones(2), atol=1e-5)
    with pytest.raises(ValueError, match=r"\(N, H, W, 3\)"):
        enc.encode_images(torch.rand(2, 3, 32, 32))


def test_tokenizer_edge_cases(small_encoder):
    enc = small_encoder
    texts = ["", "a chair " * 100, "ein grüner Stuhl ☕"]
    tok = enc.tokenize(texts)
    assert tok.shape == (3, clip.SMALL_CONTEXT) and tok.dtype == torch.long
    assert tok[1].ne(0).all()                                    # truncated, still ends in a token
    emb = enc.encode_text(texts)
    assert emb.shape == (3, TINY.clip_embed_dim) and torch.isfinite(emb).all()


def test_paper_architecture_embeds_to_512():
    import open_clip

    model = open_clip.create_model("ViT-B-32", pretrained=None)
    model.eval()
    tok = open_clip.get_tokenizer("ViT-B-32")(["a red chair"])
    with torch.no_grad():
        img = model.encode_image(torch.rand(1, 3, 224, 224), normalize=True)
        txt = model.encode_text(tok, normalize=True)
    assert img.shape == (1, 512) and txt.shape == (1, 512)


def test_missing_vit_weights_is_a_clear_quick_error(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf" / "hub"))
    monkeypatch.setenv("P2N_CLIP_WEIGHTS", str(tmp_path / "nope" / "open_clip_pytorch_model.bin"))
    t0 = time.perf_counter()
    with pytest.raises(clip.EncoderWeightsError) as err:
        clip.load_vit_b32("cpu")
    assert "P2N_CLIP_WEIGHTS" in str(err.value) and "open_clip_pytorch_model.bin" in str(err.value)
    monkeypatch.delenv("P2N_CLIP_WEIGHTS")
    with pytest.raises(clip.EncoderWeightsError) as err:
        clip.load_encoder(get_profile("paper"), "cpu")           # no weights, no stand-in checkpoint
    msg = str(err.value)
    assert str(tmp_path / "hf" / "hub") in msg and "P2N_CLIP_WEIGHTS=" in msg and "02_clip" in msg
    assert time.perf_counter() - t0 < 10


def test_missing_small_checkpoint_names_the_notebook():
    with pytest.raises(clip.EncoderNotFoundError) as err:
        clip.load_encoder(TINY, "cpu")
    assert isinstance(err.value, RuntimeError)
    assert "02_clip" in str(err.value) and "small_clip.safetensors" in str(err.value)


def test_train_save_load_cache_round_trip():
    enc, info = clip.train_small_clip(MICRO, "cpu", progress=False)
    assert info["source"] == "trained" and len(info["history"]) == 3
    assert all(np.isfinite(h["loss"]) for h in info["history"])
    images = torch.rand(4, 16, 16, 3, generator=torch.Generator().manual_seed(1))
    texts = ["a red chair", "a blue mug"]
    loaded = clip.load_encoder(MICRO, "cpu")
    assert loaded.fingerprint == enc.fingerprint
    assert torch.equal(loaded.encode_images(images), enc.encode_images(images))
    assert torch.equal(loaded.encode_text(texts), enc.encode_text(texts))
    again, info2 = clip.get_or_train(MICRO, "cpu", progress=False)      # no retraining
    assert info2["source"] == "checkpoint" and again.fingerprint == enc.fingerprint

    # a checkpoint from another config is refused with a clear error
    other = dataclasses.replace(MICRO, clip_steps=4)
    with pytest.raises(clip.CheckpointMismatchError, match="02_clip"):
        clip.load_small_clip(other, "cpu")

    cache = clip.embedding_cache(MICRO, loaded, "cpu", progress=False)
    n = len(world.IN_DISTRIBUTION) * MICRO.objects_per_category
    assert cache.image.shape == (n, MICRO.cache_views, MICRO.clip_embed_dim)
    assert cache.manifest["encoder"] == loaded.name and len(cache.manifest["sha256"]) == 64
    again = clip.embedding_cache(MICRO, loaded, "cpu", progress=False)
    assert torch.equal(again.image, cache.image)
    idx, score = clip.nearest_scene(loaded.encode_text(["a chair"])[0], cache)
    assert 0 <= idx < n and -1.0 <= score <= 1.0
    # an encoder with other weights invalidates the cache
    fresh = clip.build_small_clip(MICRO, seed=5)
    recomputed = clip.embedding_cache(MICRO, fresh, "cpu", progress=False)
    assert recomputed.manifest["fingerprint"] == "untrained"


def test_metrics_on_constructed_embeddings():
    # 3 objects x 2 views; text m equals the image direction of object m
    base = torch.eye(3, 4)
    images = torch.stack([base, base], dim=1)                    # (3, 2, 4)
    text = base.clone()
    r = clip_quality.retrieval(text, images)
    assert r == {"top1": 1.0, "top5": 1.0}
    gap = clip_quality.modality_gap(text, images)
    assert gap["matched_text_image"].shape == (6,) and np.allclose(gap["matched_text_image"], 1)
    assert gap["unmatched_text_image"].shape == (12,) and np.allclose(gap["unmatched_text_image"], 0)
    assert gap["matched_image_image"].shape == (3,)
    idx, score = clip.nearest_scene(torch.tensor([0.0, 1.0, 0.1, 0.0]), images)
    assert idx == 1 and score > 0.9
    idxs, _ = clip.nearest_scene(text, images)
    assert idxs.tolist() == [0, 1, 2]


def test_data_split_is_disjoint():
    train = {o.object_id for o in clip.training_objects(TINY)}
    held = {o.object_id for o in clip.eval_objects(TINY)}
    assert not train & held
    assert {o.category for o in clip.training_objects(TINY)} == set(world.CATEGORIES)
    from p2nlib.data.store import dataset_objects

    assert {o.object_id for o in dataset_objects(TINY)} <= train
