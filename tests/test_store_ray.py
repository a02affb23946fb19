"""The Ray engine of the NeRF store: same chunk files, same merged store, resume, clear errors.

Runs only where the optional extra is installed (pip install -e ".[ray]")."""
import builtins
import json

import pytest
import torch
from safetensors.torch import load_file

from p2nlib.core.errors import InputError
from p2nlib.data import nerf, store

from test_store import MINI

ray = pytest.importorskip("ray")


@pytest.fixture(scope="module")
def ray_local():
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield ray
    ray.shutdown()


def _manifest(out):
    m = json.loads((out / "manifest.json").read_text())
    return [(o["object_id"], o["category"], o["split"], o["captions"]) for o in m["objects"]], m["config"]


def test_ray_engine_gives_the_same_store(ray_local, tmp_path, capsys):
    local, remote = tmp_path / "local", tmp_path / "ray"
    store.fit_dataset(MINI, local, progress=False)
    # shard 1 of 2 first (chunks 2 and 4), then everything: the finished chunks are not scheduled again
    store.fit_dataset(MINI, remote, shard=1, num_shards=2, engine="ray")
    first = capsys.readouterr().out
    assert first.count("] fitted 2 NeRFs") == 2
    kept = (remote / "chunks" / "chunk-00002-00003.safetensors").read_bytes()
    store.fit_dataset(MINI, remote, engine="ray", device="cpu")
    second = capsys.readouterr().out
    assert second.count("already fitted, skipped") == 2 and second.count("] fitted 2 NeRFs") == 2
    assert (remote / "chunks" / "chunk-00002-00003.safetensors").read_bytes() == kept
    for chunk in store.plan_chunks(8, MINI.fit_batch):           # chunk files are bit-identical
        a = load_file(str(local / "chunks" / f"{chunk.stem}.safetensors"))
        b = load_file(str(remote / "chunks" / f"{chunk.stem}.safetensors"))
        assert all(torch.equal(a[k], b[k]) for k in nerf.PARAM_NAMES)
    store.merge(MINI, local)
    store.merge(MINI, remote)
    pa, pb = store.load(MINI, local), store.load(MINI, remote)
    assert all(torch.equal(pa.params[k], pb.params[k]) for k in nerf.PARAM_NAMES)
    assert pa.fingerprint == pb.fingerprint
    assert _manifest(local) == _manifest(remote)
    assert [o["psnr_heldout"] for o in pa.objects] == [o["psnr_heldout"] for o in pb.objects]
    # nothing left to fit: Ray is not even asked
    store.fit_dataset(MINI, remote, engine="ray")
    assert "scheduling" not in capsys.readouterr().out


def test_ray_engine_refuses_cuda_without_gpus(ray_local, tmp_path):
    if ray.cluster_resources().get("GPU", 0):
        pytest.skip("this Ray instance has GPUs")
    with pytest.raises(InputError, match="no GPUs"):
        store.fit_dataset(MINI, tmp_path / "ds", engine="ray", device="cuda", progress=False)


def test_missing_ray_names_the_extra(tmp_path, monkeypatch):
    real_import = builtins.__import__

    def no_ray(name, *a, **k):
        if name == "ray" or name.startswith("ray."):
            raise ImportError("No module named 'ray'")
        return real_import(name, *a, **k)

    monkeypatch.setattr(builtins, "__import__", no_ray)
    with pytest.raises(InputError, match=r'pip install -e "\.\[ray\]"'):
        store.fit_dataset(MINI, tmp_path / "ds", engine="ray", progress=False)
    assert store.main(["fit", "--engine", "ray", "--profile", "tiny"]) == 2


def test_unknown_engine_and_stray_address(tmp_path):
    with pytest.raises(InputError, match="unknown engine"):
        store.fit_dataset(MINI, tmp_path / "ds", engine="dask")
    with pytest.raises(InputError, match="ray engine"):
        store.fit_dataset(MINI, tmp_path / "ds", address="auto", progress=False)
    with pytest.raises(SystemExit):
        store.main(["fit", "--address", "auto"])


def test_local_engine_does_not_import_ray(tmp_path):
    import subprocess
    import sys

    code = ("import sys; from p2nlib.data import store; from test_store import MINI; "
            f"store.fit_dataset(MINI, __import__('pathlib').Path({str(tmp_path / 'ds')!r}), progress=False); "
            "assert 'ray' not in sys.modules, 'ray imported'")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=__import__("pathlib").Path(__file__).parent)


def test_unreachable_cluster_is_a_clear_error(tmp_path, monkeypatch):
    def refuse(*a, **k):
        raise ConnectionError("Failed to connect to Ray cluster at 10.0.0.1:6379")

    monkeypatch.setattr(ray, "is_initialized", lambda: False)
    monkeypatch.setattr(ray, "init", refuse)
    with pytest.raises(InputError, match="cannot connect to the Ray cluster at '10.0.0.1:6379'"):
        store.fit_dataset(MINI, tmp_path / "ds", engine="ray", address="10.0.0.1:6379", progress=False)
