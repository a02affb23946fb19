"""The claims ledger: each paper claim as a measured number next to the paper's own.

A notebook calls :func:`record` for each headline number. Records go to one file per notebook
(``figures/.claims/<notebook>.json``), stamped with profile, device, torch version, git commit
and date. After a notebook succeeds, the runner merges its records into ``figures/claims.json``
(:func:`merge_into`), replacing only that notebook's earlier claims, so a failing notebook never
wipes the claims of the others. :func:`render_markdown` makes the book's claims table.
"""
from __future__ import annotations

import datetime as _dt
import json
import math
import os
import subprocess
from dataclasses import asdict, dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from p2nlib.core import paths
from p2nlib.core.artifacts import write_json_atomic
from p2nlib.core.errors import ClaimsFileError

SCHEMA_VERSION = 1
STAMP_FIELDS = ("notebook", "profile", "device", "torch", "commit", "date")


@dataclass
class Claim:
    id: str
    section: str
    value: float | str | None
    unit: str = ""
    paper: float | str | None = None
    holds: bool | None = None
    note: str = ""


def schema() -> dict:
    return json.loads(resources.files("p2nlib.book").joinpath("claims.schema.json").read_text())


def git_commit(root: Path = paths.ROOT) -> str:
    try:
        out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=root,
                             capture_output=True, text=True, timeout=10)
        # only code counts: the run's own outputs (executed notebooks, figures) are not "dirty"
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no", "--", "p2nlib",
                                "notebooks/*.py", "pyproject.toml"], cwd=root,
                               capture_output=True, text=True, timeout=10).stdout.strip()
        return (out.stdout.strip() or "unknown") + ("+dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def _notebook_name() -> str:
    return os.environ.get("P2N_NOTEBOOK", "interactive")


def _record_file(notebook: str | None = None) -> Path:
    return paths.claims_dir() / f"{notebook or _notebook_name()}.json"


def start(profile: str, device: str, notebook: str | None = None) -> Path:
    """Begin a fresh record file for this notebook run (earlier records of it are dropped)."""
    import torch

    notebook = notebook or _notebook_name()
    stamp = {"notebook": notebook, "profile": profile, "device": device,
             "torch": torch.__version__, "commit": git_commit(),
             "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")}
    path = _record_file(notebook)
    _atomic_write(path, {"stamp": stamp, "claims": []})
    return path


def _clean(value: Any) -> Any:
    """JSON-safe scalars: numpy/torch scalars to float, NaN/inf to None."""
    if value is None or isinstance(value, (str, bool)):
        return value
    if hasattr(value, "item"):
        value = value.item()
    value = float(value) if not isinstance(value, int) else value
    return None if isinstance(value, float) and not math.isfinite(value) else value


def record(id: str, value: Any, *, section: str, unit: str = "", paper: Any = None,
           holds: bool | None = None, note: str = "") -> Claim:
    """Record one measured claim for the running notebook (replaces an earlier one of the same id).

    ``holds`` is the verdict against the paper: True, False, or None when not judged.
    """
    path = _record_file()
    if not path.exists():
        raise RuntimeError(f"no claim record file {path}: call p2nlib.notebook.setup(...) first")
    claim = Claim(id=id, section=section, value=_clean(value), unit=unit, paper=_clean(paper),
                  holds=None if holds is None else bool(holds), note=note)
    data = json.loads(path.read_text())
    data["claims"] = [c for c in data["claims"] if c["id"] != id] + [asdict(claim)]
    _atomic_write(path, data)
    return claim


def _atomic_write(path: Path, data: dict) -> None:
    write_json_atomic(path, data, indent=2)


def validate(data: dict, source: str | Path = "claims data") -> dict:
    """Check ``data`` against the claims schema; raise :class:`ClaimsFileError` naming the problem."""
    import jsonschema

    try:
        jsonschema.validate(data, schema())
    except jsonschema.ValidationError as err:
        where = "/".join(str(p) for p in err.absolute_path) or "(top level)"
        raise ClaimsFileError(
            f"{source}: invalid at {where}: {err.message}. Fix the entry, or delete the file and "
            "rerun `make book` to regenerate it from the notebooks."
        ) from None
    ids = [c["id"] for c in data["claims"]]
    dupes = sorted({i for i in ids if ids.count(i) > 1})
    if dupes:
        raise ClaimsFileError(f"{source}: duplicate claim ids {dupes}; delete the file and rerun `make book`.")
    return data


def load(path: str | Path | None = None) -> dict:
    """Read and validate ``figures/claims.json`` (or ``path``)."""
    path = Path(path or paths.figures_dir() / "claims.json")
    if not path.exists():
        raise ClaimsFileError(f"{path} does not exist; run `make book` to create it.")
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise ClaimsFileError(f"{path} is not valid JSON ({err}); delete it and rerun `make book`.") from None
    return validate(data, path)


def merge_into(record_file: str | Path, claims_file: str | Path | None = None) -> dict:
    """Merge one notebook's record file into ``claims.json``, replacing that notebook's old claims."""
    record_file = Path(record_file)
    claims_file = Path(claims_file or paths.figures_dir() / "claims.json")
    try:
        rec = json.loads(record_file.read_text())
        stamp, new = rec["stamp"], rec["claims"]
    except (OSError, json.JSONDecodeError, KeyError, TypeError) as err:
        raise ClaimsFileError(f"{record_file}: unreadable claim record ({err!r}); rerun its notebook.") from None
    data = load(claims_file) if claims_file.exists() else {"claims": []}
    new_ids = {c["id"] for c in new}
    kept = [c for c in data["claims"] if c["notebook"] != stamp["notebook"] and c["id"] not in new_ids]
    merged = kept + [{**c, **stamp} for c in new]
    out = {"schema_version": SCHEMA_VERSION,
           "generated": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
           "claims": sorted(merged, key=lambda c: (c["notebook"], c["id"]))}
    validate(out, claims_file)
    _atomic_write(claims_file, out)
    return out


def verdict(holds: bool | None) -> str:
    return {True: "holds", False: "does not hold", None: "not judged"}[holds]


def fmt(value: Any) -> str:
    """A claim value as table text (4 significant digits; em dash for none)."""
    if value is None:
        return "—"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def render_markdown(data: dict, columns: tuple[str, ...] = ("id", "section", "paper", "value", "unit",
                                                             "verdict", "note", "profile", "device",
                                                             "commit")) -> str:
    """The claims as one Markdown table (one row per claim)."""
    header = {"id": "claim", "value": "ours", "paper": "paper"}
    lines = ["| " + " | ".join(header.get(c, c) for c in columns) + " |",
             "|" + "|".join("---" for _ in columns) + "|"]
    for c in data["claims"]:
        row = {**c, "verdict": verdict(c["holds"])}
        cells = [fmt(row[col]).replace("|", "\\|").replace("\n", " ") for col in columns]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"
