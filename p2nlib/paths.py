"""Where the book reads and writes.

Only the main job (``make book``) writes ``figures/`` and the paired notebooks; tests point
``P2N_FIGURES`` and ``P2N_ARTIFACTS`` at a scratch folder so a test run never overwrites
committed results.
"""
from __future__ import annotations

import os
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


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


def sha256(path: Path) -> str:
    """Hex SHA-256 of a file (checksums in manifests)."""
    import hashlib

    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def write_json_atomic(path: Path, data, indent: int = 1) -> None:
    """Write JSON to a temporary file, then rename: a crash never leaves a half-written file."""
    import json

    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=indent) + "\n")
    os.replace(tmp, path)
