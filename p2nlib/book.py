"""Assemble and build the Jupyter Book (Jupyter Book 1, Sphinx; fully offline).

:func:`prepare` copies the executed notebooks into ``book/chapters/``, the figures into
``book/figures/`` and writes ``book/claims.md`` from ``figures/claims.json``; those three are
generated (ignored by git). :func:`build` runs ``jupyter-book build`` without executing anything.
"""
from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
from pathlib import Path

from . import claims, paths

BOOK = paths.ROOT / "book"


def claims_page(claims_file: Path) -> str:
    """The book's claims page: one table of every claim, then the discussion of those that fail."""
    data = claims.load(claims_file)
    n = len(data["claims"])
    held = sum(c["holds"] is True for c in data["claims"])
    failed = [c for c in data["claims"] if c["holds"] is False]
    lines = [
        "# Claims ledger\n",
        f"Every number below was measured by the notebooks of this book and merged into "
        f"`figures/claims.json` ({n} claims; {held} hold, {len(failed)} do not hold, "
        f"{n - held - len(failed)} are not judged against a paper value). "
        "*paper* is the paper's value, *ours* the measured one; *profile*, *device* and *commit* "
        "say which run produced it.\n",
        f'<div id="claims-count" data-count="{n}"></div>\n',
        claims.render_markdown(data),
    ]
    if failed:
        lines.append("\n## Claims that do not hold\n")
        for c in failed:
            lines.append(f"- **{c['id']}** ({c['section']}): paper {claims.fmt(c['paper'])}, "
                         f"ours {claims.fmt(c['value'])} {c['unit']}. {c['note']}")
    return "\n".join(lines) + "\n"


def prepare(notebooks_dir: Path | None = None, figures_dir: Path | None = None, book_dir: Path = BOOK) -> None:
    notebooks_dir = notebooks_dir or paths.ROOT / "notebooks"
    figures_dir = figures_dir or paths.figures_dir()
    chapters = book_dir / "chapters"
    shutil.rmtree(chapters, ignore_errors=True)
    chapters.mkdir(parents=True)
    executed = sorted(notebooks_dir.glob("[0-9][0-9]_*.ipynb"))
    if not executed:
        raise SystemExit(f"no executed notebooks in {notebooks_dir}; run `make book` first")
    for nb in executed:
        shutil.copy2(nb, chapters / nb.name)
    shutil.rmtree(book_dir / "figures", ignore_errors=True)
    shutil.copytree(figures_dir, book_dir / "figures", ignore=shutil.ignore_patterns(".claims"))
    (book_dir / "claims.md").write_text(claims_page(figures_dir / "claims.json"))


def build(book_dir: Path = BOOK, output: Path | None = None) -> Path:
    """Build HTML; returns the folder holding ``index.html``."""
    jb = Path(sys.executable).with_name("jupyter-book")        # the venv's, also when it is not on PATH
    cmd = [str(jb) if jb.exists() else "jupyter-book", "build", str(book_dir)]
    if output is not None:
        cmd += ["--path-output", str(output)]
    subprocess.run(cmd, check=True)
    html = (output or book_dir) / "_build" / "html"
    if not (html / "index.html").exists():
        raise SystemExit(f"the book build produced no {html / 'index.html'}")
    return html


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="assemble and build the book")
    parser.add_argument("--output", type=Path, default=None, help="build folder (default: book/)")
    args = parser.parse_args(argv)
    prepare()
    html = build(output=args.output)
    print(f"book built: {html / 'index.html'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
