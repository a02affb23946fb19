"""The command line's help and its clear errors (no trained artifacts needed)."""
import subprocess
import sys

import pytest

from p2nlib.generate import cli


def test_help_explains():
    out = subprocess.run([sys.executable, "-m", "p2nlib.generate.cli", "--help"], capture_output=True, text=True)
    assert out.returncode == 0 and "generate" in out.stdout and "a brown table" in out.stdout
    out = subprocess.run([sys.executable, "-m", "p2nlib.generate.cli", "generate", "--help"], capture_output=True, text=True)
    assert "--text" in out.stdout and "--image" in out.stdout and "--views" in out.stdout and "--seed" in out.stdout


@pytest.mark.parametrize("args, message", [
    (["--text", "   ", "--out", "x.gif"], "text prompt is empty"),
    (["--text", "a chair", "--out", "x.png"], "must end in .gif"),
    (["--text", "a chair", "--out", "x.gif", "--profile", "huge"], "unknown profile 'huge'"),
    (["--image", "does/not/exist.png", "--out", "x.gif"], "does not exist"),
    (["--text", "a chair", "--out", "x.gif", "--views", "0"], "--views must be"),
])
def test_bad_input_is_a_clear_error(args, message, capsys):
    assert cli.main(["generate", *args]) == 2
    assert message in capsys.readouterr().err


def test_non_image_file(tmp_path, capsys):
    bad = tmp_path / "notes.png"
    bad.write_text("this is not an image")
    assert cli.main(["generate", "--image", str(bad), "--out", str(tmp_path / "x.gif")]) == 2
    assert "is not a readable image" in capsys.readouterr().err


def test_missing_artifacts_name_the_notebook(tmp_path, capsys):
    assert cli.main(["generate", "--text", "a brown table", "--out", str(tmp_path / "x.gif"), "--profile", "tiny"]) == 2
    err = capsys.readouterr().err
    assert "01_dataset" in err and "make book" in err
