"""Which encoder a profile uses: the real ViT-B-32 when its weights are here, else the book's small
CLIP (loaded, or trained when missing). The ViT -> small fallback is decided in one place,
:func:`_vit_or_notice`."""
from __future__ import annotations

import torch

from p2nlib.clip.encoder import Encoder, load_vit_b32
from p2nlib.clip.small import checkpoint_paths, load_small_clip, train_small_clip
from p2nlib.core.errors import CheckpointMismatchError, EncoderNotFoundError, EncoderWeightsError
from p2nlib.core.profiles import Profile, as_profile


def _vit_or_notice(p: Profile, device, fallback: bool) -> tuple[Encoder | None, str]:
    """The real ViT-B-32 when the profile asks for it and its weights are here. Otherwise ``None`` and,
    when ViT-B-32 was asked for, a notice saying the small CLIP stands in and why; without weights and
    without ``fallback`` the :class:`EncoderWeightsError` is raised."""
    if p.clip_model == "small":
        return None, ""
    if p.clip_model != "ViT-B-32":
        raise ValueError(f"profile {p.name!r}: unknown clip_model {p.clip_model!r} (use 'small' or 'ViT-B-32')")
    try:
        enc = load_vit_b32(device)
    except EncoderWeightsError as err:
        if not fallback:
            raise
        return None, (f"!!! NOTICE: the ViT-B-32 openai weights are not on this machine, so this run uses the "
                      f"book's small CLIP trained at embedding size {p.clip_embed_dim} instead. {err}")
    enc.render_size = p.clip_image_size
    return enc, ""


def load_encoder(profile: Profile | str | None = None, device: torch.device | str = "cpu") -> Encoder:
    """The profile's encoder, loaded (never trained here; see :func:`get_or_train`).

    ``clip_model == "ViT-B-32"``: the real weights, else the small stand-in if 02_clip trained one,
    else :class:`EncoderWeightsError`. ``"small"``: the checkpoint, else :class:`EncoderNotFoundError`.
    """
    p = as_profile(profile)
    enc, notice = _vit_or_notice(p, device, fallback=checkpoint_paths(p)[0].exists())
    if enc is not None:
        return enc
    if notice:
        print(notice)
    return load_small_clip(p, device)


def get_or_train(profile: Profile | str | None = None, device: torch.device | str = "cpu",
                 progress: bool = True) -> tuple[Encoder, dict]:
    """Load the profile's encoder, training the small CLIP when it is missing or out of date.

    Returns ``(encoder, info)``; ``info["source"]`` is ``pretrained``, ``checkpoint`` or ``trained``.
    """
    p = as_profile(profile)
    enc, notice = _vit_or_notice(p, device, fallback=True)
    if enc is not None:
        return enc, {"source": "pretrained", "notice": "", **enc.info}
    if notice:
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
