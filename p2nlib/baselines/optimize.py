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
"""
from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from p2nlib.core.profiles import Profile
from p2nlib.data import cameras, nerf, render
from p2nlib.baselines.guidance import frozen
from p2nlib.eval import metrics


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

    @classmethod
    def from_profile(cls, p: Profile, **overrides) -> "OptimConfig":
        base = dict(size=p.opt_size, samples=p.opt_samples, views=p.opt_views, lr=p.opt_lr,
                    epoch_iters=p.opt_epoch_iters, eps=p.opt_eps, k=p.opt_k, max_epochs=p.opt_max_epochs,
                    check_views=p.opt_check_views, check_size=p.image_size)
        base.update(overrides)
        return cls(**base)

    def describe(self) -> str:
        return (f"convergence test: every {self.epoch_iters} iterations render {self.check_views} fixed views at "
                f"{self.check_size} px; converged when the mean squared pixel change < {self.eps:g} for {self.k} "
                f"epochs in a row (at most {self.max_epochs} epochs = {self.max_epochs * self.epoch_iters} "
                f"iterations). Guidance renders {self.views} random view(s) per iteration at {self.size} px, "
                f"{self.samples} samples per ray; Adam, constant lr {self.lr:g}.")


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
        data = {"iterations": self.iterations, "changes": self.changes, "similarity": self.similarity,
                "seconds": self.seconds, "config": asdict(self.config)}
        return tensors, data

    @classmethod
    def from_tensors(cls, tensors: dict[str, torch.Tensor], data: dict) -> "OptimResult":
        cfg = dict(data["config"])
        cfg["elevation"] = tuple(cfg["elevation"])
        params = {k[len("params."):]: v for k, v in tensors.items() if k.startswith("params.")}
        final = {k[len("final."):]: v for k, v in tensors.items() if k.startswith("final.")} or None
        return cls(params, list(data["iterations"]), data["changes"], data["similarity"], tensors["snapshots"],
                   list(data["seconds"]), OptimConfig(**cfg), final)

    def seconds_to(self, run: int, iteration: int | None) -> float:
        """Wall time attributed to ``run`` up to ``iteration`` (its per-epoch share times epochs)."""
        epochs = len(self.changes[run])
        if epochs == 0:
            return 0.0
        per_epoch = self.seconds[run] / epochs
        cap = epochs * self.config.epoch_iters
        return per_epoch * min(iteration if iteration is not None else cap, cap) / self.config.epoch_iters


def _render_fn(params, spec: nerf.NerfSpec, samples: int):
    """Differentiable renderer of the batched runs at per-run poses (b, n, 4, 4). Samples are not
    jittered, so a run's trajectory depends only on its own seed, not on the rest of the batch."""
    def fn(c2w: torch.Tensor, size: int):
        b, n = c2w.shape[:2]
        o, d = cameras.rays(c2w.reshape(b * n, 4, 4).cpu(), size)                 # (b*n, P, 3)
        dev = params["l0.weight"].device
        o, d = o.reshape(b, n * size * size, 3).to(dev), d.reshape(b, n * size * size, 3).to(dev)
        rgb, opacity = render.render_rays(lambda x: nerf.forward(params, x, spec.freqs), o, d, samples)
        return rgb.reshape(b, n, size, size, 3), opacity.reshape(b, n, size, size)
    return fn


@torch.no_grad()
def _check_render(params, spec, poses: torch.Tensor, size: int, samples: int) -> torch.Tensor:
    b = params["l0.weight"].shape[0]
    return _render_fn(params, spec, samples)(poses[None].expand(b, -1, -1, -1), size)[0]


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
             stop_at_convergence: bool = True) -> OptimResult:
    """Optimise R runs at once from ``init`` (R, ...) with ``guidance``; each run stops at convergence.

    ``seeds`` (R,) draw each run's random views; ``targets`` (R, D) are the CLIP embeddings the
    logged similarity is measured against (the text, or the prompt image). With
    ``stop_at_convergence=False`` every run goes on to ``max_epochs`` (complete curves); the
    iterations to convergence and ``params`` at convergence are recorded all the same, and
    ``final_params`` holds the parameters at the end."""
    R = nerf.check_params(init, spec)
    if len(seeds) != R or targets.shape[0] != R:
        raise ValueError(f"{R} runs need {R} seeds and {R} targets, got {len(seeds)} and {targets.shape[0]}")
    device = torch.device(device)
    gens = [torch.Generator().manual_seed(int(s)) for s in seeds]
    check_poses = cameras.turntable(cfg.check_views, elevation=25.0)
    targets = F.normalize(targets.float(), dim=-1)

    params = {k: v.detach().to(device).clone().contiguous().requires_grad_(True) for k, v in init.items()}
    opt = torch.optim.Adam(params.values(), lr=cfg.lr)
    active = torch.arange(R)
    out_params = {k: v.detach().cpu().clone() for k, v in init.items()}
    final_params = {k: v.detach().cpu().clone() for k, v in init.items()}
    iterations: list[int | None] = [None] * R
    changes: list[list[float]] = [[] for _ in range(R)]
    sims: list[list[float]] = [[] for _ in range(R)]
    snaps: list[list[torch.Tensor]] = [[] for _ in range(R)]
    seconds = [0.0] * R

    def observe(p):
        imgs = _check_render(p, spec, check_poses, cfg.check_size, cfg.samples).cpu()    # (b, C, H, W, 3)
        s = metrics.embedding_similarity(encoder, imgs, targets[active])
        return imgs, s

    prev, s0 = observe(params)
    for j, r in enumerate(active.tolist()):
        sims[r].append(float(s0[j]))
        snaps[r].append((prev[j, 0] * 255).round().to(torch.uint8))

    bar = tqdm(total=cfg.max_epochs, desc=desc, disable=not progress, mininterval=5)
    with frozen(encoder.model):
        for epoch in range(1, cfg.max_epochs + 1):
            t0 = time.perf_counter()
            fn = _render_fn(params, spec, cfg.samples)
            for _ in range(cfg.epoch_iters):
                az = torch.stack([torch.rand(cfg.views, generator=gens[r]) for r in active.tolist()]) * 360
                el = torch.stack([torch.rand(cfg.views, generator=gens[r]) for r in active.tolist()])
                el = cfg.elevation[0] + (cfg.elevation[1] - cfg.elevation[0]) * el
                c2w = cameras.orbit(az.reshape(-1), el.reshape(-1)).reshape(len(active), cfg.views, 4, 4)
                loss = guidance.loss(fn, c2w, cfg.size, active)
                opt.zero_grad(set_to_none=True)
                loss.sum().backward()
                opt.step()
            imgs, s = observe(params)
            d = (imgs - prev).pow(2).mean((1, 2, 3, 4))
            prev = imgs
            share = (time.perf_counter() - t0) / len(active)
            done = torch.zeros(len(active), dtype=torch.bool)
            for j, r in enumerate(active.tolist()):
                seconds[r] += share
                changes[r].append(float(d[j]))
                sims[r].append(float(s[j]))
                snaps[r].append((imgs[j, 0] * 255).round().to(torch.uint8))
                now = converged_epoch(changes[r], cfg.eps, cfg.k) == epoch
                if now:
                    iterations[r] = epoch * cfg.epoch_iters
                    done[j] = stop_at_convergence
                if now or (epoch == cfg.max_epochs and iterations[r] is None):
                    for k, v in params.items():
                        out_params[k][r] = v.detach()[j].cpu()
                if done[j] or epoch == cfg.max_epochs:
                    for k, v in params.items():
                        final_params[k][r] = v.detach()[j].cpu()
            bar.update(1)
            bar.set_postfix(active=int((~done).sum()), refresh=False)
            if done.all():
                break
            if done.any():
                keep = ~done
                params, opt = _shrink(params, opt, keep.to(device), cfg.lr)
                prev, active = prev[keep], active[keep]
    bar.close()
    longest = max(len(s) for s in snaps)
    shots = torch.stack([torch.stack(s + [s[-1]] * (longest - len(s))) for s in snaps])
    return OptimResult(out_params, iterations, changes, sims, shots, seconds, cfg, final_params)


def iterations_or_cap(res: OptimResult) -> np.ndarray:
    """Iterations to convergence with non-converged runs counted at the cap (a lower bound)."""
    return np.array([res.cap if it is None else it for it in res.iterations], dtype=float)


def template_init(spec: nerf.NerfSpec, n: int) -> dict[str, torch.Tensor]:
    """The shared initialisation all dataset NeRFs were fitted from ("from scratch", S)."""
    return nerf.init_params(spec, n, "shared")


def stack_inits(*inits: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {k: torch.cat([i[k].cpu() for i in inits]) for k in nerf.PARAM_NAMES}


def repeat_init(init: dict[str, torch.Tensor], times: int) -> dict[str, torch.Tensor]:
    """Each run repeated ``times`` times (run-major: r0 r0 r0 r1 r1 r1 ...), e.g. for seeds."""
    return {k: v.repeat_interleave(times, 0) for k, v in init.items()}

