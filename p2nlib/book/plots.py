"""Figure defaults and the one helper through which every figure is saved."""
from __future__ import annotations

import textwrap

import matplotlib

matplotlib.use("Agg") if matplotlib.get_backend().lower() in ("", "agg") else None
import matplotlib.pyplot as plt  # noqa: E402

from p2nlib.core import paths  # noqa: E402


def set_style() -> None:
    plt.rcParams.update({
        "figure.dpi": 90, "savefig.dpi": 110, "figure.figsize": (7, 4),
        "axes.spines.top": False, "axes.spines.right": False, "axes.grid": True,
        "grid.alpha": 0.3, "font.size": 10, "image.interpolation": "nearest",
    })


def savefig(fig: "plt.Figure", name: str) -> None:
    """Save ``fig`` as ``<figures>/<name>.png`` (small PNG). Returns nothing, so a notebook cell ending
    with it shows the figure and no machine path.

    First the figure is checked for layout problems (:mod:`p2nlib.book.figcheck`: empty panels, titles over
    other axes, overlapping tick labels, text off the figure). ``P2N_FIGCHECK=strict`` (set by ``make test``)
    raises :class:`~p2nlib.core.errors.P2NError` on any; ``off`` skips the check; otherwise it warns."""
    import os
    import warnings

    from p2nlib.book import figcheck
    from p2nlib.core.errors import P2NError

    mode = os.environ.get("P2N_FIGCHECK", "warn").strip().lower()
    found = [] if mode == "off" else figcheck.problems(fig, tight=True)   # saved with bbox_inches="tight"
    if found:
        listed = "\n".join(f"  - {p}" for p in found)
        if mode == "strict":
            raise P2NError(
                f"figure {name!r} has {len(found)} layout problem(s):\n{listed}\nFix the figure code: "
                "call fig.tight_layout() or enlarge figsize, rotate/shorten/thin crowded tick labels, shorten "
                "titles, give titles only to cells that show something (or fig.delaxes an unused axes), and "
                "place texts inside the figure. P2N_FIGCHECK=warn only warns.")
        warnings.warn(f"figure {name!r} has layout problems:\n{listed}", stacklevel=2)
    fig.savefig(paths.figures_dir() / f"{name}.png", bbox_inches="tight")


def save_table(markdown: str, name: str) -> None:
    """Save a Markdown table as ``<figures>/<name>.md``."""
    (paths.figures_dir() / f"{name}.md").write_text(markdown)


def show(grid: dict, name: str) -> None:
    """An image grid (the arguments of :func:`image_grid`, as the chapters return them), saved as ``name``."""
    savefig(image_grid(**grid), name)


def labelled_montage(panels, row_labels, pad: int = 1, scale: float = 0.045) -> "plt.Figure":
    """Small images as one picture per panel: ``panels`` is a list of (rows, cols, H, W, 3) arrays in [0, 1],
    ``row_labels`` one list of row names per panel. Pixels are shown as pixels (nearest), so 16-px samples
    stay legible, and rows are named on the left."""
    import numpy as np

    arrays = [np.asarray(p.detach().cpu() if hasattr(p, "detach") else p).clip(0, 1) for p in panels]
    pics = []
    for a in arrays:
        r, c, h, w, _ = a.shape
        pic = np.ones((r * (h + pad) - pad, c * (w + pad) - pad, 3))
        for i in range(r):
            for j in range(c):
                pic[i * (h + pad):i * (h + pad) + h, j * (w + pad):j * (w + pad) + w] = a[i, j]
        pics.append(pic)
    width = sum(p.shape[1] for p in pics) * scale + 1.3 * len(pics)
    fig, axes = plt.subplots(1, len(pics), figsize=(width, max(p.shape[0] for p in pics) * scale + 0.3),
                             squeeze=False)
    for ax, pic, a, labels in zip(axes[0], pics, arrays, row_labels):
        h = a.shape[2]
        ax.imshow(pic, interpolation="nearest")
        ax.set_xticks([])
        ax.set_yticks([i * (h + pad) + h / 2 - 0.5 for i in range(a.shape[0])], [str(x) for x in labels], fontsize=8)
        ax.tick_params(length=0)
        ax.grid(False)
        for side in ax.spines.values():
            side.set_visible(False)
    fig.tight_layout(pad=0.3)
    return fig


def pipeline_diagram() -> "plt.Figure":
    """The paper's Fig. 1 as boxes and arrows: prompt -> CLIP -> Transformer -> latent -> VAE decoder -> NeRF."""
    from matplotlib.patches import FancyArrowPatch, FancyBboxPatch

    fig, ax = plt.subplots(figsize=(10, 3.8))
    ax.set_xlim(0, 10)
    ax.set_ylim(0, 3.8)
    ax.axis("off")
    boxes = {
        "text": (0.1, 2.3, "text prompt\n\"a brown table\"", "#fde2c8"),
        "image": (0.1, 0.5, "image prompt\n(one view)", "#fde2c8"),
        "nrs": (1.9, 2.3, "nearest training\nscene (CLIP t→i)", "#e8e8e8"),
        "clip": (3.7, 1.4, "CLIP image\nembedding", "#cfe3f7"),
        "align": (5.3, 1.4, "Transformer\n(14 tokens, [BOS])", "#d6f0d2"),
        "vae": (6.9, 1.4, "14 VAE\ndecoders", "#d6f0d2"),
        "nerf": (8.5, 1.4, "NeRF MLP\n7 W + 7 b", "#f7d0d0"),
    }
    w, h = 1.45, 0.8
    for key, (x, y, label, color) in boxes.items():
        ax.add_patch(FancyBboxPatch((x, y), w, h, boxstyle="round,pad=0.05", fc=color, ec="#444"))
        ax.text(x + w / 2, y + h / 2, label, ha="center", va="center", fontsize=8.5)

    def arrow(a, b, style="-|>"):
        (xa, ya, *_), (xb, yb, *_) = boxes[a], boxes[b]
        ax.add_patch(FancyArrowPatch((xa + w, ya + h / 2), (xb, yb + h / 2), arrowstyle=style,
                                     mutation_scale=12, color="#333", connectionstyle="arc3,rad=0.0"))

    for a, b in [("text", "nrs"), ("nrs", "clip"), ("image", "clip"), ("clip", "align"),
                 ("align", "vae"), ("vae", "nerf")]:
        arrow(a, b)
    ax.text(6.0, 0.55, "one forward pass (in-distribution result)", ha="center", fontsize=8.5, color="#2a6")
    ax.text(9.2, 0.55, "→ render, or initialise\nper-prompt optimisation", ha="center", fontsize=8, color="#a33")
    ax.text(5.0, 3.55, "Stage 1: VAE on NeRF parameters   ·   Stage 2: align CLIP image embedding to latent",
            ha="center", fontsize=9)
    return fig


def image_grid(images, titles=None, ncols: int = 8, size: float = 1.3, row_labels=None,
               texts: dict[int, str] | None = None) -> "plt.Figure":
    """Show images (N, H, W, 3) in [0, 1] (numpy or torch) in a grid with optional titles; ``texts`` writes a
    text over the image of those indices (a text prompt where an image prompt would be)."""
    import numpy as np

    images = np.asarray(images.detach().cpu() if hasattr(images, "detach") else images).clip(0, 1)
    n = len(images)
    nrows = (n + ncols - 1) // ncols
    lines = max((str(t).count("\n") + 1 for t in titles), default=1) if titles is not None else 1
    fig, axes = plt.subplots(nrows, ncols, figsize=(ncols * size, nrows * (size * 1.12 + 0.16 * (lines - 1))), squeeze=False)
    for k, ax in enumerate(axes.flat):
        ax.axis("off")
        if k < n:
            ax.imshow(images[k])
            if titles is not None and k < len(titles):   # shorter lists title the first images (a header row)
                ax.set_title(str(titles[k]), fontsize=7, pad=2)
            if texts and k in texts:
                ax.text(0.5, 0.5, textwrap.fill(str(texts[k]), 14), transform=ax.transAxes, ha="center",
                        va="center", fontsize=7, style="italic")
    if row_labels is not None:
        for r, label in enumerate(row_labels[:nrows]):
            label = "\n".join(textwrap.wrap(str(label), 18)) or str(label)   # long prompts wrap, never overlap
            axes[r, 0].text(-0.08, 0.5, label, transform=axes[r, 0].transAxes, ha="right", va="center",
                            fontsize=8, rotation=90)
    fig.tight_layout(pad=0.3)
    return fig
