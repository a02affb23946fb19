"""The command line's help, its clear errors, checked inputs and explained answers (no trained parts
needed: a stand-in pipeline), and one end-to-end run on the trained tiny profile (slow)."""
import json
import subprocess
import sys
import warnings

import numpy as np
import pytest
import torch
from PIL import Image

from p2nlib.core.errors import InputError
from p2nlib.core.profiles import get_profile
from p2nlib.data import nerf
from p2nlib.generate import cli, pipeline


def test_help_explains():
    out = subprocess.run([sys.executable, "-m", "p2nlib.generate.cli", "--help"], capture_output=True, text=True)
    assert out.returncode == 0 and "generate" in out.stdout and "a brown table" in out.stdout
    out = subprocess.run([sys.executable, "-m", "p2nlib.generate.cli", "generate", "--help"], capture_output=True, text=True)
    assert "--text" in out.stdout and "--image" in out.stdout and "--views" in out.stdout and "--seed" in out.stdout
    assert "--threshold" in out.stdout and "--resolution" in out.stdout and "--json" in out.stdout
    out = subprocess.run([sys.executable, "-m", "p2nlib.generate.cli", "export", "--help"],
                         capture_output=True, text=True)
    assert "--index" in out.stdout and ".glb" in out.stdout


def test_the_parser_imports_nothing_heavy():
    code = ("import sys; from p2nlib.generate import cli; cli.build_parser().parse_args(['generate', '--text', 'x', "
            "'--out', 'x.glb']); print(sorted({'torch', 'open_clip', 'torchvision', 'pandas', 'matplotlib', "
            "'trimesh', 'skimage'} & set(sys.modules)))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0 and out.stdout.strip() == "[]", out.stdout + out.stderr


@pytest.mark.parametrize("args, message", [
    (["--text", "   ", "--out", "x.gif"], "text prompt is empty"),
    (["--text", "a chair", "--out", "x.png"], "must end in .gif"),
    (["--text", "a chair", "--out", "x.gif", "--profile", "huge"], "unknown profile 'huge'"),
    (["--image", "does/not/exist.png", "--out", "x.gif"], "does not exist"),
    (["--text", "a chair", "--out", "x.gif", "--views", "0"], "--views must be"),
    (["--text", "a chair", "--out", "x.gif", "--threads", "0"], "--threads 0 must be at least 1"),
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


# --- inputs checked, answers explained (fast: a stand-in pipeline, no trained parts) -----------------


def _png(path, w, h):
    Image.fromarray(np.full((h, w, 3), 200, np.uint8)).save(path)
    return path


@pytest.mark.parametrize("w, h", [(10, 40), (40, 15), (1, 1)])
def test_small_images_are_refused_with_size_and_minimum(tmp_path, w, h, capsys):
    path = _png(tmp_path / "small.png", w, h)
    with pytest.raises(InputError, match=rf"is {w}x{h} px; image prompts must be at least 16x16 px"):
        pipeline.load_image(path, 32)
    with pytest.raises(InputError, match="at least 16x16"):
        pipeline.load_image(np.zeros((h, w, 3), np.uint8), 32)
    assert cli.main(["generate", "--image", str(path), "--out", str(tmp_path / "x.glb")]) == 2
    assert f"{w}x{h} px" in capsys.readouterr().err


def test_images_of_the_minimum_size_are_accepted(tmp_path):
    img = pipeline.load_image(_png(tmp_path / "ok.png", 16, 16), 32)
    assert img.shape == (32, 32, 3)
    big = _png(tmp_path / "big.png", 40, 30)      # larger images are resized to any size, even below 16
    assert pipeline.load_image(big, 8).shape == (8, 8, 3)
    assert pipeline.load_image(Image.open(big), 8).shape == (8, 8, 3)


@pytest.mark.parametrize("args, message", [
    (["--out", "x.stl"], "must end in .gif (turntable) or .glb, .gltf, .ply, .obj (mesh)"),
    (["--out", "x.glb", "--threshold", "0"], "--threshold 0 is a density and must be a positive number"),
    (["--out", "x.glb", "--threshold", "nan"], "must be a positive number"),
    (["--out", "x.glb", "--resolution", "4"], "--resolution 4 must be from 8 to 512"),
    (["--out", "x.glb", "--save-params", "p.pt"], "must end in .safetensors"),
])
def test_bad_output_options(args, message, capsys):
    assert cli.main(["generate", "--text", "a chair", *args]) == 2
    assert message in capsys.readouterr().err


def test_export_errors(tmp_path, capsys):
    assert cli.main(["export", str(tmp_path / "none.safetensors"), "--out", str(tmp_path / "x.glb")]) == 2
    assert "does not exist" in capsys.readouterr().err
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"not a safetensors file")
    assert cli.main(["export", str(bad), "--out", str(tmp_path / "x.glb")]) == 2
    assert "not a readable safetensors file" in capsys.readouterr().err


class _Tokenizer:
    """One token per word (the real one is open_clip's BPE; the pipeline only needs encode/decode)."""

    def __init__(self):
        self.vocab: list[str] = []

    def encode(self, text):
        ids = []
        for w in text.split():
            if w not in self.vocab:
                self.vocab.append(w)
            ids.append(self.vocab.index(w))
        return ids

    def decode(self, ids):
        return " ".join(self.vocab[i] for i in ids)


class _Encoder:
    """Scene i lies along axis i; its captions lie near it; any other text mostly along the last axis."""
    context_length, render_size, embed_dim = 8, 16, 4

    def __init__(self, scenes):
        self.tokenizer = _Tokenizer()
        self.where = {c: (i, j) for i, s in enumerate(scenes) for j, c in enumerate(s["captions"])}

    def encode_text(self, texts):
        out = []
        for t in texts:
            v = torch.zeros(4)
            if t in self.where:
                i, j = self.where[t]
                v[i], v[3] = 1.0, 0.1 * (j + 1)
            else:
                v[0], v[3] = 0.2, 1.0
            out.append(v / v.norm())
        return torch.stack(out)

    def encode_images(self, images):
        return torch.nn.functional.normalize(torch.ones(len(images), 4), dim=-1)


class _Identity:
    def generate(self, emb):
        return emb

    def decode(self, z):
        return {"l0.weight": z}


def _stand_in_pipeline():
    scenes = [{"object_id": f"{c}-0-0000{i}", "category": c, "captions": [f"a {c}", f"a red {c}", f"a big {c}"]}
              for i, c in enumerate(["chair", "table", "lamp"])]
    cache = torch.eye(4)[:3, None].repeat(1, 2, 1)                      # (scenes, views, D)
    return pipeline.Prompt2NeRF(get_profile("tiny"), torch.device("cpu"), _Encoder(scenes), cache, scenes,
                                _Identity(), _Identity(), nerf.NerfSpec())


def test_far_prompt_is_answered_with_the_nearest_scene_and_says_so():
    pipe = _stand_in_pipeline()
    near = pipe.from_text("a red table")
    assert near.scene["category"] == "table" and near.far is False and "far from" not in near.describe()
    far = pipe.from_text("a zebra")
    assert far.scene["category"] == "chair" and far.far is True
    assert far.far_cosine == pipe.far_cosine() and far.similarity < far.far_cosine
    assert "far from every training scene; the result is the nearest of them" in far.describe()
    info = json.loads(pipeline.describe_json(far, outputs={"zebra.glb": "mesh"}, timings={"load": 1.0}))
    assert info["far_from_training"] is True and info["note"] == pipeline.FAR_NOTE
    assert info["nearest_scene"]["object_id"] == "chair-0-00000" and info["modality"] == "text"
    assert info["far_percentile"] == pipeline.FAR_PERCENTILE and info["outputs"] == {"zebra.glb": "mesh"}
    assert set(info["timings"]) == {"prompt_to_params", "prompt_to_params_warm", "load"}


def test_image_prompts_get_the_nearest_training_scene_and_the_far_report():
    pipe = _stand_in_pipeline()
    far = pipe.from_image(np.full((16, 16, 3), 255, np.uint8))     # the stand-in encoder: equally near all scenes
    assert far.scene["category"] == "chair" and far.similarity == pytest.approx(0.5)
    assert far.far is True and far.far_cosine == pytest.approx(1.0)   # views of a scene agree exactly here
    text = far.describe()
    assert "nearest training scene: chair-0-00000" in text and "view-scene cosines" in text
    info = pipeline.description(far)
    assert info["nearest_scene"]["category"] == "chair" and info["far_from_training"] is True
    pipe.encoder.encode_images = lambda images: torch.eye(4)[1:2].repeat(len(images), 1)   # exactly the table
    near = pipe.from_image(np.full((16, 16, 3), 255, np.uint8))
    assert near.scene["category"] == "table" and near.far is False and "far from" not in near.describe()


def test_prompts_are_matched_to_train_split_scenes_only():
    pipe = _stand_in_pipeline()
    pipe.scenes[1]["split"] = "test"                                # the table is a test scene: never the answer
    gen = pipe.from_text("a red table")
    assert gen.scene["category"] != "table" and pipe.train_idx == [0, 2]


def test_far_cosine_is_the_percentile_of_matched_caption_cosines():
    pipe = _stand_in_pipeline()
    matched = [1 / np.sqrt(1 + (0.1 * (j + 1)) ** 2) for _ in range(3) for j in range(3)]
    assert pipe.far_cosine() == pytest.approx(np.percentile(matched, pipeline.FAR_PERCENTILE), abs=1e-6)
    assert pipe.info["matched_cosines"]["n"] == 9


def test_long_prompt_is_used_up_to_the_context_with_a_warning():
    pipe = _stand_in_pipeline()
    long = "a red table with four legs standing in a garden by the lake"     # 13 words + 2 = 15 tokens
    with pytest.warns(pipeline.PromptWarning, match=r"has 15 tokens but the text encoder reads 8"):
        gen = pipe.from_text(long)
    assert len(gen.warnings) == 1 and "only its first 6 were used (\"a red table with four legs\")" in gen.warnings[0]
    assert "warning: the text prompt has 15 tokens" in gen.describe()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert pipe.from_text("a red table").warnings == []


def test_first_and_warm_timings_are_separate():
    pipe = _stand_in_pipeline()
    gen = pipe.from_text("a chair")
    assert gen.seconds > 0 and gen.warm_seconds > 0 and "ms warm" in gen.describe()
    assert pipe.from_text("a chair", warm=False).warm_seconds is None
    img = pipe.from_image(np.zeros((20, 20, 3), np.uint8))
    assert img.source == "image" and img.warm_seconds > 0 and img.far is True     # the stand-in image is far


# --- the trained tiny pipeline through the command line ---------------------------------------------

@pytest.mark.slow
def test_generate_meshes_gif_params_and_json(tmp_path, capsys, tiny_artifacts):
    import trimesh

    from p2nlib.generate import mesh

    pipe = pipeline.Prompt2NeRF.load("tiny", "cpu")
    enc = pipe.encoder
    gen = pipe.from_text("a brown table")
    # the tiny profile's NeRFs are faint: without --threshold the surface is drawn at half the NeRF's peak density
    peak = float(mesh.density_grid(gen.params, pipe.spec, 24).max())
    level = f"{peak / 2:.4g}"

    outs = {s: tmp_path / f"table{s}" for s in (".glb", ".ply", ".obj", ".gif")}
    args = ["generate", "--text", "a brown table", "--profile", "tiny", "--resolution", "24",
            "--views", "2", "--size", "16", "--save-params", str(tmp_path / "table.safetensors"), "--json"]
    for o in outs.values():
        args += ["--out", str(o)]
    assert cli.main(args) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["modality"] == "text" and info["prompt"] == "a brown table" and info["profile"] == "tiny"
    assert info["mesh"]["threshold_density"] == pytest.approx(min(mesh.DEFAULT_THRESHOLD, peak / 2), rel=1e-4)
    assert info["mesh"]["peak_density"] == pytest.approx(peak, rel=1e-4)
    assert ("chosen from the NeRF" in info["mesh"]["threshold_rule"]) == (peak / 2 < mesh.DEFAULT_THRESHOLD)
    assert info["nearest_scene"]["object_id"] == gen.scene["object_id"] and isinstance(info["far_from_training"], bool)
    assert {"imports", "import_open_clip", "load", "far_reference", "prompt_to_params", "prompt_to_params_warm", "mesh",
            "total"} <= set(info["timings"])
    assert set(info["outputs"]) == {*map(str, outs.values()), str(tmp_path / "table.safetensors")}
    assert len(trimesh.load(outs[".glb"], force="mesh").faces) > 0 and Image.open(outs[".gif"]).n_frames == 2
    for s in (".ply", ".obj"):
        assert outs[s].stat().st_size > 0

    # the saved parameters carry their spec: export needs no profile
    assert cli.main(["export", str(tmp_path / "table.safetensors"), "--out", str(tmp_path / "again.glb"),
                     "--threshold", level, "--resolution", "24"]) == 0
    assert "wrote" in capsys.readouterr().out
    # a long prompt: accepted with a warning giving the token counts
    long = " ".join(["a brown wooden table with four legs"] * 4)
    assert cli.main(["generate", "--text", long, "--profile", "tiny", "--out", str(tmp_path / "long.gif"),
                     "--views", "1", "--size", "16"]) == 0
    err = capsys.readouterr().err
    assert "p2n: warning: the text prompt has" in err and f"the text encoder reads {enc.context_length}" in err
