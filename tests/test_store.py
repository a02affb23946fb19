"""The NeRF-parameter store: round trip, resume after a crash (also a real kill -9), sharding,
and clear errors for inconsistent files."""
import dataclasses
import json
from pathlib import Path
import os
import signal
import subprocess
import sys
import time

import pytest
import torch

from p2nlib.core.profiles import PROFILES
from p2nlib.data import nerf, store
from p2nlib.data import fit as fitting

# 8 objects (one per category) in 4 chunks of 2, very short fitting
MINI = dataclasses.replace(PROFILES["tiny"], name="tiny", objects_per_category=1, fit_batch=2, warmup_steps=2,
                           fit_steps=2, train_views=2, heldout_views=1, image_size=8, samples_per_ray=8)


@pytest.fixture
def counted_fit(monkeypatch):
    calls = []
    real = fitting.fit

    def wrapper(objs, *a, **k):
        calls.append([o.object_id for o in objs])
        return real(objs, *a, **k)

    monkeypatch.setattr(fitting, "fit", wrapper)
    return calls


def test_round_trip(tmp_path):
    out = tmp_path / "ds"
    store.fit_dataset(MINI, out, progress=False)
    store.merge(MINI, out)
    ds = store.load(MINI, out)
    assert len(ds.objects) == 8 and nerf.check_params(ds.params, ds.spec) == 8
    assert list(ds.manifest["param_names"]) == list(nerf.PARAM_NAMES)
    from safetensors.torch import load_file

    first = load_file(str(out / "chunks" / "chunk-00000-00001.safetensors"))
    for k in nerf.PARAM_NAMES:
        assert torch.equal(ds.params[k][:2], first[k])
    o = ds.objects[0]
    assert {"object_id", "category", "attributes", "captions", "split", "psnr_heldout"} <= set(o)
    assert {x["split"] for x in ds.objects} <= {"train", "val", "test"}


def test_split_is_stratified_80_10_10():
    objs = store.dataset_objects(dataclasses.replace(MINI, objects_per_category=30))
    split = store.split_for(objs)
    for cat in {o.category for o in objs}:
        for name in ("test", "val"):
            assert len([o for o in objs if o.category == cat and split[o.object_id] == name]) == 3
    assert split == store.split_for(objs)


def test_resplit_moves_other_objects_to_test_with_the_same_fractions():
    from p2nlib.data.store import Dataset

    objs = store.dataset_objects(dataclasses.replace(MINI, objects_per_category=30))
    split = store.split_for(objs)
    manifest = {"config": {"seed": 0}, "checksums": {"params.safetensors": "x"},
                "objects": [{"object_id": o.object_id, "category": o.category, "split": split[o.object_id]}
                            for o in objs]}
    ds = Dataset(Path("."), manifest, {})
    assert ds.resplit(0) is ds
    other = ds.resplit(1)
    assert other.resplit(1).fingerprint == ds.resplit(1).fingerprint != ds.fingerprint
    for name in ("train", "val", "test"):
        for cat in {o.category for o in objs}:
            assert len(other.indices(name, cat)) == len(ds.indices(name, cat))
    assert set(other.indices("test")) != set(ds.indices("test"))
    assert [o["split"] for o in ds.objects] == [split[o.object_id] for o in objs]   # the book's split untouched


def test_an_older_split_is_refused_with_the_command_that_relabels_it(tmp_path):
    out = tmp_path / "ds"
    store.fit_dataset(MINI, out, progress=False)
    store.merge(MINI, out)
    ds = store.load(MINI, out)
    m = json.loads((out / "manifest.json").read_text())
    m["objects"][0]["split"] = "test"             # one object per category: all train; an older split said test
    (out / "manifest.json").write_text(json.dumps(m))
    with pytest.raises(store.StoreError, match="data.store merge --profile tiny"):
        store.load(MINI, out)
    store.merge(MINI, out)                         # relabels without refitting
    again = store.load(MINI, out)
    assert again.fingerprint == ds.fingerprint and [o["split"] for o in again.objects] == [o["split"] for o in ds.objects]
    # the fingerprint follows the split: parts trained on another split are stale
    other = store.Dataset(ds.folder, {**ds.manifest, "objects": m["objects"]}, ds.params)
    assert other.fingerprint != ds.fingerprint


def test_resume_refits_only_missing_chunks(tmp_path, monkeypatch):
    out = tmp_path / "ds"
    real, counted_fit = fitting.fit, []

    def crash_on_third(objs, *a, **k):
        if len(counted_fit) == 2:
            raise KeyboardInterrupt("simulated crash")
        counted_fit.append([o.object_id for o in objs])
        return real(objs, *a, **k)

    monkeypatch.setattr(fitting, "fit", crash_on_third)
    with pytest.raises(KeyboardInterrupt):
        store.fit_dataset(MINI, out, progress=False)
    done = sorted(p.name for p in (out / "chunks").glob("*.json"))
    assert done == ["chunk-00000-00001.json", "chunk-00002-00003.json"]
    first_bytes = (out / "chunks" / "chunk-00000-00001.safetensors").read_bytes()
    # a half-written temporary file from a killed writer is ignored and overwritten
    (out / "chunks" / "chunk-00004-00005.safetensors.tmp").write_bytes(b"garbage")
    counted_fit.clear()
    monkeypatch.setattr(fitting, "fit", lambda objs, *a, **k: (counted_fit.append(objs), real(objs, *a, **k))[1])
    store.fit_dataset(MINI, out, progress=False)
    assert len(counted_fit) == 2                                   # only chunks 3 and 4
    assert (out / "chunks" / "chunk-00000-00001.safetensors").read_bytes() == first_bytes
    store.merge(MINI, out)
    assert len(store.load(MINI, out).objects) == 8


@pytest.mark.slow
def test_resume_after_kill_9(tmp_path, counted_fit):
    """A fitting process killed with SIGKILL mid-run loses only the chunk in progress."""
    out = tmp_path / "ds"
    slow = dataclasses.replace(MINI, fit_steps=400)
    code = ("import dataclasses, sys; from pathlib import Path; from p2nlib.data import store; "
            "from p2nlib.core.profiles import PROFILES; "
            f"p = dataclasses.replace(PROFILES['tiny'], **{ {k: v for k, v in dataclasses.asdict(slow).items() if k != 'name'}!r}); "
            f"store.fit_dataset(p, Path({str(out)!r}), progress=False)")
    proc = subprocess.Popen([sys.executable, "-c", code], env={**os.environ, "OMP_NUM_THREADS": "1"})
    deadline = time.time() + 120
    while not (out / "chunks" / "chunk-00000-00001.json").exists():
        assert proc.poll() is None and time.time() < deadline, "fitting process ended or timed out"
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    finished = sorted(p.name for p in (out / "chunks").glob("*.json"))
    assert finished and len(finished) < 4
    store.fit_dataset(slow, out, progress=False)
    assert len(counted_fit) == 4 - len(finished)
    store.merge(slow, out)
    assert len(store.load(slow, out).objects) == 8


def test_shards_merge_to_the_same_dataset(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    store.fit_dataset(MINI, a, progress=False)
    store.fit_dataset(MINI, b, shard=1, num_shards=2, progress=False)
    with pytest.raises(store.StoreError, match="not fitted yet"):
        store.merge(MINI, b)
    store.fit_dataset(MINI, b, shard=0, num_shards=2, progress=False)
    store.merge(MINI, a)
    store.merge(MINI, b)
    pa, pb = store.load(MINI, a).params, store.load(MINI, b).params
    assert all(torch.equal(pa[k], pb[k]) for k in nerf.PARAM_NAMES)
    with pytest.raises(ValueError, match="shard must be"):
        store.fit_dataset(MINI, a, shard=2, num_shards=2)


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    out = tmp_path_factory.mktemp("built") / "ds"
    store.fit_dataset(MINI, out, progress=False)
    store.merge(MINI, out)
    return out


def _copy(src, dst):
    import shutil

    shutil.copytree(src, dst)
    return dst


def test_truncated_store_file_is_a_clear_error(built, tmp_path):
    out = _copy(built, tmp_path / "ds")
    f = out / "params.safetensors"
    f.write_bytes(f.read_bytes()[:100])
    with pytest.raises(store.StoreError, match="params.safetensors does not match the checksum"):
        store.load(MINI, out)
    chunk = out / "chunks" / "chunk-00002-00003.safetensors"
    chunk.write_bytes(chunk.read_bytes()[:50])
    with pytest.raises(store.StoreError, match="chunk-00002-00003.safetensors does not match its checksum"):
        store.merge(MINI, out)


def test_manifest_that_does_not_match_the_store(built, tmp_path):
    out = _copy(built, tmp_path / "ds")
    m = json.loads((out / "manifest.json").read_text())
    m["objects"] = m["objects"][:-1]
    (out / "manifest.json").write_text(json.dumps(m))
    with pytest.raises(store.StoreError, match="holds 8 NeRFs but .*manifest.json lists 7"):
        store.load(MINI, out)
    m["profile"] = "small"
    (out / "manifest.json").write_text(json.dumps(m))
    with pytest.raises(store.StoreError, match="belongs to profile 'small'"):
        store.load(MINI, out)


def test_missing_dataset_names_the_notebook(tmp_path):
    with pytest.raises(store.StoreError, match="01_dataset"):
        store.load(MINI, tmp_path / "nothing")
