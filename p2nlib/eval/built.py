"""Has a run built its object? A measure that tells an object from fog, a slab or an empty page.

CLIP similarity to the prompt cannot: the empty template scores 0.68 against "a snowman on a blue chair",
and a frame-filling slab of the right colour scores well too. The world knows every category, the
out-of-distribution ones included, so a text-prompted run is **built** at an epoch when both hold:

* **named**: the book's CLIP, zero-shot over all 16 categories (``world.category_caption``), names the
  prompt's category from more than half of the fixed check views;
* **shaped**: the median over check views of the occupied fraction (pixels with opacity > 0.5) lies within
  what ground-truth renders of that category show from the same poses (:func:`occupancy_ranges`: the
  range over reference objects, widened by :data:`OCCUPANCY_MARGIN` each way), so neither empty nor
  frame-filling.

The optimiser logs every check view's CLIP embedding and occupied fraction at every epoch
(:class:`~p2nlib.baselines.optimize.OptimResult`), so ``built`` and the iterations to *built and stays
built* are computed from the logs, for any run, after the fact.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from p2nlib.data import cameras, fit, world

#: reference objects per category for the occupied-fraction range (indices 1000.. of the world: no split uses them)
REFERENCE_OBJECTS, REFERENCE_START = 6, 1000
#: the ground-truth range of the occupied fraction is widened by this factor each way (min / m, max * m)
OCCUPANCY_MARGIN = 1.5
#: a pixel is occupied when the rendered opacity exceeds this
OPACITY_LEVEL = 0.5


def occupied_fraction(opacity: torch.Tensor) -> torch.Tensor:
    """Fraction of pixels with opacity above :data:`OPACITY_LEVEL`: (..., H, W) -> (...)."""
    return (opacity > OPACITY_LEVEL).float().mean((-2, -1))


@dataclass(frozen=True)
class BuiltRule:
    """What ``built`` compares against: the category names, their caption embeddings (16, D) from the book's
    CLIP, and per category the allowed range of the occupied fraction."""
    categories: tuple[str, ...]
    text_emb: torch.Tensor
    occupancy: dict[str, tuple[float, float]]
    named_fraction: float = 0.5      # more than this fraction of check views must name the category

    @classmethod
    def make(cls, encoder, check_views: int, size: int, samples: int, shapes=None,
             categories: tuple[str, ...] = world.CATEGORIES, occupancy: dict | None = None) -> "BuiltRule":
        """Zero-shot over ``categories``; occupied-fraction ranges for ``shapes`` (default: all categories;
        each costs a few ground-truth renders), or ``occupancy`` as :func:`occupancy_ranges` gave them."""
        text = encoder.encode_text([world.category_caption(c) for c in categories]).float()
        if occupancy is None:
            shapes = categories if shapes is None else tuple(dict.fromkeys(shapes))
            occupancy = occupancy_ranges(shapes, check_views, size, samples)
        return cls(tuple(categories), text, {c: tuple(v) for c, v in occupancy.items()})

    def describe(self) -> str:
        return (f"built = the book's CLIP names the prompt's category (zero-shot over {len(self.categories)}) from "
                f"more than {self.named_fraction:.0%} of the check views, and the median occupied fraction "
                f"(opacity > {OPACITY_LEVEL}) lies within the range of ground-truth renders of that category "
                f"(widened {OCCUPANCY_MARGIN:g}× each way)")

    def named(self, emb: torch.Tensor, category: str) -> torch.Tensor:
        """Fraction of check views named ``category``: embeddings (..., V, D) -> (...)."""
        c = self._index(category)
        pred = (emb.float() @ self.text_emb.T.to(emb.device)).argmax(-1)
        return (pred == c).float().mean(-1)

    def shaped(self, occupancy: torch.Tensor, category: str) -> torch.Tensor:
        """Whether the median occupied fraction over check views is in the category's range: (..., V) -> (...)."""
        self._index(category)
        if category not in self.occupancy:
            raise ValueError(f"no occupied-fraction range for {category!r}; make the rule with it in its shapes")
        lo, hi = self.occupancy[category]
        med = occupancy.float().median(-1).values
        return (med >= lo) & (med <= hi)

    def built(self, emb: torch.Tensor, occupancy: torch.Tensor, category: str) -> torch.Tensor:
        """``built`` per leading index: embeddings (..., V, D) and occupied fractions (..., V) -> bool (...)."""
        return (self.named(emb, category) > self.named_fraction) & self.shaped(occupancy, category)

    def _index(self, category: str) -> int:
        if category not in self.categories:
            raise ValueError(f"unknown category {category!r}; the rule knows {', '.join(self.categories)}")
        return self.categories.index(category)


def occupancy_ranges(categories, views: int, size: int, samples: int,
                     n: int = REFERENCE_OBJECTS) -> dict[str, tuple[float, float]]:
    """Per category, the range (min / margin, min(max * margin, 0.98)) of the occupied fraction of ``n``
    reference objects' ground-truth renders at the check poses (``views`` evenly spaced, 25° elevation)."""
    poses = cameras.turntable(views, elevation=25.0)
    out = {}
    for c in categories:
        objs = world.make_objects([c], n, start=REFERENCE_START)
        _, opacity = fit.render_ground_truth(objs, poses, size, samples, opacity=True)
        occ = occupied_fraction(opacity)
        out[c] = (float(occ.min()) / OCCUPANCY_MARGIN, min(float(occ.max()) * OCCUPANCY_MARGIN, 0.98))
    return out


def first_stays(flags) -> int | None:
    """Index of the first entry from which every later entry of the boolean sequence is True (None: never,
    including when the last entry is False)."""
    flags = [bool(f) for f in flags]
    if not flags or not flags[-1]:
        return None
    i = len(flags) - 1
    while i > 0 and flags[i - 1]:
        i -= 1
    return i
