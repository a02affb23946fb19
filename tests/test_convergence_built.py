"""The SDS baselines' convergence test on each epoch's mean weights, its ceiling, and ``built``:
the measure that tells an object from an empty scene or a frame-filling slab."""
import pytest
import torch

from p2nlib import clip
from p2nlib.baselines import optimize
from p2nlib.baselines.runs import Runs
from p2nlib.core.profiles import PROFILES, get_profile
from p2nlib.data import cameras, fit, nerf, world
from p2nlib.eval import built

TINY = get_profile("tiny")
NOISE, DRIFT = 0.3, 0.05


@pytest.fixture(scope="module")
def encoder():
    return clip.build_small_clip(TINY)


class _Toy:
    """A guidance pulling the render toward that of a target NeRF, plus SDS-like noise (a fresh random direction
    every step). With ``drift`` the target's density grows every step, so the scene never settles."""

    def __init__(self, target: dict, spec, noise: float, drift: float = 0.0, seed: int = 0):
        self.target, self.spec, self.noise, self.drift, self.calls = target, spec, noise, drift, 0
        self.gen = torch.Generator().manual_seed(seed)

    def key(self):
        return {"toy": [self.noise, self.drift]}

    def loss(self, fn, c2w, size, idx):
        rgb, _ = fn(c2w, size)
        self.calls += 1
        target = {k: v.clone() for k, v in self.target.items()}
        target["l6.bias"][:, 3] += self.drift * self.calls
        with torch.no_grad():
            want, _ = optimize._render_fn(target, self.spec, 8)(c2w, size)
        noise = torch.randn(rgb.shape, generator=self.gen)
        return (rgb - want).pow(2).flatten(1).mean(1) + self.noise * (rgb * noise).flatten(1).mean(1)


def _run(encoder, noise: float, drift: float = 0.0, average: bool = True, raw_test: bool = True):
    spec = nerf.NerfSpec.from_profile(TINY)
    cfg = optimize.OptimConfig(size=8, samples=8, views=1, lr=1e-3, epoch_iters=10, eps=6e-5, k=2,
                               max_epochs=12, check_views=2, check_size=8, average=average)
    targets = encoder.encode_text(["a chair"])
    start = optimize.blob_init(spec, 1, steps=200)
    return optimize.optimize(start, _Toy(start, spec, noise, drift), spec, cfg, seeds=[0], targets=targets,
                             encoder=encoder, progress=False, stop_at_convergence=False, raw_test=raw_test)


def test_the_averaged_test_fires_on_a_converging_run_and_not_on_a_drifting_one(encoder):
    settled = _run(encoder, noise=NOISE)
    assert settled.iterations[0] is not None and settled.iterations[0] < settled.cap
    # the same run's raw weights keep jittering under the noise: the paper's test on them fires later or never
    raw = settled.iterations_raw[0]
    assert raw is None or raw > settled.iterations[0]
    drifting = _run(encoder, noise=NOISE, drift=DRIFT)
    assert drifting.iterations[0] is None and drifting.iterations_raw[0] is None
    # the logs the 'built' measure reads: one embedding and one occupied fraction per check view and epoch
    assert settled.embeddings.shape[:3] == (1, 13, 2) and settled.occupancy.shape == (1, 13, 2)
    # the logs survive the cache's round trip
    again = optimize.OptimResult.from_tensors(*settled.to_tensors())
    assert again.iterations_raw == settled.iterations_raw and torch.equal(again.occupancy, settled.occupancy)


def test_runs_without_the_raw_weights_test_log_the_same_and_refuse_its_iterations(encoder):
    """``raw_test=False`` (the controls) skips only the raw weights' check renders: the averaged test, the logs
    and the weights are those of the full run; asking for the paper's test on it is an error."""
    full, short = _run(encoder, noise=NOISE), _run(encoder, noise=NOISE, raw_test=False)
    assert short.changes_raw is None and short.iterations == full.iterations
    assert torch.equal(short.occupancy, full.occupancy) and short.similarity == full.similarity
    assert torch.equal(short.final_params["l0.weight"], full.final_params["l0.weight"])
    with pytest.raises(ValueError, match="raw_test=False"):
        short.iterations_raw
    again = optimize.OptimResult.from_tensors(*short.to_tensors())
    assert again.changes_raw is None


def test_ceiling_is_the_cap_over_the_earliest_convergence():
    assert optimize.ceiling(25, 3, 8) == pytest.approx(200 / 75)     # the old small profile: 2.67×
    assert optimize.ceiling(10, 2, 20) == 10.0
    assert optimize.OptimConfig(epoch_iters=100, k=3, max_epochs=40).ceiling == pytest.approx(40 / 3)
    with pytest.raises(ValueError, match="must be positive"):
        optimize.ceiling(10, 0, 20)
    for name in ("small", "paper"):       # every speed-up the book reports can reach 10×
        p = PROFILES[name]
        assert optimize.ceiling(p.sds_epoch_iters, p.sds_k, p.sds_max_epochs) >= 10


def test_blob_start_is_a_centred_grey_blob():
    spec = nerf.NerfSpec.from_profile(TINY)
    init = optimize.blob_init(spec, 2, steps=200)
    assert torch.equal(init["l0.weight"][0], init["l0.weight"][1])
    img, opacity = fit.render_nerfs(init, spec, cameras.turntable(2, elevation=25.0), 16, 16), None
    assert img[:, :, 8, 8].mean() < 0.85 and img[:, :, 0, 0].mean() > 0.97      # dark centre, white corners
    sigma, rgb = nerf.forward({k: v[:1] for k, v in init.items()}, torch.zeros(1, 1, 3), spec.freqs)
    assert sigma.item() == pytest.approx(optimize.BLOB_DENSITY, rel=0.3) and rgb.mean().item() == pytest.approx(0.5, abs=0.1)


def _rule(dim: int = 4) -> built.BuiltRule:
    text = torch.eye(dim)[:2]                               # "chair" = axis 0, "mug" = axis 1
    return built.BuiltRule(("chair", "mug"), text, built.occupancy_ranges(("chair", "mug"), 2, 16, 16, n=3))


def test_built_rejects_empty_and_slab_scenes_and_accepts_ground_truth():
    rule = _rule()
    poses = cameras.turntable(2, elevation=25.0)
    objs = world.make_objects(["chair"], 2, start=500)                    # not the reference objects
    _, gt = fit.render_ground_truth(objs, poses, 16, 16, opacity=True)
    spec = nerf.NerfSpec.from_profile(TINY)
    empty = optimize.template_init(spec, 1)
    slab = {k: v.clone() for k, v in empty.items()}
    slab["l6.bias"][:, 3] = 50.0                                          # density everywhere: a full frame
    _, o_empty = fit.render_nerfs(empty, spec, poses, 16, 16, opacity=True)
    _, o_slab = fit.render_nerfs(slab, spec, poses, 16, 16, opacity=True)
    chair_emb = torch.tensor([1.0, 0.1, 0, 0]).expand(2, 4)               # both views named "chair"
    mug_emb = torch.tensor([0.1, 1.0, 0, 0]).expand(2, 4)
    occ = {name: built.occupied_fraction(o) for name, o in (("gt", gt), ("empty", o_empty), ("slab", o_slab))}
    assert rule.built(chair_emb.expand(2, 2, 4), occ["gt"], "chair").all()
    assert not rule.built(chair_emb, occ["empty"][0], "chair")
    assert not rule.built(chair_emb, occ["slab"][0], "chair")
    assert not rule.built(mug_emb.expand(2, 2, 4), occ["gt"], "chair").any()  # the right shape, named wrong
    with pytest.raises(ValueError, match="unknown category 'vase'"):
        rule.built(chair_emb, occ["gt"][0], "vase")


def test_time_to_built_is_where_it_stays_built():
    assert built.first_stays([False, True, False, True, True]) == 3
    assert built.first_stays([True, True]) == 0
    assert built.first_stays([True, False]) is None and built.first_stays([]) is None


def test_runs_table_reports_built_and_the_raw_test(encoder):
    res = _run(encoder, noise=NOISE)
    runs = Runs(res, __import__("pandas").DataFrame([{"prompt": "a chair", "seed": 0}]))
    rule = built.BuiltRule(("chair", "mug"), encoder.encode_text(["a chair", "a mug"]),
                           {"chair": (0.0, 1.0), "mug": (0.0, 1.0)})
    row = runs.table(rule=rule, categories=["chair"]).iloc[0]
    flags = runs.built_flags(0, rule, "chair")
    assert len(flags) == 13 and row.built_final == flags[-1]
    assert row.iterations_to_built == (built.first_stays(flags) * 10 if row.stays_built else res.cap)
    assert row.iterations_raw >= row.iterations or not row.converged_raw


def test_bootstrap_interval_covers_the_statistic_and_shrinks_with_agreement():
    import numpy as np
    from p2nlib.eval import stats

    rng = np.random.default_rng(0)
    s = rng.uniform(100, 200, (6, 3))
    ours = s / 4 + rng.normal(0, 1, (6, 3))
    value = stats.median_ratio(s, ours)
    lo, hi = stats.bootstrap(stats.median_ratio, s, ours, n_boot=500)
    assert lo <= value <= hi and 3 < lo and hi < 5.5
    same = np.full((6, 3), 50.0)
    assert stats.bootstrap(stats.median_ratio, same * 3, same, n_boot=200) == (3.0, 3.0)
    with pytest.raises(ValueError, match="one shape"):
        stats.bootstrap(stats.median_ratio, s, ours[:, :2])


def test_t_interval_of_a_few_splits():
    from p2nlib.eval import stats

    mean, (lo, hi) = stats.t_interval([1.0, 2.0, 3.0])
    assert mean == 2.0 and hi - mean == pytest.approx(4.3027 / 3 ** 0.5, rel=1e-4) and mean - lo == hi - mean
    assert stats.t_interval([5.0, 5.0]) == (5.0, (5.0, 5.0))
    for bad in ([1.0], [1.0, float("nan")]):
        with pytest.raises(ValueError, match="two finite"):
            stats.t_interval(bad)


def test_sds_threshold_keeps_the_speed_of_change_of_the_longer_epoch():
    from p2nlib.chapters.base import sds_overrides

    for name in ("tiny", "small", "paper"):
        p = PROFILES[name]
        o = sds_overrides(p)
        # a steady drift of r per iteration changes an epoch's renders by (r * epoch)^2: the same r passes both
        r2 = p.opt_eps / p.opt_epoch_iters ** 2
        assert o["eps"] == pytest.approx(r2 * o["epoch_iters"] ** 2)
        assert o["average"] and optimize.ceiling(o["epoch_iters"], o["k"], o["max_epochs"]) >= 10
