"""Notebook hygiene: each jupytext source has its executed pair, and they have not drifted apart.
(Executing the notebooks on the tiny profile is nbval's job: `make test` runs
`pytest --nbval-lax notebooks`.)"""
import json

import jupytext
import pytest

from p2nlib.book import runner
from p2nlib.core import paths

SOURCES = sorted((paths.ROOT / "notebooks").glob("[0-9][0-9]_*.py"))


def cell_sources(nb):
    return [(c.cell_type, c.source.strip()) for c in nb.cells
            if runner.INJECTED_TAG not in c.get("metadata", {}).get("tags", [])]


def drift(py, ipynb) -> list[str]:
    a, b = cell_sources(jupytext.read(py)), cell_sources(jupytext.read(ipynb))
    if len(a) != len(b):
        return [f"{py.name} has {len(a)} cells, {ipynb.name} has {len(b)}"]
    return [f"cell {i}: {py.name} and {ipynb.name} differ" for i, (x, y) in enumerate(zip(a, b)) if x != y]


def test_there_are_notebooks():
    assert SOURCES and SOURCES[0].stem == "00_overview"


@pytest.mark.parametrize("py", SOURCES, ids=lambda p: p.stem)
def test_paired_and_in_sync(py):
    ipynb = py.with_suffix(".ipynb")
    assert ipynb.exists(), f"{ipynb} missing: run `make book ONLY={py.stem[:2]}`"
    problems = drift(py, ipynb)
    assert not problems, "; ".join(problems) + f" -- the .py changed since the last run: `make book ONLY={py.stem[:2]}`"
    nb = json.loads(ipynb.read_text())
    assert any(c.get("outputs") for c in nb["cells"] if c["cell_type"] == "code"), f"{ipynb.name} has no outputs"
    assert nb["metadata"].get("papermill", {}).get("parameters", {}).get("profile") == "small", \
        f"{ipynb.name} was not produced by a small-profile run"


def test_drift_is_detected(tmp_path):
    py = tmp_path / "99_x.py"
    py.write_text("# %%\nx = 1\n\n# %%\ny = 2\n")
    ipynb = tmp_path / "99_x.ipynb"
    jupytext.write(jupytext.read(py), ipynb)
    assert drift(py, ipynb) == []
    py.write_text("# %%\nx = 1\n\n# %%\ny = 3\n")
    assert drift(py, ipynb) == ["cell 1: 99_x.py and 99_x.ipynb differ"]


def test_unknown_profile_is_a_clear_runner_error(capsys):
    assert runner.main(["--profile", "huge", "--only", "00"]) == 2
    assert "unknown profile 'huge'" in capsys.readouterr().err


NB_OK = '''# %% tags=["parameters"]
profile = "tiny"
device = "cpu"

# %%
from p2nlib.book import claims, plots
from p2nlib.book.notebook import setup
import matplotlib.pyplot as plt
ctx = setup(profile, device)
plots.savefig(plt.figure(), "{name}")
claims.record("{name}.value", 1.0, section="test")
'''
NB_BAD = NB_OK + "\n# %%\nraise RuntimeError('boom in cell')\n"


@pytest.mark.slow
def test_failed_notebook_keeps_others(tmp_path, capsys, runner_env):
    """A failing notebook leaves its committed .ipynb and the others' figures and claims intact."""
    src = tmp_path / "nbs"
    src.mkdir()
    (src / "00_good.py").write_text(NB_OK.format(name="good"))
    (src / "01_bad.py").write_text(NB_OK.format(name="bad"))
    assert runner.main(["--profile", "tiny", "--device", "cpu", "--notebooks-dir", str(src)]) == 0
    figures = paths.figures_dir()
    before = json.loads((figures / "claims.json").read_text())
    assert {c["id"] for c in before["claims"]} == {"good.value", "bad.value"}
    committed_bad = (src / "tiny" / "01_bad.ipynb").read_text()      # a tiny run writes beside the sources

    (src / "01_bad.py").write_text(NB_BAD.format(name="bad"))
    assert runner.main(["--profile", "tiny", "--device", "cpu", "--notebooks-dir", str(src)]) == 1
    err = capsys.readouterr().err
    assert "01_bad.py failed" in err and "boom in cell" in err and "make book PROFILE=tiny ONLY=01" in err
    after = json.loads((figures / "claims.json").read_text())
    assert {c["id"] for c in after["claims"]} == {"good.value", "bad.value"}
    assert (figures / "good.png").exists() and (src / "tiny" / "01_bad.ipynb").read_text() == committed_bad


def test_saved_notebooks_keep_one_line_per_progress_bar():
    import nbformat

    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("x", outputs=[
        nbformat.v4.new_output("stream", name="stderr", text="\rfit:   0%|   | 0/9"),
        nbformat.v4.new_output("stream", name="stderr", text="\rfit:  50%|█  | 4/9"),
        nbformat.v4.new_output("stream", name="stderr", text="\rfit: 100%|███| 9/9\n"),
        nbformat.v4.new_output("stream", name="stdout", text="done\n"),
        nbformat.v4.new_output("stream", name="stderr", text="\rtmp: 50%\r          \r"),   # a bar cleared on exit
    ])])
    outs = runner.strip_progress(nb).cells[0].outputs
    assert [(o.name, o.text) for o in outs] == [("stderr", "fit: 100%|███| 9/9\n"), ("stdout", "done\n")]
