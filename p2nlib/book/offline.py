"""The book on a GPU machine without network access, in one command (``make gpu-book``).

Four steps, each a subcommand of ``python -m p2nlib.book.offline``:

``wheels --dest DIR``    on a machine *with* network and the book's ``.venv``: download, as wheels pinned
                         to the versions installed here, every distribution the book needs beyond what
                         the GPU machines' image has (:data:`ROOTS` and their dependencies, minus
                         :data:`IMAGE` and theirs: :func:`closure`); ``--python-version`` and
                         ``--platform`` choose the target's wheels;
``install --wheels DIR`` on the GPU machine: install every wheel of ``DIR`` whose distribution is not
                         installed there (``pip install --no-index --no-deps --target SITE``), listing
                         them; then put ``SITE`` on ``PYTHONPATH``;
``check``                import what the notebooks import (:data:`CHECK_MODULES`), naming what fails: in
                         seconds, before any GPU time is spent;
``pack --profile gpu``   after the run: one ``.tar.gz`` of the profile's executed notebooks
                         (``notebooks/gpu/``), figures and claims (``figures/gpu/``), refused when it
                         exceeds :data:`MAX_PACK_MIB`, with its largest files named. ``--profile small``
                         packs the committed book (``notebooks/``, ``figures/`` without the other
                         profiles' folders): ``make gpu-book GPU_PROFILE=small`` rebuilds it on one GPU.

torch, torchvision and CUDA are the machine's own: nothing here replaces them.
"""
from __future__ import annotations

import argparse
import importlib
import importlib.metadata as metadata
import re
import subprocess
import sys
import tarfile
from pathlib import Path

from p2nlib.core import paths
from p2nlib.core.errors import InputError

#: the distributions the book needs (pyproject's dependencies without torch, plus papermill's kernel)
ROOTS = ("open_clip_torch", "pytorch-fid", "diffusers", "safetensors", "scikit-learn", "scikit-image", "trimesh",
         "plotly", "tabulate", "jsonschema", "tqdm", "jupytext", "papermill", "nbformat", "nbclient", "ipykernel",
         "jupyter-client")
#: what the GPU machines' image has (MACHINE-NOTES.md): these and their dependencies are never downloaded
IMAGE = ("torch", "torchvision", "numpy", "pandas", "scipy", "scikit-image", "matplotlib", "timm", "safetensors",
         "huggingface-hub")
#: what a notebook run imports, checked before it starts
CHECK_MODULES = ("open_clip", "pytorch_fid", "diffusers", "safetensors", "sklearn", "skimage", "trimesh", "plotly",
                 "tabulate", "jsonschema", "tqdm", "jupytext", "papermill", "nbformat", "nbclient", "ipykernel",
                 "jupyter_client", "IPython", "zmq")
#: the largest archive ``pack`` writes (MiB)
MAX_PACK_MIB = 16


def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def installed(dist: str) -> bool:
    try:
        metadata.distribution(dist)
        return True
    except metadata.PackageNotFoundError:
        return False


def closure(roots=ROOTS, exclude=IMAGE) -> dict[str, str]:
    """Every distribution ``roots`` need, with the version installed here (their dependencies, recursively,
    without extras), minus ``exclude`` and everything those need. Reads this environment's metadata."""
    from packaging.requirements import Requirement

    def walk(names) -> dict[str, str]:
        seen, stack = {}, [_norm(n) for n in names]
        while stack:
            n = stack.pop()
            if n in seen:
                continue
            try:
                d = metadata.distribution(n)
            except metadata.PackageNotFoundError:
                raise InputError(f"{n} is not installed here; run this where the book's .venv is (make venv)") from None
            seen[n] = d.version
            for r in d.requires or []:
                req = Requirement(r)
                if req.marker is None or req.marker.evaluate({"extra": ""}):
                    stack.append(_norm(req.name))
        return seen

    have = walk(exclude)
    return {n: v for n, v in sorted(walk(roots).items()) if n not in have}


def wheel_dist(wheel: Path) -> str:
    """The distribution a wheel file installs (its name's first field, normalised)."""
    return _norm(wheel.name.split("-")[0])


def install(wheels: Path, target: Path, dry_run: bool = False) -> list[Path]:
    """Install, into ``target``, every wheel of the folder ``wheels`` whose distribution is not installed here.
    Returns the wheels installed (or that would be, with ``dry_run``)."""
    if not wheels.is_dir():
        raise InputError(f"wheel folder {wheels} does not exist; make it on a machine with network access and the "
                         f"book's .venv: python -m p2nlib.book.offline wheels --dest {wheels}")
    need = [w for w in sorted(wheels.glob("*.whl")) if not installed(wheel_dist(w))]
    if not need:
        print(f"every distribution of the wheels in {wheels} is installed here; nothing to install")
        return []
    print(f"installing {len(need)} wheels from {wheels} into {target}: " + ", ".join(w.name for w in need))
    if not dry_run:
        target.mkdir(parents=True, exist_ok=True)
        subprocess.run([sys.executable, "-m", "pip", "install", "--no-index", "--no-deps", "--target", str(target),
                        *map(str, need)], check=True)
    return need


def check(modules=CHECK_MODULES) -> None:
    """Import ``modules``; raises :class:`InputError` naming every one that fails, with its error."""
    failed = []
    for m in modules:
        try:
            importlib.import_module(m)
        except Exception as err:            # an ImportError, or a broken dependency's own error
            failed.append(f"{m} ({type(err).__name__}: {err})")
    if failed:
        raise InputError("these do not import here: " + "; ".join(failed) + ". Add their wheels (and those of "
                         "what they need) to the wheel folder and rerun the install")
    print(f"all {len(modules)} modules the notebooks import are importable")


def download(dest: Path, python_version: str | None = None, platform: str | None = None) -> None:
    """``pip download`` every distribution of :func:`closure`, pinned, as a wheel into ``dest`` (needs network)."""
    pins = closure()
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", "-d", str(dest)]
    if python_version:
        cmd += ["--python-version", python_version]
    if platform:
        cmd += ["--platform", platform]
    print(f"downloading {len(pins)} wheels into {dest}")
    subprocess.run(cmd + [f"{n}=={v}" for n, v in pins.items()], check=True)


def pack_members(profile: str) -> list[tuple[Path, str]]:
    """(file, name in the archive) for a profile's executed notebooks, figures and claims."""
    from p2nlib.book.runner import output_dirs
    from p2nlib.core.profiles import PROFILES

    nb_dir, fig_dir = output_dirs(profile, paths.ROOT / "notebooks")
    others = set(PROFILES) - {profile}      # the default profile's figures/ holds the other profiles' folders
    notebooks = sorted(nb_dir.glob("[0-9][0-9]_*.ipynb"))
    if not notebooks:
        raise InputError(f"no executed notebooks in {nb_dir}; run the book first: "
                         f"python -m p2nlib.book.runner --profile {profile} --device cuda")
    figures = sorted(p for p in fig_dir.rglob("*") if p.is_file() and ".claims" not in p.parts
                     and p.relative_to(fig_dir).parts[0] not in others)
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
    w.add_argument("--platform", default=None, help="the GPU machine's wheel platform, e.g. manylinux2014_x86_64")
    i = sub.add_parser("install", help="install the wheels of a folder whose distributions are not installed here")
    i.add_argument("--wheels", type=Path, default=Path("wheels"))
    i.add_argument("--target", type=Path, default=Path(".site"))
    i.add_argument("--dry-run", action="store_true")
    sub.add_parser("check", help="import what the notebooks import, naming what fails")
    p = sub.add_parser("pack", help="one archive of a profile's executed notebooks, figures and claims")
    p.add_argument("--profile", default="gpu")
    p.add_argument("--out", type=Path, default=None, help="default: p2n-<profile>.tar.gz")
    args = ap.parse_args(argv)
    try:
        if args.command == "wheels":
            download(args.dest, args.python_version, args.platform)
        elif args.command == "install":
            install(args.wheels, args.target, dry_run=args.dry_run)
        elif args.command == "check":
            check()
        else:
            pack(args.profile, args.out or Path(f"p2n-{args.profile}.tar.gz"))
    except InputError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
