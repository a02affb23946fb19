"""The profile table: every size the book uses, as data.

``tiny`` runs every code path in CI in minutes, ``small`` is the default main job on a 2-core
CPU with every figure meaningful, ``gpu`` is one GPU for about ten minutes with stand-ins strong
enough to test the paper (32-px diffusion priors of about 11 M parameters, twice the NeRFs, 5 seeds,
a 20× ceiling on the speed-up test), ``paper`` is the paper's scale on one GPU (GPU-hours). Code reads sizes
from a :class:`Profile`; there are no ``if profile == ...`` branches elsewhere.
"""
from __future__ import annotations

import dataclasses
import os
from dataclasses import asdict, dataclass, fields


#: every lever of 07's stage-1/2 study (:func:`p2nlib.chapters.study.variants`)
STUDY_LEVERS = ("loss", "data size", "dataset fitting", "KL weight", "latent size")


@dataclass(frozen=True)
class Profile:
    name: str
    description: str
    # NeRF-parameter dataset (paper §3.1)
    objects_per_category: int      # in-distribution objects fitted per category
    train_views: int               # ground-truth views per object used for fitting
    heldout_views: int             # extra views per object kept for evaluation
    image_size: int                # ground-truth / fitting resolution (pixels, square)
    samples_per_ray: int           # stratified samples inside the object box
    nerf_width: int                # hidden width W of the 7-layer MLP
    nerf_freqs: int                # positional-encoding frequencies for xyz
    warmup_steps: int              # 3D warm start (density/colour regression), stated in 01_dataset
    fit_steps: int                 # photometric-loss steps (paper: 15,000 iterations)
    rays_per_step: int             # rays per object per photometric step
    fit_batch: int                 # objects fitted at once (batched NeRFs)
    fit_lr: float
    # ablation (paper §5.1): same-init vs random-init
    ablation_objects: int          # objects per category for the chair/airplane topology study
    # CLIP (paper §3.2, supplement II): "small" = trained in the book with open_clip;
    # "ViT-B-32" = open_clip's ViT-B-32 with local openai weights (falls back to training "small"
    # at clip_embed_dim when the weights are not on this machine)
    clip_model: str
    clip_embed_dim: int            # = latent size of the VAE / alignment (paper: 512)
    clip_image_size: int           # render size of CLIP inputs (ViT-B-32 resizes to 224)
    clip_objects_per_category: int  # training objects per category, all 16 categories
    clip_eval_objects: int         # held-out objects per category for zero-shot evaluation
    clip_views: int                # rendered views per training object
    clip_steps: int
    clip_batch: int
    clip_lr: float
    cache_views: int               # views per dataset object in the embedding cache
    # Stage 1 (VAE, supplement III) and stage 2 (alignment Transformer)
    vae_hidden: int
    vae_epochs: int
    vae_beta: float                # KL weight (the paper's value was lost)
    vae_param_weight: float        # reconstruction loss: weight of the paper's parameter MSE (0 in the book's profiles: the validation choice of 07)
    vae_function_weight: float     # weight of our function-space term (0 = the paper's recipe; the book adopts 100, alone)
    align_d_model: int
    align_layers: int              # encoder and decoder layers each
    align_epochs: int
    # per-prompt optimisation baselines and the convergence test (supplement VI; ε and k were lost)
    opt_size: int                  # guidance render size (pixels)
    opt_samples: int               # samples per ray while optimising
    opt_views: int                 # random views per iteration and run
    opt_lr: float                  # Adam, constant
    opt_epoch_iters: int           # iterations per convergence-test epoch (paper: 100)
    opt_eps: float                 # mean squared pixel change per epoch below which an epoch counts
    opt_k: int                     # epochs in a row below opt_eps = converged
    opt_max_epochs: int            # cap; a run that has not converged by then is reported as such
    opt_check_views: int           # fixed views rendered each epoch for the test
    opt_seeds: int                 # seeds per prompt and initialisation
    eval_views: int                # views per object for CLIP similarity / Fréchet distance
    # sizes of the evaluations and studies that the notebooks show
    align_heads: int               # attention heads of the alignment Transformer
    ood_seeds: int                 # seeds per out-of-distribution prompt and initialisation (06)
    opt_eps_sensitivity: tuple     # other ε values the convergence test is re-run with (05)
    eval_train_cap: int            # training scenes evaluated in render-level tables (03, 04)
    gallery_per_category: int      # test scenes per category in the Figure 2 gallery (05)
    # diffusion priors trained in the book (stand-ins for Stable Diffusion and Zero-1-to-3; 08_priors)
    prior_size: int                # image size of both priors (pixels)
    prior_channels: tuple          # the view prior's UNet block widths (attention in the last, lowest-resolution block)
    text_prior_channels: tuple     # the text prior's (it has 16 categories to draw from one caption, not one view to turn)
    prior_steps: int               # training steps of each prior
    prior_batch: int
    prior_lr: float
    sds_text_scale: float          # classifier-free guidance scale of text SDS (DreamFusion uses 100 on SD)
    sds_view_scale: float          # ... of view-conditioned SDS (Zero-1-to-3 uses 3)
    sds_lr: float                  # Adam learning rate of the SDS baselines (constant)
    sds_max_epochs: int            # iteration cap of the SDS baselines, in convergence-test epochs
    # speed levers that keep the recipe (measured in make bench and 01_dataset)
    fit_bf16: bool = False         # the NeRF MLP's products in bfloat16 while fitting (ours; float32 = the paper's)
    vae_bf16: bool = False         # the VAEs' products in bfloat16 while training (ours)
    vae_batch: int = 32            # VAE batch; the learning rate is 1e-3 × sqrt(vae_batch / 32)
    opt_bf16: bool = False         # per-prompt optimisation: the NeRF's and the guidance model's products in bfloat16
                                   # (ours); the convergence test's check renders and every logged measure stay float32
    # the SDS baselines' convergence test (ours: a test on each epoch's mean weights, with a cap at least
    # 10× its earliest possible convergence, so a 3-5× speed-up can be measured; the CLIP ablation keeps opt_*)
    sds_epoch_iters: int = 25      # iterations per test epoch
    sds_k: int = 3                 # epochs in a row below opt_eps
    sds_average: bool = False      # the test reads each epoch's mean weights (False: the raw weights, the paper's)
    sds_scratch: str = "template"  # S of the SDS baselines: "blob" (DreamFusion's start) or "template"
    sds_anneal: tuple = ()         # (t_end, iterations): SDS's largest timestep falls to t_end over them (ours)
    # the key stage-1/2 claims are measured over this many train/validation/test splits of the same NeRFs
    # (split seed 0 is the book's split; 07 retrains stages 1 and 2 on each other one)
    split_seeds: int = 3
    # the positive and negative controls of the per-prompt baselines run on the chapter's first control_seeds seeds
    control_seeds: int = 2
    # the levers of 07's stage-1/2 study (p2nlib/chapters/study.py); every profile measures the loss rows
    study_levers: tuple = STUDY_LEVERS
    # Table 1's image baseline on every test scene (False: on the 4-scene random subset of Figure 3, for CI speed)
    baseline_every_test_scene: bool = True

    def to_dict(self) -> dict:
        return asdict(self)


_SMALL = Profile(
    name="small", description="default main job: all figures meaningful on a 2-core CPU",
    objects_per_category=16, train_views=24, heldout_views=4, image_size=32,
    samples_per_ray=32, nerf_width=48, nerf_freqs=5, warmup_steps=200, fit_steps=250,
    rays_per_step=96, fit_batch=64, fit_lr=3e-3, ablation_objects=16, fit_bf16=True,
    clip_model="small", clip_embed_dim=128, clip_image_size=48, clip_objects_per_category=32,
    clip_eval_objects=8, clip_views=6, clip_steps=800, clip_batch=64, clip_lr=1e-3, cache_views=8,
    vae_hidden=256, vae_epochs=300, vae_beta=1e-3, align_d_model=128, align_layers=2, align_epochs=300,
    vae_param_weight=0.0, vae_function_weight=100.0, vae_bf16=True, vae_batch=64, opt_bf16=True,
    opt_size=16, opt_samples=16, opt_views=1, opt_lr=3e-3, opt_epoch_iters=25, opt_eps=1e-3, opt_k=3,
    opt_max_epochs=24, opt_check_views=4, opt_seeds=2, eval_views=8, split_seeds=3, control_seeds=1,
    align_heads=4, ood_seeds=2, opt_eps_sensitivity=(3e-4, 3e-3), eval_train_cap=64, gallery_per_category=5,
    prior_size=16, prior_channels=(32, 64, 64), text_prior_channels=(48, 96, 96),
    prior_steps=600, prior_batch=32, prior_lr=1e-3,
    sds_text_scale=20.0, sds_view_scale=3.0, sds_lr=1e-2, sds_max_epochs=20,
    sds_epoch_iters=10, sds_k=2, sds_average=True, sds_scratch="blob", sds_anneal=(0.5, 60),
    study_levers=("loss", "data size", "dataset fitting"),
)

PROFILES: dict[str, Profile] = {
    "tiny": Profile(
        name="tiny", description="CI smoke run: every code path, minutes on a 2-core CPU",
        objects_per_category=3, train_views=6, heldout_views=2, image_size=16, samples_per_ray=16,
        nerf_width=32, nerf_freqs=4, warmup_steps=30, fit_steps=30, rays_per_step=64,
        fit_batch=8, fit_lr=5e-3, ablation_objects=3, fit_bf16=True,
        clip_model="small", clip_embed_dim=32, clip_image_size=32, clip_objects_per_category=3,
        clip_eval_objects=2, clip_views=2, clip_steps=20, clip_batch=16, clip_lr=1e-3, cache_views=2,
        vae_hidden=64, vae_epochs=5, vae_beta=1e-3, align_d_model=32, align_layers=1, align_epochs=5,
        vae_param_weight=0.0, vae_function_weight=100.0, vae_bf16=True, opt_bf16=True,
        opt_size=12, opt_samples=12, opt_views=1, opt_lr=3e-3, opt_epoch_iters=5, opt_eps=1e-4, opt_k=2,
        opt_max_epochs=4, opt_check_views=2, opt_seeds=2, eval_views=4,
        align_heads=4, ood_seeds=3, opt_eps_sensitivity=(3e-4, 3e-3), eval_train_cap=64, gallery_per_category=5,
        prior_size=16, prior_channels=(16, 16, 32), text_prior_channels=(16, 16, 32), prior_steps=4,
        prior_batch=8, prior_lr=1e-3,
        sds_text_scale=20.0, sds_view_scale=3.0, sds_lr=1e-2, sds_max_epochs=10,
        sds_epoch_iters=2, sds_k=1, sds_average=True, sds_scratch="blob", sds_anneal=(0.5, 6), split_seeds=2,
        control_seeds=1,
        baseline_every_test_scene=False,
    ),
    "small": _SMALL,
    # the small book on one GPU: only what makes its stand-ins strong enough to test the paper changes
    "gpu": dataclasses.replace(
        _SMALL, name="gpu", description="one GPU, about ten minutes: the small book with stand-ins strong enough to "
                                        "test the paper (32-px priors of ~11 M parameters, 60 NeRFs per category, "
                                        "5 seeds)",
        objects_per_category=60, fit_batch=120, ablation_objects=40, fit_bf16=False, opt_bf16=False, opt_seeds=5, ood_seeds=5,
        clip_steps=1000, split_seeds=5, control_seeds=2,
        study_levers=STUDY_LEVERS,
        prior_size=32, prior_channels=(64, 128, 256), text_prior_channels=(64, 128, 256), prior_steps=3000,
        prior_batch=128, sds_max_epochs=40, sds_anneal=(0.5, 120)),
    "paper": Profile(
        name="paper", description="the paper's scale (100 views, 15k iterations) on one GPU",
        objects_per_category=100, train_views=100, heldout_views=10, image_size=128,
        samples_per_ray=96, nerf_width=128, nerf_freqs=6, warmup_steps=1000, fit_steps=15000,
        rays_per_step=1024, fit_batch=25, fit_lr=1e-3, ablation_objects=50,
        clip_model="ViT-B-32", clip_embed_dim=512, clip_image_size=128, clip_objects_per_category=200,
        clip_eval_objects=20, clip_views=12, clip_steps=6000, clip_batch=256, clip_lr=5e-4, cache_views=24,
        vae_hidden=1024, vae_epochs=2000, vae_beta=1e-3, align_d_model=512, align_layers=4, align_epochs=2000,
        vae_param_weight=0.0, vae_function_weight=100.0,
        opt_size=64, opt_samples=64, opt_views=4, opt_lr=1e-3, opt_epoch_iters=100, opt_eps=1e-4, opt_k=3,
        opt_max_epochs=400, opt_check_views=8, opt_seeds=5, eval_views=16,
        align_heads=4, ood_seeds=5, opt_eps_sensitivity=(3e-5, 3e-4), eval_train_cap=64, gallery_per_category=5,
        prior_size=64, prior_channels=(64, 128, 128, 256),
        text_prior_channels=(64, 128, 128, 256), prior_steps=30000, prior_batch=128, prior_lr=5e-4,
        sds_text_scale=20.0, sds_view_scale=3.0, sds_lr=3e-3, sds_max_epochs=100,
        sds_epoch_iters=100, sds_k=3, sds_average=True, sds_scratch="blob", sds_anneal=(0.5, 3000),
    ),
}


def get_profile(name: str | None = None) -> Profile:
    """Return the named profile (default: ``$P2N_PROFILE`` or ``small``).

    An unknown name raises ``ValueError`` that lists the valid names.
    """
    name = name or os.environ.get("P2N_PROFILE", "small")
    if name not in PROFILES:
        from p2nlib.core.errors import InputError

        raise InputError(
            f"unknown profile {name!r}; choose one of {', '.join(PROFILES)} "
            "(e.g. `make book PROFILE=small` or `-p profile small` with papermill)"
        )
    return PROFILES[name]


def profile_table() -> list[dict]:
    """All profiles as rows (for the book's profile table)."""
    return [p.to_dict() for p in PROFILES.values()]


FIELD_NAMES = tuple(f.name for f in fields(Profile))


def as_profile(profile: "Profile | str | None") -> Profile:
    """A :class:`Profile` from a profile or its name (``None``: the default of :func:`get_profile`)."""
    return profile if isinstance(profile, Profile) else get_profile(profile)
