"""What both results chapters share: the prompts and levels of §4.3–4.6, and :class:`Chapter`, which holds
the loaded pipeline, the baselines' guidance and optimiser settings, and the seeded draws.

Every random choice of a chapter (which test scenes, which categories) comes from its own generator,
:meth:`Chapter.rng`, seeded by the chapter's seed and the choice's name: the same seed picks the same
scenes whatever else was drawn before.
"""
from __future__ import annotations

import random
from dataclasses import dataclass, field

import torch

from p2nlib.baselines.guidance import ImageGuidance, TextGuidance
from p2nlib.baselines.optimize import BLOB_DENSITY, BLOB_RADIUS, OptimConfig, blob_init, template_init
from p2nlib.baselines.sds import ImageSDSGuidance, TextSDSGuidance
from p2nlib.core import artifacts, paths
from p2nlib.data import fit
from p2nlib.eval import metrics
from p2nlib.eval.built import BuiltRule
from p2nlib.eval import views as ev
from p2nlib.generate.pipeline import Prompt2NeRF, save_gif
from p2nlib.priors.ideal import IdealConfig

#: text prompts of Table 2, written for the 8 dataset categories (not copied from captions)
ID_TEXT_PROMPTS = ("a green chair with armrests and a hollow back", "a purple and blue sports car", "a brown table",
                   "a grey fighter jet with swept wings", "a black guitar with a long neck",
                   "a red sofa with two cushions")
#: out-of-distribution text prompts (06): other categories, and a composition with a dataset category
OOD_TEXT_PROMPTS = ("a burning torch", "an orange basketball", "a red mug", "a snowman on a blue chair")
#: out-of-distribution categories whose new objects are the image prompts of 06
OOD_IMAGE_CATEGORIES = ("fountain", "rocket", "mushroom", "hammer")
#: the category each text prompt names: what ``built`` checks for (for the composition, its out-of-distribution
#: part: a chair alone, which the nearest training scene already is, does not count)
PROMPT_CATEGORIES = {"a green chair with armrests and a hollow back": "chair", "a purple and blue sports car": "car",
                     "a brown table": "table", "a grey fighter jet with swept wings": "airplane",
                     "a black guitar with a long neck": "guitar", "a red sofa with two cushions": "sofa",
                     "a burning torch": "torch", "an orange basketball": "ball", "a red mug": "mug",
                     "a snowman on a blue chair": "snowman"}
#: the four initialisations of §4.6; S is DreamFusion's start (a density blob) in the SDS baselines
INITS = ("S", "P", "Ours (NRS)", "Ours (DI)")
#: today's from-scratch start before the blob, kept as a measured ablation row: the dataset's shared template
TEMPLATE = "S (template)"
#: the from-scratch study of 06: every text prompt of 05 and 06, from both starts and from Ours (NRS)
SCRATCH_INITS = ("S", TEMPLATE, "Ours (NRS)")
#: the time-to-quality level: a fraction of the best similarity any run of the prompt reached
QUALITY_FRACTION = 0.95
#: categories (one random test scene each) on which the slow image baseline runs in 05
BASELINE_CATEGORIES = 4


def _cpu(params: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {k: v.cpu() for k, v in params.items()}


def _take(params: dict[str, torch.Tensor], rows) -> dict[str, torch.Tensor]:
    return {k: v[list(rows)] for k, v in params.items()}


#: the baselines' guidances: score distillation from the book's priors (the headline) or CLIP (ablation)
GUIDANCES = {"sds": "score distillation (SDS) from the book's diffusion priors",
             "clip": "CLIP guidance (Dream Fields style; ablation)"}


#: the SDS baselines' priors: the book's trained UNets, or the closed-form denoisers of the world's renders (ours)
PRIORS = {"trained": "the book's trained diffusion priors (08)",
          "ideal": "the ideal priors of the world: closed-form denoisers of its renders (ours)"}
#: the ideal priors' settings (p2nlib.priors.ideal.IdealConfig)
IDEAL = IdealConfig()

#: built rules made in this process, by (encoder, check views, check size, samples): chapters share them
_RULES: dict = {}
#: priors (and their training data) loaded in this process, by (profile, encoder, device, seed)
_PRIORS: dict = {}


def sds_overrides(p) -> dict:
    """The optimiser settings of the SDS baselines: their learning rate, and their convergence test (epoch, k,
    cap, the test on each epoch's mean weights). ε is the profile's ``opt_eps`` rescaled to the shorter epoch:
    ``opt_eps * (sds_epoch_iters / opt_epoch_iters)^2``, the same speed of change per iteration (a steady drift
    changes the renders by the square of the epoch's length), so a shorter epoch does not make the test looser."""
    eps = p.opt_eps * (p.sds_epoch_iters / p.opt_epoch_iters) ** 2
    return {"lr": p.sds_lr, "max_epochs": p.sds_max_epochs, "epoch_iters": p.sds_epoch_iters, "k": p.sds_k,
            "average": p.sds_average, "eps": eps}


@dataclass
class Chapter:
    """What both results chapters share: the pipeline, its parts, the baselines' guidance and the optimiser
    settings (``guidance="sds"``: the profile's ``sds_*`` settings; ``"clip"``: its ``opt_*`` settings).
    Nothing here changes after construction, apart from the cache of trained priors."""
    pipe: Prompt2NeRF
    device: torch.device
    seed: int = 0
    guidance: str = "sds"
    anneal: bool = True          # SDS with the profile's timestep annealing (ours); False: DreamFusion's schedule
    prior: str = "trained"       # the SDS baselines' priors: "trained" (the book's UNets) or "ideal" (closed form, ours)
    cfg: OptimConfig = field(init=False)

    def __post_init__(self):
        if self.guidance not in GUIDANCES:
            raise ValueError(f"guidance must be one of {', '.join(GUIDANCES)}, got {self.guidance!r}")
        if self.prior not in PRIORS:
            raise ValueError(f"prior must be one of {', '.join(PRIORS)}, got {self.prior!r}")
        self.P = self.pipe.profile
        self.enc, self.spec, self.ds = self.pipe.encoder, self.pipe.spec, self.pipe.dataset
        self.train_idx, self.test_idx = self.ds.indices("train"), self.ds.indices("test")
        self.cfg = OptimConfig.from_profile(self.P, **(sds_overrides(self.P) if self.guidance == "sds" else {}))
        # the SDS baselines run to the cap (complete curves); the CLIP ablation stops each run where the
        # convergence test stops it, which is all its tables use and keeps the book within its time budget
        self.stop = self.guidance == "clip"

    def rng(self, name: str) -> random.Random:
        """A fresh generator for the random choice ``name``, seeded by the chapter's seed and that name: two
        chapters with the same seed draw the same, in any order."""
        return random.Random(f"{self.seed}:{name}")

    @property
    def guidance_name(self) -> str:
        return GUIDANCES[self.guidance]

    @property
    def scratch_name(self) -> str:
        """What S is for this chapter's baselines."""
        if self.guidance == "sds" and self.P.sds_scratch == "blob":
            return (f"DreamFusion's start: the shared template fitted to a grey density blob (peak "
                    f"{BLOB_DENSITY:g}, radius {BLOB_RADIUS:g})")
        return "the shared template all dataset NeRFs were fitted from"

    def scratch_init(self, n: int) -> dict[str, torch.Tensor]:
        """S for ``n`` runs: DreamFusion's blob start for the SDS baselines (profile ``sds_scratch="blob"``),
        the shared template otherwise."""
        if self.guidance == "sds" and self.P.sds_scratch == "blob":
            return blob_init(self.spec, n)
        return template_init(self.spec, n)

    def rule(self) -> BuiltRule:
        """The ``built`` rule (:mod:`p2nlib.eval.built`) at the convergence test's check views, with
        occupied-fraction ranges for every category a text prompt of the book names (made once)."""
        key = (self.enc.fingerprint, self.cfg.check_views, self.cfg.check_size, self.P.samples_per_ray)
        if key not in _RULES:
            _RULES[key] = self._made_rule(*key[1:])
        return _RULES[key]

    def _made_rule(self, views: int, size: int, samples: int) -> BuiltRule:
        """The rule's occupied-fraction ranges (ground-truth renders of reference objects) are cached on disk, so a
        second chapter reads them back; its caption embeddings come from this chapter's encoder."""
        from p2nlib.data import render, world
        from p2nlib.eval import built

        shapes = tuple(dict.fromkeys(PROMPT_CATEGORIES.values()))
        key = {"views": views, "size": size, "samples": samples, "shapes": shapes,
               "code": artifacts.code_digest(built, world, render, fit)}

        def compute():
            return {}, {"occupancy": built.occupancy_ranges(shapes, views, size, samples)}

        _, data = artifacts.cached(paths.stage_dir(self.P.name, "controls"), "built-rule", key, compute)
        return BuiltRule.make(self.enc, views, size, samples, occupancy=data["occupancy"])

    def _prior(self, kind: str):
        """The profile's text or view prior (trained by the first chapter that needs it, then cached on disk; or
        the ideal one, :mod:`p2nlib.priors.ideal`); every chapter of this process with the same profile, encoder,
        device and seed shares the loaded one."""
        from p2nlib.priors import ideal
        from p2nlib.priors import train as priors

        key = (self.P.name, self.enc.fingerprint, str(self.device), self.seed)
        loaded = _PRIORS.setdefault(key, {})
        if self.prior == "ideal":
            if f"ideal-{kind}" not in loaded:
                make = (lambda: ideal.text_prior(self.P, self.enc, IDEAL)) if kind == "text" else \
                    (lambda: ideal.view_prior(self.P, IDEAL))
                loaded[f"ideal-{kind}"] = make()
            return loaded[f"ideal-{kind}"]
        if kind not in loaded:
            if "data" not in loaded:
                loaded["data"] = priors.training_data(self.P, self.enc, priors.PriorConfig.from_profile(self.P, "view"))
            make = priors.text_prior if kind == "text" else priors.view_prior
            loaded[kind] = make(self.P, self.enc, loaded["data"], device=self.device, seed=self.seed)
        return loaded[kind]

    def text_guidance(self, emb: torch.Tensor):
        """The text baseline's guidance toward the text embeddings ``emb`` (R, D), one per run."""
        if self.guidance == "clip":
            return TextGuidance(self.enc, emb)
        scale = IDEAL.text_scale if self.prior == "ideal" else self.P.sds_text_scale
        return TextSDSGuidance(self._prior("text"), emb, scale=scale, seed=self.seed, anneal=self._anneal())

    def image_guidance(self, refs: torch.Tensor, poses: torch.Tensor):
        """The image baseline's guidance toward reference images ``refs`` (R, H, W, 3) seen from ``poses``."""
        if self.guidance == "clip":
            return ImageGuidance(self.enc, refs, poses)
        scale = IDEAL.view_scale if self.prior == "ideal" else self.P.sds_view_scale
        return ImageSDSGuidance(self._prior("view"), refs, poses, scale=scale, seed=self.seed, anneal=self._anneal())

    def _anneal(self):
        """The SDS timestep annealing (t_end, iterations) of this chapter, or None (DreamFusion's schedule)."""
        return (self.P.sds_anneal or None) if self.anneal else None

    @property
    def schedule_name(self) -> str:
        """The SDS noise schedule of this chapter's baselines, in words."""
        if self._anneal():
            end, its = self._anneal()
            return f"largest timestep annealed from 0.98 to {end:g} over the first {its} iterations (ours)"
        return "timesteps uniform in [0.02, 0.98] throughout (DreamFusion's schedule)"

    def run_name(self, base: str) -> str:
        """Cache name of a batch of runs (the CLIP runs keep the names they always had)."""
        if self.guidance == "clip":
            return base
        return f"{base}-{self.guidance}" + ("-ideal" if self.prior == "ideal" else "")

    @property
    def prior_name(self) -> str:
        """The SDS baselines' priors, in words."""
        return PRIORS[self.prior]

    @property
    def recipe(self) -> str:
        """The stage-1 recipe "Ours" (the one-pass generator) was trained with."""
        return self.pipe.vae.cfg.recipe

    @property
    def ours(self) -> str:
        """Which generator "Ours" is, for captions: the stage-1 recipe it was trained with."""
        return f"Ours = the one-pass generator, stage 1 trained with {self.recipe}"

    def render(self, params, poses: torch.Tensor, size: int | None = None) -> torch.Tensor:
        """(B, V, S, S, 3) renders of NeRFs at ``poses`` (default size: the CLIP render size)."""
        return fit.render_nerfs(params, self.spec, poses, size or self.P.clip_image_size, self.P.samples_per_ray).cpu()

    def turntable_gif(self, params, name: str, views: int = 16, size: int = 64) -> None:
        """A turntable GIF of one NeRF at the evaluation poses, saved as ``<figures>/<name>.gif``."""
        save_gif(ev.render_views(params, self.spec, self.P, views, size)[0], paths.figures_dir() / f"{name}.gif")

    def frechet_name(self) -> str:
        return ("pytorch-fid InceptionV3 (local weights)" if metrics.inception_weights() else
                f"FD-CLIP on {self.enc.name} image features (InceptionV3 weights not on this machine)")
