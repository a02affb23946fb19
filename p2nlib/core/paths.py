"""Where the book reads and writes.

Only the main job (``make book``) writes ``figures/`` and the paired notebooks; tests point
``P2N_FIGURES`` and ``P2N_ARTIFACTS`` at a scratch folder so a test run never overwrites
committed results.
"""
from __future__ import annotations

import os
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def figures_dir() -> Path:
    """Folder for figures and tables (``$P2N_FIGURES``, default ``<repo>/figures``)."""
    path = Path(os.environ.get("P2N_FIGURES", ROOT / "figures"))
    path.mkdir(parents=True, exist_ok=True)
    return path


def artifacts_dir(profile: str) -> Path:
    """Folder for datasets, checkpoints and caches of one profile (never committed)."""
    path = Path(os.environ.get("P2N_ARTIFACTS", ROOT / "artifacts")) / profile
    path.mkdir(parents=True, exist_ok=True)
    return path


def claims_dir() -> Path:
    """Folder where each notebook writes its own claim records before they are merged."""
    path = figures_dir() / ".claims"
    path.mkdir(parents=True, exist_ok=True)
    return path


def stage_dir(profile: str, stage: str) -> Path:
    """Folder of one stage's trained parts and caches: ``artifacts/<profile>/<stage>``."""
    path = artifacts_dir(profile) / stage
    path.mkdir(parents=True, exist_ok=True)
    return path
