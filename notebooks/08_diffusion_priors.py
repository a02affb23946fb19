# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     notebook_metadata_filter: kernelspec,jupytext
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#       jupytext_version: 1.19.6
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Diffusion priors trained in the book: the stand-ins for DreamFusion and Zero-1-to-3
#
# The paper's per-prompt baselines are DreamFusion (text → NeRF by score distillation, SDS, from
# Stable Diffusion) and Zero-1-to-3 (image → NeRF by SDS from a view-conditioned diffusion model).
# Neither model's weights can be had offline. The procedural world renders unlimited training
# images, so the book trains its own small priors, as it trains its own small CLIP (chapter 02):
#
# * a **text-conditioned prior**: a `diffusers` `UNet2DModel` that denoises renders of all {fixed}`16`
#   categories, conditioned on the book's CLIP text embedding of their captions (projected onto the
#   UNet's time embedding), with classifier-free guidance;
# * a **view-conditioned prior**: the same UNet, given a reference view (concatenated to its input)
#   and the relative camera (change of elevation, azimuth as sine and cosine, change of radius), it
#   denoises the object's view from the new camera.
#
# The text prior is the wider of the two in the small profile (`text_prior_channels`
# {profile}`small.text_prior_channels` against the view prior's `prior_channels`
# {profile}`small.prior_channels`; both parameter counts are in the training table below): it draws
# any of {fixed}`16` categories from a caption, while the view prior mostly carries its reference over. At
# the view prior's width the text prior's samples fell under the book's bar for them (the claims
# page gives both widths' scores; `python -m p2nlib.priors.scale` measures any width).
#
# Both train on the CLIP training renders (`clip_objects_per_category` objects of every category,
# `clip_views` views each), resized to `prior_size` pixels, with a cosine DDPM schedule. They are
# cached by their config and inputs (`artifacts/<profile>/priors/`); the first chapter that needs
# them trains them. This chapter shows their training, their samples and their quality on objects
# neither they nor CLIP saw. The score-distillation guidances built on them are
# `p2nlib.baselines.sds.TextSDSGuidance` and `ImageSDSGuidance`.

# %% tags=["parameters"]
import os

# profile: tiny | small | gpu | paper; device: auto (cuda when present) | cpu | cuda
profile = os.environ.get("P2N_PROFILE", "small")
device = os.environ.get("P2N_DEVICE", "auto")
seed = 0

# %%
import matplotlib.pyplot as plt
import pandas as pd
import torch

from p2nlib import clip
from p2nlib.book import claims, plots
from p2nlib.book.notebook import setup
from p2nlib.priors import PriorConfig, models, quality, train

ctx = setup(profile, device, seed)
P = ctx.profile
encoder = clip.load_encoder(P, ctx.device)
cfg, text_cfg = PriorConfig.from_profile(P, "view"), PriorConfig.from_profile(P, "text")   # differ only in widths
data = train.training_data(P, encoder, cfg)
print(f"view prior: {cfg}\ntext prior: the same, widths {text_cfg.channels}\n"
      f"training images: {data.views.shape[0]} objects × {data.views.shape[1]} views at {cfg.size} px, "
      f"{len(data.texts)} distinct captions")

# %% [markdown]
# ## Training
# Each prior: `prior_steps` steps of batch `prior_batch`, epsilon-prediction MSE at uniform random
# timesteps weighted by Min-SNR-γ (`snr_gamma` = {fixed}`5`, [Hang et al.](https://arxiv.org/abs/2303.09556):
# the many nearly clean timesteps, easy and useless for sampling, stop dominating the loss; set it to
# {fixed}`0` for the plain DDPM loss), the condition dropped for {fixed}`10%` of the samples
# (classifier-free guidance).

# %%
text_prior = train.text_prior(P, encoder, data, text_cfg, ctx.device, seed)
view_prior = train.view_prior(P, encoder, data, cfg, ctx.device, seed)
sizes = pd.DataFrame({name: {"parameters": models.param_count(m), "training seconds": round(m.info["seconds"], 1),
                             "final loss (running mean)": round(m.info["history"]["loss"][-1], 4)}
                      for name, m in (("text prior", text_prior), ("view prior", view_prior))}).T
sizes

# %%
fig, ax = plt.subplots(figsize=(6, 3))
for name, m in (("text prior", text_prior), ("view prior", view_prior)):
    ax.plot(m.info["history"]["step"], m.info["history"]["loss"], label=name)
ax.set(xlabel="step", ylabel="Min-SNR-weighted noise-prediction MSE\n(running mean)", yscale="log")
ax.legend()
plots.savefig(fig, "08_training")

# %% [markdown]
# ## The text prior's samples
# Ancestral DDPM sampling ({fixed}`50` steps, guidance scale {fixed}`3`; the sampler is discussed below) from each
# category's plain caption ("a chair"), and how they
# compare with real renders of held-out objects at the same size: the Fréchet distance in the
# book's CLIP feature space, and the CLIP's zero-shot accuracy on the samples next to its accuracy
# on the real renders.

# %%
objs, real, poses = quality.held_out(P, cfg)
text_q, samples, labels, per = quality.text_prior_quality(text_prior, encoder, objs, real, seed=seed)
show_per = min(per, 8)
shown = samples.reshape(16, per, *samples.shape[1:])[:, :show_per]                  # 16 categories × show_per
names = [labels[i * per] for i in range(16)]
plots.savefig(plots.labelled_montage([shown[:8], shown[8:]], [names[:8], names[8:]]), "08_text_samples")
pd.Series({k: v for k, v in text_q.items() if k != "per category (samples)"})

# %% [markdown]
# Zero-shot accuracy on the samples, per category: which categories the prior draws recognisably.

# %%
pd.Series(text_q["per category (samples)"]).round(2).to_frame("top-1").T

# %% [markdown]
# ## The view prior's novel views
# For each held-out object: its first view as the reference, and the relative camera to each of its other
# views. The sampled view against the ground truth, next to copying the reference unchanged (what a
# prior that ignores the camera would score).

# %%
view_q, novel = quality.view_quality(view_prior, encoder, real, poses, seed=seed)
view_table = pd.DataFrame(view_q).T
plots.save_table(f"View prior on {len(objs)} held-out objects × {real.shape[1] - 1} camera moves\n\n"
                 + view_table.round(3).to_markdown(), "08_view_prior")
view_table.round(3)

# %% [markdown]
# Score distillation does not run a sampling chain: it asks the prior for *one* denoising step at a
# random noise level. The same held-out pairs, one step each: the clean target view predicted from
# its noised version, with the reference and the camera, and with the condition dropped, in PSNR
# against the target (PSNR of copying the reference beside it).

# %%
steps = pd.DataFrame(quality.one_step_denoising(view_prior, real, poses, seed=seed)).T
plots.save_table("One denoising step of the view prior on held-out pairs (PSNR vs the target view, dB)\n\n"
                 + steps.round(2).to_markdown(), "08_view_prior_one_step")
steps.round(2)

# %% [markdown]
# ## Which sampler
# The samples above are drawn by ancestral DDPM sampling (ours: `diffusers`' `DDPMScheduler`,
# strided over {fixed}`50` of the {fixed}`1,000` training timesteps, fresh noise at every step). The book first drew
# them by deterministic DDIM (`DDIMScheduler`, η = {fixed}`0`, `diffusers`' defaults), and with these small
# priors that chain drifts: it clips its predicted clean image to {fixed}`[−1, 1]` but keeps the predicted
# noise, and no fresh noise pulls it back, so its samples were far worse than one denoising step of
# the same prior (the table above). Both samplers on the same priors, seeds, steps and guidance:

# %%
ddim_text, ddim_samples, _, _ = quality.text_prior_quality(text_prior, encoder, objs, real, seed=seed, sampler="ddim")
ddim_view, ddim_novel = quality.view_quality(view_prior, encoder, real, poses, seed=seed, sampler="ddim")
samplers = pd.DataFrame({
    name: {"text: zero-shot top-1 on samples": t["zero-shot top-1 on samples"],
           "text: FD-CLIP samples vs real": t["FD-CLIP samples vs real"],
           "view: PSNR vs ground truth (dB)": v["view prior"]["PSNR vs ground truth (dB)"],
           "view: CLIP similarity to ground truth": v["view prior"]["CLIP similarity to ground truth"]}
    for name, t, v in (("ancestral DDPM (ours)", text_q, view_q), ("DDIM, eta = 0 (the book's first)", ddim_text, ddim_view))}).T
plots.save_table(f"Samplers, 50 steps, guidance scale 3 ({len(samples)} text samples, {novel.shape[0] * novel.shape[1]} "
                 f"novel views; real renders: zero-shot {text_q['zero-shot top-1 on real renders']:.3f}; copying the "
                 f"reference: {view_q['copy the reference']['PSNR vs ground truth (dB)']:.2f} dB)\n\n"
                 + samplers.round(3).to_markdown(), "08_samplers")
samplers.round(3)

# %% [markdown]
# The first sample of each category, and novel views of held-out objects, by both samplers:

# %%
first = torch.arange(16) * per
plots.show(dict(images=torch.cat([ddim_samples[first], samples[first]]), titles=names, ncols=16, size=0.75,
                row_labels=["DDIM (first)", "DDPM (ours)"]), "08_sampler_samples")

# %%
show = list(range(0, len(objs), max(1, len(objs) // 8)))[:8]
rows = [real[show, 0], novel[show, 0], ddim_novel[show, 0], real[show, 1]]
plots.show(dict(images=torch.cat(rows), ncols=len(show), size=1.0,
                row_labels=["reference", "view prior (DDPM, ours)", "view prior (DDIM, first)", "ground truth"]),
           "08_novel_views")

# %% [markdown]
# ## Claims
# The priors are the book's own stand-ins: what is recorded is how good they are, judged against the
# bars the book set for them before training (samples recognisable per category; novel views
# closer to the truth than the copied reference).

# %%
zero_shot = text_q["zero-shot top-1 on samples"]
psnr_view, psnr_copy = (view_q[k]["PSNR vs ground truth (dB)"] for k in ("view prior", "copy the reference"))
rec = [claims.record("priors.text_zero_shot_samples", round(zero_shot, 3),
                     note=f"{len(samples)} samples (16 categories; ancestral DDPM, 50 steps; by DDIM, the book's first "
                          f"sampler, {ddim_text['zero-shot top-1 on samples']:.3f}); on real renders of held-out objects at the "
                          f"same size {text_q['zero-shot top-1 on real renders']:.3f}; FD-CLIP samples vs real "
                          f"{text_q['FD-CLIP samples vs real']:.3f}; trained in {text_prior.info['seconds']:.0f} s"),
       claims.record("priors.view_psnr_gain", round(psnr_view - psnr_copy, 2),
                     note=f"novel views of held-out objects: view prior {psnr_view:.2f} dB (ancestral DDPM; by DDIM "
                          f"{ddim_view['view prior']['PSNR vs ground truth (dB)']:.2f} dB), copying the reference "
                          f"{psnr_copy:.2f} dB; trained in {view_prior.info['seconds']:.0f} s")]
claims.frame(rec)
