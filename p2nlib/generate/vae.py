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
import torch.nn.functional as F
from torch import nn
from tqdm import tqdm

from p2nlib.core.device import native_bf16
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
    # the VAEs' products in bfloat16 while training (autocast; weights, losses and Adam stay float32). A speed
    # lever of ours, off in the paper's recipe; 07 measures it as a row
    bf16: bool = False

    @classmethod
    def from_profile(cls, p: Profile, **overrides) -> "VaeConfig":
        base = dict(latent_dim=p.clip_embed_dim, hidden=p.vae_hidden, beta=p.vae_beta, epochs=p.vae_epochs,
                    param_weight=p.vae_param_weight, function_weight=p.vae_function_weight,
                    function_samples=p.samples_per_ray, batch=p.vae_batch, lr=1e-3 * math.sqrt(p.vae_batch / 32),
                    bf16=p.vae_bf16 and native_bf16())
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


def _linears(seq: nn.Module) -> list[nn.Linear]:
    return [m for m in seq if isinstance(m, nn.Linear)]


class GroupLinear(nn.Module):
    """``G`` independent linear layers of one shape, applied to ``(G, b, in)`` with one ``baddbmm``.

    The weight is stored input-major, ``(G, in, out)`` (``nn.Linear``'s transposed), so neither the product
    nor its gradient needs a transposed copy of the weight: at the VAE's batch of 32 a step is bound by
    moving its 11 M parameters and their gradients through memory, and that copy alone cost a third of it.
    """

    def __init__(self, groups: int, in_features: int, out_features: int):
        super().__init__()
        self.weight = nn.Parameter(torch.empty(groups, in_features, out_features))
        self.bias = nn.Parameter(torch.empty(groups, out_features))

    @classmethod
    def stack(cls, layers: list[nn.Linear]) -> "GroupLinear":
        """The layers' own weights, stacked (so a group starts exactly where its per-token layers do)."""
        out = cls(len(layers), layers[0].in_features, layers[0].out_features)
        with torch.no_grad():
            out.weight.copy_(torch.stack([m.weight.t() for m in layers]))
            out.bias.copy_(torch.stack([m.bias for m in layers]))
        return out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.baddbmm(self.bias.unsqueeze(1), x, self.weight)


class TokenGroupVAE(nn.Module):
    """:class:`TokenVAE` for ``G`` tokens of equal size at once: the same layers, stacked along a group axis.

    Tokens of one shape (the five hidden weight matrices, the six hidden biases) share every layer's shape,
    so their VAEs run as one batched product per layer: the same maths, the same initial weights (stacked
    from per-token :class:`TokenVAE` modules), 5 products per layer instead of 14 (1.29x per training step
    on the 2-core CPU, ``make bench``; the step stays bound by memory traffic at batch 32).
    """

    def __init__(self, tokens: list[TokenVAE]):
        super().__init__()
        enc, dec = zip(*[(_linears(t.encoder), _linears(t.decoder)) for t in tokens])
        self.encoder = nn.ModuleList(GroupLinear.stack([e[j] for e in enc]) for j in range(len(enc[0])))
        self.decoder = nn.ModuleList(GroupLinear.stack([d[j] for d in dec]) for j in range(len(dec[0])))
        self.mu = GroupLinear.stack([t.mu for t in tokens])
        self.logvar = GroupLinear.stack([t.logvar for t in tokens])

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(G, b, dim) -> mu, logvar, each (G, b, latent)."""
        h = x
        for layer in self.encoder:
            h = F.silu(layer(h))
        return self.mu(h), self.logvar(h).clamp(-12, 6)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """(G, b, latent) -> (G, b, dim)."""
        h = z
        for j, layer in enumerate(self.decoder):
            h = layer(h)
            if j < len(self.decoder) - 1:
                h = F.silu(h)
        return h

    def token(self, g: int) -> TokenVAE:
        """The ``g``-th token of the group as a plain :class:`TokenVAE` (a copy: the reference implementation)."""
        dim, hidden, latent = self.encoder[0].weight.shape[1], self.encoder[0].weight.shape[2], self.mu.weight.shape[2]
        t = TokenVAE(dim, hidden, latent)
        pairs = [*zip(_linears(t.encoder), self.encoder), (t.mu, self.mu), (t.logvar, self.logvar),
                 *zip(_linears(t.decoder), self.decoder)]
        with torch.no_grad():
            for m, grp in pairs:
                m.weight.copy_(grp.weight[g].t())
                m.bias.copy_(grp.bias[g])
        return t


def token_groups(shapes: dict[str, tuple[int, ...]], names: list[str]) -> list[list[int]]:
    """Indices of ``names`` grouped by flattened size, groups in order of first appearance."""
    groups: dict[int, list[int]] = {}
    for i, k in enumerate(names):
        groups.setdefault(math.prod(shapes[k]), []).append(i)
    return list(groups.values())


class ParamVAE(nn.Module):
    """The 14 token VAEs plus the normalisation statistics of each tensor.

    Each token keeps its own VAE (the paper's 14 independent models); tokens of equal size are computed
    together (:class:`TokenGroupVAE`). The weights start as 14 :class:`TokenVAE` modules created in token
    order from the global seed, exactly as a per-token implementation would create them;
    :meth:`token_vaes` gives them back as separate modules.
    """

    def __init__(self, spec: nerf.NerfSpec, cfg: VaeConfig):
        super().__init__()
        self.spec, self.cfg = spec, cfg
        self.weights_sha256: str | None = None   # set when saved or loaded (aligners record it)
        self.trained_on: list[int] | None = None  # training scenes and seconds, when loaded from a record
        self.train_seconds: float | None = None
        shapes = spec.shapes()
        self.names = list(nerf.PARAM_NAMES)
        tokens = [TokenVAE(math.prod(shapes[k]), cfg.hidden, cfg.latent_dim) for k in self.names]
        self.groups = token_groups(shapes, self.names)
        self.blocks = nn.ModuleList(TokenGroupVAE([tokens[i] for i in g]) for g in self.groups)
        for i, k in enumerate(self.names):
            self.register_buffer(f"mean_{i}", torch.zeros(math.prod(shapes[k])))
            self.register_buffer(f"std_{i}", torch.ones(math.prod(shapes[k])))
        # each token's size, the KL's per-dimension normaliser (not saved: it follows from the spec)
        self.register_buffer("token_sizes", torch.tensor([float(math.prod(shapes[k])) for k in self.names]),
                             persistent=False)

    def token_vaes(self) -> list[TokenVAE]:
        """The 14 VAEs as separate :class:`TokenVAE` modules (copies), in token order."""
        out: list[TokenVAE | None] = [None] * len(self.names)
        for g, block in zip(self.groups, self.blocks):
            for j, i in enumerate(g):
                out[i] = block.token(j)
        return out

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

    def _encode_tokens(self, xs: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        """Normalised tokens -> mu, logvar, each (14, B, latent) in token order."""
        mus: list = [None] * len(xs)
        lvs: list = [None] * len(xs)
        for g, block in zip(self.groups, self.blocks):
            mu, lv = block.encode(torch.stack([xs[i] for i in g]))
            for j, i in enumerate(g):
                mus[i], lvs[i] = mu[j], lv[j]
        return torch.stack(mus), torch.stack(lvs)

    def _decode_tokens(self, z: torch.Tensor) -> list[torch.Tensor]:
        """Latents (14, B, latent) -> the 14 normalised tokens (B, dim)."""
        out: list = [None] * len(self.names)
        for g, block in zip(self.groups, self.blocks):
            rec = block.decode(z[g])
            for j, i in enumerate(g):
                out[i] = rec[j]
        return out

    def encode(self, params) -> tuple[torch.Tensor, torch.Tensor]:
        """-> mu, logvar, each (B, 14, latent)."""
        mu, logvar = self._encode_tokens(self.normalise(params))
        return mu.transpose(0, 1), logvar.transpose(0, 1)

    def decode(self, z: torch.Tensor) -> dict[str, torch.Tensor]:
        """Latents (B, 14, latent) -> NeRF parameters (B, ...) per tensor."""
        return self.denormalise(self._decode_tokens(z.transpose(0, 1)))

    def loss(self, params, generator: torch.Generator | None = None) -> tuple[torch.Tensor, ...]:
        """-> (total, parameter MSE, KL, function-space loss); the function-space term is computed only when
        ``cfg.function_weight`` > 0 (0 otherwise). The latent noise is drawn in one call, token after token
        (the stream 14 per-token draws would give)."""
        xs = self.normalise(params)
        with torch.autocast(mu_device(self).type, dtype=torch.bfloat16, enabled=self.cfg.bf16 and self.training):
            mu, logvar = self._encode_tokens(xs)                           # (14, B, latent)
            mu, logvar = mu.float(), logvar.float()
            z = mu + torch.randn_like(mu) * torch.exp(0.5 * logvar)
            recs = [r.float() for r in self._decode_tokens(z)]
        mse = torch.stack([(r - x).pow(2).mean() for r, x in zip(recs, xs)]).mean()
        kl = ((-0.5 * (1 + logvar - mu.pow(2) - logvar.exp()).sum(-1)).mean(1) / self.token_sizes).mean()
        return self._total(mse, kl, recs, params, generator)

    def _total(self, mse, kl, recs: list[torch.Tensor], params, generator) -> tuple[torch.Tensor, ...]:
        """The weighted loss from its parameter-MSE and KL terms and the normalised reconstructions."""
        total = self.cfg.param_weight * mse + self.cfg.beta * kl
        fn = torch.zeros((), device=mse.device)
        if self.cfg.function_weight > 0:
            fn = function_loss(self.denormalise(recs), params, self.spec, self.cfg.function_points,
                               self.cfg.function_samples, generator)
            total = total + self.cfg.function_weight * fn
        return total, mse, kl, fn


def mu_device(model: nn.Module) -> torch.device:
    return next(model.parameters()).device


def per_token_loss(model: ParamVAE, tokens: list[TokenVAE], params,
                   generator: torch.Generator | None = None) -> tuple[torch.Tensor, ...]:
    """:meth:`ParamVAE.loss` computed the way the paper describes stage 1: 14 separate VAEs, one after another.

    ``tokens`` are the 14 :class:`TokenVAE` modules (:meth:`ParamVAE.token_vaes`), ``model`` gives the
    normalisation and config. Kept as the reference the batched model is tested and benchmarked against."""
    mse, kl, recs = 0.0, 0.0, []
    for vae, x in zip(tokens, model.normalise(params)):
        rec, mu, logvar = vae(x)
        recs.append(rec)
        mse = mse + (rec - x).pow(2).mean()
        kl = kl + (-0.5 * (1 + logvar - mu.pow(2) - logvar.exp()).sum(-1)).mean() / x.shape[1]
    return model._total(mse / len(tokens), kl / len(tokens), recs, params, generator)


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
