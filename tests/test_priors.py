"""The diffusion priors: a tiny prior learns its condition, SDS pushes a render toward it, cameras wrap,
and the cache retrains when the config changes."""
import dataclasses

import pytest
import torch

from p2nlib.baselines.sds import ImageSDSGuidance, TextSDSGuidance
from p2nlib.core.profiles import PROFILES
from p2nlib.data import cameras
from p2nlib.priors import models, sampling, train
from p2nlib.priors.models import PriorConfig

COLOURS = torch.tensor([[0.9, 0.1, 0.1], [0.1, 0.2, 0.9]])     # red, blue
CFG = PriorConfig(size=8, channels=(16, 16, 32), steps=400, batch=16, lr=2e-3)


class _Encoder:
    fingerprint = "toy"


def avg_error(prior, x, cond):
    """Conditional denoising error averaged over timesteps and noise draws (one draw is too noisy to compare)."""
    return sum(sampling.denoising_error(prior, x, cond, t=t, seed=s).item()
               for t in (100, 300, 500, 700) for s in range(4)) / 16


def toy_data(size: int = 8) -> train.PriorData:
    """Two 'objects': flat red and flat blue images, condition = one-hot caption embedding."""
    views = torch.stack([c.view(3, 1, 1).expand(3, size, size) for c in COLOURS]) * 2 - 1    # (2, 3, S, S)
    views = views[:, None].expand(2, 4, 3, size, size).contiguous()
    poses = cameras.turntable(4)[None].expand(2, 4, 4, 4).contiguous()
    return train.PriorData(views, poses, [[0], [1]], ["red", "blue"], ["red", "blue"], torch.eye(2))


@pytest.fixture(scope="module")
def toy_prior(tmp_path_factory):
    import os

    os.environ["P2N_ARTIFACTS"] = str(tmp_path_factory.mktemp("artifacts"))
    try:
        return train.text_prior(PROFILES["tiny"], _Encoder(), data=toy_data(), cfg=CFG, progress=False)
    finally:
        del os.environ["P2N_ARTIFACTS"]


def test_tiny_text_prior_learns_its_condition(toy_prior):
    hist = toy_prior.info["history"]["loss"]
    assert hist[-1] < 0.5 * hist[0]
    data = toy_data()
    red, blue = data.views[0, :1], data.views[1, :1]
    cond_red = (torch.eye(2)[:1],)
    # under "red" the red image is the easier one to denoise
    err_red, err_blue = avg_error(toy_prior, red, cond_red), avg_error(toy_prior, blue, cond_red)
    assert err_red < err_blue, (err_red, err_blue)
    # guided samples take the colour of their condition
    for sampler in sampling.SAMPLERS:
        s = sampling.sample(toy_prior, (torch.eye(2),), scale=3.0, steps=20, sampler=sampler)
        assert s[0, ..., 0].mean() > s[0, ..., 2].mean() and s[1, ..., 2].mean() > s[1, ..., 0].mean(), sampler


def test_sampling_repeats_for_a_seed_and_names_an_unknown_sampler(toy_prior):
    cond = (torch.eye(2),)
    a, b = (sampling.sample(toy_prior, cond, steps=10, seed=3) for _ in range(2))
    assert torch.equal(a, b)
    assert not torch.equal(a, sampling.sample(toy_prior, cond, steps=10, seed=4))
    with pytest.raises(ValueError, match="unknown sampler 'euler'.*ddpm, ddim"):
        sampling.sample(toy_prior, cond, sampler="euler")


def test_sds_gradient_moves_a_render_toward_the_condition(toy_prior):
    """Moving a grey render toward an image of the "red" condition makes the prior find it more "red" (its
    denoising error under "red" falls relative to that under "blue"); the SDS gradient at the grey render
    points toward that image, and following it makes the render red."""
    red_c, blue_c = (torch.eye(2)[:1],), (torch.eye(2)[1:],)
    target = train.to_images(toy_data().views[0, :1])[0]                           # a "red" image (8, 8, 3)
    grey = torch.full_like(target, 0.5)

    def margin(x):   # > 0: the prior denoises x better as "red" than as "blue"
        x = train.to_model(x[None], 8)
        return avg_error(toy_prior, x, blue_c) - avg_error(toy_prior, x, red_c)

    margins = [margin((1 - a) * grey + a * target) for a in (0.0, 0.5, 1.0)]
    assert margins[0] < margins[1] < margins[2], margins
    sample = target

    img = grey[None, None].clone().requires_grad_(True)                             # (1, 1, 8, 8, 3)
    guide = TextSDSGuidance(toy_prior, torch.eye(2)[:1], scale=3.0, t_range=(0.2, 0.8), seed=0)

    def render_fn(c2w, size):
        return img.expand(c2w.shape[0], c2w.shape[1], size, size, 3), None

    grads = []
    for _ in range(8):
        img.grad = None
        guide.loss(render_fn, torch.eye(4)[None, None], 8, torch.tensor([0])).sum().backward()
        grads.append(img.grad[0, 0].clone())
    step = -torch.stack(grads).mean(0)                                              # the descent direction
    assert (step * (sample - grey)).sum() > 0

    opt = torch.optim.Adam([img], lr=0.02)
    for _ in range(40):
        loss = guide.loss(render_fn, torch.eye(4)[None, None], 8, torch.tensor([0]))
        opt.zero_grad()
        loss.sum().backward()
        opt.step()
        with torch.no_grad():
            img.clamp_(0, 1)
    moved = img.detach()[0, 0]
    assert (moved - target).norm() < 0.8 * (grey - target).norm()
    assert moved[..., 0].mean() > moved[..., 2].mean()                              # redder than blue


def test_camera_angles_invert_orbit_and_azimuth_wraps_around():
    az = torch.tensor([0.0, 90.0, 181.0, 355.0])
    el = torch.tensor([10.0, 25.0, 40.0, -5.0])
    ang = models.camera_angles(cameras.orbit(az, el))
    assert torch.allclose(ang[:, 0], az, atol=1e-3) and torch.allclose(ang[:, 1], el, atol=1e-3)
    assert torch.allclose(ang[:, 2], torch.full((4,), 2.0), atol=1e-5)
    # 355 -> 5 degrees is a +10 degree move: the same encoding as 0 -> 10, though the raw difference is -350
    a = models.relative_camera(cameras.orbit([355.0], [20.0]), cameras.orbit([5.0], [20.0]))
    b = models.relative_camera(cameras.orbit([0.0], [20.0]), cameras.orbit([10.0], [20.0]))
    assert a[0, 1].item() == pytest.approx(-350.0, abs=1e-3)
    assert torch.allclose(models.camera_encoding(a), models.camera_encoding(b), atol=1e-5)
    assert not torch.allclose(models.camera_encoding(a), models.camera_encoding(-a), atol=1e-3)


def test_prior_cache_is_reused_and_a_changed_config_retrains(tmp_path, monkeypatch):
    monkeypatch.setenv("P2N_ARTIFACTS", str(tmp_path))
    cfg = dataclasses.replace(CFG, steps=3)
    p = PROFILES["tiny"]
    first = train.view_prior(p, _Encoder(), data=toy_data(), cfg=cfg, progress=False)
    again = train.view_prior(p, _Encoder(), data=toy_data(), cfg=cfg, progress=False)
    assert again.fingerprint == first.fingerprint and again.info == first.info
    assert all(torch.equal(a, b) for a, b in zip(first.state_dict().values(), again.state_dict().values()))
    other = train.view_prior(p, _Encoder(), data=toy_data(), cfg=dataclasses.replace(cfg, steps=4), progress=False)
    assert other.fingerprint != first.fingerprint
    assert len(list((tmp_path / "tiny" / "priors").glob("view-*.safetensors"))) == 2


def test_bf16_training_moves_the_prior_by_rounding_only(tmp_path, monkeypatch):
    """``PriorConfig.bf16`` trains the UNet under bfloat16 autocast: another cache entry, float32 weights, and
    after a few steps from the same start the weights differ from float32's by rounding, not by direction."""
    monkeypatch.setenv("P2N_ARTIFACTS", str(tmp_path))
    cfg = dataclasses.replace(CFG, steps=3)
    p = PROFILES["tiny"]
    f32 = train.text_prior(p, _Encoder(), data=toy_data(), cfg=cfg, progress=False)
    bf = train.text_prior(p, _Encoder(), data=toy_data(), cfg=dataclasses.replace(cfg, bf16=True), progress=False)
    assert bf.fingerprint != f32.fingerprint
    init = train.text_prior(p, _Encoder(), data=toy_data(), cfg=dataclasses.replace(cfg, steps=0), progress=False)
    moved = {k: (torch.cat([(a - i).flatten() for a, i in zip(m.state_dict().values(), init.state_dict().values())
                            if a.dtype == torch.float32])) for k, m in (("f32", f32), ("bf", bf))}
    assert all(v.dtype == torch.float32 for v in bf.state_dict().values() if v.is_floating_point())
    assert not torch.equal(moved["f32"], moved["bf"])
    assert torch.nn.functional.cosine_similarity(moved["f32"], moved["bf"], dim=0) > 0.9


def test_view_sds_renders_the_reference_first_and_returns_one_loss_per_run(toy_prior):
    prior = models.ViewPrior(CFG).eval()
    ref = torch.rand(2, 8, 8, 3)
    guide = ImageSDSGuidance(prior, ref, cameras.orbit([0.0, 90.0], [20.0, 20.0]), seed=0)
    seen = []

    def render_fn(c2w, size):
        seen.append(c2w)
        return torch.zeros(c2w.shape[0], c2w.shape[1], size, size, 3, requires_grad=True), None

    c2w = cameras.orbit([30.0, 60.0], [20.0, 20.0]).reshape(2, 1, 4, 4)
    loss = guide.loss(render_fn, c2w, 8, torch.tensor([0, 1]))
    assert loss.shape == (2,)
    assert torch.equal(seen[0][:, 0], guide.pose)
    # a render equal to the reference has no photometric loss; this one (black) has
    assert (loss > 0).all()
    with pytest.raises(ValueError, match="one reference pose"):
        ImageSDSGuidance(prior, ref, cameras.orbit([0.0], [20.0]))


def test_min_snr_weights_only_the_nearly_clean_timesteps_down():
    sched = models.scheduler(CFG)
    t = torch.tensor([0, 50, 200, 500, 900, 999])
    w = train.snr_weight(sched, t, 5.0)
    a = sched.alphas_cumprod[t]
    noisy = a / (1 - a) <= 5.0
    assert torch.allclose(w[noisy], torch.ones(int(noisy.sum())))      # SNR <= gamma: plain loss
    assert (w[~noisy] < 1).all() and w[0] < w[1]                          # cleaner -> lighter
    assert torch.equal(train.snr_weight(sched, t, 0.0), torch.ones(6))  # gamma 0: the plain DDPM loss


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_a_prior_on_the_gpu_takes_cpu_inputs_and_answers_on_their_device(toy_prior):
    gpu = toy_prior.to("cuda")
    try:
        x, cond = toy_data().views[0, :2], (torch.eye(2),)
        t = torch.tensor([100, 500])
        eps = gpu(x, t, *cond)
        assert eps.device.type == "cpu" and eps.shape == x.shape
        assert gpu(x.cuda(), t.cuda(), cond[0].cuda()).device.type == "cuda"
        guide = TextSDSGuidance(gpu, torch.eye(2), scale=3.0)
        render = torch.rand(2, 8, 8, 3, device="cuda", requires_grad=True)
        guide.sds(render, (torch.eye(2).cuda(),)).sum().backward()
        assert render.grad is not None and render.grad.device.type == "cuda"
    finally:
        toy_prior.to("cpu")


def test_scale_configs_read_widths_and_overrides_and_name_what_is_wrong():
    from p2nlib.core.errors import InputError
    from p2nlib.priors import scale

    p = PROFILES["small"]
    cfg = scale.parse_config("48,96,96:size=32:steps=4000:lr=5e-4", p)
    assert cfg.channels == (48, 96, 96) and (cfg.size, cfg.steps, cfg.lr) == (32, 4000, 5e-4)
    assert cfg.batch == p.prior_batch and not cfg.bf16     # the rest is the profile's
    assert scale.parse_config("48,96,96:bf16=1", p).bf16
    for bad in ("48,x,96", "48,96:width=3", "48,96:size", "64"):
        with pytest.raises(InputError, match="e.g."):
            scale.parse_config(bad, p)


def test_scale_study_scores_each_config_with_chapter_08s_measure():
    from p2nlib import clip
    from p2nlib.priors import scale

    p = PROFILES["tiny"]
    configs = [scale.parse_config(s, p) for s in ("16,16,32:steps=2", "16,32:steps=2")]
    rows = scale.study(p, clip.build_small_clip(p), configs, progress=False)
    assert len(rows) == 2 and rows[0]["parameters"] != rows[1]["parameters"]
    for r in rows:
        assert 0 <= r["zero-shot on samples"] <= 1 and r["FD-CLIP samples vs real"] >= 0 and r["training s"] > 0


def test_a_profile_gives_each_prior_its_own_widths():
    p = PROFILES["small"]
    assert PriorConfig.from_profile(p, "text").channels == tuple(p.text_prior_channels)
    assert PriorConfig.from_profile(p, "view").channels == tuple(p.prior_channels)
    with pytest.raises(ValueError, match="'text' or 'view'"):
        PriorConfig.from_profile(p, "txt")
