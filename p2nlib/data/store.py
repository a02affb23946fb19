"""The NeRF-parameter dataset on disk: safetensors chunks, a merged store and a manifest.

Layout of ``artifacts/<profile>/dataset/``::

    chunks/chunk-<first>-<last>.safetensors   one fitted batch: 14 tensors with a leading object axis
    chunks/chunk-<first>-<last>.json          its objects, held-out PSNR, fitting curves, wall time
    params.safetensors                        all objects, one tensor per parameter name (merged)
    manifest.json                             objects (id, category, attributes, captions, split,
                                              PSNR), the config, sha256 checksums

Fitting is resumable: each chunk is written to a temporary file and renamed into place only when
complete, so a run killed at any moment (even ``kill -9``) leaves finished chunks intact and no
half-written file under a final name; the next run fits only the missing chunks. Sharding
(``shard i of n``) gives each process a disjoint set of chunks; :func:`merge` combines them.
"""
from __future__ import annotations

import json
import random
import time
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file

from p2nlib.core import paths
from p2nlib.core.artifacts import save_tensors, sha256
from p2nlib.core.artifacts import write_json_atomic as _atomic_json
from p2nlib.core.errors import StoreError
from p2nlib.core.profiles import Profile
from p2nlib.data import nerf, world
from p2nlib.data import fit as fitting

MANIFEST_VERSION = 1
TEST_FRACTION = 0.1


def dataset_dir(profile: Profile, root: Path | None = None) -> Path:
    return (root or paths.artifacts_dir(profile.name)) / "dataset"




def dataset_objects(profile: Profile, seed: int = 0) -> list[world.WorldObject]:
    """The in-distribution objects of a profile, in a fixed order (category-major)."""
    return world.make_objects(world.IN_DISTRIBUTION, profile.objects_per_category, seed=seed)


def split_for(objects: list[world.WorldObject], seed: int = 0) -> dict[str, str]:
    """90/10 train/test split, stratified by category (at least one test object per category)."""
    out = {}
    for cat in sorted({o.category for o in objects}):
        ids = [o.object_id for o in objects if o.category == cat]
        random.Random(f"split-{cat}-{seed}").shuffle(ids)
        n_test = max(1, round(TEST_FRACTION * len(ids))) if len(ids) > 1 else 0
        out.update({i: ("test" if k < n_test else "train") for k, i in enumerate(ids)})
    return out


@dataclass(frozen=True)
class Chunk:
    first: int
    last: int          # inclusive

    @property
    def stem(self) -> str:
        return f"chunk-{self.first:05d}-{self.last:05d}"


def plan_chunks(n_objects: int, chunk_size: int) -> list[Chunk]:
    return [Chunk(s, min(s + chunk_size, n_objects) - 1) for s in range(0, n_objects, chunk_size)]


def chunk_done(folder: Path, chunk: Chunk) -> bool:
    return (folder / f"{chunk.stem}.safetensors").exists() and (folder / f"{chunk.stem}.json").exists()


def fit_dataset(profile: Profile, out: Path | None = None, shard: int = 0, num_shards: int = 1,
                device: torch.device | str = "cpu", seed: int = 0, progress: bool = True) -> Path:
    """Fit every not-yet-fitted chunk of this shard; finished chunks are skipped (resume)."""
    if not 0 <= shard < num_shards:
        raise ValueError(f"shard must be in [0, {num_shards}), got {shard}")
    out = out or dataset_dir(profile)
    chunks_dir = out / "chunks"
    chunks_dir.mkdir(parents=True, exist_ok=True)
    objects = dataset_objects(profile, seed)
    spec, cfg = nerf.NerfSpec.from_profile(profile), fitting.FitConfig.from_profile(profile)
    todo = [c for i, c in enumerate(plan_chunks(len(objects), profile.fit_batch)) if i % num_shards == shard]
    for k, chunk in enumerate(todo):
        if chunk_done(chunks_dir, chunk):
            if progress:
                print(f"[{chunk.stem}] already fitted, skipped")
            continue
        objs = objects[chunk.first: chunk.last + 1]
        if progress:
            print(f"[{chunk.stem}] fitting {len(objs)} NeRFs ({k + 1}/{len(todo)} of shard {shard}/{num_shards})",
                  flush=True)
        res = fitting.fit(objs, spec, cfg, init="shared", seed=seed + chunk.first, device=device, progress=progress)
        sha = save_tensors(chunks_dir / f"{chunk.stem}.safetensors", res.params)
        meta = {"objects": [o.object_id for o in objs], "psnr_heldout": res.psnr_heldout.tolist(),
                "history": res.history, "seconds": res.seconds, "sha256": sha}
        _atomic_json(chunks_dir / f"{chunk.stem}.json", meta)   # written last: marks the chunk complete
    return out


def merge(profile: Profile, out: Path | None = None, seed: int = 0) -> Path:
    """Combine all chunks into ``params.safetensors`` and write ``manifest.json``."""
    out = out or dataset_dir(profile)
    chunks_dir = out / "chunks"
    objects = dataset_objects(profile, seed)
    chunks = plan_chunks(len(objects), profile.fit_batch)
    missing = [c.stem for c in chunks if not chunk_done(chunks_dir, c)]
    if missing:
        raise StoreError(f"{chunks_dir}: {len(missing)} chunk(s) not fitted yet ({', '.join(missing[:4])}...); "
                         "run the fitting for every shard first (01_dataset, or p2nlib.store.fit_dataset)")
    tensors: dict[str, list[torch.Tensor]] = {k: [] for k in nerf.PARAM_NAMES}
    psnrs, histories, seconds = [], [], 0.0
    for c in chunks:
        f = chunks_dir / f"{c.stem}.safetensors"
        meta = json.loads((chunks_dir / f"{c.stem}.json").read_text())
        if sha256(f) != meta["sha256"]:
            raise StoreError(f"{f} does not match its checksum (truncated or changed); delete it and its .json "
                             "and rerun the fitting to refit that chunk")
        part = _load_safetensors(f)
        for k in nerf.PARAM_NAMES:
            tensors[k].append(part[k])
        psnrs += meta["psnr_heldout"]
        histories.append(meta["history"])
        seconds += meta["seconds"]
    params = {k: torch.cat(v).contiguous() for k, v in tensors.items()}
    params_sha = save_tensors(out / "params.safetensors", params)
    split = split_for(objects, seed)
    manifest = {
        "version": MANIFEST_VERSION,
        "profile": profile.name,
        "config": {"profile": profile.to_dict(), "nerf": nerf.NerfSpec.from_profile(profile).to_dict(),
                   "fit": fitting.FitConfig.from_profile(profile).to_dict(), "init": "shared",
                   "template_seed": nerf.TEMPLATE_SEED, "seed": seed},
        "param_names": list(nerf.PARAM_NAMES),
        "fit_seconds": seconds,
        "objects": [{"object_id": o.object_id, "category": o.category, "index": o.index,
                     "attributes": o.attributes, "captions": list(o.captions), "split": split[o.object_id],
                     "psnr_heldout": p} for o, p in zip(objects, psnrs)],
        "histories": histories,
        "checksums": {"params.safetensors": params_sha},
    }
    _atomic_json(out / "manifest.json", manifest)
    return out


def _load_safetensors(path: Path) -> dict[str, torch.Tensor]:
    try:
        return load_file(str(path))
    except (SafetensorError, OSError, ValueError) as err:
        raise StoreError(f"{path} cannot be read ({err}); it is truncated or not a safetensors file. "
                         "Delete it and rerun the fitting (make book ONLY=01)") from None


@dataclass
class Dataset:
    folder: Path
    manifest: dict
    params: dict[str, torch.Tensor]

    @property
    def objects(self) -> list[dict]:
        return self.manifest["objects"]

    @property
    def spec(self) -> nerf.NerfSpec:
        return nerf.NerfSpec(**self.manifest["config"]["nerf"])

    @property
    def fingerprint(self) -> str:
        """SHA-256 of the stored parameters: what trained parts record as their dataset."""
        return self.manifest["checksums"]["params.safetensors"]

    def indices(self, split: str | None = None, category: str | None = None) -> list[int]:
        return [i for i, o in enumerate(self.objects)
                if (split is None or o["split"] == split) and (category is None or o["category"] == category)]

    def select(self, idx) -> dict[str, torch.Tensor]:
        idx = torch.as_tensor(idx, dtype=torch.long)
        return {k: v[idx] for k, v in self.params.items()}

    def world_objects(self, idx) -> list[world.WorldObject]:
        seed = self.manifest["config"]["seed"]
        return [world.make_object(self.objects[i]["category"], self.objects[i]["index"], seed) for i in idx]


def load(profile: Profile | str, folder: Path | None = None) -> Dataset:
    """Load and verify the dataset of a profile (checksums, object count, parameter shapes)."""
    from p2nlib.core.profiles import get_profile

    profile = get_profile(profile) if isinstance(profile, str) else profile
    folder = folder or dataset_dir(profile)
    mpath, ppath = folder / "manifest.json", folder / "params.safetensors"
    if not mpath.exists() or not ppath.exists():
        raise StoreError(f"no NeRF dataset in {folder}; build it with notebooks/01_dataset (make book ONLY=01)")
    try:
        manifest = json.loads(mpath.read_text())
    except json.JSONDecodeError as err:
        raise StoreError(f"{mpath} is not valid JSON ({err}); delete it and rerun the merge (make book ONLY=01)") from None
    if manifest.get("profile") != profile.name:
        raise StoreError(f"{mpath} belongs to profile {manifest.get('profile')!r}, not {profile.name!r}; "
                         f"use profile={manifest.get('profile')!r} or rebuild the dataset")
    if sha256(ppath) != manifest["checksums"]["params.safetensors"]:
        raise StoreError(f"{ppath} does not match the checksum in {mpath} (truncated or replaced); "
                         "delete both and rerun the merge (make book ONLY=01)")
    params = _load_safetensors(ppath)
    spec = nerf.NerfSpec(**manifest["config"]["nerf"])
    try:
        n = nerf.check_params(params, spec)
    except ValueError as err:
        raise StoreError(f"{ppath}: {err}; the store does not match {mpath}. Rebuild the dataset.") from None
    if n != len(manifest["objects"]):
        raise StoreError(f"{ppath} holds {n} NeRFs but {mpath} lists {len(manifest['objects'])} objects; "
                         "delete both and rerun the merge (make book ONLY=01)")
    return Dataset(folder, manifest, params)


def build(profile: Profile, device: torch.device | str = "cpu", seed: int = 0, progress: bool = True) -> Dataset:
    """Fit (resuming) and merge the whole dataset of a profile, then load it."""
    t0 = time.perf_counter()
    out = fit_dataset(profile, device=device, seed=seed, progress=progress)
    merge(profile, out, seed)
    if progress:
        print(f"dataset ready in {out} ({time.perf_counter() - t0:.0f} s this run)")
    return load(profile, out)


def main(argv: list[str] | None = None) -> int:
    """``python -m p2nlib.data.store fit --shard i --num-shards n`` / ``merge``: shard fitting across processes."""
    import argparse

    from p2nlib.core.device import resolve_device
    from p2nlib.core.profiles import get_profile

    ap = argparse.ArgumentParser(description=main.__doc__)
    ap.add_argument("command", choices=["fit", "merge"])
    ap.add_argument("--profile", default=None)
    ap.add_argument("--shard", type=int, default=0)
    ap.add_argument("--num-shards", type=int, default=1)
    ap.add_argument("--device", default="auto")
    args = ap.parse_args(argv)
    prof = get_profile(args.profile)
    if args.command == "fit":
        fit_dataset(prof, shard=args.shard, num_shards=args.num_shards, device=resolve_device(args.device))
    else:
        print(merge(prof))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
