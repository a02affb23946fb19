"""Assemble and build the Jupyter Book (Jupyter Book 1, Sphinx; fully offline).

:func:`prepare` copies the executed notebooks into ``book/chapters/`` (rendering the references to the run in
their Markdown, :mod:`p2nlib.book.prose`), the figures into
``book/figures/``, writes ``book/claims.md`` from ``figures/claims.json`` (with each claim's discussion,
whatever its verdict, from ``book/claims_discussion.md``) and ``book/running.md`` with the
wall times recorded in the executed notebooks, and copies plotly.js from the installed ``plotly``
package into ``book/_static/`` (for the interactive 3D figures, offline); those are generated
(ignored by git). :func:`build` runs ``jupyter-book build`` without executing anything.
"""
from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

from p2nlib.book import claims, prose
from p2nlib.core import paths

BOOK = paths.ROOT / "book"
#: what each kind of claim is, on the claims page
KIND_WORDS = {"paper": "the paper says it", "stand-in": "a bar the book set for its own stand-ins",
              "check": "true by construction, or a control a stand-in must pass"}
PLOTLYJS = "plotly.min.js"            # book/_static/<this>, copied from the plotly package by prepare()


def discussion(path: Path) -> dict[str, str]:
    """Claim id -> discussion paragraph, from a Markdown file of ``## <claim id>`` sections."""
    if not path.exists():
        return {}
    parts = re.split(r"^## +(\S+) *$", path.read_text(), flags=re.M)
    return {parts[i]: parts[i + 1].strip() for i in range(1, len(parts) - 1, 2)}


WRITTEN_FOR = re.compile(r"^\*Written for the verdict: (holds|does not hold|undecided|not judged)\.\*", flags=re.M)


def discussion_verdicts(path: Path) -> dict[str, str | None]:
    """Claim id -> the verdict its discussion says it was written for (its line ``*Written for the verdict:
    holds.*``; None when the section has no such line)."""
    out = {}
    for cid, text in discussion(path).items():
        m = WRITTEN_FOR.search(text)
        out[cid] = m.group(1) if m else None
    return out


def claims_page(claims_file: Path, discussion_file: Path | None = None, notebooks_dir: Path | None = None) -> str:
    """The book's claims page: per paper section a compact table (claim, paper, ours, verdict), then
    per claim its details (bar, note, the run that measured it, and its discussion when it has one, whatever
    the verdict), each one click away from its row. The discussions' references to the run
    (:mod:`p2nlib.book.prose`) are rendered from this ledger and the tables beside it."""
    data = claims.load(claims_file)
    data = {**data, "claims": [claims.with_kind(c) for c in data["claims"]]}
    n = len(data["claims"])
    by_verdict = {v: [c for c in data["claims"] if claims.verdict(c) == v] for v in claims.VERDICTS}
    sources = prose.Sources(figures=claims_file.parent, notebooks=notebooks_dir or paths.ROOT / "notebooks")
    notes = {cid: prose.render(text, sources, where=f"the discussion of {cid}")
             for cid, text in discussion(discussion_file or BOOK / "claims_discussion.md").items()}
    lines = [
        "# Claims ledger\n",
        f"Every number below was measured by the notebooks of this book and merged into "
        f"`figures/claims.json`: {n} claims; {_counts(dict((v, len(c)) for v, c in by_verdict.items()))}. "
        "A claim is undecided when the 95% interval of its measurement straddles its bar, or when it was "
        "measured through a per-prompt baseline (the stand-ins for DreamFusion and Zero-1-to-3) that has not "
        "passed its controls (the checks `controls.*`); it is not judged when it has no bar, or when it was not "
        "measured on purpose (a stand-in that failed its positive or negative control is not run from scratch). "
        "*paper* is the paper's value, *ours* the measured one. Click a claim for its note, the bar it "
        "is judged against, the run that measured it (notebook, profile, device, commit) and its "
        f"discussion ({len(set(notes) & {c['id'] for c in data['claims']})} of {n} claims have one): why it does "
        "not hold or is undecided, or what a claim that holds still hides; the numbers in the discussions are "
        "read from this ledger and the chapters' tables when the book is built.\n",
        f'<div id="claims-count" data-count="{n}"></div>\n',
        "By kind — " + "; ".join(f"**{kind}** ({KIND_WORDS[kind]}): {sum(v.values())}, of which {_counts(v)}"
                                 for kind, v in claims.kind_counts(data).items()) + ".\n",
    ]
    for word, title in ((claims.FAILS, "Claims that do not hold"), (claims.UNDECIDED, "Claims left undecided")):
        if by_verdict[word]:
            lines.append(f"{title}: " + ", ".join(
                f"[{claims.md_text(c['id'])}](#{claims.claim_anchor(c['id'])})"
                for _, rows in claims.group_claims({"claims": by_verdict[word]}) for c in rows) + ".\n")
    others = profile_ledgers(claims_file.parent)
    for title, ledger in others.items():
        lines.append(_profile_paragraph(title, data, ledger))
    lines += [claims.render_section_tables(data, others),
              "## Details of every claim\n",
              claims.render_claim_details(data, notes)]
    return "\n".join(lines) + "\n"


def profile_ledgers(figures_dir: Path) -> dict[str, dict]:
    """The other profiles' ledgers (not tiny's) found under ``figures/<profile>/claims.json``, by column title
    ``"<profile> (<device>)"`` (the devices their claims were measured on), in the profile table's order."""
    from p2nlib.core.profiles import PROFILES
    from p2nlib.book.runner import DEFAULT_PROFILE

    out = {}
    for name in PROFILES:
        path = figures_dir / name / "claims.json"
        if name in (DEFAULT_PROFILE, "tiny") or not path.exists():     # tiny: a smoke run, not a result
            continue
        ledger = claims.load(path)
        ledger = {**ledger, "claims": [claims.with_kind(c) for c in ledger["claims"]]}
        devices = sorted({c.get("device", "?") for c in ledger["claims"]})
        out[f"{name} ({', '.join(devices)})"] = ledger
    return out


def _counts(v: dict[str, int]) -> str:
    """Counts by verdict in words: ``3 hold, 2 do not hold, 1 undecided, 4 not judged``."""
    def n(word: str, one: str, many: str) -> str:
        return f"{v[word]} {one if v[word] == 1 else many}"

    return (f"{n(claims.HOLDS, 'holds', 'hold')}, {n(claims.FAILS, 'does not hold', 'do not hold')}, "
            f"{v[claims.UNDECIDED]} undecided, {v[claims.NOT_JUDGED]} not judged")


def _profile_paragraph(title: str, data: dict, ledger: dict) -> str:
    """One paragraph per other profile: its counts by kind and the claims whose verdicts differ from ours."""
    counts = "; ".join(f"{kind} {sum(v.values())}: {_counts(v)}" for kind, v in claims.kind_counts(ledger).items())
    differ = claims.disagreements(data, ledger)
    text = (f"**Profile {claims.md_text(title)}** (its own run, `figures/{title.split()[0]}/claims.json`; a column of "
            f"every table below): {len(ledger['claims'])} claims; {counts}. ")
    if differ:
        text += "Verdicts that differ from the default profile's: " + "; ".join(
            f"[{claims.md_text(cid)}](#{claims.claim_anchor(cid)}) {a} here, {b} there"
            for cid, a, b in differ) + " (each discussion says why, where it is known).\n"
    else:
        text += "Every claim judged in both has the same verdict in both.\n"
    return text


def wall_times(notebooks_dir: Path) -> list[dict]:
    """Per executed notebook: its recorded wall time, profile, device and machine (from the runner's metadata)."""
    rows = []
    for nb in sorted(notebooks_dir.glob("[0-9][0-9]_*.ipynb")):
        meta = json.loads(nb.read_text()).get("metadata", {})
        params = meta.get("papermill", {}).get("parameters", {})
        rows.append({"notebook": nb.stem, "seconds": meta.get("p2n", {}).get("wall_time_s"),
                     "profile": params.get("profile", "?"), "device": params.get("device", "?"),
                     "machine": meta.get("p2n", {}).get("machine")})
    return rows


def running_page(notebooks_dir: Path) -> str:
    """The "Running it" page: the profile table and the wall times of the committed run."""
    from p2nlib.core.profiles import PROFILES

    rows = wall_times(notebooks_dir)
    total = sum(r["seconds"] or 0 for r in rows)
    lines = ["# Running it\n",
             "Two commands from a fresh clone (Python 3.10+; they create `.venv/` on first use):\n",
             "```bash\nmake book    # every notebook on the small profile, figures/, claims, this book\n"
             "make test    # unit tests, every notebook on the tiny profile (nbval), book build + browser check\n```\n",
             "## Wall time of the committed run\n",
             "Each executed notebook records its own wall time (`metadata.p2n.wall_time_s`); this table is "
             "read from the notebooks in this book.\n",
             "| notebook | profile | device | wall time (s) |", "|---|---|---|---|"]
    for r in rows:
        lines.append(f"| `{r['notebook']}` | {r['profile']} | {r['device']} | {r['seconds']} |")
    lines.append(f"| **all notebooks** | | | **{total:.0f}** ({total / 60:.1f} min) |\n")
    for name in PROFILES:
        other = wall_times(notebooks_dir / name) if name != "tiny" else []
        if other:
            t = sum(r["seconds"] or 0 for r in other)
            lines += [f"Profile `{name}` (executed notebooks in `notebooks/{name}/`, figures and claims in "
                      f"`figures/{name}/`):\n", "| notebook | device | wall time (s) |", "|---|---|---|",
                      *[f"| `{r['notebook']}` | {r['device']} | {r['seconds']} |" for r in other],
                      f"| **all notebooks** | | **{t:.0f}** ({t / 60:.1f} min) |\n"]
    lines.append("## Profiles\n")
    lines.append("One table (`p2nlib/core/profiles.py`) holds every size. Notebooks take `profile`, `device` "
                 "and `seed` as papermill parameters: `make book PROFILE=paper DEVICE=cuda`.\n")
    keys = [k for k in PROFILES["small"].to_dict() if k not in ("name", "description")]
    lines.append("| field | " + " | ".join(PROFILES) + " |")
    lines.append("|---|" + "---|" * len(PROFILES))
    lines.append("| purpose | " + " | ".join(p.description for p in PROFILES.values()) + " |")
    for k in keys:
        lines.append(f"| `{k}` | " + " | ".join(f"{getattr(p, k):g}" if isinstance(getattr(p, k), float)
                                                 else str(getattr(p, k)) for p in PROFILES.values()) + " |")
    lines.append("\n## The paper profile on a GPU, with real weights\n")
    lines.append(
        "`make book PROFILE=paper DEVICE=cuda` runs the same notebooks at the paper's sizes, into "
        "`notebooks/paper/` and `figures/paper/` (the book's chapters stay the small run's; the claims page "
        "gains a column for the paper run). Nothing is "
        "downloaded at run time (`HF_HUB_OFFLINE=1`). CLIP ViT-B/32 (`openai`) is used when its `open_clip` "
        "checkpoint is in the local Hugging Face cache or `P2N_CLIP_WEIGHTS` points to it; otherwise the "
        "book trains its small CLIP at embedding size 512 and says so. FID uses pytorch-fid's InceptionV3 "
        "(dims=192) when `pt_inception-2015-12-05-6726825d.pth` is in `$TORCH_HOME/hub/checkpoints/`, "
        "otherwise FD-CLIP. Fitting the full dataset is many GPU-hours; it can be sharded with "
        "`python -m p2nlib.data.store fit --profile paper --shard i --num-shards n`, or spread over a Ray "
        "cluster, one chunk per task and one GPU each, with `... fit --profile paper --engine ray "
        "[--address ADDR]` (`pip install -e \".[ray]\"`), and then `... merge`.\n")
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
    sources = prose.Sources(figures=figures_dir, notebooks=notebooks_dir)
    for nb in executed:
        shutil.copy2(nb, chapters / nb.name)
        prose.render_notebook(chapters / nb.name, sources)        # the prose's numbers, from this run
    shutil.rmtree(book_dir / "figures", ignore_errors=True)
    shutil.copytree(figures_dir, book_dir / "figures", ignore=shutil.ignore_patterns(".claims"))
    (book_dir / "claims.md").write_text(claims_page(figures_dir / "claims.json", book_dir / "claims_discussion.md",
                                                    notebooks_dir))
    (book_dir / "running.md").write_text(running_page(notebooks_dir))
    copy_plotlyjs(book_dir)


def plotlyjs_source() -> Path:
    """plotly.js as shipped inside the installed ``plotly`` package (the version its figures are made for)."""
    try:
        import plotly
    except ImportError:
        raise SystemExit("the book needs the `plotly` package (its plotly.js draws the 3D figures): "
                         f"{sys.executable} -m pip install plotly") from None
    src = Path(plotly.__file__).parent / "package_data" / "plotly.min.js"
    if not src.exists():
        raise SystemExit(f"{src} is missing from the installed plotly package; reinstall plotly")
    return src


def copy_plotlyjs(book_dir: Path = BOOK) -> Path:
    """Put plotly.js into the book's static files (loaded by every page, see _config.yml), so that
    interactive figures work offline without a CDN. Generated, ignored by git."""
    dest = book_dir / "_static" / PLOTLYJS
    dest.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(plotlyjs_source(), dest)
    return dest


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
