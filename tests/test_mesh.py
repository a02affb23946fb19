"""NeRF -> mesh: a NeRF whose density is a ball gives a closed mesh of the ball's radius and colour;
mesh files write and reload with their vertex colours; bad options and empty surfaces are clear errors.

The ball NeRF is built by hand instead of fitted: its first layer reads sum_i cos(pi x_i) from the
positional encoding (a radial function of x up to 3% at radius 0.3), the hidden layers pass it on, and
the last layer puts the opacity threshold exactly where that sum equals its value at radius 0.3 on the
axes. That is a real 7-layer NeRF of the book's architecture, exact and instant to make."""
import math

import numpy as np
import pytest
import torch

from p2nlib.core.errors import InputError, P2NError
from p2nlib.core.profiles import get_profile
from p2nlib.data import nerf
from p2nlib.generate import cli, mesh

SPEC = nerf.NerfSpec(width=16, freqs=3)
RADIUS = 0.3
COLOR = (0.8, 0.3, 0.1)


def ball_nerf(spec=SPEC, radius=RADIUS, color=COLOR, threshold=mesh.DEFAULT_THRESHOLD, sharp=200.0):
    """One NeRF (leading axis 1) whose density crosses ``threshold`` at about ``radius``."""
    p = {k: torch.zeros((1, *s)) for k, s in spec.shapes().items()}
    cos0 = 3 + 3 * spec.freqs                      # encode(): [x, sin(2^k pi x), cos(2^k pi x)], k-major
    for i in range(3):
        p["l0.weight"][0, 0, cos0 + i] = 1.0       # h = sum_i cos(pi x_i) >= 0 in the box
    for layer in range(1, nerf.NUM_LAYERS - 1):
        p[f"l{layer}.weight"][0, 0, 0] = 1.0
    level = 2 + math.cos(math.pi * radius)         # the sum at (radius, 0, 0)
    last = nerf.NUM_LAYERS - 1
    p[f"l{last}.weight"][0, 3, 0] = sharp
    p[f"l{last}.bias"][0, 3] = -sharp * level + math.log(math.expm1(threshold))   # softplus^-1
    p[f"l{last}.bias"][0, :3] = torch.logit(torch.tensor(color))
    return p


@pytest.fixture(scope="module")
def ball_mesh():
    return mesh.extract_mesh(ball_nerf(), SPEC, resolution=48)


def test_ball_gives_a_closed_mesh_of_the_right_radius_and_colour(ball_mesh):
    m = ball_mesh
    assert m.is_watertight and m.volume > 0
    r = np.linalg.norm(m.vertices, axis=1)
    assert abs(r.mean() - RADIUS) < 0.015 and r.max() < RADIUS + 0.015 and r.min() > RADIUS - 0.025
    assert m.volume == pytest.approx(4 / 3 * math.pi * RADIUS ** 3, rel=0.1)
    assert np.abs(m.centroid).max() < 0.01
    rgb = np.asarray(m.visual.vertex_colors)[:, :3] / 255
    assert np.allclose(rgb, COLOR, atol=1 / 255 + 1e-6)


def test_threshold_moves_the_surface():
    p = ball_nerf()
    low = mesh.extract_mesh(p, SPEC, resolution=32, threshold=1.0)
    high = mesh.extract_mesh(p, SPEC, resolution=32, threshold=60.0)
    assert low.volume > high.volume
    # one NeRF without the leading axis works too
    single = mesh.extract_mesh({k: v[0] for k, v in p.items()}, SPEC, resolution=16)
    assert len(single.faces) > 0


def test_empty_surface_names_the_threshold():
    p = ball_nerf()
    p["l6.weight"][0, 3] = 0.0
    p["l6.bias"][0, 3] = -12.0                     # nearly transparent everywhere
    with pytest.raises(InputError, match=r"no surface at density threshold 22: the NeRF's highest density"):
        mesh.extract_mesh(p, SPEC, resolution=16)


@pytest.mark.parametrize("kw, message", [({"threshold": -1.0}, "must be a positive number"),
                                         ({"resolution": 4}, "from 8 to 512")])
def test_bad_options(kw, message):
    with pytest.raises(InputError, match=message):
        mesh.extract_mesh(ball_nerf(), SPEC, **kw)


def test_wrong_spec_is_a_clear_error():
    with pytest.raises(InputError, match="expected"):
        mesh.extract_mesh(ball_nerf(), nerf.NerfSpec(width=32, freqs=3), resolution=16)


def test_export_writes_every_format(ball_mesh, tmp_path):
    import trimesh

    for suffix in (".glb", ".gltf", ".ply", ".obj"):
        path = mesh.export_mesh(ball_mesh, tmp_path / f"ball{suffix}")
        back = trimesh.load(path, force="mesh")
        assert len(back.faces) == len(ball_mesh.faces), suffix
        assert back.visual.kind == "vertex", suffix
        assert np.allclose(np.asarray(back.visual.vertex_colors)[:, :3].mean(0) / 255, COLOR, atol=0.01), suffix
    assert trimesh.load(tmp_path / "ball.glb", force="mesh").is_watertight


def test_export_refuses_other_suffixes_and_empty_meshes(ball_mesh, tmp_path):
    import trimesh

    with pytest.raises(InputError, match=r"use one of \.glb, \.gltf, \.ply, \.obj"):
        mesh.export_mesh(ball_mesh, tmp_path / "ball.stl")
    with pytest.raises(InputError, match="lower the threshold"):
        mesh.export_mesh(trimesh.Trimesh(), tmp_path / "empty.glb")


def test_nerf_file_round_trip(tmp_path):
    p = ball_nerf()
    path = mesh.save_nerf(p, SPEC, tmp_path / "ball.safetensors", profile="tiny", samples=32)
    assert mesh.opacity(22.0, 32) == pytest.approx(0.70, abs=0.01)
    back, spec, samples, meta = mesh.load_nerf(path)
    assert spec == SPEC and samples == 32 and meta["profile"] == "tiny"
    assert all(torch.equal(back[k], p[k]) for k in p)
    # several NeRFs in one file without a recorded spec: the profile's spec, and --index picks one
    from safetensors.torch import save_file

    tiny = nerf.NerfSpec.from_profile(get_profile("tiny"))
    save_file(nerf.init_params(tiny, 3), str(tmp_path / "many.safetensors"))
    with pytest.raises(InputError, match=r"holds 3 NeRFs; pick one with --index"):
        mesh.load_nerf(tmp_path / "many.safetensors", "tiny")
    one, spec, samples, _ = mesh.load_nerf(tmp_path / "many.safetensors", "tiny", index=2)
    assert spec == tiny and samples == 16 and one["l0.weight"].shape[0] == 1
    with pytest.raises(InputError, match="--profile"):
        mesh.load_nerf(tmp_path / "many.safetensors", "small", index=0)
    with pytest.raises(InputError, match="does not exist"):
        mesh.load_nerf(tmp_path / "nope.safetensors")


def test_cli_export(tmp_path, capsys):
    import json

    import trimesh

    src = mesh.save_nerf(ball_nerf(), SPEC, tmp_path / "ball.safetensors", samples=32)
    out, gif = tmp_path / "ball.glb", tmp_path / "ball.gif"
    assert cli.main(["export", str(src), "--out", str(out), "--out", str(gif), "--resolution", "32",
                     "--views", "2", "--size", "16", "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["outputs"] == {str(out): "mesh", str(gif): "turntable"} and info["nerf_spec"] == SPEC.to_dict()
    assert trimesh.load(out, force="mesh").is_watertight and gif.exists()
    assert cli.main(["export", str(src), "--out", str(tmp_path / "ball.ply"), "--threshold", "1e6"]) == 2
    assert "lower it below" in capsys.readouterr().err


def test_cli_defaults_match_the_mesh_module():
    assert cli.MESH_SUFFIXES == mesh.MESH_SUFFIXES
    assert (cli.DEFAULT_THRESHOLD, cli.DEFAULT_RESOLUTION) == (mesh.DEFAULT_THRESHOLD, mesh.DEFAULT_RESOLUTION)
    assert (cli.MIN_RESOLUTION, cli.MAX_RESOLUTION) == (mesh.MIN_RESOLUTION, mesh.MAX_RESOLUTION)
    assert issubclass(InputError, P2NError)


def test_viewer_figures(ball_mesh):
    from p2nlib.book import viewer

    fig = viewer.mesh_figure(ball_mesh, "ball")
    trace = fig.data[0]
    assert trace.type == "mesh3d" and len(trace.vertexcolor) == len(ball_mesh.vertices)
    assert fig.layout.height == viewer.HEIGHT and fig.layout.scene.aspectmode == "cube"
    assert fig.layout.scene.xaxis.visible is False
    gal = viewer.mesh_gallery([ball_mesh, ball_mesh], ["a", "b"])
    assert len(gal.data) == 2 and gal.layout.scene2.aspectmode == "cube"
    with pytest.raises(ValueError, match="titles"):
        viewer.mesh_gallery([ball_mesh], ["a", "b"])


def test_surface_level_is_the_default_unless_the_nerf_is_faint():
    assert mesh.surface_level(100.0) == (22.0, "density threshold 22 (the default)")
    level, rule = mesh.surface_level(11.1)                   # the clawfoot tub's generated NeRF
    assert level == pytest.approx(5.55) and "chosen from the NeRF" in rule and "highest density 11.1" in rule
    assert mesh.surface_level(44.0)[0] == 22.0 and mesh.surface_level(43.0)[0] == 21.5    # continuous at 2 x 22
    assert mesh.surface_level(11.1, threshold=30.0) == (30.0, "density threshold 30 (given)")
    with pytest.raises(InputError, match="empty everywhere"):
        mesh.surface_level(0.0)


def test_a_faint_nerf_gets_a_mesh_at_its_half_maximum_and_says_so():
    faint = ball_nerf(threshold=1.0, sharp=20.0)             # never reaches density 22
    m = mesh.extract_mesh(faint, SPEC, resolution=24, threshold=None)
    assert len(m.faces) > 0 and m.metadata["threshold_density"] == pytest.approx(m.metadata["peak_density"] / 2)
    assert "chosen from the NeRF" in m.metadata["threshold_rule"]


def test_nerf_gallery_draws_faint_nerfs_at_half_their_peak():
    from p2nlib.book import viewer

    sharp, faint = ball_nerf(), ball_nerf(threshold=1.0, sharp=20.0)     # the second never reaches density 22
    with pytest.raises(InputError, match="no surface"):
        mesh.extract_mesh(faint, SPEC, resolution=24)
    fig = viewer.nerf_gallery([sharp, faint], SPEC, ["sharp", "faint"], resolution=24)
    titles = [a.text for a in fig.layout.annotations]
    assert titles[0] == "sharp" and titles[1].startswith("faint (faint: surface at density") and len(fig.data) == 2
