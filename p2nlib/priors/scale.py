"""How the text prior's samples improve with its size: train text priors of several configs on a profile's data
and print, for each, its parameters, training seconds and chapter 08's measure of its samples (FD-CLIP against
held-out renders and the CLIP's zero-shot accuracy on them, with the accuracy on real renders beside).

On the small profile's data, at 16 px, a text prior of widths 32/64/64 (1.1 M parameters) draws samples the
book's CLIP names 0.41 of the time, one of 48/96/96 (2.6 M, the profile's own) 0.54 (2-core CPU, 2 and 4 min of
training). On a GPU this answers in minutes what larger priors and images give::

    python -m p2nlib.priors.scale --profile small --device cuda \\
        --config 32,64,64 --config 48,96,96 --config 64,128,128:size=32:steps=4000:batch=128

A config is the UNet's block widths, then optional ``:key=value`` overrides of :class:`PriorConfig` (``size``,
``steps``, ``batch``, ``lr``, ``snr_gamma``, ``bf16`` = 1 to train under bfloat16 autocast); the rest is the
profile's. ``--seed`` sets the training seed, ``--sample-seed`` the samples' (by default the training seed). Trained priors are cached like the
book's (``artifacts/<profile>/priors/``), so a rerun reads them back.
"""
from __future__ import annotations

import argparse
import sys
import time

from p2nlib.core.errors import InputError, P2NError
from p2nlib.core.profiles import Profile
from p2nlib.priors import models, quality, train
from p2nlib.priors.models import PriorConfig

OVERRIDES = {"size": int, "steps": int, "batch": int, "lr": float, "snr_gamma": float, "bf16": lambda v: bool(int(v))}


def parse_config(spec: str, p: Profile) -> PriorConfig:
    """``"48,96,96:size=32:steps=4000"`` -> the profile's :class:`PriorConfig` with those widths and overrides."""
    widths, *rest = spec.split(":")
    try:
        channels = tuple(int(w) for w in widths.split(","))
        extra = {k: OVERRIDES[k](v) for k, v in (item.split("=", 1) for item in rest)}
    except (ValueError, KeyError) as err:
        raise InputError(f"cannot read prior config {spec!r} ({err}): write block widths, then optional "
                         f":key=value with key one of {', '.join(OVERRIDES)}, e.g. 48,96,96:size=32:steps=4000") from None
    if len(channels) < 2:
        raise InputError(f"prior config {spec!r}: give at least two block widths, e.g. 32,64,64")
    return PriorConfig.from_profile(p, "text", channels=channels, **extra)


def study(p: Profile, encoder, configs: list[PriorConfig], device="cpu", seed: int = 0,
          progress: bool = True, sample_seed: int | None = None) -> list[dict]:
    """One row per config: its size, training seconds and the quality of its samples (chapter 08's measure).
    ``seed`` trains; ``sample_seed`` (default: ``seed``) draws the samples."""
    sample_seed = seed if sample_seed is None else sample_seed
    rows, data, held = [], {}, {}                 # training data and held-out views, once per image size
    for cfg in configs:
        t0 = time.perf_counter()
        if cfg.size not in data:
            data[cfg.size] = train.training_data(p, encoder, cfg, progress)
            held[cfg.size] = quality.held_out(p, cfg)[:2]
        prior = train.text_prior(p, encoder, data[cfg.size], cfg, device, seed, progress)
        scores, *_ = quality.text_prior_quality(prior, encoder, *held[cfg.size], sample_seed)
        rows.append({"config": ",".join(map(str, cfg.channels)) + f" @ {cfg.size} px, {cfg.steps} x {cfg.batch}"
                               + (", bf16" if cfg.bf16 else ""),
                     "parameters": f"{models.param_count(prior) / 1e6:.2f} M", "training s": round(prior.info["seconds"], 1),
                     "zero-shot on samples": round(scores["zero-shot top-1 on samples"], 3),
                     "zero-shot on real renders": round(scores["zero-shot top-1 on real renders"], 3),
                     "FD-CLIP samples vs real": round(scores["FD-CLIP samples vs real"], 3),
                     "total s": round(time.perf_counter() - t0, 1)})
    return rows


def main(argv: list[str] | None = None) -> int:
    from p2nlib import clip
    from p2nlib.core.device import resolve_device
    from p2nlib.core.profiles import get_profile

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--profile", default="small")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--seed", type=int, default=0, help="training seed")
    ap.add_argument("--sample-seed", type=int, default=None, help="seed of the samples (default: --seed)")
    ap.add_argument("--config", action="append", help="block widths[:key=value...]; repeat for several "
                    "(default: the profile's own prior and one twice as wide)")
    args = ap.parse_args(argv)
    try:
        p = get_profile(args.profile)
        default = ",".join(map(str, p.text_prior_channels))
        specs = args.config or [default, ",".join(str(2 * c) for c in p.text_prior_channels)]
        configs = [parse_config(s, p) for s in specs]
        device = resolve_device(args.device)
        encoder = clip.load_encoder(p, device)
    except P2NError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    rows = study(p, encoder, configs, device, args.seed, sample_seed=args.sample_seed)
    import pandas as pd

    print(pd.DataFrame(rows).set_index("config").to_markdown())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
