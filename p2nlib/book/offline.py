"""The book on a GPU machine without network access, in one command (``make gpu-book``).

Three steps, each its own subcommand of ``python -m p2nlib.book.offline``:

``wheels --dest DIR``    on a machine *with* network: download the wheels the book needs beyond
                         torch (``pip download --no-deps --only-binary=:all:``; pure-Python packages
                         and those with wheels for the target's Python), into ``DIR``;
``install --wheels DIR`` on the GPU machine: list which of the book's packages do not import there
                         and install exactly those from ``DIR`` (``pip install --no-index --no-deps
                         --target SITE``); then put ``SITE`` on ``PYTHONPATH``;
``pack --profile gpu``   after the run: one ``.tar.gz`` of the profile's executed notebooks
                         (``notebooks/gpu/``), figures and claims (``figures/gpu/``), refused when it
                         exceeds :data:`MAX_PACK_MIB`, with its largest files named.

torch, torchvision and CUDA are the machine's own: nothing here replaces them.
"""
from __future__ import annotations

import argparse
import importlib.util
import re
import subprocess
import sys
import tarfile
from pathlib import Path

from p2nlib.core import paths
from p2nlib.core.errors import InputError

#: what the book imports beyond torch, as (import name, pip distribution), in install order; the
#: jupyter stack is what papermill needs to execute a notebook in a python3 kernel
REQUIRED: tuple[tuple[str, str], ...] = (
    ("open_clip", "open_clip_torch"), ("ftfy", "ftfy"), ("wcwidth", "wcwidth"), ("regex", "regex"),
    ("pytorch_fid", "pytorch-fid"), ("diffusers", "diffusers"), ("safetensors", "safetensors"),
    ("sklearn", "scikit-learn"), ("skimage", "scikit-image"), ("trimesh", "trimesh"), ("plotly", "plotly"),
    ("tabulate", "tabulate"), ("jsonschema", "jsonschema"), ("tqdm", "tqdm"),
    ("jupytext", "jupytext"), ("papermill", "papermill"), ("nbformat", "nbformat"), ("nbclient", "nbclient"),
    ("ipykernel", "ipykernel"), ("jupyter_client", "jupyter-client"),
)
#: the largest archive ``pack`` writes (MiB)
MAX_PACK_MIB = 16


def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "_", name).lower()


def missing(required=REQUIRED) -> list[str]:
    """The pip distributions of ``required`` whose import name is not importable here."""
    return [dist for mod, dist in required if importlib.util.find_spec(mod) is None]


def wheel_for(dist: str, wheels: Path) -> Path | None:
    """The wheel of ``dist`` in the folder ``wheels`` (wheel names use the normalised distribution name)."""
    found = sorted(w for w in wheels.glob("*.whl") if _norm(w.name.split("-")[0]) == _norm(dist))
    return found[-1] if found else None


def install(wheels: Path, target: Path, required=REQUIRED, dry_run: bool = False) -> list[Path]:
    """Install, into ``target``, the wheels of every distribution of ``required`` that does not import here.

    Raises :class:`InputError` naming every missing distribution that has no wheel in ``wheels``
    (nothing is installed then). Returns the wheels installed (or that would be, with ``dry_run``)."""
    need = missing(required)
    if not need:
        print("every package the book needs imports here; nothing to install")
        return []
    if not wheels.is_dir():
        raise InputError(f"wheel folder {wheels} does not exist; make it on a machine with network access: "
                         f"python -m p2nlib.book.offline wheels --dest {wheels}")
    found = {d: wheel_for(d, wheels) for d in need}
    lacking = [d for d, w in found.items() if w is None]
    if lacking:
        raise InputError(f"no wheel in {wheels} for {', '.join(lacking)} (they do not import here); add them with "
                         f"pip download --no-deps --only-binary=:all: -d {wheels} {' '.join(lacking)}")
    print("installing from", wheels, "into", target, ":", ", ".join(w.name for w in found.values()))
    if not dry_run:
        target.mkdir(parents=True, exist_ok=True)
        subprocess.run([sys.executable, "-m", "pip", "install", "--no-index", "--no-deps", "--target", str(target),
                        *map(str, found.values())], check=True)
    return list(found.values())


def download(dest: Path, python_version: str | None = None, required=REQUIRED) -> None:
    """``pip download`` every distribution of ``required`` as a wheel into ``dest`` (needs network)."""
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", "-d", str(dest)]
    if python_version:
        cmd += ["--python-version", python_version]
    subprocess.run(cmd + [d for _, d in required], check=True)


def pack_members(profile: str) -> list[tuple[Path, str]]:
    """(file, name in the archive) for a profile's executed notebooks, figures and claims."""
    from p2nlib.book.runner import output_dirs

    nb_dir, fig_dir = output_dirs(profile, paths.ROOT / "notebooks")
    notebooks = sorted(nb_dir.glob("[0-9][0-9]_*.ipynb"))
    if not notebooks:
        raise InputError(f"no executed notebooks in {nb_dir}; run the book first: "
                         f"python -m p2nlib.book.runner --profile {profile} --device cuda")
    figures = sorted(p for p in fig_dir.rglob("*") if p.is_file() and ".claims" not in p.parts)
    return [(p, str(p.relative_to(paths.ROOT))) for p in notebooks + figures]


def pack(profile: str, out: Path, limit_mib: float = MAX_PACK_MIB) -> Path:
    """Write the profile's outputs as one ``.tar.gz``; refused (and removed) above ``limit_mib``."""
    members = pack_members(profile)
    out.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(out, "w:gz") as tar:
        for path, name in members:
            tar.add(path, arcname=name)
    mib = out.stat().st_size / 2**20
    if mib > limit_mib:
        out.unlink()
        largest = sorted(members, key=lambda m: -m[0].stat().st_size)[:5]
        raise InputError(f"the archive would be {mib:.1f} MiB, over {limit_mib:g} MiB; its largest files: "
                         + ", ".join(f"{n} ({p.stat().st_size / 2**20:.1f} MiB)" for p, n in largest))
    print(f"packed {len(members)} files of profile {profile} into {out} ({mib:.2f} MiB); unpack at the "
          "repository root: tar xzf " + out.name)
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m p2nlib.book.offline", description=__doc__.split("\n\n")[0],
                                 epilog=__doc__.split("\n\n", 1)[1], formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="command", required=True)
    w = sub.add_parser("wheels", help="download the wheels (needs network)")
    w.add_argument("--dest", type=Path, default=Path("wheels"))
    w.add_argument("--python-version", default=None, help="the GPU machine's Python, e.g. 3.12")
    i = sub.add_parser("install", help="install what does not import here, from a wheel folder")
    i.add_argument("--wheels", type=Path, default=Path("wheels"))
    i.add_argument("--target", type=Path, default=Path(".site"))
    i.add_argument("--dry-run", action="store_true")
    p = sub.add_parser("pack", help="one archive of a profile's executed notebooks, figures and claims")
    p.add_argument("--profile", default="gpu")
    p.add_argument("--out", type=Path, default=None, help="default: p2n-<profile>.tar.gz")
    args = ap.parse_args(argv)
    try:
        if args.command == "wheels":
            download(args.dest, args.python_version)
        elif args.command == "install":
            install(args.wheels, args.target, dry_run=args.dry_run)
        else:
            pack(args.profile, args.out or Path(f"p2n-{args.profile}.tar.gz"))
    except InputError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
