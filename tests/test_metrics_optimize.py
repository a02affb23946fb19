"""Metrics on cases with known answers, the convergence test, and the batched per-prompt optimiser."""
import dataclasses

import numpy as np
import pytest
import torch

from p2nlib import clip
from p2nlib.baselines import guidance, optimize
from p2nlib.core.profiles import get_profile
from p2nlib.data import nerf
from p2nlib.eval import metrics

TINY = get_profile("tiny")


@pytest.fixture(scope="module")
def encoder():
    return clip.build_small_clip(TINY)


def test_identical_images_have_similarity_one(encoder):
    views = torch.rand(3, 2, 16, 16, 3)
    assert torch.allclose(metrics.image_similarity(encoder, views, views), torch.ones(3), atol=1e-5)
    other = torch.rand(3, 2, 16, 16, 3)
    a = encoder.encode_images(views.reshape(-1, 16, 16, 3)).reshape(3, 2, -1)
    b = encoder.encode_images(other.reshape(-1, 16, 16, 3)).reshape(3, 2, -1)
    assert torch.allclose(metrics.image_similarity(encoder, views, other), (a * b).sum(-1).mean(1), atol=1e-6)


def test_text_similarity_matches_manual_cosine(encoder):
    views = torch.rand(2, 3, 16, 16, 3)
    texts = ["a red chair", "a blue car"]
    got = metrics.text_similarity(encoder, texts, views)
    t = encoder.encode_text(texts)
    v = encoder.encode_images(views.reshape(-1, 16, 16, 3)).reshape(2, 3, -1)
    assert torch.allclose(got, torch.stack([(v[i] @ t[i]).mean() for i in range(2)]), atol=1e-5)
    with pytest.raises(ValueError, match="2 texts but renders for 3"):
        metrics.text_similarity(encoder, texts, torch.rand(3, 1, 16, 16, 3))


def test_frechet_distance_known_answers():
    rng = np.random.default_rng(0)
    a = rng.normal(size=(400, 6))
    assert metrics.frechet(a, a) == pytest.approx(0.0, abs=1e-6)
    # same covariance, mean shifted by 2 in each of 6 dims: distance = |mu_a - mu_b|^2 = 24
    assert metrics.frechet(a, a + 2.0) == pytest.approx(24.0, rel=1e-6)
    with pytest.raises(ValueError, match="needs more than 6 samples"):
        metrics.frechet(a[:6], a[:6])


def test_frechet_distance_is_pytorch_fids_formula():
    fid_score = pytest.importorskip("pytorch_fid.fid_score")
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(300, 20)), rng.normal(size=(300, 20)) + 0.3
    stats = (a.mean(0), np.cov(a, rowvar=False), b.mean(0), np.cov(b, rowvar=False))
    try:
        expected = fid_score.calculate_frechet_distance(*stats)
    except TypeError:                     # this SciPy's sqrtm no longer takes pytorch-fid's `disp`
        pytest.skip("pytorch-fid's own formula does not run with this SciPy")
    assert metrics.frechet_distance(*stats) == pytest.approx(expected, rel=1e-12)


def test_frechet_images_falls_back_to_clip_features(encoder, monkeypatch, tmp_path):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))            # no Inception weights there
    assert metrics.inception_weights() is None
    imgs = torch.rand(2, 40, 8, 8, 3)                           # 80 samples > 32 dims
    res = metrics.frechet_images(encoder, imgs, imgs)
    assert res.metric.startswith("FD-CLIP") and res.samples == 80 and res.dims == encoder.embed_dim
    assert res.value == pytest.approx(0.0, abs=1e-4)
    with pytest.raises(FileNotFoundError, match="hub/checkpoints"):
        metrics.frechet_images(encoder, imgs, imgs, backend="inception")
    assert metrics.views_for_frechet(3, 128) == 65 and metrics.views_for_frechet(100, 128) == 8


def test_psnr_of_a_known_error():
    a = torch.full((2, 4, 4, 3), 0.5)
    assert metrics.psnr(a, a + 0.1).item() == pytest.approx(20.0, abs=1e-4)


def test_convergence_test_on_a_synthetic_curve():
    eps, k = 1e-3, 3
    curve = [0.5, 0.1, 5e-4, 5e-4, 0.02, 5e-4, 4e-4, 3e-4, 1e-4]
    assert optimize.converged_epoch(curve, eps, k) == 8          # the streak restarts after 0.02
    assert optimize.converged_epoch(curve[:7], eps, k) is None
    # a decaying curve d_t = 0.1 * 0.5^t drops below eps = 1e-3 from t = 7 on, so k = 3 -> epoch 9
    assert optimize.converged_epoch([0.1 * 0.5 ** t for t in range(1, 20)], eps, k) == 9


def test_optimizer_runs_are_independent_seeded_and_stop(encoder):
    spec = nerf.NerfSpec.from_profile(TINY)
    cfg = optimize.OptimConfig(size=8, samples=8, views=1, lr=1e-2, epoch_iters=2, eps=1e9, k=2,
                               max_epochs=4, check_views=2, check_size=8)
    # runs 0 and 1 share init and seed, run 2 has another seed; eps is huge so all stop after k epochs
    init = optimize.template_init(spec, 3)
    targets = encoder.encode_text(["a chair", "a chair", "a chair"])
    res = optimize.optimize(init, guidance.TextGuidance(encoder, targets), spec, cfg, seeds=[5, 5, 6],
                            targets=targets, encoder=encoder, progress=False)
    assert res.iterations == [4, 4, 4]
    assert len(res.similarity[0]) == 3 and res.snapshots.shape == (3, 3, 8, 8, 3)
    for k in nerf.PARAM_NAMES:   # equal up to float round-off of batched kernels
        assert torch.allclose(res.params[k][0], res.params[k][1], atol=1e-5)
    assert (res.params["l0.weight"][0] - res.params["l0.weight"][2]).abs().max() > 1e-3
    assert all(p.requires_grad for p in encoder.model.parameters())   # the encoder is restored
    assert res.similarity_at(0, 3) == res.similarity[0][1]


def test_optimizer_drops_converged_runs_and_reports_the_rest(encoder):
    spec = nerf.NerfSpec.from_profile(TINY)
    cfg = optimize.OptimConfig(size=8, samples=8, views=1, lr=1e-2, epoch_iters=2, eps=1e-12, k=1,
                               max_epochs=3, check_views=2, check_size=8)
    ref = torch.rand(2, 8, 8, 3)
    from p2nlib.data import cameras
    guid = guidance.ImageGuidance(encoder, ref, cameras.orbit([0.0, 90.0], [20.0, 20.0]))
    init = optimize.stack_inits(optimize.template_init(spec, 1), nerf.init_params(spec, 1, "random", seed=3))
    res = optimize.optimize(init, guid, spec, cfg, seeds=[0, 1], targets=guid.targets, encoder=encoder,
                            progress=False)
    assert res.iterations == [None, None]                         # nothing changes by < 1e-12 per epoch
    assert (optimize.iterations_or_cap(res) == 6).all()
    assert not torch.equal(res.params["l6.bias"][0], init["l6.bias"][0])
    with pytest.raises(ValueError, match="2 runs need 2 seeds"):
        optimize.optimize(init, guid, spec, cfg, seeds=[0], targets=guid.targets, encoder=encoder, progress=False)


def test_bf16_optimisation_keeps_the_gradient_and_logs_in_float32(encoder, monkeypatch):
    """``OptimConfig.bf16`` (ours): the products run in bfloat16 while optimising, the SDS/CLIP gradient stays that of
    float32 (the same noise, the same views), and the convergence test's check renders and logs are float32: the
    logs at the start (before any step) are identical."""
    from p2nlib.baselines import sds
    from p2nlib.data import cameras
    from p2nlib.priors import models

    from p2nlib.core.device import native_bf16

    assert optimize.OptimConfig.from_profile(get_profile("small")).bf16 == native_bf16()   # only where it is native
    assert not optimize.OptimConfig.from_profile(get_profile("paper")).bf16
    spec = nerf.NerfSpec.from_profile(TINY)
    torch.manual_seed(0)
    prior = models.TextPrior(models.PriorConfig(size=8, channels=(16, 16, 32)), encoder.embed_dim).eval()
    emb = encoder.encode_text(["a chair", "a red mug"])
    init = optimize.stack_inits(optimize.blob_init(spec, 1, steps=50), nerf.init_params(spec, 1, "random", seed=3))
    c2w = cameras.orbit([30.0, 200.0], [20.0, 35.0]).reshape(2, 1, 4, 4)
    for guide_of in (lambda: sds.TextSDSGuidance(prior, emb, scale=5.0, seed=1), lambda: guidance.TextGuidance(encoder, emb)):
        grads = []
        for bf16 in (False, True):
            p = {k: v.clone().requires_grad_(True) for k, v in init.items()}
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
                loss = guide_of().loss(optimize._render_fn(p, spec, 8, bf16), c2w, 8, torch.arange(2))
            loss.float().sum().backward()
            grads.append(nerf.flatten({k: v.grad for k, v in p.items()}))
        assert torch.nn.functional.cosine_similarity(*grads, dim=1).min() > 0.95

    checks = []
    real_check = optimize._check_render

    def check_render(*args, **kw):                   # every check render of the test runs outside autocast
        checks.append(torch.is_autocast_enabled("cpu"))
        return real_check(*args, **kw)

    monkeypatch.setattr(optimize, "_check_render", check_render)
    cfg = optimize.OptimConfig(size=8, samples=8, views=1, lr=1e-2, epoch_iters=2, eps=1e9, k=1, max_epochs=2,
                               check_views=2, check_size=8)
    runs = {bf16: optimize.optimize(init, guidance.TextGuidance(encoder, emb), spec, dataclasses.replace(cfg, bf16=bf16),
                                    seeds=[0, 1], targets=emb, encoder=encoder, progress=False)
            for bf16 in (False, True)}
    assert runs[True].config.bf16 and not runs[False].config.bf16
    assert [s[0] for s in runs[True].similarity] == [s[0] for s in runs[False].similarity]
    assert torch.equal(runs[True].snapshots[:, 0], runs[False].snapshots[:, 0])
    assert len(checks) == 4 and not any(checks)        # start + one epoch per run set (all stop at k = 1)
    res = runs[True]                                  # the last snapshot is a float32 render of the logged weights
    again, _ = real_check(res.final_params, spec, cameras.turntable(2, elevation=25.0), 8, 8)
    assert torch.equal((again[:, 0] * 255).round().to(torch.uint8), res.snapshots[:, -1])
    assert all(torch.isfinite(res.params["l0.weight"]).all() for res in runs.values())
