"""The gpu profile's CPU-testable parts: where its outputs go, the claims page's column per profile, the
offline install and the archive; and, on a machine with CUDA only, every notebook on the tiny profile on CUDA."""
import json
import os
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest
import torch

from p2nlib.book import build as book
from p2nlib.book import claims, offline, runner
from p2nlib.core import paths
from p2nlib.core.errors import InputError


def test_only_the_default_profile_writes_over_the_committed_outputs():
    nb, fig = runner.output_dirs("small")
    assert (nb, fig) == (runner.NOTEBOOKS, paths.ROOT / "figures")
    for name in ("gpu", "paper", "tiny"):
        nb, fig = runner.output_dirs(name)
        assert nb == runner.NOTEBOOKS / name and fig == paths.ROOT / "figures" / name


def test_the_runner_writes_a_gpu_run_beside_the_default(tmp_path, monkeypatch, runner_env):
    src = tmp_path / "nbs"
    src.mkdir()
    (src / "00_hello.py").write_text('# %% tags=["parameters"]\nprofile = "small"\ndevice = "auto"\n\n'
                                     '# %%\nimport os\nprint(profile, os.environ["P2N_FIGURES"])\n')
    monkeypatch.delenv("P2N_FIGURES")
    monkeypatch.setattr(runner.paths, "ROOT", tmp_path)
    monkeypatch.setenv("P2N_ARTIFACTS", str(tmp_path / "artifacts"))
    assert runner.main(["--profile", "gpu", "--device", "cpu", "--notebooks-dir", str(src)]) == 0
    executed = json.loads((src / "gpu" / "00_hello.ipynb").read_text())
    text = "".join("".join(o.get("text", "")) for c in executed["cells"] for o in c.get("outputs", []))
    assert f"gpu {tmp_path / 'figures' / 'gpu'}" in text
    assert not (src / "00_hello.ipynb").exists()                 # the default's place is untouched


def _ledger(path: Path, rows: list[tuple[str, float, bool | None]], device: str) -> Path:
    stamp = {"notebook": "06", "profile": path.parent.name, "device": device, "torch": "2", "commit": "x",
             "date": "2026-11-28"}
    data = {"schema_version": 1, "generated": "2026-11-28",
            "claims": [{"id": cid, "section": "§4.6", "value": v, "unit": "×", "paper": "3–5×", "holds": h,
                        "note": "", **stamp} for cid, v, h in rows]}
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data))
    return path


def test_the_claims_page_has_a_column_per_profile_and_names_where_they_disagree(tmp_path):
    small = _ledger(tmp_path / "claims.json", [("ood.speedup_vs_scratch", 1.0, False),
                                               ("ood.sim_ours_minus_scratch", 0.01, True)], "cpu")
    _ledger(tmp_path / "gpu" / "claims.json", [("ood.speedup_vs_scratch", 3.5, True),
                                               ("ood.sim_ours_minus_scratch", 0.02, True)], "cuda")
    page = book.claims_page(small, tmp_path / "none.md")
    assert "| claim | paper | ours | verdict | gpu (cuda) |" in page
    assert "Verdicts that differ from the default profile's: [ood.speedup\\_vs\\_scratch]" in page
    assert "does not hold here, holds there" in page
    assert book.profile_ledgers(tmp_path / "gpu") == {}              # no deeper ledgers: one level only


def test_offline_wheels_are_what_the_book_needs_beyond_the_gpu_image():
    need = offline.closure()
    assert {"papermill", "open-clip-torch", "diffusers", "ipykernel", "pyzmq", "traitlets"} <= set(need)
    assert not {"torch", "torchvision", "numpy", "pandas", "scipy"} & set(need)      # the image's own
    assert all(need.values())                                                      # pinned to what runs here


def test_offline_install_takes_only_the_wheels_not_installed_here(tmp_path):
    with pytest.raises(InputError, match="does not exist"):
        offline.install(tmp_path / "nowhere", tmp_path / "site")
    (tmp_path / "tqdm-4.67.1-py3-none-any.whl").write_bytes(b"")                  # installed here: skipped
    new = tmp_path / "p2n_no_such_dist-1.0-py3-none-any.whl"
    new.write_bytes(b"")
    assert offline.install(tmp_path, tmp_path / "site", dry_run=True) == [new]
    new.unlink()
    assert offline.install(tmp_path, tmp_path / "site") == []


def test_offline_check_names_every_module_that_does_not_import():
    offline.check(("json", "tqdm"))
    with pytest.raises(InputError, match=r"p2n_no_such_module \(ModuleNotFoundError"):
        offline.check(("json", "p2n_no_such_module"))


def test_every_package_the_book_imports_is_checked_before_a_gpu_run():
    import ast

    used = set()
    for py in [*(paths.ROOT / "p2nlib").rglob("*.py"), *(paths.ROOT / "notebooks").glob("[0-9][0-9]_*.py")]:
        for node in ast.walk(ast.parse(py.read_text())):
            if isinstance(node, ast.Import):
                used |= {a.name.split(".")[0] for a in node.names}
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                used.add(node.module.split(".")[0])
    stdlib = set(sys.stdlib_module_names) | {"p2nlib", "__future__"}
    machine = {"torch", "torchvision", "numpy", "pandas", "scipy", "matplotlib", "PIL", "huggingface_hub",
               "timm", "packaging"}                        # on the GPU machines' image already (MACHINE-NOTES)
    optional = {"ray", "pytest", "playwright"}             # not needed to run the book
    assert used - stdlib - machine - optional <= set(offline.CHECK_MODULES), \
        used - stdlib - machine - optional - set(offline.CHECK_MODULES)


def test_pack_writes_one_small_archive_of_the_profiles_outputs(tmp_path, monkeypatch):
    monkeypatch.setattr(paths, "ROOT", tmp_path)
    with pytest.raises(InputError, match="no executed notebooks"):
        offline.pack("gpu", tmp_path / "p.tar.gz")
    (tmp_path / "notebooks" / "gpu").mkdir(parents=True)
    (tmp_path / "notebooks" / "gpu" / "00_overview.ipynb").write_text("{}")
    (tmp_path / "figures" / "gpu" / ".claims").mkdir(parents=True)
    (tmp_path / "figures" / "gpu" / ".claims" / "00.json").write_text("{}")
    (tmp_path / "figures" / "gpu" / "claims.json").write_text("{}")
    (tmp_path / "figures" / "gpu" / "big.png").write_bytes(os.urandom(300_000))
    out = offline.pack("gpu", tmp_path / "p.tar.gz")
    with tarfile.open(out) as tar:
        assert sorted(tar.getnames()) == ["figures/gpu/big.png", "figures/gpu/claims.json",
                                          "notebooks/gpu/00_overview.ipynb"]
    with pytest.raises(InputError, match=r"over 0.1 MiB; its largest files: figures/gpu/big.png"):
        offline.pack("gpu", tmp_path / "q.tar.gz", limit_mib=0.1)
    assert not (tmp_path / "q.tar.gz").exists()


def test_pack_of_the_default_profile_leaves_the_other_profiles_folders_out(tmp_path, monkeypatch):
    """``make gpu-book GPU_PROFILE=small`` packs the committed book: notebooks/ and figures/ at the top, never
    figures/gpu/ or notebooks/gpu/ beside them."""
    monkeypatch.setattr(paths, "ROOT", tmp_path)
    for folder in ("notebooks", "notebooks/gpu", "figures/gpu", "figures/.claims", "figures/sub"):
        (tmp_path / folder).mkdir(parents=True, exist_ok=True)
    (tmp_path / "notebooks" / "03_vae.ipynb").write_text("{}")
    (tmp_path / "notebooks" / "gpu" / "03_vae.ipynb").write_text("{}")
    for name in ("claims.json", "03_vae_curves.png", "gpu/claims.json", ".claims/03.json", "sub/x.png"):
        (tmp_path / "figures" / name).write_text("{}")
    out = offline.pack("small", tmp_path / "s.tar.gz")
    with tarfile.open(out) as tar:
        assert sorted(tar.getnames()) == ["figures/03_vae_curves.png", "figures/claims.json", "figures/sub/x.png",
                                          "notebooks/03_vae.ipynb"]


@pytest.mark.slow
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_every_notebook_runs_on_cuda_on_the_tiny_profile(tmp_path):
    env = {**os.environ, "P2N_COMPILE": "0"}
    out = subprocess.run([sys.executable, "-m", "p2nlib.book.runner", "--profile", "tiny", "--device", "cuda",
                          "--out-dir", str(tmp_path / "nbs")], cwd=paths.ROOT, env=env, capture_output=True,
                         text=True, timeout=1800)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
