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
