"""Shared test setup: every test writes into a scratch folder, never into figures/ or artifacts/."""

import pytest


@pytest.fixture(autouse=True)
def _scratch_outputs(tmp_path, monkeypatch):
    monkeypatch.setenv("P2N_FIGURES", str(tmp_path / "figures"))
    monkeypatch.setenv("P2N_ARTIFACTS", str(tmp_path / "artifacts"))
    monkeypatch.setenv("P2N_NOTEBOOK", "test")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf-cache"))   # a real local cache never leaks in
    yield


@pytest.fixture
def runner_env(monkeypatch):
    """For tests that call ``p2nlib.book.runner.main`` in this process: the variables it sets for its kernels
    (profile, allocator) are restored after the test."""
    for var in ("P2N_PROFILE", "MALLOC_MMAP_MAX_", "MALLOC_TRIM_THRESHOLD_"):
        monkeypatch.delenv(var, raising=False)
    return monkeypatch


@pytest.fixture(scope="session")
def tiny_parts(tmp_path_factory):
    """Every trained part of the tiny profile (dataset, small CLIP, embedding cache, VAE, aligner), built once
    per test session into its own artifacts folder. Returns ``(artifacts folder, dataset, embedding cache)``;
    use it through :func:`tiny_artifacts`, which points ``P2N_ARTIFACTS`` there for one test."""
    from p2nlib import clip
    from p2nlib.core.profiles import get_profile
    from p2nlib.data import store
    from p2nlib.generate import align, vae

    root = tmp_path_factory.mktemp("tiny-artifacts")
    mp = pytest.MonkeyPatch()
    mp.setenv("P2N_ARTIFACTS", str(root))
    mp.setenv("P2N_FIGURES", str(root / "figures"))
    mp.setenv("HF_HUB_OFFLINE", "1")
    try:
        P = get_profile("tiny")
        ds = store.build(P, progress=False)
        enc, _ = clip.get_or_train(P, progress=False)
        cache = clip.embedding_cache(P, enc, progress=False)
        model_vae, _ = vae.train(ds.params, ds.spec, vae.VaeConfig.from_profile(P), progress=False)
        vae.save(model_vae, P, ds)
        lat, _ = model_vae.encode(ds.params)
        aligner, _ = align.train(cache.image, lat.detach(), align.AlignConfig.from_profile(P), progress=False)
        align.save(aligner, P, align.provenance(ds, cache, model_vae))
    finally:
        mp.undo()
    return root, ds, cache


@pytest.fixture
def tiny_artifacts(tiny_parts, monkeypatch):
    """The tiny profile's trained parts for this test (``P2N_ARTIFACTS`` points at them)."""
    monkeypatch.setenv("P2N_ARTIFACTS", str(tiny_parts[0]))
    return tiny_parts
