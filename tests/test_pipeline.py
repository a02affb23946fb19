"""The whole pipeline on the tiny profile, end to end: dataset -> CLIP -> VAE -> alignment ->
prompt -> NeRF -> GIF, through the Python API and the command line."""
import shutil

import numpy as np
import pytest
import torch
from PIL import Image

from p2nlib.core import paths
from p2nlib.generate import cli, pipeline


@pytest.mark.slow
def test_tiny_pipeline_end_to_end(tmp_path, capsys, monkeypatch, tiny_artifacts):
    _, ds, cache = tiny_artifacts
    pipe = pipeline.Prompt2NeRF.load("tiny", "cpu")
    gen = pipe.from_text("a brown table")
    assert gen.scene["object_id"] in {o["object_id"] for o in ds.objects}
    assert -1.0 <= gen.similarity <= 1.0 and "nearest training scene" in gen.describe()
    assert {k: tuple(v.shape[1:]) for k, v in gen.params.items()} == ds.spec.shapes()
    # text -> the chosen scene's image embedding: identical to prompting with that embedding
    idx = [o["object_id"] for o in ds.objects].index(gen.scene["object_id"])
    direct = pipe.from_embedding(cache.image[idx, 0])
    assert all(torch.allclose(direct[k], gen.params[k]) for k in direct)

    img = tmp_path / "prompt.png"
    Image.fromarray((np.random.default_rng(0).random((40, 30, 4)) * 255).astype(np.uint8)).save(img)
    g2 = pipe.from_image(img)
    frames = pipe.render(g2, views=3, size=16)
    assert frames.shape == (3, 16, 16, 3) and 0 <= frames.min() and frames.max() <= 1
    gif = pipe.turntable_gif(g2, tmp_path / "t.gif", views=4, size=16)
    assert Image.open(gif).n_frames == 4
    with pytest.raises(ValueError, match="empty"):
        pipe.from_text("")

    out = tmp_path / "cli.gif"
    assert cli.main(["generate", "--text", "a red jet", "--out", str(out), "--profile", "tiny", "--views", "3",
                     "--size", "16", "--save-params", str(tmp_path / "p.safetensors")]) == 0
    assert out.exists() and (tmp_path / "p.safetensors").exists()
    assert "nearest training scene" in capsys.readouterr().out
    assert cli.main(["generate", "--image", str(img), "--out", str(tmp_path / "i.gif"), "--profile", "tiny"]) == 0

    # artifacts of another profile are refused with a clear message (a copy: the shared parts stay as they are)
    shutil.copytree(paths.artifacts_dir("tiny"), tmp_path / "copy" / "small")
    monkeypatch.setenv("P2N_ARTIFACTS", str(tmp_path / "copy"))
    assert cli.main(["generate", "--text", "a chair", "--out", str(tmp_path / "x.gif"), "--profile", "small"]) == 2
    assert "belongs to profile 'tiny'" in capsys.readouterr().err
