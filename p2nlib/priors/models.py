"""The two priors' networks: ``diffusers`` UNets with a condition added to the time embedding.

Both use ``UNet2DModel(class_embed_type="identity")``: the condition is projected to the time
embedding's width and added to it, which is how ``diffusers`` conditions an unconditional UNet on a
vector. Images are (B, 3, S, S) in [-1, 1]. A learned *null* condition stands for "no condition"
(classifier-free guidance); training replaces the condition by it with probability ``cond_drop``.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from p2nlib.core.profiles import Profile


@dataclass(frozen=True)
class PriorConfig:
    size: int = 32                                   # image size (pixels, square)
    channels: tuple[int, ...] = (32, 64, 64)         # UNet block widths; attention only in the last block
    steps: int = 1200                                # training steps
    batch: int = 32
    lr: float = 1e-3                                 # AdamW, warmup then cosine decay
    cond_drop: float = 0.1                           # classifier-free guidance: condition dropped this often
    timesteps: int = 1000                            # DDPM steps, cosine ("squaredcos_cap_v2") schedule
    snr_gamma: float = 5.0                           # Min-SNR-gamma loss weighting (Hang et al. 2023); 0: plain MSE
    bf16: bool = False                               # the UNet under bfloat16 autocast while training (a speed lever
                                                     # measured, not adopted: README); loss, AdamW, sampling float32

    @classmethod
    def from_profile(cls, p: Profile, kind: str, **overrides) -> "PriorConfig":
        """The profile's ``kind`` ("text" or "view") prior; they differ only in their block widths."""
        if kind not in ("text", "view"):
            raise ValueError(f"kind must be 'text' or 'view', not {kind!r}")
        channels = p.text_prior_channels if kind == "text" else p.prior_channels
        base = dict(size=p.prior_size, channels=tuple(channels), steps=p.prior_steps,
                    batch=p.prior_batch, lr=p.prior_lr)
        base.update(overrides)
        return cls(**base)

    @property
    def time_dim(self) -> int:
        """Width of the UNet's time embedding (``diffusers``: 4 x the first block's width)."""
        return 4 * self.channels[0]


def unet(cfg: PriorConfig, in_channels: int):
    """A ``diffusers`` UNet2DModel: one ResNet layer per block, attention only at the lowest resolution."""
    from diffusers import UNet2DModel

    n = len(cfg.channels)
    return UNet2DModel(sample_size=cfg.size, in_channels=in_channels, out_channels=3, layers_per_block=1,
                       block_out_channels=tuple(cfg.channels),
                       down_block_types=("DownBlock2D",) * (n - 1) + ("AttnDownBlock2D",),
                       up_block_types=("AttnUpBlock2D",) + ("UpBlock2D",) * (n - 1),
                       norm_num_groups=8, attention_head_dim=8, class_embed_type="identity")


def scheduler(cfg: PriorConfig):
    """The training / noising schedule: DDPM, cosine betas, epsilon prediction."""
    from diffusers import DDPMScheduler

    return DDPMScheduler(num_train_timesteps=cfg.timesteps, beta_schedule="squaredcos_cap_v2",
                         prediction_type="epsilon")


class _Conditioned(nn.Module):
    """A UNet whose condition vector (B, cond_dim) is projected onto its time embedding."""

    def __init__(self, cfg: PriorConfig, cond_dim: int, in_channels: int):
        super().__init__()
        self.cfg, self.cond_dim = cfg, cond_dim
        self.unet = unet(cfg, in_channels)
        self.proj = nn.Sequential(nn.Linear(cond_dim, cfg.time_dim), nn.SiLU(), nn.Linear(cfg.time_dim, cfg.time_dim))
        self.null = nn.Parameter(torch.zeros(cond_dim))

    def _cond(self, cond: torch.Tensor, drop: torch.Tensor | None) -> torch.Tensor:
        if drop is not None:
            cond = torch.where(drop[:, None], self.null.expand_as(cond), cond)
        return self.proj(cond)

    def unconditional(self, batch: int) -> torch.Tensor:
        return self.null.expand(batch, -1)

    def _here(self, *tensors):
        """The inputs on the prior's device (``None`` stays ``None``): callers may pass CPU tensors to a GPU prior."""
        dev = self.null.device
        return [x if x is None else x.to(dev) for x in tensors]


class TextPrior(_Conditioned):
    """Denoises a render given the CLIP text embedding of its caption (stands in for Stable Diffusion)."""

    def __init__(self, cfg: PriorConfig, embed_dim: int):
        super().__init__(cfg, embed_dim, in_channels=3)

    def forward(self, x_t: torch.Tensor, t: torch.Tensor, text_emb: torch.Tensor,
                drop: torch.Tensor | None = None) -> torch.Tensor:
        """Predicted noise (B, 3, S, S) on ``x_t``'s device; ``drop`` (B,) bool replaces the condition by the null one."""
        x, t, text_emb, drop = self._here(x_t, t, text_emb, drop)
        return self.unet(x, t, class_labels=self._cond(text_emb, drop)).sample.to(x_t.device)


class ViewPrior(_Conditioned):
    """Denoises the view from a new camera given a reference view and the relative camera (stands in for
    Zero-1-to-3). The reference is concatenated to the noisy input; the camera encoding is the condition.
    Dropping the condition also blanks the reference (Zero-1-to-3's classifier-free guidance drops both)."""

    def __init__(self, cfg: PriorConfig):
        super().__init__(cfg, cond_dim=4, in_channels=6)

    def forward(self, x_t: torch.Tensor, t: torch.Tensor, reference: torch.Tensor, camera: torch.Tensor,
                drop: torch.Tensor | None = None) -> torch.Tensor:
        x, t, reference, camera, drop = self._here(x_t, t, reference, camera, drop)
        if drop is not None:
            reference = torch.where(drop[:, None, None, None], torch.zeros_like(reference), reference)
        x = torch.cat([x, reference], 1)
        return self.unet(x, t, class_labels=self._cond(camera, drop)).sample.to(x_t.device)


# ----------------------------------------------------------------------------------------------
# cameras: all on orbits around the origin, so a camera is (azimuth, elevation, radius)
# ----------------------------------------------------------------------------------------------

def camera_angles(c2w: torch.Tensor) -> torch.Tensor:
    """(n, 3): azimuth and elevation (degrees) and radius of cameras (n, 4, 4) looking at the origin,
    in the convention of :func:`p2nlib.data.cameras.orbit`."""
    eye = c2w[:, :3, 3]
    r = eye.norm(dim=-1)
    el = torch.rad2deg(torch.asin((eye[:, 1] / r).clamp(-1, 1)))
    az = torch.rad2deg(torch.atan2(eye[:, 0], eye[:, 2])) % 360
    return torch.stack([az, el, r], -1)


def relative_camera(ref_c2w: torch.Tensor, tgt_c2w: torch.Tensor) -> torch.Tensor:
    """(n, 3): the move from reference to target camera, as Zero-1-to-3 states it: change of elevation
    (degrees), change of azimuth (degrees, any real number: only its angle matters) and of radius."""
    a, b = camera_angles(ref_c2w), camera_angles(tgt_c2w)
    return torch.stack([b[:, 1] - a[:, 1], b[:, 0] - a[:, 0], b[:, 2] - a[:, 2]], -1)


def camera_encoding(rel: torch.Tensor) -> torch.Tensor:
    """(n, 4) network input for relative cameras (n, 3): elevation change / 90, sin and cos of the azimuth
    change (so 350 deg and -10 deg are the same move), radius change."""
    d_el, d_az, d_r = rel.unbind(-1)
    az = torch.deg2rad(d_az)
    return torch.stack([d_el / 90.0, torch.sin(az), torch.cos(az), d_r], -1)


def param_count(model: nn.Module) -> int:
    return sum(q.numel() for q in model.parameters())
