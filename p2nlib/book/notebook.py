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
    import logging

    # torch.compile's C++ build says "No CUDA runtime is found" on every CPU machine: not news to a reader
    logging.getLogger("torch.utils.cpp_extension").setLevel(logging.ERROR)
    prof = get_profile(profile)
    dev = resolve_device(device)
    seed_everything(seed)
    from p2nlib.book import plots

    plots.set_style()
    use_book_plotly_renderer()
    claims.start(prof.name, str(dev))
    return Context(profile=prof, device=dev, seed=seed)


PLOTLY_RENDERER = "plotly_mimetype+p2n_book"


def use_book_plotly_renderer() -> None:
    """Show plotly figures both ways: the plotly mimetype (interactive in JupyterLab) and HTML for the
    built book. The HTML only calls ``Plotly.newPlot``: the book loads its own copy of plotly.js
    (``book/_static/plotly.min.js``), so no output embeds plotly.js, asks a CDN, needs require.js or
    loads MathJax (plotly's own "notebook" renderer links MathJax from a CDN)."""
    try:
        import plotly.io as pio
        from plotly.io.base_renderers import MimetypeRenderer
    except ImportError:                      # no plotly: nothing to configure
        return

    class BookHtmlRenderer(MimetypeRenderer):
        def to_mimebundle(self, fig_dict):
            return {"text/html": pio.to_html(fig_dict, include_plotlyjs=False, include_mathjax=False,
                                              full_html=False, default_width="100%", default_height=525,
                                              validate=False)}

    pio.renderers["p2n_book"] = BookHtmlRenderer()
    pio.renderers.default = PLOTLY_RENDERER


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
