"""Benchmarks that print their figures (``make bench``). Ratios are measured in one run.

``pipeline``: a prompt -> NeRF parameters (one forward pass) and -> 8 rendered views at 64 px,
with the trained parts of a profile (median of repeated runs).

``fitting``: batched fitting (all NeRFs in one stacked tensor) against the paper's way, one NeRF
at a time, on the same objects, steps and views; NeRFs per hour for each, the ratio, and the
held-out PSNR of both to show equal quality; the achieved GFLOP/s of the batched fit (the MLP's
matrix products, forward and backward, counted from the network's shape) against this machine's sgemm
peak measured in the same run, and with ``--profile-ops`` where the fitting time goes (torch profiler).
"""
from __future__ import annotations

import argparse
import dataclasses
import time

import torch

from p2nlib.core.device import resolve_device
from p2nlib.core.profiles import get_profile
from p2nlib.data import fit, nerf, store


def mlp_flops(spec: nerf.NerfSpec) -> int:
    """Multiply-add FLOPs of one NeRF MLP evaluation (2 per weight; biases and activations not counted)."""
    return 2 * sum(a * b for a, b in (s for s in spec.shapes().values() if len(s) == 2))


def fit_flops(spec: nerf.NerfSpec, cfg: fit.FitConfig, objects: int) -> float:
    """Matrix-product FLOPs of fitting ``objects`` NeRFs: every MLP evaluation of the warm start (points)
    and the photometric phase (rays x samples), forward plus backward (x 3)."""
    evals = cfg.warmup_steps * cfg.warm_points + cfg.fit_steps * cfg.rays * cfg.samples
    return 3.0 * mlp_flops(spec) * evals * objects


def sgemm_peak(size: int = 1024, repeats: int = 20, device: str | torch.device = "cpu") -> float:
    """This machine's single-precision matrix-product speed (GFLOP/s, best of ``repeats``)."""
    a, b = torch.randn(size, size, device=device), torch.randn(size, size, device=device)
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        a @ b
        if torch.device(device).type == "cuda":
            torch.cuda.synchronize()
        best = min(best, time.perf_counter() - t0)
    return 2 * size ** 3 / best / 1e9


def profile_fit(objs, spec, cfg, device, rows: int = 12) -> str:
    """The torch profiler's table of a short batched fit, by self CPU time."""
    from torch.profiler import ProfilerActivity, profile

    short = dataclasses.replace(cfg, warmup_steps=min(cfg.warmup_steps, 20), fit_steps=min(cfg.fit_steps, 20))
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        fit.fit(objs, spec, short, device=device, progress=False)
    return prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=rows)


def bench_fitting(profile: str = "small", objects: int = 16, steps: int | None = None,
                  device: str = "auto", profile_ops: bool = False) -> dict:
    prof = get_profile(profile)
    if steps:
        prof = dataclasses.replace(prof, warmup_steps=steps, fit_steps=steps)
    dev = resolve_device(device)
    objs = store.dataset_objects(dataclasses.replace(prof, objects_per_category=(objects + 7) // 8))[:objects]
    spec, cfg = nerf.NerfSpec.from_profile(prof), fit.FitConfig.from_profile(prof)
    t0 = time.perf_counter()
    batched = fit.fit(objs, spec, cfg, device=dev, progress=False)
    t_batched = time.perf_counter() - t0
    t0 = time.perf_counter()
    single = [fit.fit([o], spec, cfg, device=dev, progress=False, seed=i) for i, o in enumerate(objs)]
    t_single = time.perf_counter() - t0
    psnr_single = torch.cat([r.psnr_heldout for r in single])
    gflops = fit_flops(spec, cfg, len(objs)) / t_batched / 1e9
    peak = sgemm_peak(device=dev)
    if profile_ops:
        print(profile_fit(objs, spec, cfg, dev))
    return {
        "objects": len(objs), "steps": cfg.warmup_steps + cfg.fit_steps, "device": str(dev),
        "batched NeRFs/hour": 3600 * len(objs) / t_batched,
        "one-at-a-time NeRFs/hour": 3600 * len(objs) / t_single,
        "speed-up": t_single / t_batched,
        "batched PSNR (dB)": batched.psnr_heldout.mean().item(),
        "one-at-a-time PSNR (dB)": psnr_single.mean().item(),
        "batched GFLOP/s (MLP products)": gflops,
        "sgemm peak GFLOP/s (1024^2, this run)": peak,
        "fraction of sgemm peak": gflops / peak,
    }


def bench_pipeline(profile: str = "small", device: str = "auto", repeats: int = 20) -> dict:
    import statistics

    from p2nlib.generate.pipeline import Prompt2NeRF

    pipe = Prompt2NeRF.load(profile, device)
    img = torch.rand(pipe.profile.clip_image_size, pipe.profile.clip_image_size, 3)
    pipe.from_text("a brown table"), pipe.from_image(img)          # warm-up
    t_text, t_image, t_render = [], [], []
    for i in range(repeats):
        t_text.append(pipe.from_text("a brown table", seed=i).seconds)
        gen = pipe.from_image(img)
        t_image.append(gen.seconds)
        t0 = time.perf_counter()
        pipe.render(gen, views=8, size=64)
        t_render.append(time.perf_counter() - t0)
    med = statistics.median
    return {"device": str(pipe.device), "text -> NeRF params (ms)": 1000 * med(t_text),
            "image -> NeRF params (ms)": 1000 * med(t_image),
            "image -> params + 8 views at 64 px (s)": med(t_image) + med(t_render)}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("which", nargs="*", default=["pipeline", "fitting"], choices=["pipeline", "fitting"])
    ap.add_argument("--profile", default="small")
    ap.add_argument("--objects", type=int, default=16)
    ap.add_argument("--steps", type=int, default=None, help="override warm-up and photometric steps")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--profile-ops", action="store_true", help="also print where the fitting time goes")
    args = ap.parse_args(argv)
    for which in args.which:
        if which == "pipeline":
            print(f"pipeline benchmark: profile={args.profile}, threads={torch.get_num_threads()} "
                  "(targets on a 2-core CPU: <= 50 ms to parameters, <= 1 s to 8 views at 64 px)")
            res = bench_pipeline(args.profile, args.device)
        else:
            print(f"fitting benchmark: profile={args.profile}, {args.objects} objects, threads={torch.get_num_threads()}")
            res = bench_fitting(args.profile, args.objects, args.steps, args.device, args.profile_ops)
        for k, v in res.items():
            print(f"  {k:<40} {v:.2f}" if isinstance(v, float) else f"  {k:<40} {v}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
