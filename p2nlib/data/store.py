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

Two engines fit the chunks: ``local`` (the default) fits them one after the other in this process;
``ray`` schedules one chunk per Ray task (one GPU per task on a cluster with GPUs, else CPU tasks)
on a local Ray instance or an existing cluster (``address``). Workers only compute: every chunk
comes back to this process, which writes it with the same atomic files, so resume and
:func:`merge` are the same for both, and a chunk is bit-identical whichever engine fitted it.
Ray is an optional extra (``pip install -e ".[ray]"``), imported only by the ``ray`` engine.
"""
from __future__ import annotations

import hashlib
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
from p2nlib.core.errors import InputError, P2NError, StoreError
from p2nlib.core.profiles import Profile
from p2nlib.data import nerf, world
from p2nlib.data import fit as fitting

MANIFEST_VERSION = 1
TEST_FRACTION = 0.1
VAL_FRACTION = 0.1     # carved from the train split: the study of 07 chooses recipes on it, never on test
ENGINES = ("local", "ray")


def dataset_dir(profile: Profile, root: Path | None = None) -> Path:
    return (root or paths.artifacts_dir(profile.name)) / "dataset"




def dataset_objects(profile: Profile, seed: int = 0) -> list[world.WorldObject]:
    """The in-distribution objects of a profile, in a fixed order (category-major)."""
    return world.make_objects(world.IN_DISTRIBUTION, profile.objects_per_category, seed=seed)


def split_for(objects: list[world.WorldObject], seed: int = 0) -> dict[str, str]:
    """80/10/10 train/validation/test split, stratified by category (at least one test object per category,
    and one validation object where a category has at least three).

    The test objects are the ones the 90/10 train/test split of earlier versions chose; the validation
    objects come out of its train split. Recipes and thresholds are chosen on ``val``; ``test`` is read
    for the reported numbers."""
    return _split_ids([(o.object_id, o.category) for o in objects], seed)


def _split_ids(pairs: list[tuple[str, str]], seed: int, split_seed: int = 0) -> dict[str, str]:
    out = {}
    for cat in sorted({c for _, c in pairs}):
        ids = [i for i, c in pairs if c == cat]
        random.Random(f"split-{cat}-{seed}" + (f"/{split_seed}" if split_seed else "")).shuffle(ids)
        n_test = max(1, round(TEST_FRACTION * len(ids))) if len(ids) > 1 else 0
        n_val = max(1, round(VAL_FRACTION * len(ids))) if len(ids) > 2 else 0
        out.update({i: ("test" if k < n_test else "val" if k < n_test + n_val else "train")
                    for k, i in enumerate(ids)})
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


def _fit_chunk(profile: Profile, chunk: Chunk, objs: list[world.WorldObject], device: torch.device | str,
               seed: int, progress: bool) -> tuple[dict[str, torch.Tensor], dict]:
    """Fit one chunk (seeded by its first object index, so any engine gives the same tensors)."""
    spec, cfg = nerf.NerfSpec.from_profile(profile), fitting.FitConfig.from_profile(profile)
    res = fitting.fit(objs, spec, cfg, init="shared", seed=seed + chunk.first, device=device, progress=progress)
    meta = {"objects": [o.object_id for o in objs], "psnr_heldout": res.psnr_heldout.tolist(),
            "history": res.history, "seconds": res.seconds}
    return res.params, meta


def _write_chunk(chunks_dir: Path, chunk: Chunk, params: dict[str, torch.Tensor], meta: dict) -> None:
    sha = save_tensors(chunks_dir / f"{chunk.stem}.safetensors", params)
    _atomic_json(chunks_dir / f"{chunk.stem}.json", {**meta, "sha256": sha})   # written last: marks it complete


def fit_dataset(profile: Profile, out: Path | None = None, shard: int = 0, num_shards: int = 1,
                device: torch.device | str = "cpu", seed: int = 0, progress: bool = True, *,
                engine: str = "local", address: str | None = None, cpus_per_task: int = 1) -> Path:
    """Fit every not-yet-fitted chunk of this shard; finished chunks are skipped (resume).

    ``engine="ray"`` fits one chunk per Ray task (see :func:`fit_dataset_ray`); ``address``
    and ``cpus_per_task`` apply to that engine only.
    """
    if engine not in ENGINES:
        raise InputError(f"unknown engine {engine!r}; use one of {', '.join(ENGINES)}")
    if not 0 <= shard < num_shards:
        raise ValueError(f"shard must be in [0, {num_shards}), got {shard}")
    if engine == "ray":
        return fit_dataset_ray(profile, out, shard, num_shards, device, seed, progress, address=address,
                               cpus_per_task=cpus_per_task)
    if address is not None:
        raise InputError("address is for the ray engine; use engine='ray' or leave address out")
    out = out or dataset_dir(profile)
    chunks_dir = out / "chunks"
    chunks_dir.mkdir(parents=True, exist_ok=True)
    objects = dataset_objects(profile, seed)
    todo = _shard_chunks(profile, len(objects), shard, num_shards)
    for k, chunk in enumerate(todo):
        if chunk_done(chunks_dir, chunk):
            if progress:
                print(f"[{chunk.stem}] already fitted, skipped")
            continue
        objs = objects[chunk.first: chunk.last + 1]
        if progress:
            print(f"[{chunk.stem}] fitting {len(objs)} NeRFs ({k + 1}/{len(todo)} of shard {shard}/{num_shards})",
                  flush=True)
        params, meta = _fit_chunk(profile, chunk, objs, device, seed, progress)
        _write_chunk(chunks_dir, chunk, params, meta)
    return out


def _shard_chunks(profile: Profile, n_objects: int, shard: int, num_shards: int) -> list[Chunk]:
    return [c for i, c in enumerate(plan_chunks(n_objects, profile.fit_batch)) if i % num_shards == shard]


def _import_ray():
    try:
        import ray
    except ImportError:
        raise InputError('the ray engine needs Ray, which is not installed; install the extra with '
                         'pip install -e ".[ray]" (or pip install "ray>=2.9"), or use --engine local') from None
    return ray


def _ray_fit_chunk(profile: Profile, chunk: Chunk, objs: list[world.WorldObject], device: str, seed: int,
                   threads: int) -> tuple[dict[str, torch.Tensor], dict]:
    """The body of one Ray task: fit a chunk and hand its tensors back (the driver writes them)."""
    torch.set_num_threads(threads)
    return _fit_chunk(profile, chunk, objs, device, seed, progress=False)


def fit_dataset_ray(profile: Profile, out: Path | None = None, shard: int = 0, num_shards: int = 1,
                    device: torch.device | str | None = "auto", seed: int = 0, progress: bool = True, *,
                    address: str | None = None, cpus_per_task: int = 1) -> Path:
    """Fit every not-yet-fitted chunk of this shard, one Ray task per chunk.

    Connects to the cluster at ``address`` (``"auto"``, ``"ray://host:10001"``, ...) or, without
    one, starts a local Ray instance for the run (an already initialised Ray is used as it is).
    ``device``: ``auto`` takes one GPU per task when the cluster has GPUs, else CPU tasks;
    ``cuda`` requires GPUs; ``cpu`` forces CPU tasks. Each task reserves ``cpus_per_task`` CPUs
    and runs torch with that many threads. Finished chunks are never scheduled; each chunk is
    written here, atomically, as soon as its task returns, so an interrupted run resumes like the
    local engine. Workers need this package installed (a local instance uses this environment).
    """
    if not 0 <= shard < num_shards:
        raise ValueError(f"shard must be in [0, {num_shards}), got {shard}")
    if cpus_per_task < 1:
        raise InputError(f"cpus_per_task must be at least 1, got {cpus_per_task}")
    dev = None if device in (None, "", "auto") else torch.device(device)
    if dev is not None and dev.type not in ("cpu", "cuda"):
        raise InputError(f"the ray engine runs on cpu or cuda, not {device!r}; use device='auto', 'cuda' or 'cpu'")
    out = out or dataset_dir(profile)
    chunks_dir = out / "chunks"
    chunks_dir.mkdir(parents=True, exist_ok=True)
    objects = dataset_objects(profile, seed)
    todo = _shard_chunks(profile, len(objects), shard, num_shards)
    missing = []
    for chunk in todo:
        if chunk_done(chunks_dir, chunk):
            if progress:
                print(f"[{chunk.stem}] already fitted, skipped")
        else:
            missing.append(chunk)
    if not missing:
        return out

    ray = _import_ray()
    started = not ray.is_initialized()
    if started:
        if address:
            try:
                ray.init(address=address)
            except ConnectionError as err:
                raise InputError(f"cannot connect to the Ray cluster at {address!r} ({err}); check the address "
                                 "(and the cluster's auth token), or leave --address out for a local "
                                 "Ray instance") from None
        else:
            ray.init(include_dashboard=False)
    try:
        gpus = ray.cluster_resources().get("GPU", 0)
        if dev is not None and dev.type == "cuda" and not gpus:
            raise InputError("device 'cuda' requested but the Ray cluster has no GPUs; use device='auto' or 'cpu'")
        use_gpu = gpus > 0 and (dev is None or dev.type == "cuda")
        task = ray.remote(_ray_fit_chunk).options(num_cpus=cpus_per_task, num_gpus=1 if use_gpu else 0)
        target = "cuda" if use_gpu else "cpu"
        if progress:
            each = f"1 GPU + {cpus_per_task} CPU" if use_gpu else f"{cpus_per_task} CPU"
            print(f"scheduling {len(missing)} chunk(s) of shard {shard}/{num_shards} on Ray ({each} per task)",
                  flush=True)
        pending = {task.remote(profile, c, objects[c.first: c.last + 1], target, seed, cpus_per_task): c
                   for c in missing}
        done = 0
        try:
            while pending:
                ready, _ = ray.wait(list(pending), num_returns=1)
                chunk = pending.pop(ready[0])
                params, meta = ray.get(ready[0])
                _write_chunk(chunks_dir, chunk, params, meta)
                done += 1
                if progress:
                    psnr = sum(meta["psnr_heldout"]) / len(meta["psnr_heldout"])
                    print(f"[{chunk.stem}] fitted {len(meta['objects'])} NeRFs ({done}/{len(missing)}, "
                          f"{meta['seconds']:.1f} s, held-out PSNR {psnr:.2f} dB)", flush=True)
        finally:
            for ref in pending:          # an error or an interrupt: stop the tasks still queued or running
                try:
                    ray.cancel(ref)
                except Exception:        # already finished or gone
                    pass
    finally:
        if started:
            ray.shutdown()
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
                         "run the fitting for every shard first (01_dataset, or p2nlib.data.store.fit_dataset)")
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
        """SHA-256 of the stored parameters and the objects' splits: what trained parts record as their
        dataset (so a part trained before the split changed is refused as stale)."""
        splits = ",".join(o["split"] for o in self.objects)
        return hashlib.sha256(f"{self.manifest['checksums']['params.safetensors']}|{splits}".encode()).hexdigest()

    def resplit(self, split_seed: int) -> "Dataset":
        """The same NeRFs under another train/validation/test split (split seed 0: the book's own split).

        Same fractions and stratification as :func:`split_for`; other split seeds put other objects in the
        test split, which is how 07 measures the key claims over several splits without refitting anything.
        The result's fingerprint differs, so parts trained on one split are never taken for another's."""
        if split_seed == 0:
            return self
        pairs = [(o["object_id"], o["category"]) for o in self.objects]
        split = _split_ids(pairs, self.manifest["config"]["seed"], split_seed)
        objects = [{**o, "split": split[o["object_id"]]} for o in self.objects]
        return Dataset(self.folder, {**self.manifest, "objects": objects}, self.params)

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
    want = _split_ids([(o["object_id"], o["category"]) for o in manifest["objects"]], manifest["config"]["seed"])
    if any(o["split"] != want[o["object_id"]] for o in manifest["objects"]):
        raise StoreError(f"{mpath} holds an older split of the objects (before the validation split was carved "
                         "from train); the NeRFs are still good: relabel them with `python -m p2nlib.data.store "
                         f"merge --profile {profile.name}` (seconds, no refitting); the parts trained on the old "
                         "split (notebooks 03, 04, 07) are then refused as stale and retrained")
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
    """``python -m p2nlib.data.store fit [--shard i --num-shards n] [--engine ray [--address A]]`` / ``merge``.

    Fits the dataset's chunks (sharded across processes, or one Ray task per chunk), then merges them.
    """
    import argparse
    import sys

    from p2nlib.core.device import resolve_device
    from p2nlib.core.profiles import get_profile

    ap = argparse.ArgumentParser(prog="python -m p2nlib.data.store", description=main.__doc__)
    ap.add_argument("command", choices=["fit", "merge"])
    ap.add_argument("--profile", default=None)
    ap.add_argument("--shard", type=int, default=0)
    ap.add_argument("--num-shards", type=int, default=1)
    ap.add_argument("--device", default="auto")
    ap.add_argument("--engine", choices=ENGINES, default="local",
                    help="local: fit the chunks one by one in this process (default); "
                         "ray: one Ray task per chunk (pip install -e \".[ray]\")")
    ap.add_argument("--address", default=None,
                    help="Ray cluster to connect to (e.g. auto or ray://host:10001); default: a local instance")
    ap.add_argument("--cpus-per-task", type=int, default=1,
                    help="CPUs reserved by each Ray task, and its torch threads (default 1)")
    args = ap.parse_args(argv)
    if args.engine != "ray" and args.address is not None:
        ap.error("--address needs --engine ray")
    try:
        prof = get_profile(args.profile)
        if args.command == "fit":
            device = resolve_device(args.device) if args.engine == "local" else args.device
            fit_dataset(prof, shard=args.shard, num_shards=args.num_shards, device=device, engine=args.engine,
                        address=args.address, cpus_per_task=args.cpus_per_task)
        else:
            print(merge(prof))
    except P2NError as err:
        print(f"{ap.prog}: error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
