"""The paper's NeRF: a 7-layer MLP on positionally encoded xyz, kept as 14 named tensors.

Layers: PE(xyz) -> W -> W -> W -> W -> W -> W -> 4 (rgb, sigma); 7 weights + 7 biases, in a fixed
order (:data:`PARAM_NAMES`). Many NeRFs are held as one dict of stacked tensors with a leading
object axis ``B`` and evaluated with one ``baddbmm`` per layer, so a batch of objects is fitted
(or optimised) as fast as one larger network. ``shared`` initialisation copies one seeded template
to every object, as the paper does (§3.1); ``random`` gives each object its own seed (the §5.1
ablation).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

NUM_LAYERS = 7
PARAM_NAMES: tuple[str, ...] = tuple(f"l{i}.{kind}" for i in range(NUM_LAYERS) for kind in ("weight", "bias"))
TEMPLATE_SEED = 20240131  # the shared initialisation every dataset NeRF starts from


@dataclass(frozen=True)
class NerfSpec:
    width: int = 64
    freqs: int = 6

    @classmethod
    def from_profile(cls, profile) -> "NerfSpec":
        return cls(width=profile.nerf_width, freqs=profile.nerf_freqs)

    @property
    def in_dim(self) -> int:
        return 3 + 6 * self.freqs

    def shapes(self) -> dict[str, tuple[int, ...]]:
        dims = [self.in_dim] + [self.width] * (NUM_LAYERS - 1) + [4]
        out = {}
        for i in range(NUM_LAYERS):
            out[f"l{i}.weight"] = (dims[i + 1], dims[i])
            out[f"l{i}.bias"] = (dims[i + 1],)
        return out

    def num_params(self) -> int:
        return sum(math.prod(s) for s in self.shapes().values())

    def to_dict(self) -> dict:
        return {"width": self.width, "freqs": self.freqs}


def encode(x: torch.Tensor, freqs: int) -> torch.Tensor:
    """NeRF positional encoding: [x, sin(2^k pi x), cos(2^k pi x)] for k < freqs. x in [-0.5, 0.5]."""
    scales = (2.0 ** torch.arange(freqs, device=x.device, dtype=x.dtype)) * math.pi
    xb = (x[..., None, :] * scales[:, None]).flatten(-2)
    return torch.cat([x, torch.sin(xb), torch.cos(xb)], dim=-1)


def template(spec: NerfSpec, seed: int = TEMPLATE_SEED) -> dict[str, torch.Tensor]:
    """One NeRF's parameters with PyTorch's default ``nn.Linear`` initialisation, from ``seed``."""
    gen = torch.Generator().manual_seed(seed)
    params = {}
    for name, shape in spec.shapes().items():
        fan_in = spec.shapes()[name.replace("bias", "weight")][1]
        bound = 1.0 / math.sqrt(fan_in)
        params[name] = (torch.rand(shape, generator=gen) * 2 - 1) * bound
    # sigma starts slightly negative so an untrained NeRF is nearly transparent (white)
    params[f"l{NUM_LAYERS - 1}.bias"][3] = -1.0
    return params


def init_params(spec: NerfSpec, n: int, mode: str = "shared", seed: int = 0,
                device: torch.device | str = "cpu") -> dict[str, torch.Tensor]:
    """Stacked parameters for ``n`` NeRFs: ``shared`` (one template for all) or ``random``."""
    if mode == "shared":
        base = template(spec)
        return {k: v.unsqueeze(0).repeat(n, *([1] * v.dim())).to(device).contiguous() for k, v in base.items()}
    if mode == "random":
        each = [template(spec, seed=seed * 100_003 + i + 1) for i in range(n)]
        return {k: torch.stack([e[k] for e in each]).to(device).contiguous() for k in PARAM_NAMES}
    raise ValueError(f"unknown init mode {mode!r}; use 'shared' or 'random'")


def check_params(params: dict[str, torch.Tensor], spec: NerfSpec) -> int:
    """Validate names, order-independent shapes and a common leading axis; return B."""
    missing = [k for k in PARAM_NAMES if k not in params]
    if missing:
        raise ValueError(f"NeRF parameters lack {missing}")
    batch = {v.shape[0] for v in params.values()}
    if len(batch) != 1:
        raise ValueError(f"NeRF parameters have different leading (object) sizes {sorted(batch)}")
    for k, shape in spec.shapes().items():
        if tuple(params[k].shape[1:]) != shape:
            raise ValueError(f"{k} has shape {tuple(params[k].shape[1:])}, expected {shape} for {spec}")
    return batch.pop()


def forward(params: dict[str, torch.Tensor], x: torch.Tensor, freqs: int,
            bf16: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """Evaluate B NeRFs at points ``x`` (B, N, 3) -> sigma (B, N) >= 0, rgb (B, N, 3) in [0, 1].

    ``bf16``: the layers' products in bfloat16 (autocast; parameters, encoding and outputs stay float32).
    On a CPU with AVX-512 BF16 the width-48 products run about 3x faster than in float32, whose batched
    products reach only about half the machine's sgemm peak on these small shapes (see ``make bench``)."""
    h = encode(x, freqs)
    with torch.autocast(x.device.type, dtype=torch.bfloat16, enabled=bf16):
        for i in range(NUM_LAYERS):
            w, b = params[f"l{i}.weight"], params[f"l{i}.bias"]
            h = torch.baddbmm(b.unsqueeze(1), h, w.transpose(1, 2))
            if i < NUM_LAYERS - 1:
                h = torch.relu_(h)
    h = h.float()
    return F.softplus(h[..., 3]), torch.sigmoid(h[..., :3])


def flatten(params: dict[str, torch.Tensor]) -> torch.Tensor:
    """(B, P) matrix of all parameters in :data:`PARAM_NAMES` order (for PCA and probes)."""
    return torch.cat([params[k].flatten(1) for k in PARAM_NAMES], dim=1)
