import math

import pytest
import torch

from p2nlib.core.profiles import PROFILES
from p2nlib.data import cameras, fit, nerf, render


def sphere_field(radius, sigma):
    def field(pts):
        inside = (pts.norm(dim=-1) < radius).float()
        return sigma * inside, torch.zeros(*pts.shape[:-1], 3)   # black sphere
    return field


def test_opacity_of_uniform_sphere_matches_beer_lambert():
    r, s = 0.3, 5.0
    origins = torch.tensor([[[0.0, 0.0, 2.0], [0.0, 0.1, 2.0], [0.0, 0.25, 2.0]]])
    dirs = torch.tensor([[[0.0, 0.0, -1.0]] * 3])
    color, opacity = render.render_rays(sphere_field(r, s), origins, dirs, samples=4000)
    chords = torch.tensor([2 * math.sqrt(r * r - y * y) for y in (0.0, 0.1, 0.25)])
    expected = 1 - torch.exp(-s * chords)
    assert torch.allclose(opacity[0], expected, atol=2e-3)
    # black sphere on white: pixel = 1 - opacity
    assert torch.allclose(color[0, :, 0], 1 - expected, atol=2e-3)


def test_rays_missing_the_box_are_background():
    origins = torch.tensor([[[0.0, 2.0, 2.0]]])
    dirs = torch.tensor([[[0.0, 0.0, -1.0]]])
    color, opacity = render.render_rays(sphere_field(0.4, 100.0), origins, dirs, samples=16)
    assert opacity.item() == 0.0 and torch.allclose(color, torch.ones(1, 1, 3))


def test_camera_rays_look_at_the_origin():
    c2w = cameras.orbit([0.0, 90.0], [0.0, 30.0])
    o, d = cameras.rays(c2w, 9)
    centre = d[:, 4 * 9 + 4]                      # middle pixel
    assert torch.allclose(centre, -o[:, 0] / o[:, 0].norm(dim=-1, keepdim=True), atol=1e-5)
    assert torch.allclose(d.norm(dim=-1), torch.ones(2, 81))
    with pytest.raises(ValueError, match="positive"):
        cameras.view_set(0, seed=1)


def test_nerf_has_14_tensors_in_fixed_order():
    spec = nerf.NerfSpec(width=32, freqs=4)
    shapes = spec.shapes()
    assert list(shapes) == list(nerf.PARAM_NAMES) == [f"l{i}.{k}" for i in range(7) for k in ("weight", "bias")]
    assert shapes["l0.weight"] == (32, 3 + 6 * 4) and shapes["l6.weight"] == (4, 32) and shapes["l6.bias"] == (4,)
    assert spec.num_params() == (27 * 32 + 32) + 5 * (32 * 32 + 32) + (32 * 4 + 4)
    paper = nerf.NerfSpec.from_profile(PROFILES["paper"])
    assert len(paper.shapes()) == 14 and paper.width == 128


def test_shared_init_is_one_template_random_is_not():
    spec = nerf.NerfSpec(16, 2)
    shared = nerf.init_params(spec, 3, "shared")
    rand = nerf.init_params(spec, 3, "random", seed=1)
    assert nerf.check_params(shared, spec) == 3
    for k in nerf.PARAM_NAMES:
        assert torch.equal(shared[k][0], shared[k][2])
        assert torch.equal(shared[k][0], nerf.template(spec)[k])
    assert not torch.equal(rand["l1.weight"][0], rand["l1.weight"][1])
    with pytest.raises(ValueError, match="unknown init mode"):
        nerf.init_params(spec, 1, "zeros")


def test_batched_forward_equals_one_at_a_time():
    spec = nerf.NerfSpec(16, 3)
    params = nerf.init_params(spec, 3, "random", seed=2)
    x = torch.rand(3, 50, 3) - 0.5
    sigma, rgb = nerf.forward(params, x, spec.freqs)
    assert sigma.shape == (3, 50) and rgb.shape == (3, 50, 3) and (sigma >= 0).all()
    for b in range(3):
        s1, c1 = nerf.forward({k: v[b:b + 1] for k, v in params.items()}, x[b:b + 1], spec.freqs)
        assert torch.allclose(s1[0], sigma[b], atol=1e-5) and torch.allclose(c1[0], rgb[b], atol=1e-5)


def test_check_params_names_the_problem():
    spec = nerf.NerfSpec(16, 2)
    params = nerf.init_params(spec, 2)
    bad = dict(params, **{"l3.weight": torch.zeros(2, 5, 5)})
    with pytest.raises(ValueError, match="l3.weight has shape"):
        nerf.check_params(bad, spec)
    with pytest.raises(ValueError, match="lack"):
        nerf.check_params({k: v for k, v in params.items() if k != "l0.bias"}, spec)


def test_psnr_of_a_known_error():
    a = torch.zeros(2, 4, 4, 3)
    assert fit.psnr(a, a + 0.1).item() == pytest.approx(20.0, abs=1e-4)
    assert fit.psnr(a, a + 0.01, dims=(1, 2, 3)).tolist() == pytest.approx([40.0, 40.0], abs=1e-3)


def test_fit_config_rejects_zero_views():
    import dataclasses

    with pytest.raises(ValueError, match="views must be positive"):
        fit.FitConfig.from_profile(dataclasses.replace(PROFILES["tiny"], train_views=0))


def test_proximal_fit_stays_nearer_the_template_and_still_fits():
    import dataclasses

    from p2nlib.data import world

    spec = nerf.NerfSpec.from_profile(PROFILES["tiny"])
    cfg = fit.FitConfig.from_profile(PROFILES["tiny"])
    objs = [world.make_object("chair", i, 0) for i in range(2)]
    plain = fit.fit(objs, spec, cfg, progress=False)
    near = fit.fit(objs, spec, dataclasses.replace(cfg, proximal=20.0), progress=False)
    d_plain, d_near = fit.template_distance(plain.params, spec), fit.template_distance(near.params, spec)
    assert (d_near < d_plain).all(), (d_near, d_plain)
    assert (d_plain > 0).all()
    assert (near.psnr_heldout > 8).all()      # still a fit, not the template
    # the paper's recipe (no pull) keeps the config, and so the dataset records, it always had
    assert "proximal" not in cfg.to_dict() and dataclasses.replace(cfg, proximal=1.0).to_dict()["proximal"] == 1.0


def test_fit_with_ground_truth_rendered_beforehand_is_the_same_fit():
    import dataclasses

    from p2nlib.data import world

    spec = nerf.NerfSpec.from_profile(PROFILES["tiny"])
    cfg = dataclasses.replace(fit.FitConfig.from_profile(PROFILES["tiny"]), warmup_steps=5, fit_steps=5)
    objs = [world.make_object("chair", i, 0) for i in range(2)]
    gt = fit.ground_truth(objs, cfg)
    a = fit.fit(objs, spec, cfg, progress=False)
    b = fit.fit(objs, spec, cfg, progress=False, views=gt)
    assert all(torch.equal(a.params[k], b.params[k]) for k in nerf.PARAM_NAMES)
    assert torch.equal(a.psnr_heldout, b.psnr_heldout)
    with pytest.raises(ValueError, match=r"ground_truth.train has shape .* fit.ground_truth"):
        fit.fit(objs[:1], spec, cfg, progress=False, views=gt)


def test_bf16_products_follow_the_float32_network():
    import dataclasses

    spec = nerf.NerfSpec(32, 4)
    params = nerf.init_params(spec, 3, "random", seed=2)
    x = torch.rand(3, 200, 3) - 0.5
    s32, c32 = nerf.forward(params, x, spec.freqs)
    s16, c16 = nerf.forward(params, x, spec.freqs, bf16=True)
    assert s16.dtype == c16.dtype == torch.float32
    assert (c16 - c32).abs().max() < 2e-2 and (s16 - s32).abs().max() < 5e-2 * s32.abs().max().clamp_min(1)
    cfg = dataclasses.replace(fit.FitConfig.from_profile(PROFILES["tiny"]), bf16=False)
    # float32 (the paper's) keeps the config, and so the datasets' fingerprints, it always had
    assert "bf16" not in cfg.to_dict() and dataclasses.replace(cfg, bf16=True).to_dict()["bf16"] is True
    from p2nlib.core.device import native_bf16       # the lever applies only where bfloat16 is native

    assert fit.FitConfig.from_profile(PROFILES["small"]).bf16 == (PROFILES["small"].fit_bf16 and native_bf16())


def test_reference_renders_are_memoised_exactly_and_bounded():
    """Evaluation references (ground truth, a dataset's own NeRFs) render once per process; a hit equals a new
    render exactly, is a copy, follows a refitted dataset's checksum, and the memo stays within its bytes."""
    from types import SimpleNamespace

    from p2nlib.data import fit, world
    from p2nlib.eval import views

    objs = [world.make_object("chair", 0), world.make_object("mug", 1)]
    poses = views.eval_poses(2)
    memo, views.MEMO = views.MEMO, views.RenderMemo()
    try:
        first = views.ground_truth(objs, poses, 8, 8)
        again = views.ground_truth(objs, poses, 8, 8)
        assert views.MEMO.hits == 1 and torch.equal(first, again)
        assert torch.equal(first, fit.render_ground_truth(objs, poses, 8, 8))
        again.zero_()                                             # a hit is a copy: the memo is not changed
        assert torch.equal(views.ground_truth(objs, poses, 8, 8), first)

        spec = nerf.NerfSpec(width=16, freqs=2)
        params = nerf.init_params(spec, 3, "random", seed=1)
        ds = SimpleNamespace(spec=spec, manifest={"checksums": {"params.safetensors": "a"}},
                             select=lambda idx: {k: v[idx] for k, v in params.items()})
        r = views.dataset_renders(ds, [0, 2], poses, 8, 8)
        assert torch.equal(r, fit.render_nerfs(ds.select([0, 2]), spec, poses, 8, 8))
        params = {k: v * 2 for k, v in params.items()}
        ds.manifest = {"checksums": {"params.safetensors": "b"}}  # a refitted dataset: rendered anew
        assert not torch.equal(views.dataset_renders(ds, [0, 2], poses, 8, 8), r)

        views.MEMO = views.RenderMemo(max_bytes=first.numel() * first.element_size())
        views.ground_truth(objs, poses, 8, 8)
        views.ground_truth(objs[:1], poses, 8, 8)
        assert len(views.MEMO.entries) == 1                       # the older entry left
    finally:
        views.MEMO = memo


def test_nerf_renders_do_not_depend_on_the_chunk_size(monkeypatch):
    """CPU NeRF renders go in cache-sized chunks (``fit.NERF_CPU_CHUNK``); the chunk only bounds how many points are
    evaluated at once, so any chunk size gives the same images, and the optimiser's checks are those renders."""
    from p2nlib.baselines import optimize

    spec = nerf.NerfSpec(width=16, freqs=2)
    params = nerf.init_params(spec, 3, "random", seed=2)
    poses = cameras.turntable(2, elevation=25.0)
    shots = {}
    for chunk in (1 << 9, 1 << 12, 1 << 18):
        monkeypatch.setattr(fit, "NERF_CPU_CHUNK", chunk)
        shots[chunk] = fit.render_nerfs(params, spec, poses, 8, 8, opacity=True)
    for img, alpha in shots.values():
        assert torch.allclose(img, shots[1 << 18][0], atol=1e-6) and torch.allclose(alpha, shots[1 << 18][1], atol=1e-6)
    check, alpha = optimize._check_render(params, spec, poses, 8, 8)
    assert torch.allclose(check, shots[1 << 18][0], atol=1e-6) and check.shape == (3, 2, 8, 8, 3)
