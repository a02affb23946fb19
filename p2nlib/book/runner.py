"""Run the book's notebooks in order with papermill and build the book.

``python -m p2nlib.book.runner --profile small --device auto`` converts each ``notebooks/NN_*.py``
(the jupytext source) to a notebook, executes it with papermill, writes the executed notebook
back as the paired ``notebooks/NN_*.ipynb``, and merges its claims into ``figures/claims.json``.
Any other profile writes beside, never over, the default's: executed notebooks to
``notebooks/<profile>/`` and figures and claims to ``figures/<profile>/`` (:func:`output_dirs`).
A notebook that fails leaves the committed notebook, the figures and claims of the others
untouched; the failed execution is kept under ``artifacts/_runs/`` for inspection.
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

from p2nlib.book import claims
from p2nlib.core import paths

NOTEBOOKS = paths.ROOT / "notebooks"
INJECTED_TAG = "injected-parameters"
#: the profile whose executed notebooks are the paired ``notebooks/NN_*.ipynb`` and whose figures are ``figures/``
DEFAULT_PROFILE = "small"


def output_dirs(profile: str, notebooks_dir: Path = NOTEBOOKS) -> tuple[Path, Path]:
    """Where a run of ``profile`` writes its executed notebooks and its figures and claims: next to the sources
    and in ``figures/`` for the default profile, in ``<profile>/`` subfolders of both for any other."""
    if profile == DEFAULT_PROFILE:
        return notebooks_dir, paths.ROOT / "figures"
    return notebooks_dir / profile, paths.ROOT / "figures" / profile


def notebook_sources(only: list[str] | None = None, folder: Path = NOTEBOOKS) -> list[Path]:
    """``notebooks/NN_*.py`` in order, optionally filtered by prefix (``00``) or stem."""
    sources = sorted(folder.glob("[0-9][0-9]_*.py"))
    if only:
        sources = [p for p in sources if any(p.stem == o or p.stem.startswith(o) for o in only)]
        if not sources:
            raise SystemExit(f"no notebook matches {only}; available: "
                             f"{[p.stem for p in sorted(folder.glob('[0-9][0-9]_*.py'))]}")
    return sources


def to_notebook(py: Path):
    """Read a jupytext py:percent source as a notebook with the python3 kernel."""
    import jupytext

    nb = jupytext.read(py)
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.metadata.setdefault("jupytext", {})["formats"] = "ipynb,py:percent"
    return nb


def strip_injected(nb):
    """Drop papermill's injected-parameters cell: the committed notebook must run as it stands
    (nbval in CI runs it on the tiny profile through ``$P2N_PROFILE``); the parameters used are
    kept in ``metadata.papermill.parameters``."""
    nb.cells = [c for c in nb.cells if INJECTED_TAG not in c.get("metadata", {}).get("tags", [])]
    return nb


def terminal_view(text: str) -> str:
    """What a terminal would show of ``text``: of each line only what follows its last carriage return, so a
    progress bar redrawn in place leaves one line (its final state) in the saved notebook."""
    shown = (([part for part in line.split("\r") if part] or [""])[-1] for line in text.split("\n"))
    return "\n".join(line for line in shown if line == "" or line.strip())     # a bar cleared on exit: gone


def strip_progress(nb):
    """Progress bars (stderr streams) keep only their final line per bar in the saved notebook: consecutive
    stderr outputs of a cell are joined, then reduced to what a terminal would show."""
    for cell in nb.cells:
        merged = []
        for out in cell.get("outputs", []):
            is_err = out.get("output_type") == "stream" and out.get("name") == "stderr"
            if is_err and merged and merged[-1].get("output_type") == "stream" and merged[-1].get("name") == "stderr":
                merged[-1]["text"] += out["text"]
            else:
                merged.append(out)
        for out in merged:
            if out.get("output_type") == "stream" and out.get("name") == "stderr":
                out["text"] = terminal_view(out["text"])
        if "outputs" in cell:
            cell["outputs"] = [o for o in merged if not (o.get("output_type") == "stream" and o.get("name") == "stderr"
                                                         and not o["text"].strip())]
    return nb


def run_notebook(py: Path, profile: str, device: str, out_dir: Path, run_dir: Path) -> float:
    """Execute one notebook; on success write it to ``out_dir`` and merge its claims. Returns seconds."""
    import nbformat
    import papermill as pm

    run_dir.mkdir(parents=True, exist_ok=True)
    src, executed = run_dir / f"{py.stem}.input.ipynb", run_dir / f"{py.stem}.ipynb"
    nbformat.write(to_notebook(py), src)
    os.environ["P2N_NOTEBOOK"] = py.stem
    t0 = time.perf_counter()
    pm.execute_notebook(str(src), str(executed), parameters={"profile": profile, "device": device},
                        kernel_name="python3", cwd=str(py.parent), progress_bar=False)
    seconds = time.perf_counter() - t0
    nb = strip_progress(strip_injected(nbformat.read(executed, as_version=4)))
    from p2nlib.core.device import machine

    nb.metadata.setdefault("p2n", {}).update(wall_time_s=round(seconds, 1), machine=machine(device))
    out_dir.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, out_dir / f"{py.stem}.ipynb")
    record = paths.claims_dir() / f"{py.stem}.json"
    if record.exists():
        claims.merge_into(record)
    return seconds


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--profile", default=os.environ.get("P2N_PROFILE", "small"))
    parser.add_argument("--device", default=os.environ.get("P2N_DEVICE", "auto"))
    parser.add_argument("--only", nargs="*", help="notebook prefixes or stems to run (default: all)")
    parser.add_argument("--notebooks-dir", type=Path, default=NOTEBOOKS, help="folder of NN_*.py sources")
    parser.add_argument("--out-dir", type=Path, default=None,
                        help=f"where executed notebooks go (default: next to their sources for {DEFAULT_PROFILE}, "
                             "notebooks/<profile>/ for any other profile)")
    parser.add_argument("--keep-going", action="store_true", help="run later notebooks after a failure")
    args = parser.parse_args(argv)

    from p2nlib.core.profiles import get_profile

    try:
        get_profile(args.profile)
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    os.environ["P2N_PROFILE"] = args.profile
    # Many mid-sized tensors are allocated and freed every step; keeping freed memory in the
    # process instead of returning it to the OS avoids page-fault storms (measured: 1.5x faster
    # NeRF fitting on a 2-core CPU). Kernels inherit this environment.
    os.environ.setdefault("MALLOC_MMAP_MAX_", "0")
    os.environ.setdefault("MALLOC_TRIM_THRESHOLD_", str(1 << 36))
    sources = notebook_sources(args.only, args.notebooks_dir)
    default_out, default_figures = output_dirs(args.profile, args.notebooks_dir)
    out_dir = args.out_dir or default_out
    os.environ.setdefault("P2N_FIGURES", str(default_figures))     # kernels inherit it; tests set their own
    run_dir = paths.artifacts_dir(args.profile) / "_runs"
    failed, total = [], 0.0
    print(f"running {len(sources)} notebook(s), profile={args.profile}, device={args.device}; notebooks -> "
          f"{out_dir}, figures and claims -> {paths.figures_dir()}", flush=True)
    for py in sources:
        print(f"  {py.stem:<28} ...", end="", flush=True)
        try:
            seconds = run_notebook(py, args.profile, args.device, out_dir, run_dir)
        except Exception as err:  # papermill raises PapermillExecutionError with the cell's traceback
            print(" FAILED", flush=True)
            first = str(err).strip().splitlines()
            print(f"error: notebook {py.name} failed: {' '.join(first[-3:])[:800]}\n"
                  f"  the failed run is kept in {run_dir / (py.stem + '.ipynb')}; the committed "
                  f"{py.stem}.ipynb, figures and claims of other notebooks are unchanged.\n"
                  f"  fix the cell, then rerun only it: make book "
                  f"{'' if args.profile == DEFAULT_PROFILE else f'PROFILE={args.profile} '}ONLY={py.stem[:2]}",
                  file=sys.stderr)
            failed.append(py.stem)
            if not args.keep_going:
                break
            continue
        total += seconds
        print(f" ok  {seconds:7.1f} s", flush=True)
    print(f"total notebook time {total:.1f} s" + (f"; failed: {', '.join(failed)}" if failed else ""))
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
