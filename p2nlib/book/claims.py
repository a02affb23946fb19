"""The claims ledger: each paper claim as a measured number next to the paper's own.

A notebook calls :func:`record` for each headline number. Records go to one file per notebook
(``figures/.claims/<notebook>.json``), stamped with profile, device, torch version, git commit
and date. After a notebook succeeds, the runner merges its records into ``figures/claims.json``
(:func:`merge_into`), replacing only that notebook's earlier claims, so a failing notebook never
wipes the claims of the others. :func:`render_section_tables` and :func:`render_claim_details`
make the book's claims page (:func:`render_markdown`: all claims as one flat table).

Each entry carries its verdict (``verdict``: holds, does not hold, undecided or not judged) and, for readers
of the older two-state ledger, ``holds`` (True, False, or None for undecided and not judged). A ledger of
schema version 1 (no ``verdict``) is read with its verdicts taken from ``holds``, and its claims under their
current ids (:data:`p2nlib.book.claims_spec.RENAMED`).
"""
from __future__ import annotations

import datetime as _dt
import html
import json
import math
import os
import re
import subprocess
from dataclasses import asdict, dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from p2nlib.core import paths
from p2nlib.core.artifacts import write_json_atomic
from p2nlib.book.claims_spec import (FAILS, HOLDS, HOLDS_FIELD, KINDS, MODALITIES, NOT_JUDGED, PRIORS,
                                     RENAMED, SPECS, UNDECIDED, VERDICTS, control_ids)
from p2nlib.core.errors import ClaimsFileError

SCHEMA_VERSION = 2
OPTIONAL_FIELDS = ("ci95", "n", "ceiling", "refs", "through", "gated", "skipped")
STAMP_FIELDS = ("notebook", "profile", "device", "torch", "commit", "date")


@dataclass
class Claim:
    id: str
    section: str
    value: float | str | None
    unit: str = ""
    paper: float | str | None = None
    verdict: str = NOT_JUDGED           # holds, does not hold, undecided or not judged (claims_spec.VERDICTS)
    holds: bool | None = None           # True: holds, False: does not hold, None: undecided or not judged
    note: str = ""
    ci95: list[float] | None = None     # 95% interval of a repeated measurement
    n: int | None = None                # how many measurements it summarises (e.g. prompts × seeds)
    ceiling: float | None = None        # the largest value the measurement can report (a speed-up's cap)
    refs: dict[str, float] | None = None  # the measurements the bar compares the value with, by name
    through: dict[str, str] | None = None  # the baselines it was measured through and their priors: {"text": "ideal"}
    gated: str | None = None            # why it is undecided: a baseline it runs through did not pass its controls
    skipped: str | None = None          # why it was not measured (its verdict: not judged)


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


def record(id: str, value: Any, *, refs: dict[str, float] | None = None, note: str = "", ci95=None,
           n: int | None = None, ceiling: float | None = None, through: dict[str, str] | None = None,
           holds: bool | None = None, section: str | None = None, unit: str = "", paper: Any = None,
           skipped: str | None = None) -> Claim:
    """Record one measured claim for the running notebook (replaces an earlier one of the same id).

    For a claim of the book's table (:mod:`p2nlib.book.claims_spec`) the section, the paper's value, the
    unit and the verdict come from that table: the verdict is ``spec.judge(value, ci95, refs)``, where
    ``refs`` holds, by name, the measurements the bar compares with (e.g. ``{"image baseline": 0.61}``).
    Any other id needs ``section`` and may give ``holds`` (True, False, or None when not judged). A
    repeated measurement also gives its 95% interval ``ci95`` (low, high) and ``n``; a bounded one its
    ``ceiling``.

    A claim measured through per-prompt baselines (``spec.through``) needs ``through``: the prior each of
    those baselines ran with, e.g. ``{"text": "ideal", "image": "trained"}``. Its verdict is the bar's only
    when every control of each (``controls.<modality>.<prior>.*``, looked up in this notebook's records, then
    in the merged ledger) holds; otherwise it is undecided, and ``gated`` says which controls did not pass.

    A claim that was deliberately not measured gives ``skipped``, why, and no value: its verdict is "not judged".
    """
    path = _record_file()
    if not path.exists():
        raise RuntimeError(f"no claim record file {path}: call p2nlib.book.notebook.setup(...) first")
    if ci95 is not None and (len(ci95) != 2 or not ci95[0] <= ci95[1]):
        raise ValueError(f"claim {id!r}: ci95 must be (low, high) with low <= high, got {ci95}")
    if skipped is not None and (not skipped or value is not None):
        raise ValueError(f"claim {id!r}: a skipped claim has no value and says why it was not measured")
    value, refs = _clean(value), None if refs is None else {k: _clean(v) for k, v in refs.items()}
    data = json.loads(path.read_text())
    spec, gated = SPECS.get(id), None
    if spec is not None:
        if section is not None or unit or paper is not None or holds is not None:
            raise ValueError(f"claim {id!r}: its section, paper value, unit and verdict come from "
                             "p2nlib/book/claims_spec.py; do not pass them to record()")
        unknown = set(refs or {}) - spec.refs
        if unknown:
            raise ValueError(f"claim {id!r}: its bar compares with {sorted(spec.refs)}, not {sorted(unknown)}")
        section, unit, paper = spec.section, spec.unit, spec.paper
        word = spec.judge(value, ci95, refs) if skipped is None else NOT_JUDGED
        through = _through(id, spec.through, through)
        if through:
            gated = _gate(id, through, data["claims"]) if skipped is None else None
            if gated:
                word = UNDECIDED
    elif id in RENAMED:
        raise ValueError(f"claim {id!r} is now {RENAMED[id]!r} (p2nlib/book/claims_spec.py): record it under "
                         "that id, with what its bar compares with")
    elif section is None:
        raise ValueError(f"claim {id!r} is not in p2nlib/book/claims_spec.py: add a row there (or pass section=)")
    elif through is not None:
        raise ValueError(f"claim {id!r}: only a claim of p2nlib/book/claims_spec.py runs through a baseline")
    else:
        word = NOT_JUDGED if holds is None else HOLDS if holds else FAILS
    claim = Claim(id=id, section=section, value=value, unit=unit, paper=_clean(paper),
                  holds=HOLDS_FIELD[word], note=note,
                  ci95=None if ci95 is None else [_clean(v) for v in ci95], n=None if n is None else int(n),
                  ceiling=_clean(ceiling), refs=refs or None, verdict=word, through=through or None, gated=gated,
                  skipped=skipped)
    entry = {k: v for k, v in asdict(claim).items() if v is not None or k not in OPTIONAL_FIELDS}
    data["claims"] = [c for c in data["claims"] if c["id"] != id] + [entry]
    _atomic_write(path, data)
    return claim


def _through(claim_id: str, needed: tuple[str, ...], through: dict[str, str] | None) -> dict[str, str]:
    """The priors of the baselines ``claim_id`` runs through, checked (only those it runs through are kept)."""
    if not needed:
        if through:
            raise ValueError(f"claim {claim_id!r} does not run through a per-prompt baseline: do not pass through=")
        return {}
    missing = [m for m in needed if m not in (through or {})]
    if missing:
        raise ValueError(f"claim {claim_id!r} runs through the {' and '.join(missing)} baseline: pass "
                         f"through={{{', '.join(f'{m!r}: ...' for m in missing)}}}, the prior it used "
                         f"(one of {', '.join(PRIORS)})")
    bad = {m: p for m, p in through.items() if m in needed and p not in PRIORS}
    if bad:
        raise ValueError(f"claim {claim_id!r}: through={bad}: a baseline's prior is one of {', '.join(PRIORS)}")
    return {m: through[m] for m in needed}


def baseline_text(modality: str, prior: str) -> str:
    """``"the text baseline (ideal prior)"``."""
    return f"{MODALITIES[modality]} ({prior} prior)"


def _gate(claim_id: str, through: dict[str, str], own: list[dict]) -> str | None:
    """Why ``claim_id`` cannot be judged through these baselines (a control that does not hold), or None when
    every control of every baseline holds. Controls are looked up in ``own`` (this notebook's records), then in
    the merged ledger; a control recorded nowhere is an error."""
    found = {c["id"]: verdict(c) for c in upgrade_entries(own)}
    ledger = paths.figures_dir() / "claims.json"
    wanted = {cid for m, prior in through.items() for cid in control_ids(m, prior)}
    if wanted - set(found) and ledger.exists():
        found = {**{c["id"]: verdict(c) for c in load(ledger)["claims"]}, **found}
    missing = [f"{baseline_text(m, prior)}: record its controls "
               f"{', '.join(cid for cid in control_ids(m, prior) if cid not in found)} first"
               for m, prior in through.items() if set(control_ids(m, prior)) - set(found)]
    if missing:
        raise ValueError(f"claim {claim_id!r} runs through " + "; and through ".join(missing))
    failed = [f"{baseline_text(m, prior)} did not pass its controls: "
              + ", ".join(f"{cid} ({found[cid]})" for cid in control_ids(m, prior) if found[cid] != HOLDS)
              for m, prior in through.items() if any(found[cid] != HOLDS for cid in control_ids(m, prior))]
    return "; ".join(failed) or None


def frame(recorded: list[Claim]):
    """Claims just recorded, as a small table for the end of a notebook (``gated``: why a claim measured through
    a baseline is undecided, when one is)."""
    import pandas as pd

    rows = [{"claim": c.id, "paper": c.paper, "ours": c.value, "verdict": verdict(c)} for c in recorded]
    if any(c.ci95 is not None for c in recorded):
        for row, c in zip(rows, recorded):
            row["95% interval"] = "" if c.ci95 is None else interval_text(c.ci95)
            row["n"] = "" if c.n is None else c.n
            row["ceiling"] = "" if c.ceiling is None else fmt(c.ceiling)
    if any(c.gated for c in recorded):
        for row, c in zip(rows, recorded):
            row["gated"] = c.gated or ""
    return pd.DataFrame(rows).set_index("claim")


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
    odd = [c["id"] for c in data["claims"] if "verdict" in c and HOLDS_FIELD[c["verdict"]] is not c["holds"]]
    if odd:
        raise ClaimsFileError(f"{source}: claims {odd} have a 'holds' field that disagrees with their verdict "
                              "(True for holds, False for does not hold, null otherwise); delete the file and "
                              "rerun `make book`.")
    return data


def upgrade_entries(entries: list) -> list:
    """Entries of an older ledger or record file as the current schema has them: a missing ``verdict`` judged
    again by the claim's bar from the recorded value, interval and references (for a claim gated on controls, or
    one the spec no longer has, taken from ``holds``: True holds, False does not hold, None not judged) and
    renamed claims under their new ids
    and sections, their notes saying so (dropped where the new id is there too). Anything else is left for
    :func:`validate` to name."""
    ids = {c.get("id") for c in entries if isinstance(c, dict)}
    out = []
    for c in entries:
        if isinstance(c, dict):
            if "verdict" not in c and "holds" in c and c["holds"] in (True, False, None):
                spec = SPECS.get(c.get("id"))
                if spec is not None and not spec.through and "value" in c:
                    # the spec's bar, re-read on the recorded value, interval and references (an interval that
                    # straddles the bar is undecided now); a claim gated on controls keeps its recorded verdict
                    try:
                        word = spec.judge(c["value"], c.get("ci95"), c.get("refs"))
                    except (TypeError, ValueError):
                        word = {True: HOLDS, False: FAILS, None: NOT_JUDGED}[c["holds"]]
                else:
                    word = {True: HOLDS, False: FAILS, None: NOT_JUDGED}[c["holds"]]
                c = _with_verdict(c, word)
                c["holds"] = HOLDS_FIELD[word]
            if c.get("id") in RENAMED:
                new = RENAMED[c["id"]]
                if new in ids:
                    continue
                said = f"recorded as {c['id']}, judged by the bar it had then"
                c = {**c, "id": new, "section": SPECS[new].section,
                     "note": f"{c['note']}; {said}" if isinstance(c.get("note"), str) and c["note"] else said}
        out.append(c)
    return out


def _with_verdict(c: dict, word: str) -> dict:
    """``c`` with ``verdict`` just before ``holds`` (where a current entry has it)."""
    out = {}
    for k, v in c.items():
        if k == "holds":
            out["verdict"] = word
        out[k] = v
    return out


def load(path: str | Path | None = None) -> dict:
    """Read and validate ``figures/claims.json`` (or ``path``); a ledger of schema version 1 is read as version 2
    (:func:`upgrade_entries`)."""
    path = Path(path or paths.figures_dir() / "claims.json")
    if not path.exists():
        raise ClaimsFileError(f"{path} does not exist; run `make book` to create it.")
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise ClaimsFileError(f"{path} is not valid JSON ({err}); delete it and rerun `make book`.") from None
    if isinstance(data, dict) and data.get("schema_version") == 1 and isinstance(data.get("claims"), list):
        data = {**data, "schema_version": SCHEMA_VERSION, "claims": upgrade_entries(data["claims"])}
    return validate(data, path)


def with_kind(c: dict) -> dict:
    """A ledger entry with its kind from the claims spec (``paper``, ``stand-in`` or ``check``)."""
    spec = SPECS.get(c["id"])
    return {**c, "kind": spec.kind if spec is not None else c.get("kind", "paper")}


def kind_counts(data: dict) -> dict[str, dict[str, int]]:
    """Per kind, how many claims hold, do not hold, are undecided and are not judged."""
    out = {k: dict.fromkeys(VERDICTS, 0) for k in KINDS}
    for c in data["claims"]:
        out[c.get("kind", "paper")][verdict(c)] += 1
    return out


def merge_into(record_file: str | Path, claims_file: str | Path | None = None) -> dict:
    """Merge one notebook's record file into ``claims.json``, replacing that notebook's old claims."""
    record_file = Path(record_file)
    claims_file = Path(claims_file or paths.figures_dir() / "claims.json")
    try:
        rec = json.loads(record_file.read_text())
        stamp, new = rec["stamp"], upgrade_entries(rec["claims"])
    except (OSError, json.JSONDecodeError, KeyError, TypeError) as err:
        raise ClaimsFileError(f"{record_file}: unreadable claim record ({err!r}); rerun its notebook.") from None
    data = load(claims_file) if claims_file.exists() else {"claims": []}
    new_ids = {c["id"] for c in new}
    kept = [rejudged(c) for c in data["claims"] if c["notebook"] != stamp["notebook"] and c["id"] not in new_ids]
    merged = [with_kind(c) for c in kept + [{**c, **stamp} for c in new]]
    out = {"schema_version": SCHEMA_VERSION,
           "generated": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
           "claims": sorted(merged, key=lambda c: (c["notebook"], c["id"]))}
    validate(out, claims_file)
    _atomic_write(claims_file, out)
    return out


def rejudged(c: dict) -> dict:
    """A ledger entry whose verdict is read again from its claim's bar on the recorded value, interval and
    references, so a bar or rule changed since the notebook ran applies to it too. Entries the spec does not
    have, and claims gated on the baselines' controls (their verdict needs the controls of their run), keep
    theirs, and so do claims not measured on purpose (``skipped``)."""
    spec = SPECS.get(c.get("id"))
    if spec is None or spec.through or "value" not in c or c.get("skipped"):
        return c
    try:
        word = spec.judge(c["value"], c.get("ci95"), c.get("refs"))
    except (TypeError, ValueError):
        return c
    return {**c, "verdict": word, "holds": HOLDS_FIELD[word]}


def verdict(claim: Claim | dict) -> str:
    """A claim's verdict: ``"holds"``, ``"does not hold"``, ``"undecided"`` or ``"not judged"``."""
    word = claim.verdict if isinstance(claim, Claim) else claim["verdict"]
    if word not in VERDICTS:
        raise ValueError(f"claim {claim.id if isinstance(claim, Claim) else claim.get('id')!r}: verdict {word!r} "
                         f"is not one of {list(VERDICTS)}")
    return word


def undecided_reason(c: dict) -> str:
    """Why an undecided claim is undecided ('' for any other verdict); for a claim gated on a baseline's controls,
    also what its value alone would say against the bar, so that a reader sees both."""
    if verdict(c) != UNDECIDED:
        return ""
    if not c.get("gated"):
        return "its 95% interval straddles the bar"
    spec = SPECS.get(c["id"])
    try:
        alone = spec.judge(c["value"], c.get("ci95"), c.get("refs")) if spec is not None else NOT_JUDGED
    except (TypeError, ValueError, KeyError):
        alone = NOT_JUDGED
    words = {HOLDS: "it would hold", FAILS: "it would not hold",
             UNDECIDED: "it would be undecided too (its interval straddles the bar)"}
    return c["gated"] + (f"; judged on its value alone, {words[alone]}" if alone in words else "")


def through_text(c: dict) -> str:
    """``"text baseline (ideal prior), image baseline (trained prior)"`` ('' for a claim without ``through``)."""
    return ", ".join(baseline_text(m, prior).removeprefix("the ") for m, prior in (c.get("through") or {}).items())


def fmt(value: Any) -> str:
    """A claim value as table text (4 significant digits; em dash for none)."""
    if value is None:
        return "—"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def interval_text(ci95) -> str:
    """A 95% interval as table text: ``[1.1, 2.4]``."""
    return f"[{fmt(ci95[0])}, {fmt(ci95[1])}]"


def render_markdown(data: dict, columns: tuple[str, ...] = ("id", "section", "paper", "value", "unit",
                                                             "verdict", "note", "profile", "device",
                                                             "commit")) -> str:
    """The claims as one Markdown table (one row per claim)."""
    header = {"id": "claim", "value": "ours", "paper": "paper"}
    lines = ["| " + " | ".join(header.get(c, c) for c in columns) + " |",
             "|" + "|".join("---" for _ in columns) + "|"]
    for c in data["claims"]:
        row = {**c, "verdict": verdict(c)}
        cells = [fmt(row[col]).replace("|", "\\|").replace("\n", " ") for col in columns]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


# ---- the book's claims page: one compact table per paper section, details one click below ----------

VERDICT_CLASS = {HOLDS: "holds", FAILS: "fails", UNDECIDED: "undecided", NOT_JUDGED: "unjudged"}


def section_group(section: str) -> str:
    """The paper section a claim belongs to: ``"§4.6, Tables 3, 5, 6"`` and ``"§4.6 (ours)"`` -> ``"§4.6"``."""
    return re.split(r"[,(]", section, maxsplit=1)[0].strip() or section.strip()


_ROMAN = {"I": 1, "V": 5, "X": 10, "L": 50}


def _group_order(group: str) -> tuple:
    """Paper order: §1 … §9 (a range, §4.5–4.6, just after its first section), then the supplement (supp. I, II,
    …), then anything else by name."""
    m = re.fullmatch(r"§\s*(\d+(?:\.\d+)*)(?:\s*[–-]\s*\d+(?:\.\d+)*)?", group)     # "§4.5", "§4.5–4.6"
    if m:
        return (0, tuple(int(p) for p in m.group(1).split(".")), group)
    m = re.fullmatch(r"supp\.?\s*([IVXL]+)", group, flags=re.I)
    if m:
        digits = [_ROMAN[ch] for ch in m.group(1).upper()]
        value = sum(-d if i + 1 < len(digits) and d < digits[i + 1] else d for i, d in enumerate(digits))
        return (1, (value,), group)
    return (2, (), group)


def group_claims(data: dict) -> list[tuple[str, list[dict]]]:
    """Claims grouped by :func:`section_group`, groups in paper order, claims by id within a group."""
    groups: dict[str, list[dict]] = {}
    for c in data["claims"]:
        groups.setdefault(section_group(c["section"]), []).append(c)
    return [(g, sorted(groups[g], key=lambda c: c["id"])) for g in sorted(groups, key=_group_order)]


def slug(text: str) -> str:
    """A page anchor from a claim id or a section name (``id.image.fd_test`` -> ``id-image-fd-test``)."""
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-") or "x"


def claim_anchor(claim_id: str) -> str:
    return "claim-" + slug(claim_id)


def group_anchor(group: str) -> str:
    return "claims-" + slug(group)


def md_text(value: Any) -> str:
    """Literal text inside Markdown (no accidental emphasis, code, links or HTML; one line)."""
    text = fmt(value).replace("\n", " ")
    return re.sub(r"([\\`*_\[\]<>|])", r"\\\1", text)


def with_unit(value: Any, unit: str) -> str:
    return md_text(value) + (f" {md_text(unit)}" if unit and value is not None else "")


def shown_value(c: dict) -> str:
    """A claim's value with its unit, and its 95% interval when it has one: ``1.5 × [1.1, 2.4]``."""
    text = with_unit(c["value"], c["unit"])
    if c.get("ci95"):
        text += " " + interval_text(c["ci95"])
    return text


def interval_line(c: dict) -> str:
    """The details line of a repeated or bounded measurement ('' when the claim has neither)."""
    parts = []
    if c.get("ci95"):
        parts.append("95% interval " + interval_text(c["ci95"]))
    if c.get("n") is not None:
        parts.append(f"n = {c['n']}")
    if c.get("ceiling") is not None:
        parts.append(f"largest value the test can report: {fmt(c['ceiling'])}")
    return ("*Spread:* " + md_text("; ".join(parts))) if parts else ""


def verdict_html(c: dict) -> str:
    """A claim's verdict as a styled label (``p2n-verdict-holds`` / ``-fails`` / ``-undecided`` / ``-unjudged``,
    see p2n.css); an undecided one says why on hover."""
    word = verdict(c)
    why = html.escape(undecided_reason(c) or c.get("skipped") or "", quote=True)
    title = f' title="{why}"' if why else ""
    return f'<span class="p2n-verdict p2n-verdict-{VERDICT_CLASS[word]}"{title}>{word}</span>'


def render_section_tables(data: dict, others: dict[str, dict] | None = None) -> str:
    """One compact MyST table per paper section: claim (a link to its details), paper, ours, verdict; then, per
    other profile's ledger in ``others`` (column title -> ledger), its value and verdict for the same claim."""
    others = others or {}
    by_id = {title: {c["id"]: c for c in ledger["claims"]} for title, ledger in others.items()}
    extra_head = "".join(f" {md_text(t)} |" for t in others)
    out = []
    for group, rows in group_claims(data):
        out += [f"({group_anchor(group)})=", f"## {md_text(group)}", "",
                ":::{table}", ":class: p2n-claims", "",
                "| claim | paper | ours | verdict |" + extra_head, "|---|---|---|---|" + "---|" * len(others)]
        for c in rows:
            label = md_text(c["id"]).replace(".", ".<wbr>")          # line breaks after the dots
            cells = ""
            for t in others:
                o = by_id[t].get(c["id"])
                cells += " — |" if o is None else f" {shown_value(o)} {verdict_html(o)} |"
            out.append(f"| [{label}](#{claim_anchor(c['id'])}) | {md_text(c['paper'])} "
                       f"| {shown_value(c)} | {verdict_html(c)} |" + cells)
        out += [":::", ""]
    return "\n".join(out) + "\n"


def disagreements(data: dict, other: dict) -> list[tuple[str, str, str]]:
    """Claims judged in both ledgers whose verdicts differ: ``(id, verdict here, verdict there)``, each one of
    holds, does not hold or undecided."""
    there = {c["id"]: verdict(c) for c in other["claims"]}
    return [(c["id"], verdict(c), there[c["id"]]) for c in data["claims"]
            if c["id"] in there and NOT_JUDGED not in (verdict(c), there[c["id"]]) and verdict(c) != there[c["id"]]]


def render_claim_details(data: dict, discussion: dict[str, str] | None = None) -> str:
    """Per claim, under an anchor the tables link to: the paper section, the values, the book's bar,
    the note, the run that measured it (notebook, profile, device, torch, commit, date) and its discussion
    when it has one, whatever the verdict (``discussion``: claim id -> Markdown)."""
    discussion = discussion or {}
    out = []
    for group, rows in group_claims(data):
        for c in rows:
            out += [":::{rubric} " + md_text(c["id"]), f":name: {claim_anchor(c['id'])}",
                    ":class: p2n-claim-id", ":::", "",
                    f"{verdict_html(c)} · {md_text(c['section'])} · paper {md_text(c['paper'])} · "
                    f"ours {shown_value(c)} · [back to {md_text(group)}](#{group_anchor(group)})", ""]
            if undecided_reason(c):
                out += [f"*Undecided:* {md_text(undecided_reason(c))}", ""]
            if c.get("skipped"):
                out += [f"*Not measured:* {md_text(c['skipped'])}", ""]
            if c.get("through"):
                out += [f"*Judged through:* {md_text(through_text(c))}", ""]
            spec = SPECS.get(c["id"])
            if spec is not None and spec.rule:
                test = spec.bar_text(c.get("refs"))
                out += [f"*Bar:* {md_text(spec.rule)}" + (f" — *test:* {md_text(test)}" if test else ""), ""]
            if interval_line(c):
                out += [interval_line(c), ""]
            if c["note"]:
                out += [f"*Note:* {md_text(c['note'])}", ""]
            out += [f"*Run:* notebook `{c['notebook']}`, profile {md_text(c['profile'])}, device "
                    f"{md_text(c['device'])}, torch {md_text(c['torch'])}, commit `{c['commit']}`, {md_text(c['date'])}", ""]
            if c["id"] in discussion:
                out += [discussion[c["id"]].strip(), ""]
    return "\n".join(out) + "\n"
