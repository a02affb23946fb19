"""Shared test setup: every test writes into a scratch folder, never into figures/ or artifacts/."""
import os

import pytest


@pytest.fixture(autouse=True)
def _scratch_outputs(tmp_path, monkeypatch):
    monkeypatch.setenv("P2N_FIGURES", str(tmp_path / "figures"))
    monkeypatch.setenv("P2N_ARTIFACTS", str(tmp_path / "artifacts"))
    monkeypatch.setenv("P2N_NOTEBOOK", "test")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    yield
