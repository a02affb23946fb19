"""The controls of the per-prompt baselines on the tiny profile: every control runs, is judged from its logs and
becomes a claim of kind check; the novel views are the ones far from the reference; the headline prior is the
first that passes; the image controls' pass rules read what they say."""
import pandas as pd
import pytest
import torch

from p2nlib.book import claims, claims_spec
from p2nlib.chapters import controls, verdicts
from p2nlib.generate.pipeline import Prompt2NeRF


def test_novel_views_are_far_from_the_reference():
    # turntable(4): 0, 90, 180, 270 degrees; the reference is at 30: 0 is 30 away, the rest are >= 60 away
    assert controls.novel_views(4) == [1, 2, 3]
    assert controls.novel_views(8) == [2, 3, 4, 5, 6, 7]          # 0 and 45 are within 60 of 30
    with pytest.raises(ValueError, match="no check view"):
        controls.novel_views(1)


class _Rec:
    def __init__(self, cid, verdict):
        self.id, self.verdict = cid, verdict


def test_headline_prior_is_the_first_that_passes_every_control():
    ok = [_Rec(f"controls.text.x.{k}", "holds") for k in ("positive", "negative", "scratch")]
    bad = ok[:2] + [_Rec("controls.text.x.scratch", "does not hold")]
    assert verdicts.headline_prior({"trained": ok, "ideal": ok})[0] == "ideal"
    assert verdicts.headline_prior({"trained": ok, "ideal": bad})[0] == "trained"
    prior, why = verdicts.headline_prior({"trained": bad, "ideal": bad})
    assert prior == "ideal" and "no prior passes" in why and "controls.text.x.scratch" in why


@pytest.mark.slow
def test_every_control_runs_on_the_tiny_profile_and_becomes_a_check_claim(tiny_artifacts):
    pipe = Prompt2NeRF.load("tiny", "cpu")
    s = controls.suite(pipe, "cpu", 0, "ideal", progress=False)
    n_text, n_image = len(controls.TEXT_PROMPTS), 8
    seeds = s.text.table.seed.nunique()
    assert len(s.text.table) == 2 * n_text * seeds and len(s.image.table) == 2 * n_image * seeds
    assert set(s.text.table.control) == {"positive", "negative"}
    neg = s.text.table[s.text.table.control == "negative"]
    assert (neg.prompt != neg["start prompt"]).all()                 # another prompt, another category
    img = s.image.table
    pos = img[img.control == "positive"]
    want = (pos["novel PSNR at the cap"] >= pos["novel PSNR at the start"] - controls.POSITIVE_PSNR_DROP) & \
        (pos["novel IoU at the cap"] >= controls.POSITIVE_IOU)
    assert (pos.passed == want).all()
    assert s.image_scratch.novel_iou_final.between(0, 1).all() and s.image_scratch.reached.dtype == bool
    summary = s.summary()
    assert list(summary.index) == ["text", "image"] and summary.loc["image", "positive"] == pos.passed.mean()
    grid = controls.start_and_end(s.text, 0)
    assert grid["images"].shape[0] == 3 * n_text and len(grid["row_labels"]) == n_text
    claims.start("tiny", "cpu")
    recs = [claims.record(**c) for c in verdicts.control_claims(s)]
    assert [r.id for r in recs] == [f"controls.{m}.ideal.{k}" for m in ("text", "image")
                                    for k in ("positive", "negative", "scratch")]
    assert all(claims_spec.SPECS[r.id].kind == "check" for r in recs)
    assert all(r.verdict in ("holds", "does not hold") for r in recs)
    # the fitted starts are cached: a second suite reads every run back
    again = controls.suite(pipe, "cpu", 0, "ideal", progress=False)
    pd.testing.assert_frame_equal(again.text.table, s.text.table)
    assert torch.equal(again.image.runs.result.views, s.image.runs.result.views)
    # without its runs from scratch, a suite records its two scratch controls as not measured, and says why
    short = controls.suite(pipe, "cpu", 0, "ideal", progress=False, scratch=False)
    assert not short.ran_scratch and short.passed("text")["scratch"] is None
    pd.testing.assert_frame_equal(short.text.table, s.text.table)
    full = {r.id: r.verdict for r in recs}
    short_recs = {r.id: r for r in (claims.record(**c) for c in verdicts.control_claims(short))}
    assert list(short_recs) == [r.id for r in recs]
    for cid, r in short_recs.items():
        if cid.endswith(".scratch"):
            assert r.verdict == "not judged" and r.value is None and r.skipped == controls.SCRATCH_SKIPPED
        else:
            assert r.verdict == full[cid]
    assert not verdicts.passes(list(short_recs.values()))
