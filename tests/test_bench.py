"""make bench: each benchmark runs on the tiny profile and reports positive, finite figures."""
import math

from p2nlib.book import bench


def _finite_positive(res: dict, keys) -> None:
    for k in keys:
        assert isinstance(res[k], float) and math.isfinite(res[k]) and res[k] > 0, (k, res[k])


def test_stage_bench_times_stage1_both_ways_the_priors_clip_aligner_and_sds():
    res = bench.bench_stages("tiny", "cpu", repeats=1)
    timed = [k for k in res if k.endswith("(ms)") or "GFLOP/s" in k]
    assert any("batched by token shape" in k for k in timed) and any("one VAE at a time" in k for k in timed)
    assert any(k.startswith("text prior") for k in timed) and any(k.startswith("view prior") for k in timed)
    assert any(k.startswith("text SDS iteration") for k in timed)
    assert {"small CLIP step, fp32 (ms)", "small CLIP step, channels_last (ms)", "aligner step, bf16 autocast (ms)"} <= set(timed)
    _finite_positive(res, [k for k in timed if not isinstance(res[k], str)])


def test_fitting_bench_reports_both_precisions_against_the_peak():
    res = bench.bench_fitting("tiny", objects=2, steps=3, device="cpu", one_at_a_time=False)
    _finite_positive(res, ["ground truth, eager world SDFs (s)", "ground truth, compiled world SDFs (s)", "batched GFLOP/s (MLP products, fp32)",
                           "batched GFLOP/s (MLP products, bf16)", "sgemm peak GFLOP/s (1024^2, this run)",
                           "fraction of sgemm peak (fp32)", "width-W bmm alone, fp32 (fraction of peak)"])
    assert res["objects"] == 2 and res["steps"] == 6
