"""Per-prompt NeRF optimisation: the baselines of §4.5–4.6 and the convergence test of supplement VI.

The paper's baselines are DreamFusion (text) and Zero-1-to-3 (image), run through Stable-Dreamfusion
with the paper's own NeRF architecture. Neither diffusion model can be had offline, so guidance here
comes from stand-ins (:mod:`p2nlib.baselines.guidance`).

Guidances are *pluggable*: :func:`optimize` takes any object with a ``loss(render, idx)`` method, and any
initialisation (a stacked parameter dict: the shared template, a fitted NeRF, a generated NeRF).

Many runs (prompt × initialisation × seed) are optimised as one batched NeRF (one Adam step for all;
each run's loss only touches its own parameters, so runs do not interact). Each run draws its own
random views from its own seed, and is stopped by its own convergence test: every epoch of
``epoch_iters`` iterations, render ``check_views`` fixed views evenly spaced in azimuth; with
``d_t`` the mean squared pixel change since the previous epoch, a run has converged when
``d_t < eps`` for ``k`` epochs in a row. A converged run leaves the batch (its parameters are kept).

With ``average=True`` (ours) the test and every logged quantity read each run's weights averaged over the
epoch's iterations: SDS moves the raw weights by noise at every step, so their renders never stop
changing, while the average settles once the run stops going anywhere. (An exponential moving average,
which stable-dreamfusion keeps, remembers the initial weights for about 1/(1 - decay) iterations: with
decay 0.95 and 10-iteration epochs it shrinks a steadily drifting run's change in the first epochs to
6-30% of its true value, calling such runs converged at the earliest epoch. The epoch's mean has no memory
across epochs.) The raw weights' test (the paper's) is logged beside it (``iterations_raw``). Each epoch also logs the CLIP embedding and the occupied fraction (opacity > 0.5)
of every check view, from which :mod:`p2nlib.eval.built` decides whether a run has built its object.
"""
from __future__ import annotations

import functools
import time
from dataclasses import asdict, dataclass, field

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from p2nlib.core.device import native_bf16
from p2nlib.core.profiles import Profile
from p2nlib.data import cameras, fit, nerf, render
from p2nlib.baselines.guidance import frozen
from p2nlib.eval.built import occupied_fraction


@dataclass(frozen=True)
class OptimConfig:
    size: int = 24            # render size of guidance views (upsampled to the CLIP input size)
    samples: int = 24         # samples per ray
    views: int = 1            # random views per iteration and run
    lr: float = 2e-3          # Adam, constant (a decaying rate would make "convergence" a schedule artefact)
    epoch_iters: int = 100    # iterations per epoch of the convergence test (paper: 100)
    eps: float = 1e-4         # convergence threshold on the mean squared pixel change per epoch
    k: int = 3                # epochs in a row below eps
    max_epochs: int = 40      # a run that has not converged by then is reported as "not converged"
    check_views: int = 4      # fixed views rendered each epoch (evenly spaced azimuths)
    check_size: int = 32
    elevation: tuple[float, float] = (10.0, 40.0)
    average: bool = False     # the test reads each epoch's mean weights (ours; False: the raw weights, the paper's)
    bf16: bool = False        # the NeRF's and the guidance model's products in bfloat16 while optimising (ours; the
                              # check renders, the CLIP logs and the test stay float32)

    @classmethod
    def from_profile(cls, p: Profile, **overrides) -> "OptimConfig":
        base = dict(size=p.opt_size, samples=p.opt_samples, views=p.opt_views, lr=p.opt_lr,
                    epoch_iters=p.opt_epoch_iters, eps=p.opt_eps, k=p.opt_k, max_epochs=p.opt_max_epochs,
                    check_views=p.opt_check_views, check_size=p.image_size, bf16=p.opt_bf16 and native_bf16())
        base.update(overrides)
        return cls(**base)

    @property
    def ceiling(self) -> float:
        """The largest speed-up the test can report: the cap over the earliest possible convergence (k epochs)."""
        return ceiling(self.epoch_iters, self.k, self.max_epochs)

    def describe(self) -> str:
        avg = " of the weights averaged over each epoch" if self.average else ""
        return (f"convergence test{avg}: every {self.epoch_iters} iterations render {self.check_views} fixed views at "
                f"{self.check_size} px; converged when the mean squared pixel change < {self.eps:g} for {self.k} "
                f"epochs in a row (at most {self.max_epochs} epochs = {self.max_epochs * self.epoch_iters} "
                f"iterations; largest measurable speed-up {self.ceiling:g}×). Guidance renders {self.views} random view(s) per iteration at {self.size} px, "
                f"{self.samples} samples per ray; Adam, constant lr {self.lr:g}"
                + ("; products in bfloat16 while optimising (ours; checks in float32)." if self.bf16 else "."))


# ----------------------------------------------------------------------------------------------
# convergence test (supplement VI)
# ----------------------------------------------------------------------------------------------

def converged_epoch(changes, eps: float, k: int) -> int | None:
    """First epoch t (1-based index into ``changes``: d_1, d_2, ...) at which the last ``k`` changes
    were all below ``eps``; None when that never happens."""
    streak = 0
    for t, d in enumerate(changes, start=1):
        streak = streak + 1 if d < eps else 0
        if streak >= k:
            return t
    return None


def ceiling(epoch_iters: int, k: int, max_epochs: int) -> float:
    """Cap / earliest convergence = ``max_epochs / k``: no ratio of iterations to convergence can exceed it
    (a run that converges at the earliest possible epoch, against one counted at the cap)."""
    if min(epoch_iters, k, max_epochs) <= 0:
        raise ValueError(f"epoch_iters, k and max_epochs must be positive, got {epoch_iters}, {k}, {max_epochs}")
    return (max_epochs * epoch_iters) / (k * epoch_iters)


# ----------------------------------------------------------------------------------------------
# the optimiser
# ----------------------------------------------------------------------------------------------

@dataclass
class OptimResult:
    params: dict[str, torch.Tensor]          # (R, ...) at convergence, or at the last epoch
    iterations: list[int | None]             # iterations to convergence; None = did not converge
    changes: list[list[float]]               # d_t per epoch, per run
    similarity: list[list[float]]            # CLIP similarity to the target per epoch (index 0 = init)
    snapshots: torch.Tensor                  # (R, epochs + 1, H, W, 3) uint8: check view 0 at each epoch
    seconds: list[float]                     # wall time attributed to each run (batched share)
    config: OptimConfig = field(default_factory=OptimConfig)
    final_params: dict[str, torch.Tensor] | None = None   # at the end of the run (= params when stopped)
    changes_raw: list[list[float]] | None = None          # d_t of the raw weights (= changes without an EMA)
    embeddings: torch.Tensor | None = None  # (R, epochs + 1, check_views, D) float16 CLIP embeddings of the checks
    occupancy: torch.Tensor | None = None   # (R, epochs + 1, check_views): fraction of pixels with opacity > 0.5
    views: torch.Tensor | None = None       # (R, epochs + 1, check_views, H, W, 3) uint8: every check view per epoch
    alphas: torch.Tensor | None = None      # (R, epochs + 1, check_views, H, W) uint8: their opacity (x 255)

    @property
    def iterations_raw(self) -> list[int | None]:
        """Iterations to convergence by the test on the raw weights (the paper's; None = did not converge)."""
        if self.changes_raw is None:
            if self.config.average:
                raise ValueError("these runs did not log the test on the raw weights (optimize(raw_test=False))")
            return list(self.iterations)
        out = []
        for ch in self.changes_raw:
            e = converged_epoch(ch, self.config.eps, self.config.k)
            out.append(None if e is None else e * self.config.epoch_iters)
        return out

    @property
    def cap(self) -> int:
        """The iteration cap; non-converged runs are counted here."""
        return self.config.max_epochs * self.config.epoch_iters

    def _epoch(self, run: int, iteration: int) -> int:
        return min(iteration // self.config.epoch_iters, len(self.similarity[run]) - 1)

    def similarity_at(self, run: int, iteration: int) -> float:
        """Similarity of ``run`` at ``iteration`` (an epoch boundary; a stopped run keeps its last value)."""
        return self.similarity[run][self._epoch(run, iteration)]

    def snapshot_at(self, run: int, iteration: int) -> torch.Tensor:
        return self.snapshots[run, self._epoch(run, iteration)].float() / 255.0

    def checks_at(self, run: int, epoch: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Every check view (V, H, W, 3) in [0, 1] and its opacity (V, H, W) of ``run`` at logged ``epoch`` (0: the
        start; a stopped run keeps its last epoch)."""
        if self.views is None or self.alphas is None:
            raise ValueError("these runs were optimised without check-view logs; rerun them")
        e = min(epoch, self.views.shape[1] - 1)
        return self.views[run, e].float() / 255.0, self.alphas[run, e].float() / 255.0

    def final_similarity(self, run: int) -> float:
        return self.similarity[run][-1]

    def converged_similarity(self, run: int) -> float:
        """Similarity at convergence (at the cap when the run did not converge)."""
        it = self.iterations[run]
        return self.similarity_at(run, it if it is not None else self.cap)

    def iterations_to_reach(self, run: int, level: float) -> int | None:
        """First logged iteration at which the similarity reached ``level`` (None: never)."""
        for e, s in enumerate(self.similarity[run]):
            if s >= level:
                return e * self.config.epoch_iters
        return None

    def to_tensors(self) -> tuple[dict[str, torch.Tensor], dict]:
        """(tensors, JSON-able data) holding the whole result exactly (see :meth:`from_tensors`)."""
        tensors = {f"params.{k}": v for k, v in self.params.items()}
        tensors.update({f"final.{k}": v for k, v in (self.final_params or {}).items()})
        tensors["snapshots"] = self.snapshots
        for name in ("embeddings", "occupancy", "views", "alphas"):
            if getattr(self, name) is not None:
                tensors[name] = getattr(self, name)
        data = {"iterations": self.iterations, "changes": self.changes, "similarity": self.similarity,
                "seconds": self.seconds, "config": asdict(self.config), "changes_raw": self.changes_raw}
        return tensors, data

    @classmethod
    def from_tensors(cls, tensors: dict[str, torch.Tensor], data: dict) -> "OptimResult":
        cfg = dict(data["config"])
        cfg["elevation"] = tuple(cfg["elevation"])
        params = {k[len("params."):]: v for k, v in tensors.items() if k.startswith("params.")}
        final = {k[len("final."):]: v for k, v in tensors.items() if k.startswith("final.")} or None
        return cls(params, list(data["iterations"]), data["changes"], data["similarity"], tensors["snapshots"],
                   list(data["seconds"]), OptimConfig(**cfg), final, data.get("changes_raw"),
                   tensors.get("embeddings"), tensors.get("occupancy"), tensors.get("views"), tensors.get("alphas"))

    def seconds_to(self, run: int, iteration: int | None) -> float:
        """Wall time attributed to ``run`` up to ``iteration`` (its per-epoch share times epochs)."""
        epochs = len(self.changes[run])
        if epochs == 0:
            return 0.0
        per_epoch = self.seconds[run] / epochs
        cap = epochs * self.config.epoch_iters
        return per_epoch * min(iteration if iteration is not None else cap, cap) / self.config.epoch_iters


def _render_fn(params, spec: nerf.NerfSpec, samples: int, bf16: bool = False):
    """Differentiable renderer of the batched runs at per-run poses (b, n, 4, 4). Samples are not
    jittered, so a run's trajectory depends only on its own seed, not on the rest of the batch.
    ``bf16``: the MLP's products in bfloat16 (:func:`p2nlib.data.nerf.forward`)."""
    def fn(c2w: torch.Tensor, size: int):
        b, n = c2w.shape[:2]
        with torch.autocast("cpu", enabled=False):                                 # cameras in float32 under bf16
            o, d = cameras.rays(c2w.reshape(b * n, 4, 4).cpu().float(), size)      # (b*n, P, 3)
        dev = params["l0.weight"].device
        o, d = o.reshape(b, n * size * size, 3).to(dev), d.reshape(b, n * size * size, 3).to(dev)
        rgb, opacity = render.render_rays(lambda x: nerf.forward(params, x, spec.freqs, bf16=bf16), o, d, samples)
        return rgb.reshape(b, n, size, size, 3), opacity.reshape(b, n, size, size)
    return fn


@torch.no_grad()
def _check_render(params, spec, poses: torch.Tensor, size: int, samples: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Renders (b, V, S, S, 3) and opacities (b, V, S, S) of the batched runs at the fixed check poses, in float32
    (the evaluation renderer, in cache-sized chunks)."""
    return fit.render_nerfs({k: v.detach() for k, v in params.items()}, spec, poses, size, samples, opacity=True)


def _shrink(params: dict, opt: torch.optim.Adam, keep: torch.Tensor, lr: float):
    """Keep runs ``keep`` (bool mask) in the batch: new leaf tensors, Adam state sliced alongside."""
    new = {k: v.detach()[keep].clone().requires_grad_(True) for k, v in params.items()}
    new_opt = torch.optim.Adam(new.values(), lr=lr)
    for k, v in params.items():
        st = opt.state.get(v)
        if st:
            new_opt.state[new[k]] = {"step": st["step"].clone(), "exp_avg": st["exp_avg"][keep].clone(),
                                     "exp_avg_sq": st["exp_avg_sq"][keep].clone()}
    return new, new_opt


def optimize(init: dict[str, torch.Tensor], guidance, spec: nerf.NerfSpec, cfg: OptimConfig,
             seeds: list[int], targets: torch.Tensor, encoder, device: torch.device | str = "cpu",
             progress: bool = True, desc: str = "per-prompt optimisation",
             stop_at_convergence: bool = True, raw_test: bool = True) -> OptimResult:
    """Optimise R runs at once from ``init`` (R, ...) with ``guidance``; each run stops at convergence.

    ``seeds`` (R,) draw each run's random views; ``targets`` (R, D) are the CLIP embeddings the
    logged similarity is measured against (the text, or the prompt image). With
    ``stop_at_convergence=False`` every run goes on to ``max_epochs`` (complete curves); the
    iterations to convergence and ``params`` at convergence are recorded all the same, and
    ``final_params`` holds the parameters at the end. ``raw_test=False`` (with ``cfg.average``) skips the check
    renders of the raw weights, whose changes are the paper's convergence test beside ours: ``changes_raw`` is
    then None (for runs that read no iteration count, such as the baselines' controls)."""
    R = nerf.check_params(init, spec)
    if len(seeds) != R or targets.shape[0] != R:
        raise ValueError(f"{R} runs need {R} seeds and {R} targets, got {len(seeds)} and {targets.shape[0]}")
    device = torch.device(device)
    gens = [torch.Generator().manual_seed(int(s)) for s in seeds]
    check_poses = cameras.turntable(cfg.check_views, elevation=25.0)
    targets = F.normalize(targets.float(), dim=-1)

    params = {k: v.detach().to(device).clone().contiguous().requires_grad_(True) for k, v in init.items()}
    opt = torch.optim.Adam(params.values(), lr=cfg.lr)
    avg = None                 # the last epoch's mean weights (with ``cfg.average``)
    active = torch.arange(R)
    out_params = {k: v.detach().cpu().clone() for k, v in init.items()}
    final_params = {k: v.detach().cpu().clone() for k, v in init.items()}
    iterations: list[int | None] = [None] * R
    changes: list[list[float]] = [[] for _ in range(R)]
    changes_raw: list[list[float]] = [[] for _ in range(R)]
    sims: list[list[float]] = [[] for _ in range(R)]
    snaps: list[list[torch.Tensor]] = [[] for _ in range(R)]
    embs: list[list[torch.Tensor]] = [[] for _ in range(R)]
    occs: list[list[torch.Tensor]] = [[] for _ in range(R)]
    views: list[list[torch.Tensor]] = [[] for _ in range(R)]
    alphas: list[list[torch.Tensor]] = [[] for _ in range(R)]
    seconds = [0.0] * R

    def observed():
        """The weights the test reads: the last epoch's mean, or the raw weights."""
        return avg if avg is not None else params

    def observe(p):
        imgs, opacity = _check_render(p, spec, check_poses, cfg.check_size, cfg.samples)
        imgs = imgs.cpu()                                                                # (b, C, H, W, 3)
        emb = encoder.encode_images(imgs.flatten(0, 1)).reshape(*imgs.shape[:2], -1).float()
        s = (emb * targets[active][:, None]).sum(-1).mean(1)
        occ = occupied_fraction(opacity.cpu())                                           # (b, C)
        return imgs, s, emb, occ, opacity.cpu()

    def log(r, j, imgs, s, emb, occ, opacity):
        sims[r].append(float(s[j]))
        snaps[r].append((imgs[j, 0] * 255).round().to(torch.uint8))
        views[r].append((imgs[j] * 255).round().to(torch.uint8))
        alphas[r].append((opacity[j].clamp(0, 1) * 255).round().to(torch.uint8))
        embs[r].append(emb[j].half())
        occs[r].append(occ[j])

    prev, s0, e0, o0, a0 = observe(params)
    prev_raw = prev
    for j, r in enumerate(active.tolist()):
        log(r, j, prev, s0, e0, o0, a0)

    bar = tqdm(total=cfg.max_epochs, desc=desc, disable=not progress, mininterval=5)
    with frozen(encoder.model):
        for epoch in range(1, cfg.max_epochs + 1):
            t0 = time.perf_counter()
            fn = _render_fn(params, spec, cfg.samples, cfg.bf16)
            acc = {k: torch.zeros_like(v) for k, v in params.items()} if cfg.average else None
            for _ in range(cfg.epoch_iters):
                az = torch.stack([torch.rand(cfg.views, generator=gens[r]) for r in active.tolist()]) * 360
                el = torch.stack([torch.rand(cfg.views, generator=gens[r]) for r in active.tolist()])
                el = cfg.elevation[0] + (cfg.elevation[1] - cfg.elevation[0]) * el
                c2w = cameras.orbit(az.reshape(-1), el.reshape(-1)).reshape(len(active), cfg.views, 4, 4)
                with torch.autocast(device.type, dtype=torch.bfloat16, enabled=cfg.bf16):
                    loss = guidance.loss(fn, c2w, cfg.size, active)
                opt.zero_grad(set_to_none=True)
                loss.float().sum().backward()
                opt.step()
                if acc is not None:
                    with torch.no_grad():
                        for k, v in params.items():
                            acc[k].add_(v)
            if acc is not None:
                avg = {k: v / cfg.epoch_iters for k, v in acc.items()}
            trained = time.perf_counter() - t0          # the optimisation's own time, without the checks
            imgs, s, emb, occ, opacity = observe(observed())
            d = (imgs - prev).pow(2).mean((1, 2, 3, 4))
            prev = imgs
            if avg is not None and raw_test:
                raw, _ = _check_render(params, spec, check_poses, cfg.check_size, cfg.samples)
                raw = raw.cpu()
                d_raw = (raw - prev_raw).pow(2).mean((1, 2, 3, 4))
                prev_raw = raw
            else:
                d_raw = d
            share = trained / len(active)
            done = torch.zeros(len(active), dtype=torch.bool)
            for j, r in enumerate(active.tolist()):
                seconds[r] += share
                changes[r].append(float(d[j]))
                changes_raw[r].append(float(d_raw[j]))
                log(r, j, imgs, s, emb, occ, opacity)
                now = converged_epoch(changes[r], cfg.eps, cfg.k) == epoch
                if now:
                    iterations[r] = epoch * cfg.epoch_iters
                    done[j] = stop_at_convergence
                if now or (epoch == cfg.max_epochs and iterations[r] is None):
                    for k, v in observed().items():
                        out_params[k][r] = v.detach()[j].cpu()
                if done[j] or epoch == cfg.max_epochs:
                    for k, v in observed().items():
                        final_params[k][r] = v.detach()[j].cpu()
            bar.update(1)
            bar.set_postfix(active=int((~done).sum()), refresh=False)
            if done.all():
                break
            if done.any():
                keep = ~done
                params, opt = _shrink(params, opt, keep.to(device), cfg.lr)
                prev, prev_raw, active = prev[keep], prev_raw[keep], active[keep]
    bar.close()

    def pad(rows: list[list[torch.Tensor]]) -> torch.Tensor:
        """Per-epoch logs of every run stacked, a stopped run's last entry repeated to the longest run."""
        longest = max(len(x) for x in rows)
        return torch.stack([torch.stack(x + [x[-1]] * (longest - len(x))) for x in rows])

    return OptimResult(out_params, iterations, changes, sims, pad(snaps), seconds, cfg, final_params,
                       changes_raw if cfg.average and raw_test else None, pad(embs), pad(occs), pad(views),
                       pad(alphas))


def iterations_or_cap(res: OptimResult) -> np.ndarray:
    """Iterations to convergence with non-converged runs counted at the cap (a lower bound)."""
    return np.array([res.cap if it is None else it for it in res.iterations], dtype=float)


def template_init(spec: nerf.NerfSpec, n: int) -> dict[str, torch.Tensor]:
    """The shared initialisation all dataset NeRFs were fitted from ("from scratch", S)."""
    return nerf.init_params(spec, n, "shared")


#: DreamFusion's start, after stable-dreamfusion's ``--blob_density 5 --blob_radius 0.2``: peak density and radius of
#: a Gaussian density blob at the centre of the object box (half-size 0.5 here; the radius chosen so the blob fills
#: about the middle half of the frame, as an object does)
BLOB_DENSITY, BLOB_RADIUS = 5.0, 0.25


def blob_density(x: torch.Tensor, density: float = BLOB_DENSITY, radius: float = BLOB_RADIUS) -> torch.Tensor:
    """stable-dreamfusion's density blob at points ``x`` (..., 3): ``density * exp(-|x|^2 / (2 radius^2))``."""
    return density * torch.exp(-x.pow(2).sum(-1) / (2 * radius ** 2))


@functools.lru_cache(maxsize=4)
def _blob_template(spec: nerf.NerfSpec, density: float, radius: float, steps: int) -> dict[str, torch.Tensor]:
    params = {k: v.clone().requires_grad_(True) for k, v in nerf.template(spec).items()}
    opt = torch.optim.Adam(params.values(), lr=5e-3)
    gen = torch.Generator().manual_seed(nerf.TEMPLATE_SEED)
    for _ in range(steps):
        x = torch.rand(1, 4096, 3, generator=gen) - 0.5
        x[:, :2048] *= 2 * radius                           # half the points within one radius of the centre
        sigma, rgb = nerf.forward({k: v[None] for k, v in params.items()}, x, spec.freqs)
        loss = (sigma - blob_density(x, density, radius)).pow(2).mean() + (rgb - 0.5).pow(2).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return {k: v.detach() for k, v in params.items()}


def blob_init(spec: nerf.NerfSpec, n: int, density: float = BLOB_DENSITY, radius: float = BLOB_RADIUS,
              steps: int = 600) -> dict[str, torch.Tensor]:
    """The from-scratch start of DreamFusion (S): the shared template fitted to a grey density blob
    (:func:`blob_density`), so SDS starts from something to carve rather than from an empty field. Fitted
    directly on 3D points (no rendering), deterministic, a few seconds on a CPU."""
    base = _blob_template(spec, float(density), float(radius), int(steps))
    return {k: v.unsqueeze(0).repeat(n, *([1] * v.dim())).contiguous() for k, v in base.items()}


def stack_inits(*inits: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {k: torch.cat([i[k].cpu() for i in inits]) for k in nerf.PARAM_NAMES}


def repeat_init(init: dict[str, torch.Tensor], times: int) -> dict[str, torch.Tensor]:
    """Each run repeated ``times`` times (run-major: r0 r0 r0 r1 r1 r1 ...), e.g. for seeds."""
    return {k: v.repeat_interleave(times, 0) for k, v in init.items()}

