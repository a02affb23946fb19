"""The claims of chapters 03, 04 and 07 come from the chapter layer (``p2nlib.chapters.verdicts``): each function
takes the table its notebook shows and returns ``claims.record`` arguments that the claims table accepts."""
import pandas as pd
import pytest

from p2nlib.book import claims
from p2nlib.chapters import verdicts
from p2nlib.eval import stats

PSNR_GT = "PSNR vs ground truth (dB)"


def _recorded(recs: list[dict]) -> dict[str, claims.Claim]:
    claims.start("tiny", "cpu")
    return {r["id"]: claims.record(**r) for r in recs}


def test_vae_claim_reads_the_test_row_and_names_the_recipe():
    rec = pd.DataFrame({PSNR_GT: [23.0, 21.234], "original NeRF vs ground truth (dB)": [25.0, 24.5],
                        "PSNR vs original NeRF (dB)": [30.0, 27.25]}, index=["train", "test"])
    (c,) = verdicts.vae_claims(rec, "function-space")
    assert c["id"] == "vae.recon_psnr_test" and c["value"] == 21.23
    assert "recipe: function-space" in c["note"] and "24.50 dB" in c["note"] and "27.25 dB" in c["note"]
    assert _recorded([c])["vae.recon_psnr_test"].value == 21.23


def test_generation_and_rotation_claims_read_their_rows():
    gen = pd.DataFrame({PSNR_GT: [20.5, 19.814]}, index=["train", "test"])
    (g,) = verdicts.generation_claims(gen, "paper")
    assert g["value"] == 19.81 and "train scenes 20.50 dB" in g["note"]
    rot = pd.DataFrame({PSNR_GT: [19.0, 17.5], "PSNR from view 0 (dB)": [19.2, 19.9],
                        "consistency (dB)": [28.0, 22.0]}, index=["random-view training", "fixed-view training"])
    scenes = ["a", "b", "c", "d"]
    per_scene = {"random-view training": pd.DataFrame({PSNR_GT: [19.5, 18.5, 19.2, 18.8],
                                                       "consistency (dB)": [28.0, 27.0, 29.0, 28.0]}, index=scenes),
                 "fixed-view training": pd.DataFrame({PSNR_GT: [17.0, 18.0, 17.6, 17.4],
                                                      "consistency (dB)": [22.0, 27.5, 21.0, 29.5]}, index=scenes)}
    recs = verdicts.rotation_claims(rot, per_scene)
    assert [r["id"] for r in recs] == ["rotation.psnr_random_view_training", "rotation.psnr_fixed_view_training",
                                       "rotation.consistency_random", "rotation.consistency_fixed"]
    by_id = _recorded(recs)
    psnr = by_id["rotation.psnr_random_view_training"]        # paired: every scene better, so the interval clears 0
    assert psnr.value == 1.5 and psnr.n == 4 and 0 < psnr.ci95[0] <= 1.5 <= psnr.ci95[1]
    assert "19.00 against 17.50 dB" in psnr.note and psnr.verdict == "holds"
    cons = by_id["rotation.consistency_random"]               # a larger mean gain, but two scenes lose: undecided
    assert cons.value == 3.0 and cons.ci95[0] < 0 < cons.ci95[1] and cons.verdict == "undecided"
    assert by_id["rotation.psnr_fixed_view_training"].refs == {"its training view": 19.9}
    assert by_id["rotation.consistency_fixed"].value == 22.0
    per_scene["fixed-view training"].index = ["a", "b", "c", "e"]
    with pytest.raises(ValueError, match="different scenes"):
        verdicts.rotation_claims(rot, per_scene)


@pytest.mark.parametrize("n", [2, 5])
def test_split_claims_are_means_with_a_t_interval_over_every_split(n):
    splits = pd.DataFrame({"recon test vs GT (dB)": [21.0 + 0.3 * k for k in range(n)],
                           "generation test PSNR (dB)": [19.0 + 0.1 * k for k in range(n)],
                           "generation test similarity": [0.80 + 0.01 * k for k in range(n)],
                           "generation train similarity": [0.85] * n,
                           "retrieval test similarity": [0.75] * n,
                           "ours / retrieval": [1.05 + 0.01 * k for k in range(n)]})
    recs = {r["id"]: r for r in verdicts.split_claims(splits, train_cap=64)}
    assert set(recs) == {"splits.vae_recon_psnr_test", "splits.generation_psnr_test", "splits.id_image_sim_test",
                         "splits.sim_ratio_to_retrieval"}
    sim = recs["splits.id_image_sim_test"]
    mean, (lo, hi) = stats.t_interval(splits["generation test similarity"])
    assert sim["n"] == n and sim["value"] == round(mean, 4) and sim["ci95"] == [round(lo, 4), round(hi, 4)]
    assert sim["refs"] == {"train split": 0.85} and "up to 64 scenes" in sim["note"]
    per_split = ", ".join(f"{21.0 + 0.3 * k:.2f}" for k in range(n))
    assert recs["splits.vae_recon_psnr_test"]["note"] == f"adopted recipe, per split {per_split} dB"   # every split
    recorded = _recorded(list(recs.values()))
    assert recorded["splits.id_image_sim_test"].verdict in ("holds", "does not hold", "undecided")


def test_study_claims_are_the_paper_recipe_row():
    table = pd.DataFrame({"recon test vs GT (dB)": [18.154, 22.0], "recon train vs GT (dB)": [19.0, 23.0],
                          "aligner: PSNR vs GT (dB)": [17.336, 20.0], "true latents: PSNR vs GT (dB)": [18.0, 21.0]},
                         index=["paper: parameter MSE", "ours: function-space only"])
    recs = verdicts.study_claims(table, {"fitted NeRFs: PSNR vs GT (dB)": 25.5})
    assert [(r["id"], r["value"]) for r in recs] == [("study.recon_psnr_test_paper_recipe", 18.15),
                                                     ("study.generation_psnr_test_paper_recipe", 17.34)]
    assert "25.50 dB" in recs[0]["note"]
    _recorded(recs)
