"""One place for what every notebook does first: resolve the device, seed, set figure
defaults, start the claims record, and report the environment."""
from __future__ import annotations

import os
import platform
from dataclasses import dataclass

import torch

from p2nlib.book import claims
from p2nlib.core.device import resolve_device, seed_everything
from p2nlib.core.profiles import Profile, get_profile


@dataclass(frozen=True)
class Context:
    profile: Profile
    device: torch.device
    seed: int


def setup(profile: str | None = None, device: str = "auto", seed: int = 0) -> Context:
    """Resolve profile and device, seed every RNG, set plot defaults, start this notebook's claims."""
    prof = get_profile(profile)
    dev = resolve_device(device)
    seed_everything(seed)
    from p2nlib.book import plots

    plots.set_style()
    claims.start(prof.name, str(dev))
    return Context(profile=prof, device=dev, seed=seed)


def environment_report(ctx: Context) -> dict:
    """Versions and hardware, for the top of each notebook."""
    import importlib.metadata as md

    def version(pkg: str) -> str:
        try:
            return md.version(pkg)
        except md.PackageNotFoundError:
            return "not installed"

    report = {
        "profile": ctx.profile.name,
        "device": str(ctx.device),
        "gpu": torch.cuda.get_device_name(0) if ctx.device.type == "cuda" else "none",
        "cpu threads": torch.get_num_threads(),
        "python": platform.python_version(),
        "platform": platform.platform(terse=True),
        "git commit": claims.git_commit(),
        "HF_HUB_OFFLINE": os.environ.get("HF_HUB_OFFLINE", "unset"),
    }
    for pkg in ("torch", "torchvision", "open_clip_torch", "pytorch-fid", "safetensors", "matplotlib",
                "papermill", "jupytext", "jupyter-book"):
        report[pkg] = version(pkg)
    return report
