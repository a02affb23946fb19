"""Benchmarks that print their figures (``make bench``). Ratios are measured in one run.

``pipeline``: a prompt -> NeRF parameters (one forward pass) and -> 8 rendered views at 64 px,
with the trained parts of a profile (median of repeated runs).

``fitting``: batched fitting (all NeRFs in one stacked tensor) against the paper's way, one NeRF
at a time, on the same objects, steps and views; NeRFs per hour for each, the ratio, and the
held-out PSNR of both to show equal quality; the achieved GFLOP/s of the batched fit (the MLP's
matrix products, forward and backward, counted from the network's shape) against this machine's sgemm
peak measured in the same run, and with ``--profile-ops`` where the fitting time goes (torch profiler).
The batched fit is timed with its ground truth rendered beforehand (:func:`p2nlib.data.fit.ground_truth`,
itself timed with the world's SDFs eager and compiled), in float32 (the paper's) and with the products in
bfloat16 (``FitConfig.bf16``).

``stages``: one training step of each stage, with its achieved GFLOP/s against the same run's sgemm peak:
stage 1 (the 14 VAEs batched by token shape against one VAE at a time, same initial weights), both
diffusion priors (float32, ``channels_last``, bfloat16 autocast), the small CLIP and the alignment
Transformer (float32, ``channels_last`` for CLIP, bfloat16 autocast), and one text-SDS iteration of a batch
of runs.
"""
from __future__ import annotations

import argparse
import dataclasses
import functools
import os
import statistics
import time
from unittest import mock

import torch

from p2nlib.core.device import resolve_device
from p2nlib.core.errors import ArtifactError
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
    return 2 * size ** 3 / _best_seconds(lambda: a @ b, repeats, device) / 1e9


def profile_fit(objs, spec, cfg, device, rows: int = 12) -> str:
    """The torch profiler's table of a short batched fit, by self CPU time."""
    from torch.profiler import ProfilerActivity, profile

    short = dataclasses.replace(cfg, warmup_steps=min(cfg.warmup_steps, 20), fit_steps=min(cfg.fit_steps, 20))
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        fit.fit(objs, spec, short, device=device, progress=False)
    return prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=rows)


def bench_fitting(profile: str = "small", objects: int = 16, steps: int | None = None,
                  device: str = "auto", profile_ops: bool = False, one_at_a_time: bool = True) -> dict:
    prof = get_profile(profile)
    if steps:
        prof = dataclasses.replace(prof, warmup_steps=steps, fit_steps=steps)
    dev = resolve_device(device)
    objs = store.dataset_objects(dataclasses.replace(prof, objects_per_category=(objects + 7) // 8))[:objects]
    spec, cfg = nerf.NerfSpec.from_profile(prof), fit.FitConfig.from_profile(prof)
    cfg32, cfg16 = dataclasses.replace(cfg, bf16=False), dataclasses.replace(cfg, bf16=True)
    gt_seconds = {}
    for mode in ("0", "1"):                   # the world's SDFs eager, then compiled (warmed up first)
        with mock.patch.dict(os.environ, {"P2N_COMPILE": mode}):
            if mode == "1":
                fit.render_ground_truth(objs[:2], fit.train_poses(cfg)[:1], cfg.image_size, cfg.samples, dev)
            t0 = time.perf_counter()
            gt = fit.ground_truth(objs, cfg, dev)
            gt_seconds[mode] = time.perf_counter() - t0
    t0 = time.perf_counter()
    batched = fit.fit(objs, spec, cfg32, device=dev, progress=False, views=gt)
    t_batched = time.perf_counter() - t0
    t0 = time.perf_counter()
    half = fit.fit(objs, spec, cfg16, device=dev, progress=False, views=gt)
    t_half = time.perf_counter() - t0
    peak = sgemm_peak(device=dev)
    flops = fit_flops(spec, cfg, len(objs))
    out = {
        "objects": len(objs), "steps": cfg.warmup_steps + cfg.fit_steps, "device": str(dev),
        "ground truth, eager world SDFs (s)": gt_seconds["0"],
        "ground truth, compiled world SDFs (s)": gt_seconds["1"],
        "batched NeRFs/hour (fp32)": 3600 * len(objs) / t_batched,
        "batched NeRFs/hour (bf16 products)": 3600 * len(objs) / t_half,
        "batched PSNR (dB, fp32)": batched.psnr_heldout.mean().item(),
        "batched PSNR (dB, bf16 products)": half.psnr_heldout.mean().item(),
        "batched GFLOP/s (MLP products, fp32)": flops / t_batched / 1e9,
        "batched GFLOP/s (MLP products, bf16)": flops / t_half / 1e9,
        "sgemm peak GFLOP/s (1024^2, this run)": peak,
        "fraction of sgemm peak (fp32)": flops / t_batched / 1e9 / peak,
        "fraction of sgemm peak (bf16 products)": flops / t_half / 1e9 / peak,
        "width-W bmm alone, fp32 (fraction of peak)": small_bmm_gflops(spec, cfg, dev) / peak,
    }
    if one_at_a_time:
        t0 = time.perf_counter()
        single = [fit.fit([o], spec, cfg32, device=dev, progress=False, seed=i) for i, o in enumerate(objs)]
        t_single = time.perf_counter() - t0
        out.update({"one-at-a-time NeRFs/hour": 3600 * len(objs) / t_single,
                    "batched speed-up over one at a time": t_single / t_batched,
                    "one-at-a-time PSNR (dB)": torch.cat([r.psnr_heldout for r in single]).mean().item()})
    if profile_ops:
        print(profile_fit(objs, spec, cfg32, dev))
    return out


def small_bmm_gflops(spec: nerf.NerfSpec, cfg: fit.FitConfig, device, objects: int = 48, repeats: int = 20) -> float:
    """The fitting's hidden-layer product alone, (B, rays x samples, W) @ (B, W, W) in float32: the most one
    of its matrix products reaches on this machine, whatever surrounds it."""
    n, w = cfg.rays * cfg.samples, spec.width
    x, m = torch.randn(objects, n, w, device=device), torch.randn(objects, w, w, device=device)
    return 2 * objects * n * w * w / _best_seconds(lambda: torch.bmm(x, m), repeats, device) / 1e9


def _seconds(fn, repeats: int, device) -> list[float]:
    """Wall times of ``repeats`` calls of ``fn`` after one warm-up call (synchronised on a GPU)."""
    fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        if torch.device(device).type == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - t0)
    return times


def _best_seconds(fn, repeats: int, device) -> float:
    return min(_seconds(fn, repeats, device))


def _median_seconds(fn, repeats: int, device) -> float:
    return statistics.median(_seconds(fn, repeats, device))


def _train_step(opt, loss_fn, dev, bf16: bool = False):
    """One optimiser step of ``loss_fn()`` (under bfloat16 autocast with ``bf16``; the loss summed in float32)."""
    with torch.autocast(dev.type, dtype=torch.bfloat16, enabled=bf16):
        loss = loss_fn().float().sum()
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()


def _step_flops(step) -> float:
    """FLOPs of one call of ``step`` (matrix products and convolutions, forward and backward)."""
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter:
        step()
    return float(counter.get_total_flops())


def bench_stages(profile: str = "small", device: str = "auto", repeats: int = 10) -> dict:
    """One training step of stage 1, of both priors and one SDS iteration: ms and GFLOP/s each."""
    from p2nlib.generate import vae
    from p2nlib.priors import models

    prof, dev = get_profile(profile), resolve_device(device)
    peak = sgemm_peak(device=dev)
    out: dict = {"device": str(dev), "sgemm peak GFLOP/s (1024^2, this run)": peak}

    # stage 1: the same 14 VAEs (same initial weights) batched by token shape, and one at a time, in float32;
    # then batched with the profile's bfloat16 products (when it sets them), all at the profile's batch
    spec, cfg = nerf.NerfSpec.from_profile(prof), vae.VaeConfig.from_profile(prof)
    out["stage 1 batch"] = cfg.batch
    params = {k: v.to(dev) for k, v in nerf.init_params(spec, cfg.batch, "random", 0).items()}
    torch.manual_seed(0)
    model = vae.ParamVAE(spec, dataclasses.replace(cfg, bf16=False))
    model.set_stats(params)
    model.to(dev).train()
    tokens = torch.nn.ModuleList(model.token_vaes()).to(dev)
    gen = torch.Generator().manual_seed(0)
    variants = [("batched by token shape", model, lambda: model.loss(params, gen)[0]),
                ("one VAE at a time", tokens, lambda: vae.per_token_loss(model, list(tokens), params, gen)[0])]
    if cfg.bf16:
        half = vae.ParamVAE(spec, cfg).to(dev).train()
        half.load_state_dict(model.state_dict())
        variants.append(("batched, bf16 products", half, lambda: half.loss(params, gen)[0]))
    for name, mod, loss_fn in variants:
        opt = torch.optim.Adam(mod.parameters(), lr=cfg.lr, fused=dev.type in ("cpu", "cuda"))
        step = functools.partial(_train_step, opt, loss_fn, dev)
        sec, fl = _median_seconds(step, repeats, dev), _step_flops(step)
        out[f"stage 1 step, {name} (ms)"] = 1000 * sec
        out[f"stage 1 step, {name} (GFLOP/s)"] = fl / sec / 1e9

    # the diffusion priors: one training step (forward, backward, AdamW) at the profile's batch and size
    for kind in ("text", "view"):
        pcfg = models.PriorConfig.from_profile(prof, kind)
        prior = (models.TextPrior(pcfg, prof.clip_embed_dim) if kind == "text" else models.ViewPrior(pcfg)).to(dev)
        x = torch.randn(pcfg.batch, 3, pcfg.size, pcfg.size, device=dev)
        t = torch.randint(0, pcfg.timesteps, (pcfg.batch,), device=dev)
        cond = ((torch.randn(pcfg.batch, prof.clip_embed_dim, device=dev),) if kind == "text" else
                (torch.randn(pcfg.batch, 3, pcfg.size, pcfg.size, device=dev), torch.randn(pcfg.batch, 4, device=dev)))
        opt = torch.optim.AdamW(prior.parameters(), lr=pcfg.lr)
        for variant in ("fp32", "channels_last", "bf16 autocast"):
            xx = x.contiguous(memory_format=torch.channels_last) if variant == "channels_last" else x
            if variant == "channels_last":
                prior.to(memory_format=torch.channels_last)

            step = functools.partial(_train_step, opt, lambda xx=xx: (prior(xx, t, *cond).float() - xx).pow(2).mean(),
                                     dev, variant == "bf16 autocast")
            try:
                sec = _median_seconds(step, repeats, dev)
            except RuntimeError as err:          # a variant this torch build cannot run
                out[f"{kind} prior step, {variant}"] = f"failed: {str(err).splitlines()[0][:80]}"
                continue
            out[f"{kind} prior step, {variant} (ms)"] = 1000 * sec
            if variant == "fp32":
                fl = _step_flops(step)
                out[f"{kind} prior ({models.param_count(prior) / 1e6:.2f} M params) GFLOP/s, fp32"] = fl / sec / 1e9
        prior.to(memory_format=torch.contiguous_format)

    # the small CLIP (02) and the alignment Transformer (04, 07): one training step, in float32, with
    # ``channels_last`` (CLIP's convolutional image tower) and under bfloat16 autocast; measured, not adopted
    out.update(_clip_and_aligner_steps(prof, dev, repeats))

    # one text-SDS iteration: render every run at the prior's size, distil, step; in float32, and with the profile's
    # bfloat16 products (``opt_bf16``: the NeRF's and the prior's) when it sets them
    from p2nlib.baselines import optimize, sds

    pcfg = models.PriorConfig.from_profile(prof, "text")
    prior = models.TextPrior(pcfg, prof.clip_embed_dim).to(dev).eval()
    runs = 24
    guide = sds.TextSDSGuidance(prior, torch.randn(runs, prof.clip_embed_dim), scale=prof.sds_text_scale)
    poses = torch.stack([fit.train_poses(fit.FitConfig.from_profile(prof))[:prof.opt_views]] * runs)
    idx = torch.arange(runs)
    for bf16 in sorted({False, prof.opt_bf16}):
        p = {k: v.to(dev).requires_grad_(True) for k, v in optimize.template_init(spec, runs).items()}
        opt = torch.optim.Adam(p.values(), lr=prof.sds_lr)
        render_fn = optimize._render_fn(p, spec, prof.opt_samples, bf16)

        sds_step = functools.partial(_train_step, opt, lambda render_fn=render_fn: guide.loss(render_fn, poses, pcfg.size, idx),
                                     dev, bf16)
        sec = _median_seconds(sds_step, repeats, dev)
        name = "text SDS iteration" + (", bf16 products" if bf16 else "")
        out[f"{name}, {runs} runs (ms)"] = 1000 * sec
        if not bf16:
            out["text SDS iteration GFLOP/s"] = _step_flops(sds_step) / sec / 1e9
    return out


def _clip_and_aligner_steps(prof, dev, repeats: int) -> dict:
    """ms of one training step of the small CLIP (when the profile trains one) and of the aligner, per variant."""
    from open_clip.loss import ClipLoss

    from p2nlib.clip import small
    from p2nlib.generate import align

    out: dict = {}
    jobs = []
    if prof.clip_model == "small":
        enc = small.build_small_clip(prof, dev, seed=0)
        model = enc.model.train()
        b, size = prof.clip_batch, prof.clip_image_size
        img = torch.rand(b, 3, size, size, device=dev)
        tok = enc.tokenize(["a red chair with four legs"] * b).to(dev)
        clip_opt, clip_loss = torch.optim.AdamW(model.parameters(), lr=prof.clip_lr), ClipLoss()

        def clip_variant(variant: str):
            last = variant == "channels_last"
            model.visual.to(memory_format=torch.channels_last if last else torch.contiguous_format)
            x = img.contiguous(memory_format=torch.channels_last) if last else img
            loss = lambda: clip_loss(model.encode_image(x, normalize=True).float(),          # noqa: E731
                                     model.encode_text(tok, normalize=True).float(), model.logit_scale.exp())
            return functools.partial(_train_step, clip_opt, loss, dev, variant == "bf16 autocast")
        jobs.append(("small CLIP step", clip_variant, ("fp32", "channels_last", "bf16 autocast")))
    cfg = align.AlignConfig.from_profile(prof)
    aligner = align.Aligner(cfg).to(dev).train()
    emb = torch.randn(cfg.batch, cfg.embed_dim, device=dev)
    lat = torch.randn(cfg.batch, align.NUM_TOKENS, cfg.latent_dim, device=dev)
    align_opt = torch.optim.AdamW(aligner.parameters(), lr=cfg.lr)

    def align_variant(variant: str):
        return functools.partial(_train_step, align_opt, lambda: aligner.loss(emb, lat), dev, variant == "bf16 autocast")
    jobs.append(("aligner step", align_variant, ("fp32", "bf16 autocast")))
    for name, make, variants in jobs:
        for variant in variants:
            out[f"{name}, {variant} (ms)"] = 1000 * _median_seconds(make(variant), repeats, dev)
    return out


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
    ap.add_argument("which", nargs="*", default=["pipeline", "fitting", "stages"],
                    choices=["pipeline", "fitting", "stages"])
    ap.add_argument("--profile", default="small")
    ap.add_argument("--objects", type=int, default=16)
    ap.add_argument("--steps", type=int, default=None, help="override warm-up and photometric steps")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--profile-ops", action="store_true", help="also print where the fitting time goes")
    ap.add_argument("--no-one-at-a-time", action="store_true", help="skip fitting the objects one at a time")
    args = ap.parse_args(argv)
    for which in args.which:
        if which == "pipeline":
            print(f"pipeline benchmark: profile={args.profile}, threads={torch.get_num_threads()} "
                  "(targets on a 2-core CPU: <= 50 ms to parameters, <= 1 s to 8 views at 64 px)")
            try:
                res = bench_pipeline(args.profile, args.device)
            except ArtifactError as err:     # the pipeline needs the book's trained parts; the rest does not
                print(f"  skipped: {err}")
                continue
        elif which == "fitting":
            print(f"fitting benchmark: profile={args.profile}, {args.objects} objects, threads={torch.get_num_threads()}")
            res = bench_fitting(args.profile, args.objects, args.steps, args.device, args.profile_ops,
                                one_at_a_time=not args.no_one_at_a_time)
        else:
            print(f"stage benchmark: profile={args.profile}, one training step each, threads={torch.get_num_threads()}")
            res = bench_stages(args.profile, args.device)
        for k, v in res.items():
            print(f"  {k:<50} {v:.2f}" if isinstance(v, float) else f"  {k:<50} {v}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
