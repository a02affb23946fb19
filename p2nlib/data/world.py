"""A procedural 3D world: parametric objects that stand in for ShapeNet / Objaverse.

Why: the paper trains on NeRFs of real 3D assets with captions. We cannot ship those, so every
object here is a small *program*: a union of simple primitives (box, sphere, cylinder, capsule,
torus, cone) described by signed distance functions (SDFs), each primitive with a colour from
:data:`PALETTE`. A category (chair, airplane, ...) is a generator that draws a handful of discrete
shape attributes (armrests yes/no, wing sweep, ...) plus small continuous jitter, builds the parts,
and writes captions from the attributes. Everything is deterministic in ``(category, index, seed)``.

Conventions
-----------
* World frame: ``y`` is up. Every object is scaled/centred to lie inside ``[-0.49, 0.49]^3``
  (strictly inside the unit cube) and stands on ``y = -0.45``. Fronts face ``+z``.
* A :class:`Part` is evaluated in its local frame: translate by ``-center``, rotate by ``-rotation``
  about the world ``y`` axis, then swap axes so that the part's main ``axis`` becomes local ``y``.
  So ``world = center + R_y(rotation) @ swap(local)`` with ``R_y(t) = [[c, 0, s], [0, 1, 0], [-s, 0, c]]``
  (a positive rotation turns ``+x`` towards ``-z``).
* Union = minimum over parts; the colour of a point is the colour of the part with the smallest SDF.

The renderer calls :func:`density_color`, which evaluates all parts of a batch of objects with a few
tensor ops per primitive kind (no Python loop over points).
"""

from __future__ import annotations

import hashlib
import math
import os
import random
import warnings
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Callable, Sequence

import torch

__all__ = [
    "IN_DISTRIBUTION",
    "OUT_OF_DISTRIBUTION",
    "CATEGORIES",
    "PALETTE",
    "KINDS",
    "Part",
    "WorldObject",
    "make_object",
    "make_objects",
    "density_color",
    "category_caption",
    "part_sdf",
    "part_bounds",
]

IN_DISTRIBUTION: tuple[str, ...] = ("chair", "table", "airplane", "car", "bathtub", "guitar", "lamp", "sofa")
OUT_OF_DISTRIBUTION: tuple[str, ...] = (
    "fountain", "ball", "torch", "hammer", "mug", "rocket", "mushroom", "snowman",
)
CATEGORIES: tuple[str, ...] = IN_DISTRIBUTION + OUT_OF_DISTRIBUTION

#: Named colours (rgb in [0, 1]). "white" is off-white because the renderer's background is pure white.
PALETTE: dict[str, tuple[float, float, float]] = {
    "red": (0.85, 0.12, 0.12),
    "green": (0.16, 0.62, 0.22),
    "blue": (0.14, 0.32, 0.86),
    "yellow": (0.96, 0.84, 0.10),
    "orange": (0.96, 0.50, 0.08),
    "purple": (0.55, 0.22, 0.70),
    "brown": (0.50, 0.30, 0.13),
    "black": (0.08, 0.08, 0.08),
    "white": (0.90, 0.90, 0.87),
    "grey": (0.50, 0.50, 0.50),
    "pink": (0.96, 0.52, 0.72),
    "teal": (0.00, 0.55, 0.55),
    "navy": (0.06, 0.10, 0.40),
    "beige": (0.84, 0.74, 0.55),
    "gold": (0.85, 0.65, 0.13),
    "silver": (0.70, 0.72, 0.76),
}

#: Primitive kinds, in the order :func:`density_color` evaluates them.
KINDS: tuple[str, ...] = ("box", "sphere", "cylinder", "capsule", "torus", "cone")
_SIZE_LEN = {"box": (3, 4), "sphere": (1,), "cylinder": (2,), "capsule": (2,), "torus": (2,), "cone": (2, 3)}

_BRIGHT = ["red", "green", "blue", "yellow", "orange", "purple", "pink", "teal"]
_NEUTRAL = ["black", "white", "grey", "brown", "beige", "silver", "navy"]

# Objects are fitted into [-BOUND, BOUND] horizontally and [FLOOR, BOUND] vertically.
_FLOOR = -0.45
_FIT = 0.47  # a little inside 0.49 so that rounding of coordinates can never cross the limit


# ----------------------------------------------------------------------------------------------
# Data types
# ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Part:
    """One primitive of an object.

    ``size`` depends on ``kind``: box ``(hx, hy, hz[, rounding])`` half-extents in the local frame
    (the rounding radius is inside the half-extents); sphere ``(r,)``; cylinder ``(radius, half_height)``;
    capsule ``(radius, half_length)`` (segment half length, caps add ``radius``); torus ``(major, minor)``
    (ring around the main axis); cone ``(radius, half_height[, top_radius])`` (``radius`` at local
    ``-y``, ``top_radius`` (default 0, a point) at local ``+y``: a capped cone / frustum).
    """

    kind: str
    center: tuple[float, float, float]
    size: tuple[float, ...]
    axis: str
    rotation: float
    color: str
    name: str

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"unknown part kind {self.kind!r}; valid kinds: {', '.join(KINDS)}")
        if self.axis not in ("x", "y", "z"):
            raise ValueError(f"part axis must be 'x', 'y' or 'z', got {self.axis!r}")
        if self.color not in PALETTE:
            raise ValueError(f"part colour {self.color!r} not in PALETTE ({', '.join(PALETTE)})")
        if len(self.size) not in _SIZE_LEN[self.kind]:
            raise ValueError(f"{self.kind} size needs {_SIZE_LEN[self.kind]} values, got {self.size}")
        if len(self.center) != 3:
            raise ValueError(f"part center must have 3 values, got {self.center}")


@dataclass(frozen=True)
class WorldObject:
    """A generated object: its identity, attribute record, captions and primitive parts."""

    category: str
    index: int
    seed: int
    attributes: dict = field(hash=False)
    captions: tuple[str, ...]
    parts: tuple[Part, ...]

    @property
    def object_id(self) -> str:
        """Stable identifier, e.g. ``chair-0-00012``."""
        return f"{self.category}-{self.seed}-{self.index:05d}"

    def sdf_color(self, points: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Signed distance and colour at ``points`` (..., 3) -> ``(sdf (...,), rgb (..., 3))``.

        Reference implementation (a Python loop over parts); :func:`density_color` is the fast,
        batched path and is tested against this one.
        """
        flat = points.reshape(-1, 3)
        sd = torch.stack([part_sdf(p, flat) for p in self.parts], dim=0)  # (K, M)
        sdf, idx = sd.min(dim=0)
        cols = torch.tensor([PALETTE[p.color] for p in self.parts], dtype=points.dtype, device=points.device)
        return sdf.reshape(points.shape[:-1]), cols[idx].reshape(*points.shape[:-1], 3)


# ----------------------------------------------------------------------------------------------
# Signed distance functions (Inigo Quilez), all in the primitive's local frame (main axis = y).
# ``q`` is (..., 3); ``prm`` is (..., 4) padded size parameters broadcastable against q[..., 0].
# ----------------------------------------------------------------------------------------------


def _sd_box(q: torch.Tensor, prm: torch.Tensor) -> torch.Tensor:
    """(Rounded) box with half-extents prm[0:3] and rounding radius prm[3]."""
    half, r = prm[..., 0:3], prm[..., 3:4]
    d = q.abs() - half + r
    return d.clamp(min=0.0).norm(dim=-1) + d.amax(dim=-1).clamp(max=0.0) - r[..., 0]


def _sd_sphere(q: torch.Tensor, prm: torch.Tensor) -> torch.Tensor:
    """Sphere of radius prm[0]."""
    return q.norm(dim=-1) - prm[..., 0]


def _sd_cylinder(q: torch.Tensor, prm: torch.Tensor) -> torch.Tensor:
    """Capped cylinder along y: radius prm[0], half height prm[1]."""
    dr = torch.hypot(q[..., 0], q[..., 2]) - prm[..., 0]
    dy = q[..., 1].abs() - prm[..., 1]
    return torch.maximum(dr, dy).clamp(max=0.0) + torch.hypot(dr.clamp(min=0.0), dy.clamp(min=0.0))


def _sd_capsule(q: torch.Tensor, prm: torch.Tensor) -> torch.Tensor:
    """Capsule along y: radius prm[0], segment from -prm[1] to +prm[1]."""
    h = prm[..., 1]
    y = q[..., 1]
    y = y - torch.minimum(torch.maximum(y, -h), h)
    return torch.sqrt(q[..., 0] ** 2 + y**2 + q[..., 2] ** 2) - prm[..., 0]


def _sd_torus(q: torch.Tensor, prm: torch.Tensor) -> torch.Tensor:
    """Torus around the y axis: major radius prm[0], minor radius prm[1]."""
    return torch.hypot(torch.hypot(q[..., 0], q[..., 2]) - prm[..., 0], q[..., 1]) - prm[..., 1]


def _sd_cone(q: torch.Tensor, prm: torch.Tensor) -> torch.Tensor:
    """Exact capped cone along y: radius prm[0] at y=-h, prm[2] at y=+h, half height h=prm[1]."""
    r1, h, r2 = prm[..., 0], prm[..., 1], prm[..., 2]
    qx = torch.hypot(q[..., 0], q[..., 2])
    qy = q[..., 1]
    ca_x = qx - torch.minimum(qx, torch.where(qy < 0, r1, r2))
    ca_y = qy.abs() - h
    k2x, k2y = r2 - r1, 2.0 * h
    t = (((r2 - qx) * k2x + (h - qy) * k2y) / (k2x * k2x + k2y * k2y)).clamp(0.0, 1.0)
    cb_x = qx - r2 + k2x * t
    cb_y = qy - h + k2y * t
    sign = torch.where((cb_x < 0) & (ca_y < 0), -1.0, 1.0)
    return sign * torch.sqrt(torch.minimum(ca_x * ca_x + ca_y * ca_y, cb_x * cb_x + cb_y * cb_y))


_SDF: dict[str, Callable[[torch.Tensor, torch.Tensor], torch.Tensor]] = {
    "box": _sd_box,
    "sphere": _sd_sphere,
    "cylinder": _sd_cylinder,
    "capsule": _sd_capsule,
    "torus": _sd_torus,
    "cone": _sd_cone,
}

# Rendering the world is one long chain of element-wise operations per primitive kind (the cone alone is
# about twenty): eager PyTorch makes a pass over memory for each. Compiled (``torch.compile``: inductor's
# fused C++/OpenMP or Triton kernels) the ground-truth renders agree with the eager ones to float rounding
# (max 3e-7) and run 1.1-1.3x faster on an idle 2-core CPU (``make bench``; more on a loaded one). The
# kernels compile on first use (about 15 s) and are cached on disk by torch. ``P2N_COMPILE=0`` keeps the
# eager functions; a compiler failure falls back to them with a warning.
_SDF_FAST: dict[str, Callable[[torch.Tensor, torch.Tensor], torch.Tensor]] = {}


def _compile_wanted() -> bool:
    return os.environ.get("P2N_COMPILE", "1") != "0"


def _sdf_fast(kind: str) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    """The compiled SDF of ``kind`` (the eager one where compiling is off or fails)."""
    if not _compile_wanted():
        return _SDF[kind]
    fn = _SDF_FAST.get(kind)
    if fn is None:
        compiled = torch.compile(_SDF[kind], dynamic=True)

        def fn(q, prm, _compiled=compiled, _kind=kind):
            try:
                return _compiled(q, prm)
            except Exception as err:  # no C++ compiler, an unsupported device, ...: the eager maths
                warnings.warn(f"torch.compile of the world's {_kind} SDF failed ({type(err).__name__}: "
                              f"{str(err).splitlines()[0][:120]}); rendering eagerly (slower, same result). "
                              "Set P2N_COMPILE=0 to skip compiling.", RuntimeWarning, stacklevel=2)
                _SDF_FAST[_kind] = _SDF[_kind]
                return _SDF[_kind](q, prm)
        _SDF_FAST[kind] = fn
    return fn
assert tuple(_SDF) == KINDS


def _padded_size(part: Part) -> list[float]:
    """Size parameters padded to 4 (box rounding and cone top radius default to 0)."""
    return list(part.size) + [0.0] * (4 - len(part.size))


def part_sdf(part: Part, points: torch.Tensor) -> torch.Tensor:
    """SDF of a single part at world ``points`` (..., 3) -> (...,). Straightforward per-part path."""
    d = points - torch.tensor(part.center, dtype=points.dtype, device=points.device)
    c, s = math.cos(part.rotation), math.sin(part.rotation)
    x, y, z = c * d[..., 0] - s * d[..., 2], d[..., 1], s * d[..., 0] + c * d[..., 2]  # R_y(rotation)^T d
    if part.axis == "x":
        x, y = y, x
    elif part.axis == "z":
        y, z = z, y
    q = torch.stack([x, y, z], dim=-1)
    prm = torch.tensor(_padded_size(part), dtype=points.dtype, device=points.device)
    return _SDF[part.kind](q, prm)


def part_bounds(part: Part) -> tuple[tuple[float, float, float], tuple[float, float, float]]:
    """Conservative world-space axis-aligned bounding box ``(lo, hi)`` of a part."""
    s = part.size
    if part.kind == "box":
        e = [s[0], s[1], s[2]]
    elif part.kind == "sphere":
        e = [s[0]] * 3
    elif part.kind == "cylinder":
        e = [s[0], s[1], s[0]]
    elif part.kind == "capsule":
        e = [s[0], s[1] + s[0], s[0]]
    elif part.kind == "torus":
        e = [s[0] + s[1], s[1], s[0] + s[1]]
    else:  # cone
        r = max(s[0], s[2] if len(s) > 2 else 0.0)
        e = [r, s[1], r]
    if part.axis == "x":
        e = [e[1], e[0], e[2]]
    elif part.axis == "z":
        e = [e[0], e[2], e[1]]
    c, sn = abs(math.cos(part.rotation)), abs(math.sin(part.rotation))
    w = (c * e[0] + sn * e[2], e[1], sn * e[0] + c * e[2])
    lo = tuple(part.center[i] - w[i] for i in range(3))
    hi = tuple(part.center[i] + w[i] for i in range(3))
    return lo, hi  # type: ignore[return-value]


# ----------------------------------------------------------------------------------------------
# Batched evaluation for the renderer
# ----------------------------------------------------------------------------------------------


@dataclass
class _Packed:
    """All parts of a batch of objects as tensors, sorted by kind (so each kind is one slice)."""

    slices: list[tuple[str, int, int]]
    obj: torch.Tensor  # (P,) object index of each part
    rows: torch.Tensor  # (P,) row b * S + slot in the padded (B * S, N) table
    mat: torch.Tensor  # (P, 3, 3) world offset -> local frame
    offset: torch.Tensor  # (P, 1, 3) -(mat @ center)
    params: torch.Tensor  # (P, 1, 4)
    colors: torch.Tensor  # (B, S, 3)
    n_slots: int


_PACK_CACHE: OrderedDict = OrderedDict()
_PACK_CACHE_SIZE = 16


def _local_matrix(part: Part) -> list[list[float]]:
    """3x3 matrix taking a world offset (p - center) to the part's local frame."""
    c, s = math.cos(part.rotation), math.sin(part.rotation)
    rt = [[c, 0.0, -s], [0.0, 1.0, 0.0], [s, 0.0, c]]  # R_y(rotation)^T
    if part.axis == "x":
        rt[0], rt[1] = rt[1], rt[0]
    elif part.axis == "z":
        rt[1], rt[2] = rt[2], rt[1]
    return rt


def _pack(objects: Sequence[WorldObject], device: torch.device, dtype: torch.dtype) -> _Packed:
    key = (tuple((o.object_id, o.parts) for o in objects), str(device), dtype)
    hit = _PACK_CACHE.get(key)
    if hit is not None:
        _PACK_CACHE.move_to_end(key)
        return hit
    n_slots = max(len(o.parts) for o in objects)
    obj, rows, mats, centers, params, slices = [], [], [], [], [], []
    for kind in KINDS:
        start = len(obj)
        for b, o in enumerate(objects):
            for j, p in enumerate(o.parts):
                if p.kind != kind:
                    continue
                obj.append(b)
                rows.append(b * n_slots + j)
                mats.append(_local_matrix(p))
                centers.append(list(p.center))
                params.append(_padded_size(p))
        if len(obj) > start:
            slices.append((kind, start, len(obj)))
    colors = torch.zeros(len(objects), n_slots, 3, dtype=dtype)
    for b, o in enumerate(objects):
        for j, p in enumerate(o.parts):
            colors[b, j] = torch.tensor(PALETTE[p.color], dtype=dtype)
    mat = torch.tensor(mats, dtype=torch.float64)
    offset = -(mat @ torch.tensor(centers, dtype=torch.float64)[:, :, None])[:, None, :, 0]
    packed = _Packed(
        slices=slices,
        obj=torch.tensor(obj, dtype=torch.long, device=device),
        rows=torch.tensor(rows, dtype=torch.long, device=device),
        mat=mat.to(device=device, dtype=dtype),
        offset=offset.to(device=device, dtype=dtype),
        params=torch.tensor(params, dtype=dtype, device=device)[:, None, :],
        colors=colors.to(device),
        n_slots=n_slots,
    )
    _PACK_CACHE[key] = packed
    if len(_PACK_CACHE) > _PACK_CACHE_SIZE:
        _PACK_CACHE.popitem(last=False)
    return packed


def _batched_sdf_color(objects: Sequence[WorldObject], points: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Union SDF (B, N) and nearest-part colour (B, N, 3) for one point set per object."""
    if points.ndim != 3 or points.shape[-1] != 3:
        raise ValueError(f"points must be (B, N, 3), got {tuple(points.shape)}")
    if len(objects) != points.shape[0]:
        raise ValueError(f"got {len(objects)} objects for {points.shape[0]} point sets")
    b_count, n = points.shape[0], points.shape[1]
    pk = _pack(objects, points.device, points.dtype)
    # local = mat @ (p - c) for every part, in one batched matmul over the part's own point set
    local = torch.baddbmm(pk.offset, points[pk.obj], pk.mat.transpose(1, 2))  # (P, N, 3)
    sdf_parts = points.new_empty(local.shape[0], n)
    for kind, a, b in pk.slices:
        sdf_parts[a:b] = _sdf_fast(kind)(local[a:b], pk.params[a:b])
    table = points.new_full((b_count * pk.n_slots, n), float("inf"))
    table.index_copy_(0, pk.rows, sdf_parts)
    sdf, idx = table.view(b_count, pk.n_slots, n).min(dim=1)
    rgb = pk.colors[torch.arange(b_count, device=points.device)[:, None], idx]
    return sdf, rgb


def density_color(
    objects: Sequence[WorldObject],
    points: torch.Tensor,
    sharpness: float = 60.0,
    sigma_max: float = 80.0,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Volume density and colour for the renderer.

    ``points`` (B, N, 3) holds one point set per object. Returns ``sigma`` (B, N) =
    ``sigma_max * sigmoid(-sdf * sharpness)`` (a soft surface about ``1/sharpness`` thick) and
    ``rgb`` (B, N, 3), the colour of the nearest part. Vectorised: one batched matmul for all
    parts' local frames and one tensor expression per primitive kind.
    """
    sdf, rgb = _batched_sdf_color(objects, points)
    return sigma_max * torch.sigmoid(-sdf * sharpness), rgb


# ----------------------------------------------------------------------------------------------
# Helpers for generators
# ----------------------------------------------------------------------------------------------


@dataclass
class _Draft:
    """What a category generator returns (before fitting into the unit cube)."""

    parts: list[Part]
    attributes: dict
    captions: list[str]
    scale: float = 1.0  # extra shrink after fitting (e.g. a "small" ball)


def _v(center: Sequence[float]) -> tuple[float, float, float]:
    return (float(center[0]), float(center[1]), float(center[2]))


def _box(name: str, color: str, center: Sequence[float], half: Sequence[float], r: float = 0.0,
         rot: float = 0.0) -> Part:
    size = tuple(float(h) for h in half) + ((float(r),) if r > 0 else ())
    return Part("box", _v(center), size, "y", float(rot), color, name)


def _sph(name: str, color: str, center: Sequence[float], r: float) -> Part:
    return Part("sphere", _v(center), (float(r),), "y", 0.0, color, name)


def _cyl(name: str, color: str, center: Sequence[float], r: float, hh: float, axis: str = "y",
         rot: float = 0.0) -> Part:
    return Part("cylinder", _v(center), (float(r), float(hh)), axis, float(rot), color, name)


def _cap(name: str, color: str, center: Sequence[float], r: float, hl: float, axis: str = "y",
         rot: float = 0.0) -> Part:
    return Part("capsule", _v(center), (float(r), float(hl)), axis, float(rot), color, name)


def _tor(name: str, color: str, center: Sequence[float], major: float, minor: float, axis: str = "y",
         rot: float = 0.0) -> Part:
    return Part("torus", _v(center), (float(major), float(minor)), axis, float(rot), color, name)


def _cone(name: str, color: str, center: Sequence[float], r: float, hh: float, top: float = 0.0,
          axis: str = "y", rot: float = 0.0) -> Part:
    size = (float(r), float(hh)) + ((float(top),) if top > 0 else ())
    return Part("cone", _v(center), size, axis, float(rot), color, name)


def _j(rng: random.Random, frac: float = 0.1) -> float:
    """Multiplicative jitter in [1 - frac, 1 + frac]: continuous variety within an attribute setting."""
    return 1.0 + rng.uniform(-frac, frac)


_A_EXCEPTIONS = ("one", "uni", "use", "eu")


def _a(phrase: str) -> str:
    """Prefix the correct indefinite article: 'a chair', 'an orange chair', 'a one-tier fountain'."""
    w = phrase.lower()
    article = "an" if w[:1] in "aeiou" and not w.startswith(_A_EXCEPTIONS) else "a"
    return f"{article} {phrase}"


def _other(rng: random.Random, options: Sequence[str], avoid: str) -> str:
    """A colour from ``options`` different from ``avoid`` (for contrasting parts)."""
    return rng.choice([o for o in options if o != avoid])


_NUM_WORDS = {0: "no", 1: "one", 2: "two", 3: "three", 4: "four", 5: "five", 6: "six"}


# ----------------------------------------------------------------------------------------------
# Category generators (in-distribution)
# ----------------------------------------------------------------------------------------------


def _gen_chair(rng: random.Random) -> _Draft:
    """Chair: armrests, solid/hollow (slatted) back, four legs/pedestal, low/high seat."""
    color = rng.choice(_BRIGHT + ["brown", "black", "white", "grey", "beige"])
    leg_color = rng.choice(["brown", "black", "grey", "silver"])
    armrests = rng.random() < 0.5
    back = rng.choice(["solid", "hollow"])
    legs = rng.choice(["four", "pedestal"])
    seat_height = rng.choice(["low", "high"])
    w, d, t = 0.24 * _j(rng), 0.23 * _j(rng), 0.03
    sh = (0.26 if seat_height == "low" else 0.46) * _j(rng, 0.08)
    bh = 0.22 * _j(rng)
    top, zb = sh + t, -d + 0.025
    parts = [_box("seat", color, (0, sh, 0), (w, t, d), r=0.01)]
    if back == "solid":
        parts.append(_box("back", color, (0, top + bh, zb), (w, bh, 0.025), r=0.01))
    else:
        for sx in (-1, 1):
            parts.append(_box("back_post", color, (sx * (w - 0.025), top + bh, zb), (0.025, bh, 0.025)))
        parts.append(_box("back_rail", color, (0, top + 2 * bh - 0.04, zb), (w, 0.04, 0.025)))
        n = rng.choice([2, 3])
        for i in range(n):
            x = -w + 0.025 + (2 * w - 0.05) * (i + 1) / (n + 1)
            parts.append(_box("back_slat", color, (x, top + bh - 0.04, zb), (0.015, bh - 0.04, 0.015)))
    if legs == "four":
        for sx in (-1, 1):
            for sz in (-1, 1):
                parts.append(_cyl("leg", leg_color, (sx * (w - 0.03), sh / 2, sz * (d - 0.03)), 0.022, sh / 2))
    else:
        parts.append(_cyl("pedestal", leg_color, (0, sh / 2, 0), 0.035, sh / 2))
        for rot in (math.pi / 4, -math.pi / 4):
            parts.append(_box("base", leg_color, (0, 0.02, 0), (0.95 * w, 0.02, 0.03), rot=rot))
    if armrests:
        for sx in (-1, 1):
            parts.append(_cyl("arm_support", color, (sx * (w - 0.03), top + 0.1, d - 0.06), 0.018, 0.1))
            parts.append(_box("armrest", color, (sx * (w - 0.03), top + 0.218, -0.02), (0.03, 0.018, 0.9 * d)))
    attrs = {"category": "chair", "color": color, "leg_color": leg_color, "armrests": armrests,
             "back": back, "legs": legs, "seat_height": seat_height}
    noun = "armchair" if armrests else ("office chair" if legs == "pedestal" else "chair")
    arm_txt = "with armrests and" if armrests else "with no armrests and"
    back_txt = "slatted" if back == "hollow" else "solid"
    leg_txt = "four legs" if legs == "four" else "a single central pedestal"
    height_txt = "low" if seat_height == "low" else "tall"
    caps = [
        f"{_a(color)} chair {arm_txt} {_a(back)} back",
        f"{_a(color)} {noun}",
        f"a chair with {_a(back_txt)} back and {leg_txt}",
        f"{_a(height_txt)} {color} {rng.choice(['chair', 'seat'])} standing on {leg_txt}",
        f"{_a(color)} {back_txt}-back {noun} with {leg_color} legs",
    ]
    return _Draft(parts, attrs, caps)


def _gen_table(rng: random.Random) -> _Draft:
    """Table: round/square top, four legs/pedestal, low (coffee) / tall (dining), shelf."""
    color = rng.choice(["brown", "white", "black", "grey", "beige", "red", "blue", "green", "yellow", "teal"])
    leg_color = rng.choice(["brown", "black", "silver", "white", color])
    top_shape = rng.choice(["round", "square"])
    legs = rng.choice(["four", "pedestal"])
    height = rng.choice(["low", "tall"])
    shelf = rng.random() < 0.4
    r = 0.45 * _j(rng)
    depth = r if top_shape == "round" else r * rng.uniform(0.6, 1.0)
    hgt = (0.3 if height == "low" else 0.72) * _j(rng, 0.08)
    t = 0.025
    parts: list[Part] = []
    if top_shape == "round":
        parts.append(_cyl("top", color, (0, hgt, 0), r, t))
        ox = oz = 0.62 * r
    else:
        parts.append(_box("top", color, (0, hgt, 0), (r, t, depth), r=0.01))
        ox, oz = r - 0.05, depth - 0.05
    if legs == "four":
        for sx in (-1, 1):
            for sz in (-1, 1):
                parts.append(_box("leg", leg_color, (sx * ox, hgt / 2, sz * oz), (0.025, hgt / 2, 0.025)))
        if shelf:
            parts.append(_box("shelf", color, (0, 0.3 * hgt, 0), (ox, 0.012, oz)))
    else:
        parts.append(_cyl("pedestal", leg_color, (0, hgt / 2, 0), 0.05, hgt / 2))
        if top_shape == "round":
            parts.append(_cyl("base", leg_color, (0, 0.02, 0), 0.6 * r, 0.02))
        else:
            parts.append(_box("base", leg_color, (0, 0.02, 0), (0.6 * r, 0.02, 0.6 * depth)))
        if shelf:
            parts.append(_cyl("shelf", color, (0, 0.4 * hgt, 0), 0.55 * min(r, depth), 0.012))
    attrs = {"category": "table", "color": color, "leg_color": leg_color, "top": top_shape, "legs": legs,
             "height": height, "shelf": shelf}
    noun = "coffee table" if height == "low" else rng.choice(["dining table", "table"])
    leg_txt = "four legs" if legs == "four" else "a single pedestal"
    shelf_txt = "with a shelf underneath" if shelf else "without a shelf"
    caps = [
        f"{_a(top_shape)} {color} {noun}",
        f"a {top_shape} table with {leg_txt} {shelf_txt}",
        f"{_a(color)} table with {_a(top_shape)} top",
        f"a {height} {color} {rng.choice(['table', 'desk']) if height == 'tall' else 'table'} on {leg_txt}",
    ]
    return _Draft(parts, attrs, caps)


def _gen_airplane(rng: random.Random) -> _Draft:
    """Airplane: jet/propeller, swept/straight wings, T-tail/conventional tail, engine count."""
    color = rng.choice(["white", "grey", "silver", "blue", "red", "yellow", "green", "orange", "navy"])
    tail_color = _other(rng, ["red", "blue", "yellow", "orange", "navy", "green", "white", "black"], color)
    propulsion = rng.choice(["jet", "propeller"])
    wings = rng.choice(["swept", "straight"])
    tail = rng.choice(["T", "conventional"])
    engines = rng.choice([2, 4]) if propulsion == "jet" else rng.choice([1, 2])
    length, rad = 0.5 * _j(rng), 0.07 * _j(rng)
    span, chord = 0.5 * _j(rng), 0.09 * _j(rng)
    sweep = 0.45 * _j(rng) if wings == "swept" else 0.0
    wy, z0 = -0.02, 0.04
    parts = [_cap("fuselage", color, (0, 0, 0), rad, length, axis="z")]

    def along_wing(side: int, dist: float) -> tuple[float, float]:
        """x, z of a point ``dist`` along the (possibly swept) wing from the root."""
        return side * math.cos(sweep) * dist, z0 - math.sin(sweep) * dist

    for side in (1, -1):
        x, z = along_wing(side, span / 2)
        parts.append(_box("wing", color, (x, wy, z), (span / 2, 0.012, chord), r=0.006, rot=side * sweep))
    parts.append(_box("tail_fin", tail_color, (0, rad + 0.08, -length + 0.02), (0.012, 0.11, 0.07), r=0.005))
    stab_y = 0.02 if tail == "conventional" else rad + 0.18
    parts.append(_box("stabilizer", tail_color, (0, stab_y, -length + 0.0), (0.16, 0.01, 0.05), r=0.005))
    if propulsion == "jet":
        dists = [0.42 * span] if engines == 2 else [0.3 * span, 0.68 * span]
        for side in (1, -1):
            for dist in dists:
                x, z = along_wing(side, dist)
                parts.append(_cyl("engine", "grey", (x, wy - 0.05, z + 0.03), 0.035, 0.07, axis="z"))
    else:
        if engines == 1:
            nose = length + rad
            parts.append(_cone("spinner", "black", (0, 0, nose + 0.02), 0.035, 0.035, axis="z"))
            parts.append(_box("propeller", "black", (0, 0, nose + 0.01), (0.2, 0.02, 0.008)))
            parts.append(_box("propeller", "black", (0, 0, nose + 0.01), (0.02, 0.2, 0.008)))
        else:
            for side in (1, -1):
                x, z = along_wing(side, 0.4 * span)
                parts.append(_cyl("nacelle", color, (x, wy, z + 0.06), 0.04, 0.07, axis="z"))
                parts.append(_box("propeller", "black", (x, wy, z + 0.135), (0.13, 0.015, 0.006)))
    attrs = {"category": "airplane", "color": color, "tail_color": tail_color, "propulsion": propulsion,
             "wings": wings, "tail": tail, "engines": engines}
    noun = rng.choice(["jet", "airliner", "passenger jet"]) if propulsion == "jet" else rng.choice(
        ["propeller plane", "prop plane", "light aircraft"])
    syn = rng.choice(["airplane", "plane", "aeroplane", "aircraft"])
    tail_txt = "a T-tail" if tail == "T" else "a conventional tail"
    if propulsion == "jet":
        eng_txt = f"{_NUM_WORDS[engines]} jet engines"
    else:
        eng_txt = "a single nose propeller" if engines == 1 else "two propellers"
    caps = [
        f"{_a(color)} {noun}",
        f"{_a(color)} {syn} with {wings} wings and {tail_txt}",
        f"{_a(rng.choice(['plane', 'aeroplane', 'airplane']))} with {eng_txt}",
        f"{_a(wings)}-wing {syn} with {_a(tail_color)} tail",
        f"{_a(color)} {rng.choice(['airplane', 'aircraft'])} with {eng_txt}",
    ]
    return _Draft(parts, attrs, caps)


def _gen_car(rng: random.Random) -> _Draft:
    """Car: sedan/sports/truck body, wheel size, roof (or convertible), rear spoiler."""
    color = rng.choice(["red", "blue", "black", "white", "grey", "silver", "yellow", "green", "orange", "navy",
                        "teal"])
    body = rng.choice(["sedan", "sports", "truck"])
    wheels = rng.choice(["small", "large"])
    roof = True if body == "truck" else rng.random() < 0.65
    spoiler = rng.random() < (0.6 if body == "sports" else 0.25)
    wr = (0.11 if wheels == "small" else 0.155) * _j(rng, 0.06)
    w, ln = 0.27 * _j(rng, 0.06), 0.6 * _j(rng, 0.08)
    glass = "black"
    parts: list[Part] = []
    if body == "sedan":
        cy, chh = wr + 0.06, 0.1
        parts.append(_box("body", color, (0, cy, 0), (w, chh, ln), r=0.04))
        top = cy + chh
        cab_c, cab_h = (0, top + 0.09, -0.05), (w - 0.03, 0.09, 0.28)
    elif body == "sports":
        cy, chh = wr + 0.03, 0.075
        parts.append(_box("body", color, (0, cy, 0), (w, chh, 1.05 * ln), r=0.04))
        top = cy + chh
        cab_c, cab_h = (0, top + 0.065, -0.08), (w - 0.04, 0.065, 0.2)
    else:
        cy, chh = wr + 0.08, 0.11
        parts.append(_box("body", color, (0, cy, 0), (w, chh, ln), r=0.03))
        top = cy + chh
        cab_c, cab_h = (0, top + 0.13, ln - 0.28), (w - 0.01, 0.13, 0.17)
        for sx in (-1, 1):
            parts.append(_box("bed_side", color, (sx * (w - 0.02), top + 0.06, -0.17), (0.02, 0.06, ln - 0.43)))
        parts.append(_box("tailgate", color, (0, top + 0.06, -ln + 0.02), (w, 0.06, 0.02)))
    if roof:
        parts.append(_box("cabin", color, cab_c, cab_h, r=0.03))
        win_h = (cab_h[0] + 0.005, 0.5 * cab_h[1], cab_h[2] + 0.005)
        parts.append(_box("windows", glass, (cab_c[0], cab_c[1] + 0.1 * cab_h[1], cab_c[2]), win_h))
    else:
        ws_z = cab_c[2] + cab_h[2]
        parts.append(_box("windshield", glass, (0, top + 0.05, ws_z), (w - 0.04, 0.05, 0.01)))
        seat_color = rng.choice(["black", "beige"])
        for sx in (-1, 1):
            parts.append(_box("seat", seat_color, (sx * 0.11, top + 0.05, cab_c[2] - 0.05), (0.08, 0.05, 0.03)))
    zf = 1.05 * ln if body == "sports" else ln
    for sx in (-1, 1):
        for sz in (-1, 1):
            parts.append(_cyl("wheel", "black", (sx * (w - 0.02), wr, sz * (zf - 0.18)), wr, 0.045, axis="x"))
        parts.append(_sph("headlight", "yellow", (sx * (w - 0.07), cy + 0.02, zf - 0.01), 0.035))
    if spoiler:
        wing_z = -zf + 0.06
        parts.append(_box("spoiler", rng.choice(["black", color]), (0, top + 0.08, wing_z), (w - 0.02, 0.012, 0.05)))
        for sx in (-1, 1):
            parts.append(_box("spoiler_post", "black", (sx * (w - 0.08), top + 0.04, wing_z), (0.015, 0.04, 0.015)))
    attrs = {"category": "car", "color": color, "body": body, "wheels": wheels, "roof": roof, "spoiler": spoiler}
    noun = {"sedan": ["sedan", "saloon car", "family car"], "sports": ["sports car", "racing car", "coupe"],
            "truck": ["pickup truck", "truck"]}[body]
    noun_1 = rng.choice(noun)
    if not roof:
        noun_1 = f"convertible {noun_1}"
    syn = rng.choice(["car", "automobile", "vehicle"])
    wheel_txt = "big wheels" if wheels == "large" else "small wheels"
    caps = [
        f"{_a(color)} {noun_1}",
        f"{_a(color)} {syn} with {wheel_txt}" + (" and a rear spoiler" if spoiler else ""),
        f"{_a('hard-top' if roof else 'open-top')} {rng.choice(noun)} " + (
            "with a spoiler" if spoiler else "without a spoiler"),
        f"{_a(syn)} painted {color}",
        {"sedan": f"a four-door {color} car", "sports": f"a sporty low {color} car",
         "truck": f"{_a(color)} truck with an open cargo bed"}[body],
    ]
    return _Draft(parts, attrs, caps)


def _gen_bathtub(rng: random.Random) -> _Draft:
    """Bathtub: small/large, rounded/square, feet (clawfoot) or plinth, taps, filled with water."""
    color = rng.choice(["white", "white", "white", "beige", "pink", "teal", "blue", "black", "grey", "yellow",
                        "green"])
    size = rng.choice(["small", "large"])
    style = rng.choice(["rounded", "square"])
    feet = rng.random() < 0.5
    taps = rng.random() < 0.6
    filled = rng.random() < 0.5
    ln = (0.42 if size == "small" else 0.62) * _j(rng, 0.06)
    w, h, t = 0.25 * _j(rng, 0.06), 0.26 * _j(rng, 0.08), 0.036
    r = 0.017 if style == "rounded" else 0.0
    foot_color = rng.choice(["gold", "silver", "black"])
    base = 0.08 if feet else 0.0
    parts: list[Part] = []
    if feet:
        for sx in (-1, 1):
            for sz in (-1, 1):
                parts.append(_cone("foot", foot_color, (sx * (ln - 0.08), base / 2, sz * (w - 0.06)), 0.025, base / 2,
                                   top=0.045))
    else:
        parts.append(_box("plinth", color, (0, 0.02, 0), (ln - 0.03, 0.02, w - 0.03)))
        base = 0.04
    parts.append(_box("floor", color, (0, base + t / 2, 0), (ln, t / 2, w), r=r))
    for sz in (-1, 1):
        parts.append(_box("side_wall", color, (0, base + h / 2, sz * (w - t / 2)), (ln, h / 2, t / 2), r=r))
    for sx in (-1, 1):
        parts.append(_box("end_wall", color, (sx * (ln - t / 2), base + h / 2, 0), (t / 2, h / 2, w), r=r))
    if style == "rounded":
        for sz in (-1, 1):
            parts.append(_cap("rim", color, (0, base + h, sz * (w - t / 2)), 0.028, ln - 0.03, axis="x"))
        for sx in (-1, 1):
            parts.append(_cap("rim", color, (sx * (ln - t / 2), base + h, 0), 0.028, w - 0.03, axis="z"))
    if filled:
        parts.append(_box("water", rng.choice(["blue", "teal"]), (0, base + 0.7 * h, 0), (ln - t, 0.01, w - t)))
    if taps:
        xt = ln - t / 2
        parts.append(_cyl("tap", "silver", (xt, base + h + 0.06, 0), 0.015, 0.06))
        parts.append(_cap("spout", "silver", (xt - 0.05, base + h + 0.11, 0), 0.012, 0.05, axis="x"))
        for sz in (-1, 1):
            parts.append(_sph("tap_handle", "silver", (xt, base + h + 0.03, sz * 0.07), 0.025))
    attrs = {"category": "bathtub", "color": color, "size": size, "style": style, "feet": feet, "taps": taps,
             "filled": filled}
    syn = rng.choice(["bathtub", "bath", "tub"])
    noun = "clawfoot bathtub" if feet else "bathtub"
    caps = [
        f"{_a(color)} {noun}",
        f"{_a(size)} {style} {syn} " + ("on metal feet" if feet else "on a solid base"),
        f"{_a(color)} tub " + ("filled with water" if filled else "that is empty"),
        f"{_a(color)} {syn} with " + ("silver taps" if taps else "no taps"),
        f"{_a(style)} {color} bathtub",
    ]
    return _Draft(parts, attrs, caps)


def _gen_guitar(rng: random.Random) -> _Draft:
    """Guitar (upright): acoustic/electric body, short/long neck, headstock 3+3/inline, pickguard."""
    color = rng.choice(["red", "black", "white", "blue", "yellow", "orange", "brown", "beige", "green", "purple",
                        "teal", "pink"])
    body = rng.choice(["acoustic", "electric"])
    neck = rng.choice(["short", "long"])
    headstock = rng.choice(["3+3", "inline"])
    pickguard = rng.random() < 0.5
    wood = rng.choice(["brown", "beige", "black"])
    guard_color = "white" if color in ("black", "brown", "navy", "purple") else "black"
    parts: list[Part] = []
    if body == "acoustic":
        th = 0.055
        lo_r, up_r = 0.2 * _j(rng, 0.06), 0.15 * _j(rng, 0.06)
        parts.append(_cyl("lower_bout", color, (0, 0.2, 0), lo_r, th, axis="z"))
        parts.append(_cyl("upper_bout", color, (0, 0.47, 0), up_r, th, axis="z"))
        parts.append(_cyl("soundhole", "black", (0, 0.38, 0), 0.055, th + 0.003, axis="z"))
        parts.append(_box("bridge", wood, (0, 0.14, th), (0.07, 0.015, 0.01)))
        body_top = 0.47 + up_r
        guard_c = (0.09, 0.27, th)
    else:
        th = 0.03
        lo_r = 0.17 * _j(rng, 0.06)
        parts.append(_cyl("body", color, (0, 0.18, 0), lo_r, th, axis="z"))
        horn = rng.uniform(0.06, 0.11)
        parts.append(_cyl("horn", color, (-0.09, 0.35, 0), 0.07, th, axis="z"))
        parts.append(_cyl("horn", color, (0.09, 0.29 + horn, 0), 0.06, th, axis="z"))
        for y in (0.14, 0.24):
            parts.append(_box("pickup", "black", (0, y, th), (0.055, 0.014, 0.008)))
        body_top = 0.35 + 0.07
        guard_c = (0.08, 0.12, th)
    if pickguard:
        parts.append(_box("pickguard", guard_color, guard_c, (0.06, 0.07, 0.004)))
    ln = (0.5 if neck == "short" else 0.68) * _j(rng, 0.06)
    y0 = body_top - 0.05
    parts.append(_box("neck", wood, (0, y0 + ln / 2, 0), (0.03, ln / 2, 0.018)))
    hy = y0 + ln + 0.08
    parts.append(_box("headstock", wood, (0, hy, 0), (0.05, 0.08, 0.015), r=0.006))
    if headstock == "3+3":
        for sx in (-1, 1):
            for dy in (-0.05, 0.0, 0.05):
                parts.append(_cap("tuning_peg", "silver", (sx * 0.07, hy + dy, 0), 0.011, 0.018, axis="x"))
    else:
        for i in range(6):
            parts.append(_cap("tuning_peg", "silver", (0.07, hy - 0.065 + 0.026 * i, 0), 0.009, 0.018, axis="x"))
    attrs = {"category": "guitar", "color": color, "body": body, "neck": neck, "headstock": headstock,
             "pickguard": pickguard}
    noun = rng.choice(["acoustic guitar", "guitar", "folk guitar"]) if body == "acoustic" else rng.choice(
        ["electric guitar", "guitar", "rock guitar"])
    peg_txt = "three tuning pegs on each side" if headstock == "3+3" else "six tuning pegs in a row"
    caps = [
        f"{_a(color)} {noun}",
        f"{_a(body)} guitar with a {neck} neck",
        f"{_a(color)} guitar with " + (f"{_a(guard_color)} pickguard" if pickguard
                                                else "no pickguard"),
        f"a {rng.choice(['guitar', 'six-string guitar', 'musical instrument'])} with {peg_txt}",
        f"{_a(color)} {body} {rng.choice(['guitar', 'six-string'])}",
    ]
    return _Draft(parts, attrs, caps)


def _gen_lamp(rng: random.Random) -> _Draft:
    """Lamp: floor/desk, cone/cylinder shade, straight/bent arm, round/square base."""
    color = rng.choice(["white", "beige", "red", "yellow", "green", "blue", "black", "orange", "pink", "teal",
                        "purple"])
    pole_color = rng.choice(["black", "silver", "gold", "brown", "grey", "white"])
    kind = rng.choice(["floor", "desk"])
    shade = rng.choice(["cone", "cylinder"])
    arm = rng.choice(["straight", "bent"])
    base = rng.choice(["round", "square"])
    floor = kind == "floor"
    hgt = (1.3 if floor else 0.45) * _j(rng, 0.08)
    sr, shh = (0.2, 0.13) if floor else (0.12, 0.08)
    sr, shh = sr * _j(rng), shh * _j(rng)
    br = (0.18 if floor else 0.13) * _j(rng, 0.06)
    parts: list[Part] = []
    if base == "round":
        parts.append(_cyl("base", pole_color, (0, 0.025, 0), br, 0.025))
    else:
        parts.append(_box("base", pole_color, (0, 0.025, 0), (br, 0.025, br), r=0.008))
    pr = 0.02 if floor else 0.015
    parts.append(_cyl("pole", pole_color, (0, hgt / 2, 0), pr, hgt / 2))
    if arm == "straight":
        sx, sy = 0.0, hgt
    else:
        reach = (0.35 if floor else 0.2) * _j(rng)
        parts.append(_cap("arm", pole_color, (reach / 2, hgt, 0), pr, reach / 2, axis="x"))
        parts.append(_cyl("hanger", pole_color, (reach, hgt - 0.03, 0), pr, 0.03))
        sx, sy = reach, hgt - 0.06 - shh
    if shade == "cone":
        parts.append(_cone("shade", color, (sx, sy, 0), sr, shh, top=0.45 * sr))
    else:
        parts.append(_cyl("shade", color, (sx, sy, 0), 0.8 * sr, shh))
    parts.append(_sph("bulb", "yellow", (sx, sy - shh + 0.01, 0), 0.04 if floor else 0.03))
    attrs = {"category": "lamp", "color": color, "pole_color": pole_color, "type": kind, "shade": shade,
             "arm": arm, "base": base}
    noun = rng.choice(["floor lamp", "standing lamp"]) if floor else rng.choice(["desk lamp", "table lamp"])
    syn = rng.choice(["lamp", "light", "reading lamp"])
    shade_txt = "cone-shaped" if shade == "cone" else "cylindrical"
    caps = [
        f"{_a(color)} {noun}",
        f"a {kind} lamp with {_a(color)} {shade_txt} shade",
        f"a {syn} with {_a(arm)} arm and {_a(base)} base",
        f"{_a(pole_color)} {noun} with {_a(color)} shade",
    ]
    return _Draft(parts, attrs, caps)


def _gen_sofa(rng: random.Random) -> _Draft:
    """Sofa: 2/3 seats, armrests, high/low back, separate cushions."""
    color = rng.choice(["red", "blue", "green", "grey", "brown", "beige", "black", "white", "purple", "teal", "navy",
                        "orange", "yellow", "pink"])
    leg_color = rng.choice(["brown", "black", "silver"])
    seats = rng.choice([2, 3])
    armrests = rng.random() < 0.7
    back = rng.choice(["high", "low"])
    cushions = rng.random() < 0.5
    cushion_color = rng.choice([color, color, "white", "beige", "grey"]) if cushions else color
    sw, d = 0.28 * _j(rng, 0.06), 0.4 * _j(rng, 0.06)
    w = seats * sw
    bh = (0.25 if back == "high" else 0.14) * _j(rng, 0.08)
    parts: list[Part] = []
    for sx in (-1, 1):
        for sz in (-1, 1):
            parts.append(_cyl("leg", leg_color, (sx * (w - 0.05), 0.03, sz * (d - 0.05)), 0.025, 0.03))
    parts.append(_box("base", color, (0, 0.16, 0), (w, 0.1, d), r=0.03))
    if cushions:
        for i in range(seats):
            x = -w + sw * (2 * i + 1)
            parts.append(_box("cushion", cushion_color, (x, 0.31, 0.05), (sw - 0.012, 0.05, d - 0.1), r=0.035))
    else:
        parts.append(_box("seat", color, (0, 0.31, 0.05), (w, 0.05, d - 0.1), r=0.03))
    parts.append(_box("back", color, (0, 0.26 + bh, -d + 0.09), (w, bh, 0.09), r=0.04))
    if armrests:
        for sx in (-1, 1):
            parts.append(_box("armrest", color, (sx * (w + 0.08), 0.255, 0), (0.08, 0.195, d), r=0.04))
    attrs = {"category": "sofa", "color": color, "leg_color": leg_color, "seats": seats, "armrests": armrests,
             "back": back, "cushions": cushions, "cushion_color": cushion_color}
    syn = rng.choice(["sofa", "couch", "settee"])
    noun = "loveseat" if seats == 2 and rng.random() < 0.5 else f"{_NUM_WORDS[seats]}-seater {syn}"
    caps = [
        f"{_a(color)} {syn}",
        f"a {_NUM_WORDS[seats]}-seater {rng.choice(['sofa', 'couch'])} " + ("with armrests" if armrests
                                                                           else "without armrests"),
        f"{_a(color)} {noun} with a {back} back",
        f"a {rng.choice(['sofa', 'couch', 'settee'])} with " + (
            f"{_NUM_WORDS[seats]} separate seat cushions" if cushions else "one long seat cushion"),
        f"{_a(color)} couch with {leg_color} legs",
    ]
    return _Draft(parts, attrs, caps)


# ----------------------------------------------------------------------------------------------
# Category generators (out-of-distribution)
# ----------------------------------------------------------------------------------------------


def _gen_fountain(rng: random.Random) -> _Draft:
    """Fountain: 1-3 tiers, round/square basin, water spout."""
    color = rng.choice(["grey", "white", "beige", "silver", "brown", "pink", "gold"])
    water = rng.choice(["blue", "teal"])
    tiers = rng.choice([1, 2, 3])
    basin = rng.choice(["round", "square"])
    spout = rng.random() < 0.6
    rad, hb = 0.5 * _j(rng, 0.06), 0.16 * _j(rng)
    step = 0.26 * _j(rng)
    parts: list[Part] = []
    if basin == "round":
        parts.append(_cyl("basin", color, (0, hb / 2, 0), rad, hb / 2))
        parts.append(_tor("rim", color, (0, hb, 0), rad - 0.045, 0.045))
        parts.append(_cyl("water", water, (0, hb, 0), rad - 0.06, 0.01))
    else:
        parts.append(_box("basin", color, (0, hb / 2, 0), (rad, hb / 2, rad), r=0.01))
        for sx in (-1, 1):
            parts.append(_box("rim", color, (sx * (rad - 0.04), hb + 0.02, 0), (0.04, 0.04, rad)))
            parts.append(_box("rim", color, (0, hb + 0.02, sx * (rad - 0.04)), (rad, 0.04, 0.04)))
        parts.append(_box("water", water, (0, hb, 0), (rad - 0.06, 0.01, rad - 0.06)))
    top = hb + step * (tiers - 1) if tiers > 1 else hb + 0.15
    parts.append(_cyl("column", color, (0, (hb + top) / 2, 0), 0.06, (top - hb) / 2))
    for i in range(1, tiers):
        ri, yi = rad * 0.55**i, hb + step * i
        parts.append(_cone("bowl", color, (0, yi - 0.05, 0), 0.3 * ri, 0.05, top=ri))
        parts.append(_cyl("water", water, (0, yi, 0), ri - 0.02, 0.008))
    if spout:
        parts.append(_cap("jet", water, (0, top + 0.09, 0), 0.022, 0.07))
        parts.append(_sph("spray", water, (0, top + 0.18, 0), 0.05))
    else:
        parts.append(_sph("finial", color, (0, top + 0.04, 0), 0.05))
    attrs = {"category": "fountain", "color": color, "water_color": water, "tiers": tiers, "basin": basin,
             "spout": spout}
    syn = rng.choice(["fountain", "water fountain", "garden fountain"])
    tier_txt = f"{_NUM_WORDS[tiers]}-tier"
    caps = [
        f"{_a(color)} stone {syn}",
        f"{_a(tier_txt)} fountain with {_a(basin)} basin",
        f"{_a(color)} {syn} " + ("spraying water from the top" if spout else "with still water"),
        f"{_a(color)} fountain with {_NUM_WORDS[tiers]} {'tier' if tiers == 1 else 'tiers'} of "
        f"{water} water",
    ]
    return _Draft(parts, attrs, caps)


_ICOSA = [(0, 1, 1.618), (0, 1, -1.618), (0, -1, 1.618), (0, -1, -1.618), (1, 1.618, 0), (1, -1.618, 0),
          (-1, 1.618, 0), (-1, -1.618, 0), (1.618, 0, 1), (1.618, 0, -1), (-1.618, 0, 1), (-1.618, 0, -1)]


def _gen_ball(rng: random.Random) -> _Draft:
    """Ball: basketball (dark seams) / soccer (black patches) / beach ball (coloured bands), size, stripe count."""
    ball = rng.choice(["basketball", "soccer", "beach"])
    size = rng.choice(["small", "large"])
    r = 0.5
    parts: list[Part] = []
    if ball == "basketball":
        color, band = rng.choice(["orange", "orange", "brown"]), "black"
        parts.append(_sph("ball", color, (0, r, 0), r))
        seam = 0.035 * r
        stripes = rng.choice([2, 4])
        parts.append(_tor("seam", band, (0, r, 0), r, seam))
        parts.append(_tor("seam", band, (0, r, 0), r, seam, axis="z"))
        if stripes == 4:  # the two curved side seams of a basketball, as small circles around the x axis
            for sx in (-1, 1):
                parts.append(_tor("seam", band, (sx * 0.55 * r, r, 0), r * math.sqrt(1 - 0.55**2), seam, axis="x"))
    elif ball == "soccer":
        color, band = rng.choice(["white", "white", "yellow"]), rng.choice(["black", "black", "navy", "red"])
        stripes = 0
        parts.append(_sph("ball", color, (0, r, 0), r))
        spin = rng.uniform(0, 2 * math.pi)
        for vx, vy, vz in _ICOSA:
            n = math.sqrt(vx * vx + vy * vy + vz * vz)
            x, z = vx * math.cos(spin) + vz * math.sin(spin), -vx * math.sin(spin) + vz * math.cos(spin)
            parts.append(_sph("patch", band, (0.9 * r * x / n, r + 0.9 * r * vy / n, 0.9 * r * z / n), 0.2 * r))
    else:
        color = rng.choice(["white", "yellow", "red", "blue"])
        stripes = rng.choice([2, 3])
        bands = rng.sample([c for c in ["red", "blue", "yellow", "green", "orange", "purple", "pink", "teal"]
                            if c != color], stripes)
        band = bands[0]
        parts.append(_sph("ball", color, (0, r, 0), r))
        for k, c in enumerate(bands):
            parts.append(_tor("band", c, (0, r, 0), r, 0.2 * r, axis="x", rot=k * math.pi / stripes))
    attrs = {"category": "ball", "color": color, "band_color": band, "ball_type": ball, "size": size,
             "stripes": stripes}
    noun = {"basketball": "basketball", "soccer": rng.choice(["soccer ball", "football"]),
            "beach": rng.choice(["beach ball", "inflatable beach ball"])}[ball]
    pattern = {"basketball": f"{band} seams", "soccer": f"{band} patches", "beach": f"{band} stripes"}[ball]
    caps = [
        f"{_a(color)} {noun}",
        f"{_a(size)} {color} ball with {pattern}",
        f"a {rng.choice(['ball', 'sports ball', 'round ball'])} with {pattern}",
        f"{_a(size)} {noun}",
    ]
    return _Draft(parts, attrs, caps, scale=0.6 if size == "small" else 1.0)


def _gen_torch(rng: random.Random) -> _Draft:
    """Torch (hand-held flaming torch): handle length, flame size and colour, holder shape."""
    color = rng.choice(["brown", "brown", "black", "silver", "gold", "grey"])
    handle = rng.choice(["short", "long"])
    flame = rng.choice(["big", "small"])
    flame_color = rng.choice(["orange", "yellow"])
    holder = rng.choice(["cone", "cup"])
    holder_color = rng.choice(["gold", "silver", "black", "grey"])
    ln = (0.4 if handle == "short" else 0.7) * _j(rng, 0.06)
    fh = (0.34 if flame == "big" else 0.2) * _j(rng, 0.08)
    parts = [_cyl("handle", color, (0, ln / 2, 0), 0.035, ln / 2)]
    if holder == "cone":
        parts.append(_cone("holder", holder_color, (0, ln + 0.06, 0), 0.045, 0.06, top=0.11))
        rim_y = ln + 0.12
    else:
        parts.append(_cyl("holder", holder_color, (0, ln + 0.05, 0), 0.09, 0.05))
        rim_y = ln + 0.1
    parts.append(_tor("rim", holder_color, (0, rim_y, 0), 0.09, 0.015))
    inner = "red" if flame_color == "orange" else "orange"
    fr = (0.1 if flame == "big" else 0.075)
    parts.append(_sph("flame_base", flame_color, (0, rim_y + 0.02, 0), fr))
    parts.append(_cone("flame", flame_color, (0, rim_y + 0.02 + fh / 2, 0), fr * 0.97, fh / 2))
    parts.append(_cone("inner_flame", inner, (0, rim_y + 0.03 + fh * 0.3, 0), fr * 0.5, fh * 0.3))
    attrs = {"category": "torch", "color": color, "holder_color": holder_color, "handle": handle, "flame": flame,
             "flame_color": flame_color, "holder": holder}
    syn = rng.choice(["torch", "flaming torch", "burning torch"])
    wood = "wooden" if color == "brown" else color
    caps = [
        f"{_a(syn)} with {_a(flame)} {flame_color} flame",
        f"a torch with {_a(handle)} {wood} handle",
        f"{_a(color)} {syn} with a {holder_color} {'cone-shaped' if holder == 'cone' else 'cup-shaped'} "
        f"holder",
        f"a {'large' if flame == 'big' else 'small'} {flame_color} flame on {_a(handle)} {color} stick",
    ]
    return _Draft(parts, attrs, caps)


def _gen_hammer(rng: random.Random) -> _Draft:
    """Hammer (standing upright): claw/sledge head, short/long handle, rubber grip, handle colour."""
    color = rng.choice(["brown", "brown", "black", "red", "yellow", "blue", "orange"])
    head = rng.choice(["claw", "sledge"])
    handle = rng.choice(["short", "long"])
    grip = rng.random() < 0.5
    grip_color = _other(rng, ["black", "red", "yellow", "blue", "orange", "green"], color)
    head_color = rng.choice(["grey", "silver", "black"])
    ln = (0.38 if handle == "short" else 0.62) * _j(rng, 0.06)
    parts = [_cyl("handle", color, (0, ln / 2, 0), 0.028, ln / 2)]
    if grip:
        parts.append(_cap("grip", grip_color, (0, 0.3 * ln, 0), 0.036, 0.25 * ln))
    if head == "claw":
        parts.append(_box("head", head_color, (0.02, ln + 0.02, 0), (0.09, 0.035, 0.03), r=0.008))
        parts.append(_cyl("face", head_color, (0.13, ln + 0.02, 0), 0.042, 0.035, axis="x"))
        parts.append(_cone("claw", head_color, (-0.13, ln + 0.005, 0), 0.03, 0.065, axis="x", rot=math.pi))
    else:
        hw = 0.17 * _j(rng, 0.08)
        parts.append(_cyl("head", head_color, (0, ln + 0.05, 0), 0.075, hw, axis="x"))
    attrs = {"category": "hammer", "color": color, "head_color": head_color, "head": head, "handle": handle,
             "grip": grip, "grip_color": grip_color if grip else "none"}
    noun = "claw hammer" if head == "claw" else rng.choice(["sledgehammer", "mallet"])
    syn = rng.choice(["hammer", "tool"])
    wood = "wooden" if color == "brown" else color
    caps = [
        f"{_a(noun)} with {_a(handle)} {wood} handle",
        f"{_a(color)} {noun}",
        f"a {syn} with a {head_color} {head} head" + (f" and {_a(grip_color)} grip" if grip else ""),
        f"{_a(handle)}-handled hammer with {_a(color)} handle",
    ]
    return _Draft(parts, attrs, caps)


def _gen_mug(rng: random.Random) -> _Draft:
    """Mug: handle yes/no, short/tall, narrow/wide, filled with coffee or empty."""
    color = rng.choice(_BRIGHT + ["white", "black", "grey", "navy", "beige"])
    handle = rng.random() < 0.75
    height = rng.choice(["short", "tall"])
    width = rng.choice(["narrow", "wide"])
    contents = rng.choice(["coffee", "empty"])
    h = (0.16 if height == "short" else 0.26) * _j(rng, 0.06)
    r = (0.1 if width == "narrow" else 0.15) * _j(rng, 0.06)
    parts = [_cyl("body", color, (0, h, 0), r, h)]
    parts.append(_tor("rim", color, (0, 2 * h, 0), r - 0.01, 0.01))
    inner = "brown" if contents == "coffee" else ("grey" if color != "grey" else "black")
    parts.append(_cyl("contents", inner, (0, 2 * h - 0.004, 0), r - 0.018, 0.006))
    if handle:
        hr = 0.55 * h
        parts.append(_tor("handle", color, (r + 0.2 * hr, h, 0), hr, 0.022, axis="z"))
    attrs = {"category": "mug", "color": color, "handle": handle, "height": height, "width": width,
             "contents": contents}
    noun = rng.choice(["mug", "coffee mug", "cup"]) if handle else rng.choice(["cup", "tumbler"])
    size_txt = f"{height} {width}" if rng.random() < 0.5 else f"{'tall' if height == 'tall' else 'squat'}"
    caps = [
        f"{_a(color)} {noun}",
        f"{_a(size_txt)} {color} {'mug with a handle' if handle else 'cup without a handle'}",
        f"{_a(color)} mug " + ("full of coffee" if contents == "coffee" else "that is empty"),
        f"{_a(width)} {rng.choice(['mug', 'cup'])}" + (" with a handle" if handle else " with no handle"),
    ]
    return _Draft(parts, attrs, caps)


def _gen_rocket(rng: random.Random) -> _Draft:
    """Rocket: 3/4 fins, cone/round nose, 0/2/4 boosters, porthole window, exhaust flame."""
    color = rng.choice(["white", "white", "silver", "red", "grey", "blue", "yellow"])
    accent = _other(rng, ["red", "blue", "black", "orange", "navy", "green", "yellow"], color)
    fins = rng.choice([3, 4])
    nose = rng.choice(["cone", "round"])
    boosters = rng.choice([0, 2, 4])
    window = rng.random() < 0.6
    exhaust = rng.random() < 0.5
    br, bh = 0.1 * _j(rng, 0.06), 0.35 * _j(rng, 0.08)
    base = 0.18 if exhaust else 0.06
    parts = [_cyl("body", color, (0, base + bh, 0), br, bh)]
    top = base + 2 * bh
    if nose == "cone":
        parts.append(_cone("nose", accent, (0, top + 0.12, 0), br, 0.12))
    else:
        parts.append(_sph("nose", accent, (0, top, 0), br))
    for k in range(fins):
        a = 2 * math.pi * k / fins + (math.pi / 4 if fins == 4 else math.pi / 2)
        parts.append(_box("fin", accent, (0.13 * math.cos(a), base + 0.08, -0.13 * math.sin(a)), (0.07, 0.08, 0.008),
                          rot=a))
    for k in range(boosters):
        a = 2 * math.pi * k / boosters
        x, z = 0.15 * math.cos(a), -0.15 * math.sin(a)
        parts.append(_cyl("booster", color, (x, base + 0.25, z), 0.045, 0.22))
        parts.append(_cone("booster_nose", accent, (x, base + 0.52, z), 0.045, 0.05))
    if window:
        parts.append(_cyl("window", rng.choice(["teal", "blue", "navy"]), (0, top - 0.12, br - 0.005), 0.035, 0.015,
                          axis="z"))
    if exhaust:
        fc = rng.choice(["orange", "yellow"])
        parts.append(_cone("exhaust", fc, (0, base / 2, 0), 0.0, base / 2, top=0.8 * br))
    attrs = {"category": "rocket", "color": color, "accent_color": accent, "fins": fins, "nose": nose,
             "boosters": boosters, "window": window, "exhaust": exhaust}
    syn = rng.choice(["rocket", "space rocket", "spaceship"])
    boost_txt = "no side boosters" if boosters == 0 else f"{_NUM_WORDS[boosters]} side boosters"
    caps = [
        f"{_a(color)} {syn}",
        f"{_a(color)} and {accent} rocket with {_NUM_WORDS[fins]} fins",
        f"a rocket with {_a('pointed' if nose == 'cone' else 'rounded')} nose and {boost_txt}",
        f"{_a(color)} {syn} " + ("blasting off with a flame" if exhaust else "standing on its fins"),
    ]
    return _Draft(parts, attrs, caps)


def _gen_mushroom(rng: random.Random) -> _Draft:
    """Mushroom: flat/domed cap, spots, short/tall stem, thin/thick stem."""
    color = rng.choice(["red", "red", "brown", "orange", "yellow", "purple", "beige", "pink"])
    spot_color = "brown" if color in ("beige", "yellow") else "white"
    stem_color = rng.choice(["white", "beige"])
    cap = rng.choice(["flat", "domed"])
    spots = rng.random() < 0.6
    stem = rng.choice(["short", "tall"])
    thick = rng.choice(["thin", "thick"])
    rc = 0.4 * _j(rng, 0.06)
    sh = (0.22 if stem == "short" else 0.5) * _j(rng, 0.08)
    sr = (0.07 if thick == "thin" else 0.13) * _j(rng, 0.06)
    parts = [_cyl("stem", stem_color, (0, sh / 2, 0), sr, sh / 2)]
    spot_pos: list[tuple[float, float, float]] = []
    n_spots = rng.randint(5, 8)
    if cap == "flat":
        tc = 0.06
        parts.append(_cyl("cap", color, (0, sh + tc, 0), rc, tc))
        parts.append(_tor("cap_rim", color, (0, sh + tc, 0), rc, tc))
        for _ in range(n_spots):
            rho, phi = rc * math.sqrt(rng.uniform(0.0, 0.8)), rng.uniform(0, 2 * math.pi)
            spot_pos.append((rho * math.cos(phi), sh + 2 * tc - 0.01, rho * math.sin(phi)))
    else:
        hc = 0.18 * rc
        parts.append(_cone("cap", color, (0, sh + hc, 0), rc, hc, top=0.45 * rc))
        yc = sh + 0.2 * rc
        parts.append(_sph("cap_dome", color, (0, yc, 0), 0.6 * rc))
        for _ in range(n_spots):
            a, phi = rng.uniform(0.0, 1.0), rng.uniform(0, 2 * math.pi)
            d = 0.6 * rc * 0.98
            spot_pos.append((d * math.sin(a) * math.cos(phi), yc + d * math.cos(a), d * math.sin(a) * math.sin(phi)))
    if spots:
        for p in spot_pos:
            parts.append(_sph("spot", spot_color, p, 0.045))
    attrs = {"category": "mushroom", "color": color, "stem_color": stem_color, "cap": cap, "spots": spots,
             "stem": stem, "stem_width": thick}
    syn = rng.choice(["mushroom", "toadstool", "fungus"])
    spot_txt = f"{spot_color} spots" if spots else "no spots"
    caps = [
        f"{_a(color)} {syn}",
        f"{_a(color)} mushroom with {spot_txt}",
        f"a mushroom with {_a(cap)} cap on {_a(stem)} {thick} stem",
        f"{_a(color)} {rng.choice(['mushroom', 'toadstool'])} with {_a(cap)} cap" + (
            f" covered in {spot_color} spots" if spots else " and no spots"),
    ]
    return _Draft(parts, attrs, caps)


def _gen_snowman(rng: random.Random) -> _Draft:
    """Snowman: 2/3 snowballs, top hat, scarf colour, buttons, stick arms."""
    color = "white"
    balls = rng.choice([2, 3])
    hat = rng.random() < 0.6
    scarf = rng.choice(["red", "blue", "green", "yellow", "purple", "orange", "pink", "teal"])
    buttons = rng.random() < 0.6
    arms = rng.random() < 0.6
    radii = [0.3, 0.22, 0.15] if balls == 3 else [0.3, 0.2]
    radii = [r * _j(rng, 0.06) for r in radii]
    parts: list[Part] = []
    y, centers = 0.0, []
    for i, r in enumerate(radii):
        y = r if i == 0 else y + radii[i - 1] * 0.8 + r * 0.8
        centers.append(y)
        parts.append(_sph("snowball", color, (0, y, 0), r))
    head_r, head_y = radii[-1], centers[-1]
    # scarf sits where the head meets the body: the circle where the two spheres intersect
    r_b, y_b = radii[-2], centers[-2]
    dist = head_y - y_b
    a = (dist * dist + r_b * r_b - head_r * head_r) / (2 * dist)
    ring_r = math.sqrt(max(r_b * r_b - a * a, 1e-6))
    parts.append(_tor("scarf", scarf, (0, y_b + a, 0), ring_r, 0.04))
    parts.append(_cap("scarf_tail", scarf, (0.06, y_b + a - 0.08, ring_r + 0.02), 0.03, 0.06))
    for sx in (-1, 1):
        parts.append(_sph("eye", "black", (sx * 0.045, head_y + 0.04, head_r * 0.92), 0.018))
    parts.append(_cone("nose", "orange", (0, head_y, head_r + 0.05), 0.025, 0.07, axis="z"))
    if hat:
        top = head_y + head_r * 0.85
        parts.append(_cyl("hat_brim", "black", (0, top, 0), head_r * 1.1, 0.015))
        parts.append(_cyl("hat_crown", "black", (0, top + 0.1, 0), head_r * 0.7, 0.1))
    if buttons:
        body_r, body_y = (radii[1], centers[1]) if balls == 3 else (radii[0], centers[0])
        for k in (-1, 0, 1):
            ang = 0.35 * k
            parts.append(_sph("button", "black", (0, body_y + body_r * math.sin(ang), body_r * math.cos(ang)), 0.025))
    if arms:
        arm_y = centers[1] if balls == 3 else centers[0] + 0.5 * radii[0]
        arm_r = radii[1] if balls == 3 else radii[0] * math.sqrt(1 - 0.25)
        for sx in (-1, 1):
            parts.append(_cap("arm", "brown", (sx * (arm_r + 0.1), arm_y, 0), 0.014, 0.14, axis="x"))
    attrs = {"category": "snowman", "color": color, "scarf_color": scarf, "balls": balls, "hat": hat,
             "buttons": buttons, "arms": arms}
    hat_txt = "wearing a black top hat" if hat else "without a hat"
    caps = [
        f"a snowman with {_a(scarf)} scarf",
        f"{_a(_NUM_WORDS[balls])}-ball snowman {hat_txt}",
        f"a white {rng.choice(['snowman', 'snow figure'])} in {_a(scarf)} scarf" + (
            " with stick arms" if arms else ""),
        f"a snowman made of {_NUM_WORDS[balls]} snowballs" + (" with black buttons" if buttons else ""),
    ]
    return _Draft(parts, attrs, caps)


#: category -> generator. Each generator draws attributes from ``rng`` and builds unnormalised parts.
_GENERATORS: dict[str, Callable[[random.Random], _Draft]] = {
    "chair": _gen_chair,
    "table": _gen_table,
    "airplane": _gen_airplane,
    "car": _gen_car,
    "bathtub": _gen_bathtub,
    "guitar": _gen_guitar,
    "lamp": _gen_lamp,
    "sofa": _gen_sofa,
    "fountain": _gen_fountain,
    "ball": _gen_ball,
    "torch": _gen_torch,
    "hammer": _gen_hammer,
    "mug": _gen_mug,
    "rocket": _gen_rocket,
    "mushroom": _gen_mushroom,
    "snowman": _gen_snowman,
}
assert tuple(_GENERATORS) == CATEGORIES


# ----------------------------------------------------------------------------------------------
# Public constructors
# ----------------------------------------------------------------------------------------------


def _stable_seed(category: str, index: int, seed: int) -> int:
    """A seed from a cryptographic hash: stable across processes (Python's hash() is salted)."""
    digest = hashlib.sha256(f"p2n-world|{category}|{index}|{seed}".encode()).digest()
    return int.from_bytes(digest[:8], "little")


def _fit(parts: list[Part], extra_scale: float) -> tuple[Part, ...]:
    """Uniformly scale and translate parts so the object stands on y=-0.45 inside [-0.47, 0.47]^3."""
    lo = [min(part_bounds(p)[0][i] for p in parts) for i in range(3)]
    hi = [max(part_bounds(p)[1][i] for p in parts) for i in range(3)]
    ext = [max(hi[i] - lo[i], 1e-9) for i in range(3)]
    s = min(2 * _FIT / ext[0], (_FIT - _FLOOR) / ext[1], 2 * _FIT / ext[2]) * extra_scale
    shift = (-s * (lo[0] + hi[0]) / 2, _FLOOR - s * lo[1], -s * (lo[2] + hi[2]) / 2)
    out = []
    for p in parts:
        center = tuple(round(s * p.center[i] + shift[i], 6) for i in range(3))
        size = tuple(round(s * v, 6) for v in p.size)
        out.append(Part(p.kind, center, size, p.axis, round(p.rotation, 6), p.color, p.name))  # type: ignore
    return tuple(out)


def _unique(captions: Sequence[str]) -> tuple[str, ...]:
    """Drop duplicate captions (keeping order) and tidy whitespace."""
    seen: dict[str, None] = {}
    for c in captions:
        c = " ".join(c.split())
        seen.setdefault(c, None)
    return tuple(seen)


def make_object(category: str, index: int, seed: int = 0) -> WorldObject:
    """Generate object ``index`` of ``category``; deterministic in ``(category, index, seed)``."""
    if category not in _GENERATORS:
        raise ValueError(f"unknown category {category!r}; valid categories: {', '.join(CATEGORIES)}")
    rng = random.Random(_stable_seed(category, int(index), int(seed)))
    draft = _GENERATORS[category](rng)
    caps = _unique(draft.captions)
    if len(caps) < 3:  # generators always give >= 3 distinct captions; this is a safety net
        color = draft.attributes["color"]
        caps = _unique(list(caps) + [f"{_a(color)} {category}", _a(category), f"a 3D model of {_a(category)}"])
    attrs = dict(draft.attributes)
    attrs["category"] = category
    return WorldObject(category, int(index), int(seed), attrs, caps, _fit(draft.parts, draft.scale))


def make_objects(categories: Sequence[str], per_category: int, seed: int = 0, start: int = 0) -> list[WorldObject]:
    """``per_category`` objects (indices ``start .. start+per_category-1``) of each category, category-major."""
    return [make_object(c, start + i, seed) for c in categories for i in range(per_category)]


def category_caption(category: str) -> str:
    """A plain caption for zero-shot classification: 'a chair', 'an airplane'."""
    if category not in _GENERATORS:
        raise ValueError(f"unknown category {category!r}; valid categories: {', '.join(CATEGORIES)}")
    return _a(category)
