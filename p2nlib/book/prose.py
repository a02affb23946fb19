"""Numbers in prose that come from the run, never from a keyboard.

The book's words around its numbers (the claims' discussions in ``book/claims_discussion.md``, the
notebooks' Markdown cells, the README) name the numbers they mean instead of typing them, with MyST role
syntax that this module renders when the book is built (:func:`render`):

* ``{claim}`ood.speedup_vs_scratch``` — a claim's value with its unit, from ``figures/claims.json``;
  ``{claim}`ood.speedup_vs_scratch.ci95``` its 95% interval; ``.value`` the bare value, ``.paper``,
  ``.n``, ``.ceiling``, ``.verdict``, ``.unit``, ``.refs.<name>``;
* ``{count}`paper.undecided``` — how many claims of a kind (paper, stand-in, check; or ``all``) have a
  verdict (or ``total``);
* ``{cell}`05_controls|<row>|<column>``` — a cell of a table a notebook wrote (``figures/05_controls.md``;
  the row by its first cell, the column by its header; the row ``*``: the whole column, in row order, as
  "a, b and c");
* ``{profile}`small.split_seeds``` — a size from the profile table (``p2nlib/core/profiles.py``);
* ``{wall}`05_in_distribution``` — an executed notebook's wall time in seconds (``{wall}`total``` all of
  them; ``{wall}`target``` "within the hour target" or "over the hour target (by N min)"), from its
  ``metadata.p2n.wall_time_s``; ``{testrun}`seconds``` (or ``passed``, ``date``; ``target`` against the
  8-minute budget) from the record ``make test`` leaves (``book/test_run.json``);
* ``{table}`wall-times``` — the executed notebooks' wall times as a Markdown table; ``{table}`claim-counts```
  the ledger's claims counted by kind and verdict (for the README, which GitHub shows unrendered);
* ``{paper}`30–40%``` — a number the paper gives, quoted as it stands; ``{fixed}`16``` — a number the
  book chose (a size, a cap, a threshold), not a measurement. Both render as their text; they only
  declare what the number is.

:func:`hand_typed` lists every other number in a text (section, table and figure numbers, chapter numbers,
list markers, code and names such as ViT-B/32 or float32 aside), so a test can refuse a measured number
typed by hand. An unknown reference fails the build with its name and where it is (:class:`ProseError`).
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

from p2nlib.core import paths
from p2nlib.core.errors import P2NError

ROLE = re.compile(r"\{(claim|count|cell|profile|wall|testrun|table|paper|fixed)\}`([^`]*)`")
CLAIM_FIELDS = ("value", "ci95", "paper", "n", "ceiling", "verdict", "unit", "refs")
TEST_RUN = paths.ROOT / "book" / "test_run.json"


class ProseError(P2NError, ValueError):
    """A reference in the book's prose that the run does not provide."""


#: the book's time budgets: ``make book`` (small profile, every notebook) and ``make test``, on a 2-core CPU
BOOK_TARGET_S, TEST_TARGET_S = 3600, 480


def _against(seconds: float, target: float, name: str) -> str:
    """``within the hour target`` / ``over the hour target (by 7 min)``: a measured time against a budget."""
    if seconds <= target:
        return f"within the {name} target"
    return f"over the {name} target (by {(seconds - target) / 60:.0f} min)"


def _num(value) -> str:
    """A number as prose: 4 significant digits, thousands separated; text as it is."""
    if isinstance(value, bool) or value is None:
        return "—" if value is None else str(value)
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        return f"{value:,.0f}" if abs(value) >= 1000 else f"{value:.4g}"
    return str(value)


def _series(values: list[str]) -> str:
    """Values as prose: "a", "a and b", "a, b and c"."""
    return values[0] if len(values) == 1 else ", ".join(values[:-1]) + " and " + values[-1]


def parse_tables(markdown: str) -> list[tuple[list[str], list[list[str]]]]:
    """Every pipe table in a Markdown text as (header, rows); cells stripped of spaces."""
    tables, lines = [], markdown.splitlines()
    i = 0
    while i < len(lines) - 1:
        if lines[i].strip().startswith("|") and re.match(r"^\s*\|?\s*:?-+:?\s*\|", lines[i + 1]):
            header = _cells(lines[i])
            rows = []
            i += 2
            while i < len(lines) and lines[i].strip().startswith("|"):
                rows.append(_cells(lines[i]))
                i += 1
            tables.append((header, rows))
        else:
            i += 1
    return tables


def _cells(line: str) -> list[str]:
    return [c.strip() for c in line.strip().strip("|").split("|")]


def _key(text: str) -> str:
    """A row or column name as matched: without Markdown emphasis, code ticks or surrounding spaces."""
    return re.sub(r"[`*]", "", text).strip()


@dataclass
class Sources:
    """Where references are read from: the claims ledger, the figures folder, the executed notebooks."""
    figures: Path = field(default_factory=paths.figures_dir)
    notebooks: Path = paths.ROOT / "notebooks"
    test_run: Path = TEST_RUN

    @cached_property
    def claims(self) -> dict[str, dict]:
        from p2nlib.book import claims

        path = self.figures / "claims.json"
        if not path.exists():
            return {}
        return {c["id"]: c for c in claims.load(path)["claims"]}

    def claim(self, arg: str) -> str:
        if arg in self.claims:
            c = self.claims[arg]
            unit = c.get("unit") or ""
            if not unit or c["value"] is None:
                return _num(c["value"])
            return _num(c["value"]) + (unit if unit in ("×", "%") else f" {unit}")
        head, _, name = arg.rpartition(".")
        if head.endswith(".refs"):
            c = self._claim(head[:-5], arg)
            if name not in (c.get("refs") or {}):
                raise ProseError(f"claim {head[:-5]!r} has no reference value {name!r}; it has {sorted(c.get('refs') or {})}")
            return _num(c["refs"][name])
        if name not in CLAIM_FIELDS:
            self._claim(arg, arg)                    # no such claim: the error names the chapter's claims
            raise ProseError(f"{arg!r}: write <claim id> or <claim id>.<field> (fields: {', '.join(CLAIM_FIELDS)})")
        c = self._claim(head, arg)
        value = c.get(name)
        if value is None:
            raise ProseError(f"claim {head!r} has no {name!r} in the ledger")
        if name == "ci95":
            return f"[{_num(value[0])}, {_num(value[1])}]"
        if name == "verdict":
            from p2nlib.book import claims
            return claims.verdict(c)
        return _num(value)

    def _claim(self, cid: str, arg: str) -> dict:
        if cid not in self.claims:
            near = [k for k in self.claims if k.split(".")[0] == cid.split(".")[0]]
            raise ProseError(f"no claim {cid!r} in {self.figures / 'claims.json'} (from {arg!r}); "
                             f"claims of that chapter: {', '.join(near) or 'none'}")
        return self.claims[cid]

    def count(self, arg: str) -> str:
        from p2nlib.book import claims

        kind, _, word = arg.partition(".")
        rows = [claims.with_kind(c) for c in self.claims.values()]
        if kind != "all":
            rows = [c for c in rows if c["kind"] == kind]
        if not rows and kind not in ("all", "paper", "stand-in", "check"):
            raise ProseError(f"{arg!r}: write <paper|stand-in|check|all>.<verdict|total>")
        if word == "total":
            return str(len(rows))
        if word not in claims.VERDICTS:
            raise ProseError(f"{arg!r}: the verdicts are {claims.VERDICTS} (or 'total')")
        return str(sum(claims.verdict(c) == word for c in rows))

    def cell(self, arg: str) -> str:
        parts = arg.split("|")
        if len(parts) != 3:
            raise ProseError(f"{arg!r}: a cell is written <table>|<row>|<column> (a table of figures/, "
                             "the row's first cell, the column's header)")
        name, row, col = (p.strip() for p in parts)
        path = self.figures / f"{name}.md"
        if not path.exists():
            raise ProseError(f"{arg!r}: no table {path}")
        for header, rows in parse_tables(path.read_text()):
            heads = [_key(h) for h in header]
            if _key(col) not in heads:
                continue
            j = heads.index(_key(col))
            if row == "*":
                return _series([r[j] for r in rows if j < len(r)])
            for r in rows:
                if r and _key(r[0]) == _key(row) and j < len(r):
                    return r[j]
        raise ProseError(f"{arg!r}: {path.name} has no row {row!r} with a column {col!r}")

    def profile(self, arg: str) -> str:
        from p2nlib.core.profiles import PROFILES

        name, _, attr = arg.partition(".")
        if name not in PROFILES or not hasattr(PROFILES[name], attr):
            raise ProseError(f"{arg!r}: write <profile>.<field>, a profile of {list(PROFILES)} and one of its fields")
        return _num(getattr(PROFILES[name], attr))

    @cached_property
    def runs(self) -> dict[str, dict]:
        """The executed notebooks' run records (:func:`p2nlib.book.build.wall_times`), by notebook, read once."""
        from p2nlib.book.build import wall_times

        return {r["notebook"]: r for r in wall_times(self.notebooks)}

    @property
    def walls(self) -> dict[str, float | None]:
        return {stem: r["seconds"] for stem, r in self.runs.items()}

    def wall(self, arg: str) -> str:
        if arg == "total":
            return _num(round(sum(v or 0 for v in self.walls.values())))
        if arg == "target":
            return _against(sum(v or 0 for v in self.walls.values()), BOOK_TARGET_S, "hour")
        if self.walls.get(arg) is None:
            raise ProseError(f"{arg!r}: no executed notebook {self.notebooks / (arg + '.ipynb')} with a recorded wall time")
        return _num(round(self.walls[arg]))

    def testrun(self, arg: str) -> str:
        if not self.test_run.exists():          # a fresh project: no test run recorded yet (make test writes it)
            return "(not recorded yet)"
        data = json.loads(self.test_run.read_text())
        if arg == "target" and "seconds" in data:
            return _against(data["seconds"], TEST_TARGET_S, "8-minute")
        if arg not in data:
            raise ProseError(f"{arg!r}: {self.test_run.name} has {sorted(data)}")
        return _num(data[arg])

    def table(self, arg: str) -> str:
        if arg == "wall-times":
            rows = ["| notebook | profile | machine | wall time (s) |", "|---|---|---|---:|"]
            for stem, r in self.runs.items():
                where = r["machine"] or f"device {r['device']} (not recorded)"
                rows.append(f"| `{stem}` | {r['profile']} | {where} | {self.wall(stem)} |")
            total = sum(v or 0 for v in self.walls.values())
            rows.append(f"| **all** | | | **{_num(round(total))}** ({total / 60:.0f} min) |")
            return "\n".join(rows)
        if arg == "claim-counts":
            from p2nlib.book import claims

            data = {"claims": [claims.with_kind(c) for c in self.claims.values()]}
            rows = ["| kind | claims | " + " | ".join(claims.VERDICTS) + " |", "|---|---:|" + "---:|" * len(claims.VERDICTS)]
            for kind, counts in claims.kind_counts(data).items():
                rows.append(f"| {kind} | {sum(counts.values())} | " + " | ".join(str(counts[v]) for v in claims.VERDICTS) + " |")
            return "\n".join(rows)
        if arg == "profiles":
            from p2nlib.core.profiles import PROFILES
            from p2nlib.data import world

            rows = ["| profile | for | NeRFs | views × px | NeRF width | fitting steps | CLIP | SDS iterations (cap) × seeds |",
                    "|---|---|---:|---|---:|---:|---|---|"]
            for p in PROFILES.values():
                n = p.objects_per_category * len(world.IN_DISTRIBUTION)
                rows.append(f"| `{p.name}` | {p.description} | {_num(n)} | {p.train_views} + {p.heldout_views} × "
                            f"{p.image_size} | {p.nerf_width} | {_num(p.warmup_steps)} + {_num(p.fit_steps)} | "
                            f"{p.clip_model} ({p.clip_embed_dim}-d) | {_num(p.sds_max_epochs * p.sds_epoch_iters)} × {p.opt_seeds} |")
            return "\n".join(rows)
        raise ProseError(f"{arg!r}: the generated tables are 'wall-times', 'claim-counts' and 'profiles'")

    def resolve(self, role: str, arg: str) -> str:
        if role in ("paper", "fixed"):
            return arg
        return getattr(self, role)(arg)


def render(text: str, sources: Sources | None = None, where: str = "") -> str:
    """``text`` with every reference replaced by what the run measured (see the module's docstring)."""
    sources = sources or Sources()

    def one(m: re.Match) -> str:
        try:
            return sources.resolve(m.group(1), m.group(2))
        except ProseError as e:
            raise ProseError(f"{where or 'prose'}: {{{m.group(1)}}}`{m.group(2)}`: {e}") from None

    return ROLE.sub(one, text)


def references(text: str) -> list[tuple[str, str]]:
    return ROLE.findall(text)


# Numbers that are names or pointers, not measurements.
_ALLOWED = [
    r"§\s?[\dIVX]+(?:\.\d+)*(?:\s?[–-]\s?§?[\dIVX]+(?:\.\d+)*)?",
    r"\b(?:[Tt]ables?|[Ff]igs?\.|[Ff]igures?|[Ss]ections?|[Ss]upplement|suppl\.|[Ee]q\.)\s+[\dIVX]+"
    r"(?:\s?(?:[–,-]|and|or)\s?[\dIVX]+)*",
    r"Zero-1-to-3", r"ViT-[BL][-/]\d+", r"\b[23]D\b", r"\btop-\d+\b",
    r"\b[Ss]tages?[\s-][12](?:\s?(?:[–/,-]|and|or)\s?[12])*\b",
    r"\bPython \d+(?:\.\d+)+\+?", r"\b[A-Z]{2,}-\d+\b",
    r"\b(?:[Cc]hapters?|[Nn]otebooks?)\s+0\d(?:\s?(?:[–/,-]|and|or)\s?0\d)*\b",
    r"(?<![\d.,])0\d(?:\s?[–-]\s?0\d)?(?![\d.,]\d)\b",          # chapter numbers: 05, 03–06
    r"\b[A-Za-z_]+[\d][\w-]*",                               # names with digits: float32, H200, x86_64
    r"^\s*\d+\.\s",                                          # ordered list markers
    r"#x[0-9a-fA-F]+;|&#\d+;",                               # HTML entities
]


def _strip(text: str) -> str:
    text = re.sub(r"```.*?```", " ", text, flags=re.S)                  # fenced code
    text = ROLE.sub(" ", text)
    text = re.sub(r"`[^`]*`", " ", text)                                   # inline code, ids, file names
    text = re.sub(r"\]\([^)]*\)", "]", text)                               # link targets
    text = re.sub(r"<[^>]+>", " ", text)                                    # HTML tags and attributes
    text = re.sub(r"https?://\S+", " ", text)
    for pat in _ALLOWED:
        text = re.sub(pat, " ", text, flags=re.M)
    return text


def hand_typed(text: str) -> list[str]:
    """Numbers in ``text`` that are neither references nor names (see :data:`_ALLOWED`): each as its line,
    trimmed. A measured number belongs in a reference; a paper's or a chosen one in ``{paper}`` / ``{fixed}``."""
    out = []
    for line in _strip(text).splitlines():
        if re.search(r"\d", line):
            out.append(re.sub(r"\s+", " ", line).strip())
    return out


def markdown_cells(py: Path) -> list[str]:
    """The Markdown cells of a jupytext notebook source (as jupytext reads them)."""
    import jupytext

    return [c.source for c in jupytext.read(py).cells if c.cell_type == "markdown"]


def render_notebook(path: Path, sources: Sources | None = None) -> None:
    """Render the references in an executed notebook's Markdown cells, in place (the book's copy)."""
    sources = sources or Sources()
    nb = json.loads(path.read_text())
    changed = False
    for cell in nb.get("cells", []):
        if cell.get("cell_type") != "markdown":
            continue
        src = "".join(cell["source"]) if isinstance(cell["source"], list) else cell["source"]
        if ROLE.search(src):
            cell["source"] = render(src, sources, where=path.name)
            changed = True
    if changed:
        path.write_text(json.dumps(nb, indent=1, ensure_ascii=False) + "\n")


def check_text(text: str, sources: Sources, where: str) -> list[str]:
    """Problems of one text: hand-typed numbers, and references the run does not provide."""
    out = [f"{where}: hand-typed number in: {line}" for line in hand_typed(text)]
    for role, arg in references(text):
        try:
            sources.resolve(role, arg)
        except ProseError as e:
            out.append(f"{where}: {e}")
    return out


def checked_texts(root: Path = paths.ROOT) -> dict[str, str]:
    """The texts whose numbers must come from the run: every claim's discussion, every notebook's Markdown
    cells (the jupytext sources) and the README's template."""
    texts = {}
    disc = root / "book" / "claims_discussion.md"
    if disc.exists():
        texts[str(disc.relative_to(root))] = disc.read_text()
    for py in sorted((root / "notebooks").glob("[0-9][0-9]_*.py")):
        texts[str(py.relative_to(root))] = "\n\n".join(markdown_cells(py))
    tpl = root / README_TEMPLATE
    if tpl.exists():
        texts[README_TEMPLATE] = tpl.read_text()
    return texts


README_TEMPLATE = "book/README.template.md"


def main(argv: list[str] | None = None) -> int:
    import argparse

    ap = argparse.ArgumentParser(description="list hand-typed numbers and unresolved references in the book's prose")
    ap.add_argument("files", nargs="*", type=Path, help="texts to check (default: discussions, notebooks, README template)")
    args = ap.parse_args(argv)
    sources = Sources(figures=paths.ROOT / "figures", notebooks=paths.ROOT / "notebooks")
    if args.files:
        texts = {}
        for f in args.files:
            texts[str(f)] = "\n\n".join(markdown_cells(f)) if f.suffix == ".py" else f.read_text()
    else:
        texts = checked_texts()
    problems = [p for where, text in texts.items() for p in check_text(text, sources, where)]
    print("\n".join(problems) or "no hand-typed numbers, every reference resolves")
    return 1 if problems else 0


if __name__ == "__main__":
    raise SystemExit(main())
