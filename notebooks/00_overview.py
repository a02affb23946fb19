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
# # Overview: the pipeline and the machinery
#
# *Prompt2NeRF-PIL* generates the weights of a small NeRF from a prompt in one forward pass:
# a CLIP image embedding goes through a Transformer into the latent space of {paper}`14` per-tensor VAEs,
# whose decoders give the {paper}`7` weight matrices and {paper}`7` bias vectors of a NeRF MLP. This first
# chapter shows that pipeline, reports the environment that executed the book, and records a
# first claim, so every later chapter can follow the same pattern: a `parameters` cell, short
# cells that call `p2nlib`, figures saved through `p2nlib.plots.savefig`.

# %% tags=["parameters"]
import os

# profile: tiny | small | gpu | paper; device: auto (cuda when present) | cpu | cuda
profile = os.environ.get("P2N_PROFILE", "small")
device = os.environ.get("P2N_DEVICE", "auto")
seed = 0

# %%
import pandas as pd

from p2nlib.book import claims, plots
from p2nlib.book.notebook import environment_report, setup
from p2nlib.core.profiles import profile_table
from p2nlib.data import nerf

ctx = setup(profile, device, seed)
pd.Series(environment_report(ctx), name="value").to_frame()

# %% [markdown]
# ## The pipeline (paper Fig. 1)
# Text prompts are not embedded directly: the paper maps them to the semantically nearest
# training scene and uses that scene's *image* embedding, because matched text and image
# embeddings are far apart in CLIP space (supplement II).

# %%
fig = plots.pipeline_diagram()
plots.savefig(fig, "00_pipeline")

# %% [markdown]
# ## Profiles
# One table holds every size; `tiny` is what CI runs, `small` produced the outputs you read,
# `paper` is the paper's scale on a GPU.

# %%
pd.DataFrame(profile_table()).set_index("name").T

# %% [markdown]
# ## The NeRF as {claim}`overview.nerf_param_tensors`
# The paper's NeRF is a {paper}`7`-layer MLP whose parameters are saved as {paper}`14` components: {paper}`7` weights and
# {paper}`7` biases. We build the profile's NeRF and count its tensors; this is the book's first claim.

# %%
spec = nerf.NerfSpec.from_profile(ctx.profile)
shapes = spec.shapes()
print(f"{len(shapes)} tensors, {spec.num_params():,} parameters")
pd.DataFrame([(k, tuple(v)) for k, v in shapes.items()], columns=["tensor", "shape"])

# %% [markdown]
# Whatever the profile, the NeRF has the paper's {paper}`14` tensors in the same order; CI checks this cell's output
# (`NBVAL_CHECK_OUTPUT`) when it runs the notebook on the `tiny` profile.

# %%
# NBVAL_CHECK_OUTPUT
print(len(shapes), list(shapes)[:2], list(shapes)[-2:])

# %%
claims.record("overview.nerf_param_tensors", len(shapes), note=f"7-layer MLP, width {spec.width}")
