"""What each claim of the ledger is, in one table: the paper section, the paper's value, the unit, and
the bar the book judges the measured value against (``threshold``) with the rule in words.

Notebooks measure and call :func:`p2nlib.book.claims.record` with the value and the verdict; the
section, the paper's value and the unit come from here, and the verdict is computed against
:func:`bar`. A bar is set once, before looking at results, and is never moved to turn a verdict
green; the rule is printed on the book's claims page next to each claim.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class ClaimSpec:
    id: str
    section: str
    paper: Any = None            # the paper's value (number or words); None when the paper gives none
    unit: str = ""
    threshold: Any = None        # the book's bar (a number or a (low, high) range); None: not judged by a number
    rule: str = "not judged"     # how the verdict is decided, in words
    kind: str = "paper"          # "paper": the paper says it; "stand-in": a bar or measure the book set for its own
                                 # substitutes; "check": true by construction
    op: str = ">="               # how a number is compared with the bar: ">=" or ">"
    interval: bool = False       # judged on the lower end of the value's 95% interval, not on the value

    def judge(self, value: float, ci95: tuple[float, float] | None = None) -> bool | None:
        """The verdict of ``value`` (or, for an interval rule, of the lower end of ``ci95``) against the bar."""
        if self.threshold is None:
            return None
        if self.interval:
            if ci95 is None:
                raise ValueError(f"claim {self.id!r} is judged on its 95% interval; pass ci95")
            value = ci95[0]
        if isinstance(self.threshold, tuple):
            return bool(self.threshold[0] <= value <= self.threshold[1])
        return bool(value > self.threshold) if self.op == ">" else bool(value >= self.threshold)


_ROWS = (
    # §3.1 the dataset
    ClaimSpec("overview.nerf_param_tensors", "§3.1", 14, "tensors", 14,
              "holds when the 7-layer NeRF has exactly 14 parameter tensors (7 weights, 7 biases)"),
    ClaimSpec("dataset.psnr_mean", "§3.1", 33.82, "dB", 30.0,
              "holds when the mean held-out PSNR reaches the book's quality bar of 30 dB"),
    ClaimSpec("dataset.nerfs_per_hour", "§3.1", 6.0, "NeRFs/h", None,
              "not judged: other hardware and sizes; reported for scale"),
    # §5.1 topology
    ClaimSpec("topology.separation_same_init", "§5.1", "separates", "probe accuracy", 0.9,
              "holds when a 5-fold linear probe tells chairs from airplanes with accuracy >= 0.9"),
    ClaimSpec("topology.separation_random_init", "§5.1", "does not separate", "probe accuracy", 0.75,
              "holds when the same probe on random-init parameters is near chance (<= 0.75)"),
    # §4.2, supplement II: CLIP
    ClaimSpec("clip.zero_shot_top1", "§4.2", None, "accuracy", 0.9,
              "the book's target for its CLIP stand-in: 16-way zero-shot top-1 >= 0.9 (chance 0.0625)"),
    ClaimSpec("clip.retrieval_top1", "§4.2", None, "accuracy"),
    ClaimSpec("clip.retrieval_top5", "§4.2", None, "accuracy"),
    ClaimSpec("clip.text_image_cos_matched", "supp. II", "0.30–0.40", "cosine", (0.25, 0.45),
              "holds when the matched text–image cosine lies in the paper's range widened by 0.05 each side"),
    ClaimSpec("clip.image_image_cos_same_object", "supp. II", None, "cosine"),
    # §3.2 stage 1
    ClaimSpec("vae.recon_psnr_test", "§3.2", None, "dB", 24.0,
              "holds when decoded test NeRFs reach 24 dB vs ground truth (the book's bar for a stage 1 that "
              "generalises; the recipe is named in the note)"),
    ClaimSpec("generation.psnr_test", "§3.2, §4.5", None, "dB", 22.0,
              "holds when NeRFs generated from unseen test scenes reach 22 dB vs ground truth (the book's bar)"),
    ClaimSpec("study.recon_psnr_test_paper_recipe", "§3.2 (our study)", None, "dB", None,
              "not judged: the paper's stage-1 recipe, measured beside the adopted one"),
    ClaimSpec("study.generation_psnr_test_paper_recipe", "§3.2 (our study)", None, "dB", None,
              "not judged: generation with the paper's stage-1 recipe, beside the adopted one"),
    # the book's diffusion priors (stand-ins for Stable Diffusion and Zero-1-to-3; chapter 08)
    ClaimSpec("priors.text_zero_shot_samples", "§4.5–4.6 (our stand-in)", None, "accuracy", 0.5,
              "the book's bar for its text prior: the book's CLIP classifies its samples of the 16 categories "
              "with top-1 >= 0.5 (chance 0.0625)"),
    ClaimSpec("priors.view_psnr_gain", "§4.6 (our stand-in)", None, "dB", 0.0,
              "the book's bar for its view prior: sampled novel views of held-out objects are closer to the "
              "ground truth (PSNR) than copying the reference view"),
    ClaimSpec("ood.scratch_prompts_built", "§4.6 (our stand-in)", None, "prompts of 10", 8,
              "the book's bar for its score-distillation baselines: from scratch (DreamFusion's blob start), text SDS "
              "has built the object where the convergence test stops the run (p2nlib.eval.built: CLIP names the "
              "prompt's category and the silhouette has the category's size) for more than half the seeds of at "
              "least 8 of the 10 text prompts of 05 and 06"),
    # supplement I: rotation invariance
    ClaimSpec("rotation.psnr_random_view_training", "supp. I", "high from any view", "dB", None,
              "holds when above the fixed-view model's PSNR"),
    ClaimSpec("rotation.psnr_fixed_view_training", "supp. I", "good only from the training view", "dB"),
    ClaimSpec("rotation.consistency_random", "supp. I", "consistent", "dB", None,
              "holds when more consistent across input views than the fixed-view model"),
    ClaimSpec("rotation.consistency_fixed", "supp. I", "inconsistent", "dB"),
    # §4.5 Table 1: image prompts
    ClaimSpec("id.image.sim_train", "§4.5, Table 1", 0.831),
    ClaimSpec("id.image.sim_test", "§4.5, Table 1", 0.815, "", 0.05,
              "holds when within 0.05 of the train split and above the image baseline on the same subset"),
    ClaimSpec("id.image.fd_train", "§4.5, Table 1", 1.334, "", None,
              "not judged: FD-CLIP is not comparable to Inception FID"),
    ClaimSpec("id.image.fd_test", "§4.5, Table 1", 4.189, "", None,
              "holds when ours is below the image baseline on the test subset (the value shown: ours on that subset)"),
    ClaimSpec("id.image.sim_baseline", "§4.5, Table 1", 0.807, "", None,
              "holds when ours on the same subset is higher than the baseline (mean over seeds)"),
    # §4.5 Table 2: text prompts
    ClaimSpec("id.text.sim_ours", "§4.5, Table 2", "27–36%", "", None,
              "holds when above the text baseline at convergence (mean over prompts)"),
    ClaimSpec("id.text.sim_baseline_budget", "§4.5, Table 2", "22–33% (5k iterations)"),
    ClaimSpec("id.text.sim_baseline_converged", "§4.5, Table 2", "27–30%"),
    ClaimSpec("id.text.speedup_wall_time", "§4.5, Table 2", "seconds vs minutes", "×", 10.0,
              "holds when the baseline's median wall time to convergence is over 10× ours"),
    # §4.6, §5.2: out of distribution
    ClaimSpec("ood.speedup_vs_scratch", "§4.6, Tables 3, 5, 6", "3–5×", "×", 3.0,
              "holds when the lower end of the 95% interval (prompts × seeds bootstrap) of the median over prompts "
              "of S / Ours (NRS) iterations to convergence is >= 3; the test's ceiling is reported beside it",
              interval=True),
    ClaimSpec("ood.speedup_to_quality_vs_scratch", "§4.6 (our complementary measure)", "3–5× (as a speed-up)", "×",
              3.0, "holds when the lower end of the 95% interval of the median over prompts of S / Ours (NRS) "
              "iterations to 95% quality is >= 3", interval=True),
    ClaimSpec("ood.speedup_to_built_vs_scratch", "§4.6 (our complementary measure)", "3–5× (as a speed-up)", "×",
              3.0, "holds when the lower end of the 95% interval of the median over text prompts of S / Ours (NRS) "
              "iterations until the run is built and stays built is >= 3", interval=True),
    ClaimSpec("ood.speedup_vs_pretrained", "§4.6, Tables 3, 5, 6", "> 1 (Ours faster than P)", "×", 1.0,
              "holds when the lower end of the 95% interval of the median over prompts of P / Ours (NRS) "
              "iterations to convergence is > 1", op=">", interval=True),
    ClaimSpec("ood.sim_ours_minus_scratch", "§4.6, Tables 3, 5, 6", "> 0 (almost always better)", "", 0.0,
              "holds when the mean over prompts of Ours (NRS) minus S similarity at convergence is > 0"),
    ClaimSpec("ablation.nrs_minus_di_sim", "§5.2, Table 4", "> 0 (NRS better)", "", 0.0,
              "holds when the mean over text prompts of NRS minus DI similarity at convergence is > 0"),
)

#: claims that are not the paper's: bars and measures of the book's own stand-ins, and checks true by construction
_KINDS = {"overview.nerf_param_tensors": "check",
          **{cid: "stand-in" for cid in ("clip.zero_shot_top1", "clip.retrieval_top1", "clip.retrieval_top5",
                                         "vae.recon_psnr_test", "generation.psnr_test",
                                         "study.recon_psnr_test_paper_recipe", "study.generation_psnr_test_paper_recipe",
                                         "priors.text_zero_shot_samples", "priors.view_psnr_gain",
                                         "ood.scratch_prompts_built")}}
_ROWS = tuple(dataclasses.replace(r, kind=_KINDS.get(r.id, "paper")) for r in _ROWS)
KINDS = ("paper", "stand-in", "check")

SPECS: dict[str, ClaimSpec] = {s.id: s for s in _ROWS}


def bar(claim_id: str):
    """The threshold of a claim (raises ``KeyError`` naming the table for an unknown id)."""
    if claim_id not in SPECS:
        raise KeyError(f"claim {claim_id!r} is not in p2nlib/book/claims_spec.py; add a row for it there")
    return SPECS[claim_id].threshold
