"""NeRF -> coloured triangle mesh (marching cubes); mesh files (.glb, .gltf, .ply, .obj); NeRF files.

:func:`extract_mesh` evaluates one NeRF's density on a regular grid over the renderer's object box
``[-BOX, BOX]^3`` (:mod:`p2nlib.data.render`), runs ``skimage.measure.marching_cubes`` at a density
``threshold`` and colours each vertex with the NeRF's own colour there. The grid is padded with one
layer of empty space, so an object touching the box still gives a closed surface. :func:`export_mesh`
writes the mesh with trimesh; :func:`save_nerf` / :func:`load_nerf` keep one NeRF with its spec.

The threshold is a density, not an opacity. A render sample of density sigma has opacity
``1 - exp(-sigma * delta)`` with ``delta = box diagonal / samples per ray`` (:func:`opacity`), so an
opacity level means a different density at every profile's sampling, whereas the world's objects
have one density scale everywhere (:func:`p2nlib.data.world.density_color`: 40 on the surface, 80
inside). Measured below, the best density moved from 18 to 27 when the samples per ray went from 16
to 64, while the best opacity moved from 0.86 to 0.52; one density serves every profile.

How the default was chosen (:func:`threshold_study`): NeRFs were fitted with the ``small`` profile's
recipe (:func:`p2nlib.data.fit.fit`: 200 warm-start and 250 photometric steps, 24 views at 32 px) to
the first two objects of each of the 8 dataset categories and one out-of-distribution ``ball`` (17
objects; held-out PSNR 27-44 dB), once each at 16, 32 (the profile's own) and 64 samples per ray
(``threshold_study(dataclasses.replace(get_profile("small"), samples_per_ray=s))``). For each NeRF
and density level, ``density > level`` on a 64^3 grid was compared with the ground truth's occupancy
(signed distance < 0, :meth:`p2nlib.data.world.WorldObject.sdf_color`) by voxel intersection over
union, and by the IoU of the three axis-aligned silhouettes. Means over the 17 objects::

    density                      2     4     6     8    11    14    18    22    27    33    40    48
    mean voxel IoU, 16 spr    0.26  0.30  0.34  0.38  0.42  0.47  0.52  0.51  0.39  0.21  0.10  0.07
    mean voxel IoU, 32 spr    0.25  0.29  0.32  0.36  0.41  0.47  0.55  0.59  0.51  0.33  0.17  0.09
    mean voxel IoU, 64 spr    0.24  0.29  0.32  0.35  0.40  0.46  0.52  0.57  0.59  0.43  0.21  0.09
    silhouette IoU, 32 spr    0.45  0.50  0.53  0.55  0.59  0.63  0.69  0.71  0.64  0.46  0.27  0.13
    opacity/sample, 16 spr    0.19  0.35  0.48  0.58  0.70  0.78  0.86  0.91  0.95  0.97  0.99  0.99
    opacity/sample, 32 spr    0.10  0.19  0.28  0.35  0.45  0.53  0.62  0.70  0.77  0.83  0.89  0.93
    opacity/sample, 64 spr    0.05  0.10  0.15  0.19  0.26  0.32  0.39  0.45  0.52  0.59  0.66  0.73

:data:`DEFAULT_THRESHOLD` = 22 is the best level at the small profile's 32 samples per ray (voxel IoU
0.59, median 0.58, silhouette IoU 0.71) and within 0.01 of the best at 16 and 64. Vertex colours at
that level differ from the ground truth's part colours by 0.035 on average (per channel, in [0, 1]).
Below it the mesh picks up the haze around the object (and IoU falls slowly); above it thin parts
(chair legs, wing tips, guitar necks) vanish first (and IoU falls fast): the fitted NeRFs' median
density inside the objects is 22-51 (71 for the ball, 32 samples per ray), well below the ground
truth's 80, so the truth's own surface level, 40, already loses most parts. One dataset object, a
white table on the white background, is invisible in its views; its NeRF is empty (peak density 1.7)
and it scores 0 at every level. Voxel IoUs are modest because a 64^3 voxel is about as thick as the thinnest parts.

Faint NeRFs (a hazy generation whose highest density is near or below 22) would get a speck or no
mesh at 22. A rerun of the same study (this version of the fitting; 22 scores mean voxel IoU 0.577
at 32 samples per ray, 0.523 for the best level, 18, at 16 and 0.624 for 22 at 64) also scores
levels set at a fraction of each NeRF's *own* highest density (median highest density of the 17
fitted NeRFs: 45 at 32 samples per ray): the best fraction is one half at 32 and 64 samples per ray
(0.571, 0.604) and 0.4 at 16 (0.542), about as good as the absolute level. :func:`surface_level`
takes the lower of the two, ``min(22, peak / 2)``, and that rule does at least as well as either on
the fitted NeRFs: mean voxel IoU 0.620 vs 0.577 for 22 at 32 samples per ray, 0.569 vs 0.523 at 16,
0.624 vs 0.624 at 64. It is the default of
``p2n`` and of the book's mesh galleries; an explicit ``--threshold`` is used as given.
"""
from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import torch

from p2nlib.core.errors import InputError
from p2nlib.data import nerf
from p2nlib.data.render import BOX

#: density at which the surface is drawn (measured; see the module docstring)
DEFAULT_THRESHOLD = 22.0
#: a NeRF too faint for the default level gets its surface at this fraction of its own highest density
#: (the half-maximum; measured, see the module docstring and :func:`surface_level`)
FAINT_FRACTION = 0.5
#: grid points per axis over the object box
DEFAULT_RESOLUTION = 64
MIN_RESOLUTION, MAX_RESOLUTION = 8, 512
#: mesh file types :func:`export_mesh` writes, by suffix
MESH_SUFFIXES = (".glb", ".gltf", ".ply", ".obj")
_CHUNK = 1 << 16


def sample_delta(samples: int) -> float:
    """Step between rendering samples along the box diagonal: ``sqrt(3) * 2 * BOX / samples``."""
    if samples <= 0:
        raise InputError(f"samples per ray must be positive, got {samples}")
    return math.sqrt(3) * 2 * BOX / samples


def _single(params: dict[str, torch.Tensor], spec: nerf.NerfSpec) -> dict[str, torch.Tensor]:
    """One NeRF with a leading object axis of 1 (accepts one NeRF with or without that axis)."""
    shapes = spec.shapes()
    missing = [k for k in nerf.PARAM_NAMES if k not in params]
    if missing:
        raise InputError(f"NeRF parameters lack {missing}; expected the 14 tensors {list(nerf.PARAM_NAMES)}")
    out = {}
    for k in nerf.PARAM_NAMES:
        v = torch.as_tensor(params[k]).detach().float()
        if tuple(v.shape) == shapes[k]:
            v = v.unsqueeze(0)
        if tuple(v.shape[1:]) != shapes[k] or v.shape[0] != 1:
            raise InputError(f"{k} has shape {tuple(v.shape)}, expected {shapes[k]} (one NeRF of {spec}); "
                             "give the NeRF spec it was made with (width, freqs) or pick one NeRF of a batch")
        out[k] = v
    return out


@torch.no_grad()
def _evaluate(params: dict[str, torch.Tensor], spec: nerf.NerfSpec, pts: torch.Tensor,
              device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """sigma (N,), rgb (N, 3) of one NeRF at points (N, 3), in chunks."""
    sig, rgb = [], []
    for s in range(0, pts.shape[0], _CHUNK):
        a, b = nerf.forward(params, pts[s:s + _CHUNK].to(device)[None], spec.freqs)
        sig.append(a[0].cpu())
        rgb.append(b[0].cpu())
    return torch.cat(sig), torch.cat(rgb)


def grid_points(resolution: int) -> torch.Tensor:
    """The grid over the object box, (resolution^3, 3), x-major (index ``[i, j, k]`` is ``(x, y, z)``)."""
    ax = torch.linspace(-BOX, BOX, resolution)
    return torch.stack(torch.meshgrid(ax, ax, ax, indexing="ij"), -1).reshape(-1, 3)


def density_grid(params: dict[str, torch.Tensor], spec: nerf.NerfSpec, resolution: int = DEFAULT_RESOLUTION,
                 device: torch.device | str = "cpu") -> np.ndarray:
    """Density of one NeRF on the grid over the object box, (resolution,)*3 float32."""
    _check_resolution(resolution)
    p1 = {k: v.to(device) for k, v in _single(params, spec).items()}
    sigma, _ = _evaluate(p1, spec, grid_points(resolution), torch.device(device))
    return sigma.reshape((resolution,) * 3).numpy().astype(np.float32)


def opacity(density: float, samples: int) -> float:
    """Opacity of one rendering sample of ``density`` at ``samples`` samples per ray (1 - exp(-density * delta))."""
    return 1.0 - math.exp(-density * sample_delta(samples))


def surface_level(peak: float, threshold: float | None = None) -> tuple[float, str]:
    """The density at which to draw a NeRF's surface, and how it was chosen, in words.

    ``threshold`` given: that level. Otherwise ``min(DEFAULT_THRESHOLD, FAINT_FRACTION × peak)``: the
    measured default, unless the NeRF's own highest density ``peak`` is so low that half of it is below the
    default; then the half-maximum, so that a faint NeRF (a hazy generation) still gets the surface of its
    densest part instead of no mesh. Raises :class:`InputError` for a NeRF that is empty everywhere."""
    if threshold is not None:
        _check_threshold(threshold)
        return float(threshold), f"density threshold {threshold:g} (given)"
    if not peak > 1e-3:
        raise InputError(f"the NeRF is empty everywhere (highest density in the object box {peak:.3g}); "
                         "its renders are blank too, so there is no surface to mesh")
    level = min(DEFAULT_THRESHOLD, FAINT_FRACTION * peak)
    if level == DEFAULT_THRESHOLD:
        return level, f"density threshold {level:g} (the default)"
    return level, (f"density threshold {level:.3g}, chosen from the NeRF: it is faint (highest density {peak:.3g}, "
                   f"below twice the default {DEFAULT_THRESHOLD:g}), so the surface is drawn at half its highest "
                   "density; give --threshold to choose another")


def _check_resolution(resolution: int) -> None:
    if not isinstance(resolution, int) or not MIN_RESOLUTION <= resolution <= MAX_RESOLUTION:
        raise InputError(f"mesh resolution must be an integer from {MIN_RESOLUTION} to {MAX_RESOLUTION} grid points "
                         f"per axis, got {resolution!r} (default {DEFAULT_RESOLUTION})")


def _check_threshold(threshold: float) -> None:
    if not (isinstance(threshold, (int, float)) and math.isfinite(threshold) and threshold > 0):
        raise InputError(f"the mesh threshold is a density and must be a positive number, got {threshold!r} "
                         f"(default {DEFAULT_THRESHOLD:g}; the world's objects have density 40 on their surface)")


def extract_mesh(params: dict[str, torch.Tensor], spec: nerf.NerfSpec, resolution: int = DEFAULT_RESOLUTION,
                 threshold: float | None = DEFAULT_THRESHOLD, device: torch.device | str = "cpu"):
    """One NeRF -> ``trimesh.Trimesh`` with per-vertex colours, in the world frame (y up, box [-0.5, 0.5]^3).

    ``params``: the 14 tensors of one NeRF (with or without a leading axis of 1). ``resolution``: grid
    points per axis. ``threshold``: the density where the surface is drawn (see the module docstring;
    :func:`opacity` converts it to the opacity of one rendering sample); lower it for a fuller, hazier
    object, raise it for a tighter one; None: chosen from the NeRF (:func:`surface_level`). A NeRF with no
    point above the threshold raises :class:`InputError`. ``mesh.metadata["threshold_rule"]`` says how the
    level was chosen.
    """
    import trimesh
    from skimage import measure

    if threshold is not None:
        _check_threshold(threshold)
    _check_resolution(resolution)
    device = torch.device(device)
    p1 = {k: v.to(device) for k, v in _single(params, spec).items()}
    sigma, _ = _evaluate(p1, spec, grid_points(resolution), device)
    sigma = sigma.reshape((resolution,) * 3).numpy()
    peak = float(sigma.max())
    threshold, rule = surface_level(peak, threshold)
    if peak <= threshold:
        hint = (f"lower it below {peak:.3g} (e.g. --threshold {peak / 2:.2g})" if peak > 1e-3 else
                "this NeRF is empty everywhere (its renders are blank too)")
        raise InputError(f"no surface at density threshold {threshold:g}: the NeRF's highest density in the "
                         f"object box is {peak:.3g}; {hint}")
    vol = np.pad(sigma, 1, mode="constant", constant_values=0.0)   # empty border: the surface is closed
    step = 2 * BOX / (resolution - 1)
    verts, faces, _, _ = measure.marching_cubes(vol, level=threshold, spacing=(step,) * 3, allow_degenerate=False)
    verts = verts - BOX - step                                      # undo the padding, back to world coordinates
    _, rgb = _evaluate(p1, spec, torch.as_tensor(verts, dtype=torch.float32), device)
    colors = np.concatenate([(rgb.numpy() * 255).round().clip(0, 255), np.full((len(verts), 1), 255)], 1)
    mesh = trimesh.Trimesh(vertices=verts, faces=faces, vertex_colors=colors.astype(np.uint8), process=False)
    if mesh.volume < 0:                                             # outward normals whatever the winding
        mesh.invert()
    mesh.metadata.update({"threshold_density": float(threshold), "threshold_rule": rule, "peak_density": peak,
                          "resolution": int(resolution)})
    return mesh


def export_mesh(mesh, path: str | Path) -> Path:
    """Write a mesh by suffix: ``.glb`` / ``.gltf`` (glTF 2.0, vertex colours as ``COLOR_0``), ``.ply``, ``.obj``."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in MESH_SUFFIXES:
        raise InputError(f"cannot write a mesh to {path}: use one of {', '.join(MESH_SUFFIXES)}")
    if len(mesh.faces) == 0:
        raise InputError(f"the mesh for {path} is empty (no triangles); lower the threshold "
                         f"(--threshold, default {DEFAULT_THRESHOLD}) or check that the NeRF renders an object")
    path.parent.mkdir(parents=True, exist_ok=True)
    if suffix == ".gltf":
        import trimesh

        # one self-contained file: buffers embedded as data URIs instead of side files
        data = trimesh.exchange.gltf.export_gltf(trimesh.Scene(mesh), embed_buffers=True)
        path.write_bytes(data["model.gltf"])
    else:
        mesh.export(path, file_type=suffix[1:])
    return path


# ---------------------------------------------------------------------------------------------------
# How DEFAULT_THRESHOLD was measured
# ---------------------------------------------------------------------------------------------------

#: densities swept by :func:`threshold_study` (the world's objects have density 40 on their surface, 80 inside)
STUDY_DENSITIES = (2.0, 4.0, 6.0, 8.0, 11.0, 14.0, 18.0, 22.0, 27.0, 33.0, 40.0, 48.0, 56.0, 64.0)
#: fractions of each NeRF's own highest density swept by :func:`threshold_study` (the level for faint NeRFs)
STUDY_FRACTIONS = (0.05, 0.1, 0.15, 0.2, 0.25, 0.3, 0.35, 0.4, 0.5, 0.6)


def occupancy_iou(pred: np.ndarray, truth: np.ndarray) -> float:
    """Intersection over union of two boolean voxel grids."""
    union = np.logical_or(pred, truth).sum()
    return float(np.logical_and(pred, truth).sum() / union) if union else 1.0


def silhouette_iou(pred: np.ndarray, truth: np.ndarray) -> float:
    """Mean IoU of the three axis-aligned orthographic silhouettes (projections) of two voxel grids;
    unlike the voxel IoU it does not vanish for parts thinner than a voxel."""
    return float(np.mean([occupancy_iou(pred.any(a), truth.any(a)) for a in range(3)]))


def threshold_study(profile="small", per_category: int = 2, extra: tuple[str, ...] = ("ball",),
                    densities=STUDY_DENSITIES, resolution: int = 64, seed: int = 0, fractions=STUDY_FRACTIONS,
                    device: torch.device | str = "cpu", cache: str | Path | None = None,
                    progress: bool = False) -> dict:
    """Fit NeRFs with a profile's recipe and score density levels against the ground truth.

    Objects: the first ``per_category`` objects of each dataset category plus one of each ``extra``
    category. Scores per object and level: voxel IoU of ``density > level`` with the ground truth's
    occupancy (signed distance < 0) on a ``resolution``^3 grid, and :func:`silhouette_iou`. Each level
    is also given as the opacity per sample it means at the profile's samples per ray; and the voxel IoU
    of levels set at ``fractions`` of each NeRF's own highest density (``peaks``). At the best
    level, the mean absolute colour error of the mesh's vertex colours against the ground truth's
    colour (nearest part) is given too. ``profile``: a name or a :class:`Profile` (e.g. one with other
    ``samples_per_ray``). ``cache``: a safetensors file that keeps the fitted NeRFs between runs.
    Returns a dict of lists (see the keys)."""
    from p2nlib.core.artifacts import load_tensors, save_tensors
    from p2nlib.core.profiles import as_profile
    from p2nlib.data import fit, world

    p = as_profile(profile)
    objects = world.make_objects(world.IN_DISTRIBUTION, per_category, seed=seed) + \
        [world.make_object(c, 0, seed) for c in extra]
    spec = nerf.NerfSpec.from_profile(p)
    psnr = None
    if cache is not None and Path(cache).exists():
        params = load_tensors(Path(cache))
    else:
        result = fit.fit(objects, spec, fit.FitConfig.from_profile(p), seed=seed, device=device, progress=progress)
        params, psnr = result.params, result.psnr_heldout.tolist()
        if cache is not None:
            save_tensors(Path(cache), params)
    pts = grid_points(resolution)
    vox = np.zeros((len(objects), len(densities)))
    sil = np.zeros_like(vox)
    rel = np.zeros((len(objects), len(fractions)))
    peaks, auto = [], []
    for i, obj in enumerate(objects):
        sdf, _ = obj.sdf_color(pts)
        truth = (sdf < 0).reshape((resolution,) * 3).numpy()
        sigma = density_grid({k: v[i:i + 1] for k, v in params.items()}, spec, resolution, device)
        vox[i] = [occupancy_iou(sigma > d, truth) for d in densities]
        sil[i] = [silhouette_iou(sigma > d, truth) for d in densities]
        peaks.append(float(sigma.max()))
        rel[i] = [occupancy_iou(sigma > f * peaks[-1], truth) for f in fractions]
        auto.append(occupancy_iou(sigma > surface_level(peaks[-1])[0], truth) if peaks[-1] > 1e-3 else 0.0)
    best = float(densities[int(vox.mean(0).argmax())])
    color_err = []
    for i, obj in enumerate(objects):
        try:
            m = extract_mesh({k: v[i:i + 1] for k, v in params.items()}, spec, resolution, best, device=device)
        except InputError:
            color_err.append(float("nan"))
            continue
        _, truth_rgb = obj.sdf_color(torch.as_tensor(m.vertices, dtype=torch.float32))
        got = np.asarray(m.visual.vertex_colors)[:, :3] / 255.0
        color_err.append(float(np.abs(got - truth_rgb.numpy()).mean()))
    delta = sample_delta(p.samples_per_ray)
    return {"profile": p.name, "samples": p.samples_per_ray, "resolution": resolution,
            "densities": list(densities), "opacities": [1 - math.exp(-d * delta) for d in densities],
            "object_ids": [o.object_id for o in objects],
            "voxel_iou": vox.tolist(), "silhouette_iou": sil.tolist(),
            "mean_voxel_iou": vox.mean(0).tolist(), "median_voxel_iou": np.median(vox, 0).tolist(),
            "mean_silhouette_iou": sil.mean(0).tolist(), "best": best, "color_error_at_best": color_err,
            "psnr_heldout": psnr, "peaks": peaks, "fractions": list(fractions),
            "mean_voxel_iou_relative": rel.mean(0).tolist(),
            "best_fraction": float(fractions[int(rel.mean(0).argmax())]),
            "mean_voxel_iou_surface_level": float(np.mean(auto))}


# ---------------------------------------------------------------------------------------------------
# NeRF files: the 14 tensors as safetensors, with the NeRF spec in the metadata
# ---------------------------------------------------------------------------------------------------

NERF_FORMAT = "p2n-nerf/1"


def save_nerf(params: dict[str, torch.Tensor], spec: nerf.NerfSpec, path: str | Path, profile=None,
              samples: int | None = None, extra: dict | None = None) -> Path:
    """Write one NeRF's 14 tensors (no leading axis) as safetensors; the metadata records the NeRF spec,
    the profile and its samples per ray, so :func:`load_nerf` (and ``p2n export``) need nothing else."""
    from safetensors.torch import save_file

    path = Path(path)
    if path.suffix.lower() != ".safetensors":
        raise InputError(f"NeRF parameters are written as safetensors: {path} must end in .safetensors")
    one = {k: v[0].detach().cpu().contiguous() for k, v in _single(params, spec).items()}
    meta = {"format": NERF_FORMAT, "nerf_spec": json.dumps(spec.to_dict())}
    if profile is not None:
        from p2nlib.core.profiles import as_profile

        profile = as_profile(profile)
        meta["profile"] = profile.name
        samples = samples or profile.samples_per_ray
    if samples:
        meta["samples_per_ray"] = str(int(samples))
    meta.update({k: str(v) for k, v in (extra or {}).items()})
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file(one, str(path), metadata=meta)
    return path


def load_nerf(path: str | Path, profile=None, index: int | None = None) -> tuple[dict, nerf.NerfSpec, int, dict]:
    """One NeRF from a safetensors file -> ``(params with leading axis 1, spec, samples per ray, metadata)``.

    The spec and samples come from the file's metadata (:func:`save_nerf`); a file without them (e.g. a
    dataset's ``params.safetensors``) uses ``profile``'s (default ``$P2N_PROFILE`` or ``small``). A file
    holding several NeRFs needs ``index``."""
    from safetensors import SafetensorError, safe_open

    from p2nlib.core.profiles import as_profile

    path = Path(path)
    if not path.is_file():
        raise InputError(f"NeRF parameter file {path} does not exist (write one with p2n generate --save-params)")
    try:
        with safe_open(str(path), framework="pt") as f:
            meta = dict(f.metadata() or {})
            tensors = {k: f.get_tensor(k) for k in f.keys()}
    except (SafetensorError, OSError, ValueError) as err:
        raise InputError(f"{path} is not a readable safetensors file ({err})") from None
    if "nerf_spec" in meta:
        spec, where = nerf.NerfSpec(**json.loads(meta["nerf_spec"])), f"the spec saved in {path.name}"
    else:
        p = as_profile(profile or meta.get("profile"))
        spec, where = nerf.NerfSpec.from_profile(p), f"profile {p.name!r} (the file records no spec; choose --profile)"
    if "samples_per_ray" in meta:
        samples = int(meta["samples_per_ray"])
    else:
        samples = as_profile(profile or meta.get("profile")).samples_per_ray
    missing = [k for k in nerf.PARAM_NAMES if k not in tensors]
    if missing:
        raise InputError(f"{path} is not a NeRF of this book: it lacks the tensors {', '.join(missing)}")
    shapes = spec.shapes()
    first = tensors[nerf.PARAM_NAMES[0]]
    if first.dim() == len(shapes[nerf.PARAM_NAMES[0]]) + 1 and first.shape[0] > 1:
        n = first.shape[0]
        if index is None or not 0 <= index < n:
            raise InputError(f"{path} holds {n} NeRFs; pick one with --index i (0 <= i < {n})"
                             + ("" if index is None else f", got {index}"))
        tensors = {k: v[index:index + 1] for k, v in tensors.items()}
    for k in nerf.PARAM_NAMES:
        got = tuple(tensors[k].shape)
        if got != shapes[k] and got[1:] != shapes[k]:
            raise InputError(f"{path}: {k} has shape {got}, but {where} ({spec}) expects {shapes[k]}; "
                             "give the profile the NeRF was made with (--profile tiny|small|paper)")
    return _single({k: tensors[k] for k in nerf.PARAM_NAMES}, spec), spec, samples, meta
