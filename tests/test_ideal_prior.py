"""The ideal (closed-form) priors: the denoiser is exact on tiny sets, plugs into score distillation unchanged, and
holds no object the book scores against."""
import math

import pytest
import torch

from p2nlib.core.profiles import PROFILES
from p2nlib.priors import ideal, models
from p2nlib.priors.sampling import guided_eps

S = 4
CFG = models.PriorConfig(size=S, channels=(8, 8, 8))


def _bank(n=3, seed=0) -> ideal.RenderBank:
    g = torch.Generator().manual_seed(seed)
    c = ideal.AZIMUTHS * len(ideal.ELEVATIONS)
    renders = torch.rand(n, c, 3, S, S, generator=g) * 2 - 1
    return ideal.RenderBank(renders, [f"obj-{i}" for i in range(n)], ["chair"] * n, [[f"caption {i}"] for i in range(n)])


def _text_prior(bank, **kw):
    n = len(bank.object_ids)
    emb = torch.nn.functional.normalize(torch.eye(n, 8), dim=-1)        # object i's caption: the i-th axis
    return ideal.IdealTextPrior(bank, CFG, ideal.IdealConfig(**kw), emb, torch.arange(n))


def test_posterior_mean_with_one_render_is_that_render():
    y = torch.randn(1, 12)
    x = torch.randn(5, 12)
    a = torch.rand(5)
    out = ideal.posterior_mean(x, a, y, torch.zeros(5, 1))
    assert torch.allclose(out, y.expand(5, -1), atol=1e-6)


def test_posterior_mean_at_small_noise_is_the_nearest_render():
    ys = torch.randn(6, 12)
    a = torch.full((6,), 0.9999)
    x = a.sqrt()[:, None] * ys + (1 - a).sqrt()[:, None] * 0.1 * torch.randn(6, 12)
    out = ideal.posterior_mean(x, a, ys, torch.zeros(6, 6))
    assert torch.allclose(out, ys, atol=1e-4)


def test_posterior_mean_matches_the_formula():
    ys, x, a = torch.randn(4, 7), torch.randn(2, 7), torch.tensor([0.3, 0.7])
    log_pi = torch.log(torch.tensor([[0.1, 0.2, 0.3, 0.4], [0.25, 0.25, 0.25, 0.25]]))
    want = []
    for b in range(2):
        logits = torch.stack([log_pi[b, i] - (x[b] - a[b].sqrt() * ys[i]).pow(2).sum() / (2 * (1 - a[b]))
                              for i in range(4)])
        want.append((torch.softmax(logits, 0)[:, None] * ys).sum(0))
    assert torch.allclose(ideal.posterior_mean(x, a, ys, log_pi), torch.stack(want), atol=1e-5)


def test_text_prior_with_one_object_returns_its_render_from_the_requested_camera():
    bank = _bank(3)
    prior = _text_prior(bank, top_k=1)
    t = torch.tensor([500, 900])
    a = prior.alphas[t]
    x_t = torch.randn(2, 3, S, S)
    text = torch.nn.functional.normalize(torch.eye(3, 8)[[2, 0]], dim=-1)
    cam = torch.tensor([[15.0, 25.0], [347.0, 11.0]])           # the grid's (15, 25) and, nearest, (345, 10)
    eps = prior(x_t, t, text, cam)
    x0 = (x_t - (1 - a).sqrt().view(-1, 1, 1, 1) * eps) / a.sqrt().view(-1, 1, 1, 1)
    idx = ideal.nearest_camera(cam[:, 0], cam[:, 1])
    assert ideal.grid_angles()[idx].tolist() == [[15.0, 25.0], [345.0, 10.0]]
    assert torch.allclose(x0[0], bank.renders[2, idx[0]], atol=1e-4)
    assert torch.allclose(x0[1], bank.renders[0, idx[1]], atol=1e-4)
    assert prior.top_objects(text).tolist() == [[2], [0]]              # what the prior is uniform over ...
    lw = _text_prior(bank, top_k=2).log_weights(text)                  # ... and its log weights
    assert lw.shape == (2, 3) and (lw == 0).sum(1).tolist() == [2, 2] and lw[0, 2] == 0 and lw[1, 0] == 0


def test_dropped_condition_is_uniform_over_every_object_from_the_camera_and_guidance_plugs_in():
    bank = _bank(3)
    prior = _text_prior(bank, top_k=1)
    x_t, t = torch.randn(2, 3, S, S), torch.tensor([300, 300])
    text = torch.nn.functional.normalize(torch.eye(3, 8)[:2], dim=-1)
    cam = torch.tensor([[0.0, 10.0], [90.0, 40.0]])
    unc = prior(x_t, t, text, cam, drop=torch.ones(2, dtype=torch.bool))
    idx = ideal.nearest_camera(cam[:, 0], cam[:, 1])
    at_cam = bank.renders.flatten(2)[:, idx].transpose(0, 1)          # every object, from each row's camera
    a = prior.alphas[t]
    x0 = ideal.posterior_mean(x_t.flatten(1), a, at_cam, torch.zeros(2, at_cam.shape[1]))
    want = (x_t.flatten(1) - a.sqrt()[:, None] * x0) / (1 - a).sqrt()[:, None]
    assert torch.allclose(unc.flatten(1), want, atol=1e-4)
    g = guided_eps(prior, x_t, t, (text, cam), 1.0)                 # scale 1: the conditional prediction
    assert torch.allclose(g, prior(x_t, t, text, cam), atol=1e-5)


def test_view_prior_weights_objects_by_the_reference_and_reads_the_target_camera():
    bank = _bank(4, seed=1)
    prior = ideal.IdealViewPrior(bank, CFG, ideal.IdealConfig(ref_sigma=0.05), (30.0, 25.0))
    ref = bank.renders[3, prior.ref_index][None]                    # object 3 seen from the reference camera
    lw = prior.log_weights(ref)
    assert int(lw.argmax()) == 3 and math.isclose(float(torch.logsumexp(lw, -1)), 0.0, abs_tol=1e-5)
    enc = models.camera_encoding(torch.tensor([[15.0, 90.0, 0.0]]))  # +15 deg elevation, +90 deg azimuth
    cam = prior.target_cameras(enc)
    assert ideal.grid_angles()[cam].tolist() == [[120.0, 40.0]]
    t = torch.tensor([100])
    eps = prior(torch.randn(1, 3, S, S), t, ref, enc)
    assert eps.shape == (1, 3, S, S) and torch.isfinite(eps).all()


def test_view_prior_refuses_a_reference_camera_off_the_orbit():
    with pytest.raises(ValueError, match="not a camera"):
        ideal.IdealViewPrior(_bank(2), CFG, ideal.IdealConfig(), (31.0, 25.0))


@pytest.mark.parametrize("profile", ["tiny", "small"])
def test_no_scored_object_is_in_the_ideal_priors_bank(profile):
    from p2nlib.chapters.base import OOD_IMAGE_CATEGORIES
    from p2nlib.data import splits, store

    p = PROFILES[profile]
    held = {o.object_id for o in ideal.bank_objects(p)}
    objs = store.dataset_objects(p)
    split = store.split_for(objs)
    scored = {o.object_id for o in objs if split[o.object_id] != "train"}
    scored |= {o.object_id for o in splits.objects("ood_prompts", p, OOD_IMAGE_CATEGORIES)}
    scored |= {o.object_id for o in splits.objects("controls", p)}
    assert scored and not held & scored
    # and it holds the rest of the CLIP training set: train scenes of the dataset and the other categories
    assert {o.object_id for o in objs if split[o.object_id] == "train"} <= held


def test_kaplan_meier_median_with_censoring():
    from p2nlib.eval.stats import km_median

    assert km_median([10, 20, 30, 40], [True] * 4) == 20          # survival 0.75, 0.5 at 20
    # two of four censored at the cap (100): survival 0.75 after 10, then 0.5 after 30 (at risk 2 of the 3 left)
    assert km_median([10, 30, 100, 100], [True, True, False, False]) == 30
    assert km_median([10, 100, 100, 100], [True, False, False, False]) is None   # never falls to half
    with pytest.raises(ValueError):
        km_median([1, 2], [True])
