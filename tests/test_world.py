"""Tests for p2nlib.data.world: the procedural object generator and its batched SDF / density evaluation."""

import json
import math

import pytest
import torch

from p2nlib.data import world as W

N_VARIETY = 30  # objects per category for the variety test


@pytest.fixture(autouse=True)
def _one_thread():
    """Small tensor ops on a shared 2-core machine run faster and steadier single-threaded."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def per_category() -> dict[str, list[W.WorldObject]]:
    return {c: W.make_objects([c], N_VARIETY) for c in W.CATEGORIES}


def _cube_shell_points(n: int = 7) -> torch.Tensor:
    """Grid points on the faces of the unit cube and on a larger cube around it."""
    g = torch.linspace(-0.5, 0.5, n)
    a, b = torch.meshgrid(g, g, indexing="ij")
    a, b = a.reshape(-1), b.reshape(-1)
    pts = []
    for scale in (0.5, 0.501, 0.6):
        for axis in range(3):
            for sign in (-1.0, 1.0):
                p = torch.empty(a.numel(), 3)
                others = [k for k in range(3) if k != axis]
                p[:, axis] = sign * scale
                p[:, others[0]] = a * scale / 0.5
                p[:, others[1]] = b * scale / 0.5
                pts.append(p)
    return torch.cat(pts)


def test_category_lists_and_palette():
    assert len(W.IN_DISTRIBUTION) == 8 and len(W.OUT_OF_DISTRIBUTION) == 8
    assert W.CATEGORIES == W.IN_DISTRIBUTION + W.OUT_OF_DISTRIBUTION
    assert not set(W.IN_DISTRIBUTION) & set(W.OUT_OF_DISTRIBUTION)
    assert len(W.PALETTE) >= 10
    for name, rgb in W.PALETTE.items():
        assert len(rgb) == 3 and all(0.0 <= v <= 1.0 for v in rgb), name
        assert rgb != (1.0, 1.0, 1.0), "pure white is the background colour"


def test_determinism():
    for c in W.CATEGORIES:
        a, b = W.make_object(c, 3, seed=7), W.make_object(c, 3, seed=7)
        assert a.parts == b.parts and a.attributes == b.attributes and a.captions == b.captions
        assert a == b and a.object_id == f"{c}-7-00003"
        objs = [W.make_object(c, i) for i in range(8)]
        distinct = {(o.parts, json.dumps(o.attributes, sort_keys=True)) for o in objs}
        assert len(distinct) >= 6, c
    assert W.make_object("chair", 0, seed=0).parts != W.make_object("chair", 0, seed=1).parts


def test_make_objects_order():
    objs = W.make_objects(["mug", "lamp"], 3, seed=2, start=5)
    assert [o.object_id for o in objs] == [f"{c}-2-{i:05d}" for c in ("mug", "lamp") for i in (5, 6, 7)]


def test_unknown_category():
    with pytest.raises(ValueError) as err:
        W.make_object("spaceship-x", 0)
    msg = str(err.value)
    assert "spaceship-x" in msg and all(c in msg for c in W.CATEGORIES)
    with pytest.raises(ValueError):
        W.category_caption("nope")


def test_category_caption_articles():
    assert W.category_caption("chair") == "a chair"
    assert W.category_caption("airplane") == "an airplane"
    assert all(W.category_caption(c).endswith(c) for c in W.CATEGORIES)


def test_every_category_records(per_category):
    for c, objs in per_category.items():
        for o in objs[:10]:
            assert o.category == c and o.attributes["category"] == c
            assert o.attributes["color"] in W.PALETTE
            json.dumps(o.attributes)
            assert len(set(o.captions)) >= 3 and len(o.captions) == len(set(o.captions))
            assert all(isinstance(t, str) and t and "  " not in t for t in o.captions)
            assert all(p.color in W.PALETTE and p.kind in W.KINDS for p in o.parts)
            # the main colour shows up in most captions (the snowman's colour word is its scarf)
            word = o.attributes.get("scarf_color", o.attributes["color"]) if c == "snowman" else o.attributes["color"]
            assert sum(word in t for t in o.captions) >= 2, (c, o.captions)


def test_captions_grammar(per_category):
    for objs in per_category.values():
        for o in objs:
            for t in o.captions:
                words = t.split()
                for w1, w2 in zip(words, words[1:]):
                    assert w1 != w2, t
                    if w1 == "a":
                        assert w2[0] not in "aeiou" or w2.startswith(("one", "uni")), t
                    if w1 == "an":
                        assert w2[0] in "aeiou", t


def test_attribute_variety(per_category):
    for c, objs in per_category.items():
        keys = set(objs[0].attributes) - {"category"}
        varying = [k for k in keys if len({json.dumps(o.attributes.get(k)) for o in objs}) >= 2]
        shape_varying = [k for k in varying if "color" not in k]
        assert len(shape_varying) >= 3, (c, varying)


def test_fits_in_unit_cube(per_category):
    shell = _cube_shell_points()
    for c, objs in per_category.items():
        objs = objs[:10]
        for o in objs:
            for p in o.parts:
                lo, hi = W.part_bounds(p)
                assert min(lo) >= -0.49 and max(hi) <= 0.49, (o.object_id, p)
        sdf, _ = W._batched_sdf_color(objs, shell.expand(len(objs), -1, -1))
        assert (sdf > 0).all(), c
        # every part's centre (tori excepted: their centre is in the hole) is inside the object;
        # centre lists are padded by repeating their first entry so that one batched call does all
        centers = [[p.center for p in o.parts if p.kind != "torus"] for o in objs]
        width = max(len(cs) for cs in centers)
        padded = torch.tensor([cs + [cs[0]] * (width - len(cs)) for cs in centers])
        sdf, _ = W._batched_sdf_color(objs, padded)
        assert (sdf < 0).all(), c
        # objects stand on the floor
        lows = [min(W.part_bounds(p)[0][1] for p in o.parts) for o in objs]
        assert all(abs(y + 0.45) < 1e-4 for y in lows), c


def test_sphere_sdf_analytic():
    part = W.Part("sphere", (0.1, -0.2, 0.05), (0.3,), "y", 0.0, "red", "ball")
    pts = torch.tensor([[0.1, -0.2, 0.05], [0.5, -0.2, 0.05], [0.1, 0.3, 0.05], [0.0, 0.0, 0.0]])
    expect = torch.tensor([-0.3, 0.1, 0.2, math.sqrt(0.01 + 0.04 + 0.0025) - 0.3])
    torch.testing.assert_close(W.part_sdf(part, pts), expect, atol=1e-6, rtol=0)
    obj = W.WorldObject("ball", 0, 0, {"category": "ball", "color": "red"}, ("a", "b", "c"), (part,))
    sdf, rgb = obj.sdf_color(pts)
    torch.testing.assert_close(sdf, expect, atol=1e-6, rtol=0)
    assert torch.allclose(rgb, torch.tensor(W.PALETTE["red"]).expand(4, 3))


def test_primitive_sdfs_analytic():
    p = lambda *a: torch.tensor([a], dtype=torch.float64)  # noqa: E731
    box = W.Part("box", (0, 0, 0), (0.2, 0.1, 0.3), "y", 0.0, "red", "b")
    assert W.part_sdf(box, p(0.5, 0, 0)).item() == pytest.approx(0.3)
    assert W.part_sdf(box, p(0, 0, 0)).item() == pytest.approx(-0.1)
    # rotated a quarter turn about y: the long z extent now lies along x
    rbox = W.Part("box", (0, 0, 0), (0.2, 0.1, 0.3), "y", math.pi / 2, "red", "b")
    assert W.part_sdf(rbox, p(0.5, 0, 0)).item() == pytest.approx(0.2)
    cyl = W.Part("cylinder", (0, 0, 0), (0.1, 0.3), "x", 0.0, "red", "c")  # axis along x
    assert W.part_sdf(cyl, p(0.5, 0, 0)).item() == pytest.approx(0.2)
    assert W.part_sdf(cyl, p(0, 0.4, 0)).item() == pytest.approx(0.3)
    cap = W.Part("capsule", (0, 0, 0), (0.1, 0.2), "z", 0.0, "red", "k")
    assert W.part_sdf(cap, p(0, 0, 0.5)).item() == pytest.approx(0.2)
    tor = W.Part("torus", (0, 0, 0), (0.3, 0.05), "y", 0.0, "red", "t")
    assert W.part_sdf(tor, p(0.3, 0, 0)).item() == pytest.approx(-0.05)
    assert W.part_sdf(tor, p(0, 0, 0)).item() == pytest.approx(0.25)
    cone = W.Part("cone", (0, 0, 0), (0.2, 0.1), "y", 0.0, "red", "n")
    assert W.part_sdf(cone, p(0, 0.3, 0)).item() == pytest.approx(0.2)  # above the tip
    assert W.part_sdf(cone, p(0, -0.3, 0)).item() == pytest.approx(0.2)  # below the base
    assert W.part_sdf(cone, p(0, 0, 0)).item() < 0


def test_density_color_matches_reference():
    torch.manual_seed(0)
    objs = [W.make_object(c, i) for i, c in enumerate(W.CATEGORIES)]
    pts = torch.rand(len(objs), 500, 3) - 0.5
    sigma, rgb = W.density_color(objs, pts, sharpness=50.0, sigma_max=70.0)
    assert sigma.shape == (len(objs), 500) and rgb.shape == (len(objs), 500, 3)
    assert sigma.min() >= 0 and sigma.max() <= 70.0
    assert rgb.min() >= 0 and rgb.max() <= 1
    for b, o in enumerate(objs):
        sdf, ref_rgb = o.sdf_color(pts[b])
        torch.testing.assert_close(sigma[b], 70.0 * torch.sigmoid(-50.0 * sdf), atol=1e-3, rtol=1e-4)
        same = (rgb[b] - ref_rgb).abs().amax(-1) < 1e-6
        assert same.float().mean() > 0.99  # ties between touching parts may break either way
    # some density inside objects, little far outside
    assert (sigma > 35).any()
    far = torch.full((2, 4, 3), 0.6)
    assert W.density_color(objs[:2], far)[0].max() < 1.0


def test_density_color_rejects_bad_shapes():
    objs = W.make_objects(["ball"], 2)
    with pytest.raises(ValueError):
        W.density_color(objs, torch.zeros(3, 10, 3))
    with pytest.raises(ValueError):
        W.density_color(objs, torch.zeros(2, 10))


def test_compiled_world_renders_as_the_eager_one(monkeypatch):
    """The ground truth renders through compiled SDFs; they agree with the eager maths to float rounding."""
    from p2nlib.data import cameras, fit

    objs = [W.make_object(c, 0, 0) for c in ("chair", "lamp", "car", "mug")]
    poses = cameras.view_set(2, 1)
    monkeypatch.setenv("P2N_COMPILE", "1")
    fast = fit.render_ground_truth(objs, poses, 12, 12)
    monkeypatch.setenv("P2N_COMPILE", "0")
    eager = fit.render_ground_truth(objs, poses, 12, 12)
    assert (fast - eager).abs().max() < 1e-5
