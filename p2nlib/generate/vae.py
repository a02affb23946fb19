"""Stage 1, the pretrained implicit latent (paper §3.2, supplement III).

Fourteen independent VAEs, one per NeRF parameter tensor ("token"). Each encoder and decoder is
a 3-layer MLP; two linear heads give the mean and log-variance of a Gaussian latent of size
``latent_dim`` (= the CLIP embedding size, 512 in the paper), from which the decoder input is
sampled. Tensors are normalised element-wise with the training set's mean and standard deviation
(stored beside the model). Loss: MSE in normalised space + ``beta`` x KL (``beta`` is stated in
:class:`VaeConfig`; the paper's value was lost).
"""
from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from torch import nn
from tqdm import tqdm

from p2nlib.core import artifacts, paths
from p2nlib.core.profiles import Profile
from p2nlib.data import nerf, render
from p2nlib.data.store import Dataset


@dataclass(frozen=True)
class VaeConfig:
    latent_dim: int
    hidden: int
    beta: float = 1e-3        # KL weight
    lr: float = 1e-3
    epochs: int = 400
    batch: int = 32
    std_floor: float = 0.05   # of the tensor's median element std: keeps near-constant elements stable
    # Reconstruction loss. The paper's: parameter MSE (param_weight 1, function_weight 0). Ours adds a
    # function-space term: the decoded and the original NeRF compared *as functions* (opacity and
    # opacity-weighted colour at random points of the box), see :func:`function_loss`.
    param_weight: float = 1.0
    function_weight: float = 0.0
    function_points: int = 256      # random points per NeRF and step (1,024 gave 22.50 dB test, 256 22.81, small)
    function_samples: int = 32      # samples per ray whose spacing sets the opacity's step δ

    @classmethod
    def from_profile(cls, p: Profile, **overrides) -> "VaeConfig":
        base = dict(latent_dim=p.clip_embed_dim, hidden=p.vae_hidden, beta=p.vae_beta, epochs=p.vae_epochs,
                    param_weight=p.vae_param_weight, function_weight=p.vae_function_weight,
                    function_samples=p.samples_per_ray)
        base.update(overrides)
        return cls(**base)

    @property
    def recipe(self) -> str:
        """The reconstruction loss in words (tables name the recipe they measure)."""
        if self.function_weight == 0:
            return "parameter MSE (paper)"
        if self.param_weight == 0:
            return "function-space only (ours)"
        return f"parameter MSE + {self.function_weight:g} × function-space (ours)"


class TokenVAE(nn.Module):
    """One parameter tensor (flattened, ``dim`` values) <-> a ``latent`` Gaussian."""

    def __init__(self, dim: int, hidden: int, latent: int):
        super().__init__()
        self.encoder = nn.Sequential(nn.Linear(dim, hidden), nn.SiLU(), nn.Linear(hidden, hidden), nn.SiLU(),
                                     nn.Linear(hidden, hidden), nn.SiLU())
        self.mu, self.logvar = nn.Linear(hidden, latent), nn.Linear(hidden, latent)
        self.decoder = nn.Sequential(nn.Linear(latent, hidden), nn.SiLU(), nn.Linear(hidden, hidden), nn.SiLU(),
                                     nn.Linear(hidden, dim))

    def encode(self, x):
        h = self.encoder(x)
        return self.mu(h), self.logvar(h).clamp(-12, 6)

    def forward(self, x, sample: bool = True):
        mu, logvar = self.encode(x)
        z = mu + torch.randn_like(mu) * torch.exp(0.5 * logvar) if sample else mu
        return self.decoder(z), mu, logvar


class ParamVAE(nn.Module):
    """The 14 token VAEs plus the normalisation statistics of each tensor."""

    def __init__(self, spec: nerf.NerfSpec, cfg: VaeConfig):
        super().__init__()
        self.spec, self.cfg = spec, cfg
        self.weights_sha256: str | None = None   # set when saved or loaded (aligners record it)
        self.trained_on: list[int] | None = None  # training scenes and seconds, when loaded from a record
        self.train_seconds: float | None = None
        shapes = spec.shapes()
        self.names = list(nerf.PARAM_NAMES)
        self.vaes = nn.ModuleList([TokenVAE(math.prod(shapes[k]), cfg.hidden, cfg.latent_dim) for k in self.names])
        for i, k in enumerate(self.names):
            self.register_buffer(f"mean_{i}", torch.zeros(math.prod(shapes[k])))
            self.register_buffer(f"std_{i}", torch.ones(math.prod(shapes[k])))

    def set_stats(self, params: dict[str, torch.Tensor]) -> None:
        for i, k in enumerate(self.names):
            x = params[k].flatten(1).float()
            std = x.std(0)
            floor = self.cfg.std_floor * std.median().clamp_min(1e-8)
            getattr(self, f"mean_{i}").copy_(x.mean(0))
            getattr(self, f"std_{i}").copy_(std.clamp_min(floor))

    def normalise(self, params) -> list[torch.Tensor]:
        return [(params[k].flatten(1) - getattr(self, f"mean_{i}")) / getattr(self, f"std_{i}")
                for i, k in enumerate(self.names)]

    def denormalise(self, tokens: list[torch.Tensor]) -> dict[str, torch.Tensor]:
        shapes = self.spec.shapes()
        return {k: (t * getattr(self, f"std_{i}") + getattr(self, f"mean_{i}")).reshape(-1, *shapes[k])
                for i, (k, t) in enumerate(zip(self.names, tokens))}

    def encode(self, params) -> tuple[torch.Tensor, torch.Tensor]:
        """-> mu, logvar, each (B, 14, latent)."""
        out = [vae.encode(x) for vae, x in zip(self.vaes, self.normalise(params))]
        return torch.stack([m for m, _ in out], 1), torch.stack([lv for _, lv in out], 1)

    def decode(self, z: torch.Tensor) -> dict[str, torch.Tensor]:
        """Latents (B, 14, latent) -> NeRF parameters (B, ...) per tensor."""
        return self.denormalise([vae.decoder(z[:, i]) for i, vae in enumerate(self.vaes)])

    def loss(self, params, generator: torch.Generator | None = None) -> tuple[torch.Tensor, ...]:
        """-> (total, parameter MSE, KL, function-space loss); the function-space term is computed only when
        ``cfg.function_weight`` > 0 (0 otherwise)."""
        mse, kl, recs = 0.0, 0.0, []
        for vae, x in zip(self.vaes, self.normalise(params)):
            rec, mu, logvar = vae(x)
            recs.append(rec)
            mse = mse + (rec - x).pow(2).mean()
            kl = kl + (-0.5 * (1 + logvar - mu.pow(2) - logvar.exp()).sum(-1)).mean() / x.shape[1]
        mse, kl = mse / len(self.vaes), kl / len(self.vaes)
        total = self.cfg.param_weight * mse + self.cfg.beta * kl
        fn = torch.zeros((), device=mse.device)
        if self.cfg.function_weight > 0:
            fn = function_loss(self.denormalise(recs), params, self.spec, self.cfg.function_points,
                               self.cfg.function_samples, generator)
            total = total + self.cfg.function_weight * fn
        return total, mse, kl, fn


def function_loss(decoded: dict[str, torch.Tensor], original: dict[str, torch.Tensor], spec: nerf.NerfSpec,
                  points: int = 1024, samples: int = 32, generator: torch.Generator | None = None) -> torch.Tensor:
    """How differently two batches of NeRFs render, compared as functions rather than parameter vectors.

    At ``points`` uniform random points of the object box (the same points for both), the mean squared
    difference of opacity ``α = 1 - exp(-σ δ)`` plus that of opacity-weighted colour ``α · rgb``, with ``δ``
    the box diagonal over ``samples`` (the renderer's step). Zero for identical NeRFs; gradients flow
    into ``decoded`` only.
    """
    ref = next(iter(decoded.values()))
    b = ref.shape[0]
    x = (torch.rand(b, points, 3, generator=generator, device="cpu").to(ref.device) - 0.5) * (2 * render.BOX)
    delta = math.sqrt(3.0) * 2 * render.BOX / samples
    s1, c1 = nerf.forward(decoded, x, spec.freqs)
    with torch.no_grad():
        s0, c0 = nerf.forward({k: v.to(ref.device) for k, v in original.items()}, x, spec.freqs)
    a1, a0 = 1 - torch.exp(-s1 * delta), 1 - torch.exp(-s0 * delta)
    return (a1 - a0).pow(2).mean() + (a1[..., None] * c1 - a0[..., None] * c0).pow(2).mean()


def train(params: dict[str, torch.Tensor], spec: nerf.NerfSpec, cfg: VaeConfig, device="cpu",
          seed: int = 0, progress: bool = True, val_params: dict[str, torch.Tensor] | None = None):
    """Train the 14 VAEs on the training NeRFs; returns the model and per-epoch curves."""
    torch.manual_seed(seed)
    model = ParamVAE(spec, cfg)
    model.set_stats(params)
    model.to(device)
    params = {k: v.to(device) for k, v in params.items()}
    n = next(iter(params.values())).shape[0]
    # fused Adam: one kernel over the 14 VAEs' ~200 small tensors instead of a Python loop (1.7x per step)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr, fused=True)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, cfg.epochs, eta_min=cfg.lr * 0.05)
    hist = {"epoch": [], "loss": [], "mse": [], "kl": [], "function": [], "val_mse": []}
    points = torch.Generator().manual_seed(seed + 1)       # the function-space term's random points
    t0 = time.perf_counter()
    for epoch in tqdm(range(cfg.epochs), desc="VAE", disable=not progress, mininterval=2):
        perm = torch.randperm(n, device=device)
        tot = [0.0, 0.0, 0.0, 0.0]
        for s in range(0, n, cfg.batch):
            idx = perm[s:s + cfg.batch]
            terms = model.loss({k: v[idx] for k, v in params.items()}, points)
            opt.zero_grad(set_to_none=True)
            terms[0].backward()
            opt.step()
            for j, v in enumerate(terms):
                tot[j] += v.item() * len(idx) / n
        sched.step()
        hist["epoch"].append(epoch)
        for j, name in enumerate(("loss", "mse", "kl", "function")):
            hist[name].append(tot[j])
        hist["val_mse"].append(param_mse(model, val_params) if val_params is not None else float("nan"))
    model.eval()
    return model.cpu(), {"history": hist, "seconds": time.perf_counter() - t0}


@torch.no_grad()
def param_mse(model: ParamVAE, params) -> float:
    """Mean normalised-space MSE of reconstructing ``params`` through the latent means."""
    dev = next(model.parameters()).device
    params = {k: v.to(dev) for k, v in params.items()}
    mu, _ = model.encode(params)
    rec = model.normalise(model.decode(mu))
    ref = model.normalise(params)
    return float(sum((a - b).pow(2).mean() for a, b in zip(rec, ref)) / len(ref))


@torch.no_grad()
def reconstruct(model: ParamVAE, params) -> dict[str, torch.Tensor]:
    mu, _ = model.encode(params)
    return model.decode(mu)


REBUILD = "make book ONLY=03"


def save(model: ParamVAE, p: Profile, dataset: Dataset, name: str = "vae", train: list[int] | None = None,
         seconds: float | None = None) -> Path:
    """Save the VAE with what it was trained on (the dataset's checksum; the training scenes' indices and
    the training time when given), atomically."""
    folder = paths.stage_dir(p.name, "models")
    record = artifacts.save_part(folder, name, model.state_dict(), profile=p.name,
                                 config={"spec": model.spec.to_dict(), "vae": asdict(model.cfg)},
                                 inputs={"dataset": dataset.fingerprint},
                                 extra={"train": train, "seconds": seconds})
    model.weights_sha256 = record["weights_sha256"]
    return folder


def load(p: Profile, dataset: Dataset, name: str = "vae") -> ParamVAE:
    """Load the profile's VAE; refused (with the command that rebuilds it) when it is missing or was
    trained on another dataset than ``dataset``."""
    state, record = artifacts.load_part(paths.stage_dir(p.name, "models"), name, profile=p.name,
                                        inputs={"dataset": dataset.fingerprint}, what="VAE (notebooks/03_vae)",
                                        rebuild=REBUILD)
    cfg = record["config"]
    model = ParamVAE(nerf.NerfSpec(**cfg["spec"]), VaeConfig(**cfg["vae"]))
    model.load_state_dict(state)
    model.weights_sha256 = record["weights_sha256"]
    model.trained_on, model.train_seconds = record.get("train"), record.get("seconds")
    return model.eval()
