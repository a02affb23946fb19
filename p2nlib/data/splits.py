"""Every set of world objects the book uses, in one table: which categories, which index range,
which world seed, and what it is for.

Objects are made by ``world.make_object(category, index, WORLD_SEED)``, so an object set is a range
of indices per category. The sets are chosen so that nothing evaluated on was trained on:

======================  ===========  ==================  ==========================================
set                     categories   indices             used by
======================  ===========  ==================  ==========================================
``dataset``             8 in-dist.   0 .. n-1            the NeRF dataset (01), stages 1 and 2
``clip_train``          all 16       0 .. m-1            the small CLIP's training (02); contains the
                                                         dataset objects on purpose (real CLIP has
                                                         seen ShapeNet-like things)
``clip_eval``           all 16       10,000 ..           the small CLIP's held-out evaluation (02)
``ood_prompts``         8 out-dist.  20,000             image prompts of 06, seen by no model
``controls``            all 16       30,000 ..           the starts of the baselines' positive controls
                                                         (05, 06), seen by no model
======================  ===========  ==================  ==========================================

:func:`overlaps` lists any pair of sets that share an object, apart from the one intended
containment (``clip_train`` ⊇ ``dataset``); a test keeps it empty for every profile.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from p2nlib.core.profiles import Profile
from p2nlib.data import world

#: world seed of every object of the book
WORLD_SEED = 0
#: first object index of the CLIP evaluation objects and of the out-of-distribution prompt objects
CLIP_EVAL_START, OOD_START, CONTROLS_START = 10_000, 20_000, 30_000
#: candidate objects per category of the ``controls`` set (a control picks the one nearest its prompt)
CONTROL_CANDIDATES = 8


@dataclass(frozen=True)
class ObjectSet:
    name: str
    categories: tuple[str, ...]
    start: int
    count: Callable[[Profile, str], int]      # objects per category (may depend on the category)
    purpose: str

    def indices(self, p: Profile, category: str) -> range:
        if category not in self.categories:
            return range(0)
        return range(self.start, self.start + self.count(p, category))

    def members(self, p: Profile) -> set[tuple[str, int]]:
        return {(c, i) for c in self.categories for i in self.indices(p, c)}


def _clip_train_count(p: Profile, category: str) -> int:
    # in-distribution categories: at least the dataset objects; the others: clip_objects_per_category
    if category in world.IN_DISTRIBUTION:
        return max(p.clip_objects_per_category, p.objects_per_category)
    return p.clip_objects_per_category


OBJECT_SETS: dict[str, ObjectSet] = {s.name: s for s in (
    ObjectSet("dataset", tuple(world.IN_DISTRIBUTION), 0, lambda p, c: p.objects_per_category,
              "the NeRF dataset (01_dataset); stages 1 and 2 train on its train split"),
    ObjectSet("clip_train", tuple(world.CATEGORIES), 0, _clip_train_count,
              "the small CLIP's training objects (02_clip); includes the dataset objects"),
    ObjectSet("clip_eval", tuple(world.CATEGORIES), CLIP_EVAL_START, lambda p, c: p.clip_eval_objects,
              "the small CLIP's held-out evaluation objects (02_clip)"),
    ObjectSet("ood_prompts", tuple(world.OUT_OF_DISTRIBUTION), OOD_START, lambda p, c: 1,
              "out-of-distribution image prompts (06), seen by no model"),
    ObjectSet("controls", tuple(world.CATEGORIES), CONTROLS_START, lambda p, c: CONTROL_CANDIDATES,
              "candidate starts of the baselines' positive controls (05, 06), seen by no model"),
)}

#: overlaps that are intended: (containing set, contained set)
INTENDED = {("clip_train", "dataset")}


def objects(name: str, p: Profile, categories=None) -> list[world.WorldObject]:
    """The world objects of a set, category-major (``categories`` restricts and orders them)."""
    s = OBJECT_SETS[name]
    cats = list(categories) if categories is not None else list(s.categories)
    bad = [c for c in cats if c not in s.categories]
    if bad:
        raise ValueError(f"{bad} are not categories of the {name!r} object set; it has {', '.join(s.categories)}")
    return [world.make_object(c, i, WORLD_SEED) for c in cats for i in s.indices(p, c)]


def overlaps(p: Profile) -> list[tuple[str, str, int]]:
    """Pairs of object sets sharing objects (apart from :data:`INTENDED`), with the shared count."""
    names = list(OBJECT_SETS)
    out = []
    for a_i, a in enumerate(names):
        for b in names[a_i + 1:]:
            if (a, b) in INTENDED or (b, a) in INTENDED:
                continue
            shared = OBJECT_SETS[a].members(p) & OBJECT_SETS[b].members(p)
            if shared:
                out.append((a, b, len(shared)))
    return out
