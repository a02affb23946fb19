"""What stages 1 and 2 need to generalise: one lever at a time, chosen on the validation split and
reported on the test split.

Each :class:`Variant` is the profile's stage-1 config with one change (the reconstruction loss, its
weight, the number of training NeRFs, the KL weight, the latent size). For each, a VAE is trained on
the train split (cached on disk by what produced it) and measured by

* reconstruction: decoded vs ground-truth views and vs the original NeRF's views, validation, test
  and train split (the train–test gap shows memorisation);
* generation (for variants with ``aligner=True``): an alignment Transformer trained on that VAE's
  latents maps the CLIP embedding of an *unseen* view (the prompt pose of 05) to a NeRF; PSNR vs
  ground truth and CLIP similarity at the evaluation poses, next to decoding the *true* latent means
  (the VAE's share of the error) so the aligner's share is visible; the aligner also on validation.

A recipe is chosen by its validation numbers (:func:`choose`); the test split is read for the
reported numbers only.

The study runs in notebook 07; the recipe the book adopts is the profile's (``vae_param_weight``,
``vae_function_weight``), and the paper's (parameter MSE only) is always a row. The data-size, KL and
latent-size rows vary the adopted recipe (:func:`adopted`).
"""
from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass, field

import pandas as pd
import torch

from p2nlib.core import artifacts, paths
from p2nlib.core.profiles import STUDY_LEVERS, Profile
from p2nlib.eval import metrics
from p2nlib.chapters import stages
from p2nlib.eval import views as ev
from p2nlib.generate import align, vae


@dataclass(frozen=True)
class Variant:
    name: str
    lever: str
    vae: dict = field(default_factory=dict)      # VaeConfig overrides
    per_category: int | None = None              # training NeRFs per category (None: the whole train split)
    aligner: bool = False                        # also train an aligner and measure generation
    proximal: float = 0.0                        # refit the scenes with this pull toward the template


#: the function-space recipe the study measures beside the paper's (parameter MSE + 100 × function-space term)
OURS = {"param_weight": 1.0, "function_weight": 100.0}
#: the function-space term alone (ours)
FUNCTION_ONLY = {"param_weight": 0.0, "function_weight": 100.0}


def adopted(p: Profile) -> dict:
    """The reconstruction loss the profile adopts (``vae_param_weight``, ``vae_function_weight``): the recipe
    of chapters 03–06, of the study's lever rows and of its dataset splits."""
    return {"param_weight": p.vae_param_weight, "function_weight": p.vae_function_weight}


#: the proximal pull toward the template of the "proximal fitting" row (see :class:`p2nlib.data.fit.FitConfig`)
PROXIMAL = 1.0


def variants(p: Profile) -> list[Variant]:
    """The study's rows for a profile: the paper's recipe; ours (the function-space term added) and the
    function-space term alone; then, on our recipe, data size (two smaller training sets; the full one is
    ours' row), the dataset refitted with a proximal pull toward the template (on the smaller set, to be
    compared with that set's row), KL weight and latent size (on the larger of the two smaller sets, to be
    compared with that set's row: a shorter training that does not change what the row shows). Only the rows of
    the profile's ``study_levers`` (the small profile leaves out the KL weight and the latent size)."""
    per = p.objects_per_category
    sizes = sorted({max(2, per // 3), max(2, (2 * per) // 3)})
    ours = adopted(p)
    unknown = set(p.study_levers) - set(STUDY_LEVERS)
    if unknown or "loss" not in p.study_levers:
        raise ValueError(f"profile {p.name!r}: study_levers must include 'loss' and come from {STUDY_LEVERS}, "
                         f"got {p.study_levers}")
    rows = [
        Variant("paper: parameter MSE", "loss", {"param_weight": 1.0, "function_weight": 0.0}, aligner=True),
        Variant("ours: param + 100 × function", "loss", OURS, aligner=True),
        Variant("function-space only", "loss", FUNCTION_ONLY, aligner=True),
        *[Variant(f"ours, {n} NeRFs per category", "data size", ours, per_category=n) for n in sizes],
        Variant(f"ours, {sizes[0]} per category, proximal fitting", "dataset fitting", ours,
                per_category=sizes[0], proximal=PROXIMAL),
        Variant(f"ours, {sizes[-1]} per category, KL weight × 10", "KL weight", {**ours, "beta": 10 * p.vae_beta},
                per_category=sizes[-1]),
        Variant(f"ours, {sizes[-1]} per category, latent size ÷ 2", "latent size",
                {**ours, "latent_dim": p.clip_embed_dim // 2}, per_category=sizes[-1]),
    ]
    return [v for v in rows if v.lever in p.study_levers]


def train_indices(ds, per_category: int | None) -> list[int]:
    """The train split, or its first ``per_category`` scenes of each category."""
    if per_category is None:
        return ds.indices("train")
    cats = sorted({o["category"] for o in ds.objects})
    return sorted(i for c in cats for i in ds.indices("train", c)[:per_category])


def _cached_part(p: Profile, name: str, key: dict, make, build):
    """Train-once storage of a study part (a VAE or an aligner) through :func:`artifacts.cached`."""
    def compute():
        t0 = time.perf_counter()
        model = make()
        return model.state_dict(), {"seconds": time.perf_counter() - t0}

    state, data = artifacts.cached(paths.stage_dir(p.name, "study"), name, key, compute)
    model = build()
    model.load_state_dict(state)
    return model.eval(), data["seconds"]


def proximal_dataset(p: Profile, ds, idx: list[int], strength: float, device="cpu", seed: int = 0,
                     progress: bool = True):
    """``ds`` with the scenes ``idx`` refitted from the shared template with a proximal pull of ``strength``
    toward it (:class:`p2nlib.data.fit.FitConfig`), in chunks of the profile's fitting batch; cached.

    Returns a :class:`~p2nlib.data.store.Dataset` whose rows ``idx`` (and only those) are the new fits,
    whose fingerprint is theirs, and whose objects' ``psnr_heldout`` are the new fits' held-out PSNRs.
    """
    from p2nlib.data import fit, nerf

    cfg = dataclasses.replace(fit.FitConfig.from_profile(p), proximal=strength)
    key = {"profile": p.name, "fit": cfg.to_dict(), "dataset": ds.fingerprint, "scenes": idx, "seed": seed,
           "code": artifacts.code_digest(fit)}

    def compute():
        spec, objs, parts, psnrs = ds.spec, ds.world_objects(idx), [], []
        for s in range(0, len(idx), p.fit_batch):
            res = fit.fit(objs[s:s + p.fit_batch], spec, cfg, seed=seed + idx[s], device=device, progress=progress)
            parts.append(res.params)
            psnrs += res.psnr_heldout.tolist()
        return {k: torch.cat([q[k] for q in parts]) for k in nerf.PARAM_NAMES}, {"psnr_heldout": psnrs}

    fitted, data = artifacts.cached(paths.stage_dir(p.name, "study"), "proximal", key, compute)
    params = {k: v.clone() for k, v in ds.params.items()}
    for k in params:
        params[k][torch.as_tensor(idx)] = fitted[k]
    objects = [dict(o) for o in ds.objects]
    for i, q in zip(idx, data["psnr_heldout"]):
        objects[i]["psnr_heldout"] = q
    manifest = {**ds.manifest, "objects": objects,
                "checksums": {**ds.manifest["checksums"], "params.safetensors": artifacts.tensor_digest(params)}}
    return dataclasses.replace(ds, manifest=manifest, params=params)


def book_vae(p: Profile, ds) -> vae.ParamVAE | None:
    """Chapter 03's VAE for the dataset ``ds`` (None when there is none, or it was trained on another dataset)."""
    from p2nlib.core.errors import ArtifactError

    try:
        return vae.load(p, ds)
    except ArtifactError:
        return None


def train_variant(v: Variant, p: Profile, ds, device="cpu", seed: int = 0,
                  book: vae.ParamVAE | None = None) -> tuple[vae.ParamVAE, float, list[int]]:
    """The variant's VAE, trained on its training scenes (cached). ``book``: chapter 03's VAE for ``ds``
    (:func:`book_vae`), used instead when it is exactly this variant (same config and training scenes).
    Returns (model, training seconds, indices)."""
    cfg = vae.VaeConfig.from_profile(p, **v.vae)
    idx = train_indices(ds, v.per_category)
    if seed == 0 and book is not None and book.cfg == cfg and book.trained_on == idx \
            and book.train_seconds is not None:
        return book, book.train_seconds, idx
    key = {"profile": p.name, "config": dataclasses.asdict(cfg), "dataset": ds.fingerprint, "train": idx,
           "seed": seed, "code": artifacts.code_digest(vae)}
    model, seconds = _cached_part(
        p, "vae", key, lambda: vae.train(ds.select(idx), ds.spec, cfg, device=device, seed=seed, progress=False)[0],
        lambda: vae.ParamVAE(ds.spec, cfg))
    model.weights_sha256 = artifacts.key_digest(key)
    return model, seconds, idx


def book_aligner(p: Profile) -> align.Aligner | None:
    """Chapter 04's aligner, or None when there is none (whether it is the one a study needs is
    :func:`p2nlib.generate.align.same_training`'s to say)."""
    from p2nlib.core.errors import ArtifactError

    try:
        return align.load(p, {})
    except ArtifactError:
        return None


def train_aligner(model: vae.ParamVAE, p: Profile, ds, cache: torch.Tensor, idx: list[int], device="cpu",
                  seed: int = 0) -> tuple[align.Aligner, float]:
    """An aligner from the CLIP embeddings of the scenes ``idx`` to this VAE's latent means (cached). Chapter
    04's aligner (:func:`book_aligner`) is used instead when it is exactly this one: same config, training inputs,
    seed and code (its validation pass draws no random numbers, so on the CPU its weights are those this
    function would train, bit for bit; on a GPU up to its non-deterministic kernels; its seconds are the
    training's alone)."""
    cfg = align.AlignConfig.from_profile(p)
    cfg = dataclasses.replace(cfg, latent_dim=model.cfg.latent_dim)
    with torch.no_grad():
        latents, _ = model.encode(ds.select(idx))
    book = book_aligner(p)
    if book is not None and align.same_training(book, cfg, cache[idx], latents, seed):
        return book, book.trained["seconds"]
    key = {"profile": p.name, "config": dataclasses.asdict(cfg), "vae": model.weights_sha256, "train": idx,
           "embeddings": artifacts.tensor_digest(cache), "seed": seed, "code": artifacts.code_digest(align)}

    def make():
        return align.train(cache[idx], latents, cfg, device=device, seed=seed, progress=False)[0]

    return _cached_part(p, "align", key, make, lambda: align.Aligner(cfg))


def reconstruction(model: vae.ParamVAE, ds, p: Profile, idx: list[int]) -> dict[str, float]:
    """Mean PSNR of decoded NeRFs vs ground truth and vs the original NeRFs (held-out views)."""
    return stages.render_psnrs(vae.reconstruct(model, ds.select(idx)), ds, p, idx)


def generation(model: vae.ParamVAE, aligner: align.Aligner | None, encoder, ds, p: Profile,
               idx: list[int], true_latents: bool = True) -> dict[str, float]:
    """From the prompt view (not among the embedding cache's views): the aligner's NeRF and (``true_latents``)
    the NeRF decoded from the true latent means, each by PSNR vs ground truth and CLIP similarity at the
    evaluation poses."""
    objs = ds.world_objects(idx)
    n = p.eval_views
    gt = ev.gt_views(objs, p, n)
    out = {}
    sets = {}
    with torch.no_grad():
        if true_latents:
            sets["true latents"] = model.decode(model.encode(ds.select(idx))[0])
        if aligner is not None:
            emb = encoder.encode_images(ev.prompt_images(objs, p))
            sets["aligner"] = model.decode(aligner.generate(emb))
    for name, params in sets.items():
        views = ev.render_views(params, ds.spec, p, n)
        out[f"{name}: PSNR vs GT (dB)"] = float(metrics.psnr(views, gt, (1, 2, 3, 4)).mean())
        out[f"{name}: CLIP similarity"] = float(metrics.image_similarity(encoder, views, gt).mean())
    return out


def run(p: Profile, ds, encoder, cache: torch.Tensor, device="cpu", seed: int = 0,
        progress: bool = True) -> pd.DataFrame:
    """Every variant of :func:`variants`: one row each with its lever, recipe, training scenes and seconds,
    reconstruction PSNRs (test, train, the gap) and, where trained, generation from the unseen view."""
    from tqdm.auto import tqdm

    from p2nlib.data import fit

    test_idx, val_idx = ds.indices("test"), ds.indices("val")
    book = book_vae(p, ds)                       # read once; only the rows on ``ds`` itself can be it
    rows = []
    for v in tqdm(variants(p), desc="stage-1/2 study", disable=not progress):
        vds = ds
        if v.proximal:
            vds = proximal_dataset(p, ds, train_indices(ds, v.per_category) + val_idx + test_idx, v.proximal, device, seed,
                                   progress=False)
        model, seconds, idx = train_variant(v, p, vds, device, seed, book=book if vds is ds else None)
        rec_test = reconstruction(model, vds, p, test_idx)
        rec_val = reconstruction(model, vds, p, val_idx) if val_idx else {"PSNR vs ground truth (dB)": float("nan")}
        rec_train = reconstruction(model, vds, p, stages.spread(idx, p.eval_train_cap))
        row = {"variant": v.name, "lever": v.lever, "recipe": model.cfg.recipe, "train NeRFs": len(idx),
               "fit held-out PSNR (dB)": sum(vds.objects[i]["psnr_heldout"] for i in idx) / len(idx),
               "distance to template": float(fit.template_distance(vds.select(idx), vds.spec).mean()),
               "VAE seconds": round(seconds, 1),
               "recon val vs GT (dB)": rec_val["PSNR vs ground truth (dB)"],
               "recon test vs GT (dB)": rec_test["PSNR vs ground truth (dB)"],
               "recon test vs original (dB)": rec_test["PSNR vs original NeRF (dB)"],
               "recon train vs GT (dB)": rec_train["PSNR vs ground truth (dB)"]}
        row["train - test gap (dB)"] = row["recon train vs GT (dB)"] - row["recon test vs GT (dB)"]
        aligner = None
        if v.aligner:
            aligner, a_seconds = train_aligner(model, p, vds, cache, idx, device, seed)
            row["aligner seconds"] = round(a_seconds, 1)
        row.update(generation(model, aligner, encoder, vds, p, test_idx))
        if aligner is not None and val_idx:
            row.update({f"val {k}": v for k, v in
                        generation(model, aligner, encoder, vds, p, val_idx, true_latents=False).items()})
        rows.append(row)
    return pd.DataFrame(rows).set_index("variant")


def split_study(p: Profile, ds, encoder, cache: torch.Tensor, device="cpu", seed: int = 0,
                progress: bool = True) -> pd.DataFrame:
    """The adopted recipe over ``p.split_seeds`` train/validation/test splits of the same NeRFs (split seed 0 is
    the book's split, whose VAE is chapter 03's and whose aligner is the study's own row): on each split, stage 1
    and stage 2 are trained from scratch on its train split with training seed ``seed + split seed``, then
    measured on its test split by the protocol of :func:`generation` (the prompt view of 05, the evaluation
    poses): reconstruction PSNR, generation PSNR and CLIP similarity on test and on (up to
    ``eval_train_cap``, spread over the categories) train scenes, and retrieval (the fitted NeRF of the nearest training scene by CLIP
    image embedding) on test. One row per split."""
    from tqdm.auto import tqdm

    book = book_vae(p, ds)
    recipe = Variant("adopted recipe", "split", adopted(p))
    rows = []
    for k in tqdm(range(p.split_seeds), desc="dataset splits", disable=not progress):
        sds = ds.resplit(k)
        test_idx = sds.indices("test")
        model, seconds, idx = train_variant(recipe, p, sds, device, seed + k, book=book if k == 0 else None)
        aligner, a_seconds = train_aligner(model, p, sds, cache, idx, device, seed + k)
        test = generation(model, aligner, encoder, sds, p, test_idx, true_latents=False)
        train = generation(model, aligner, encoder, sds, p, stages.spread(idx, p.eval_train_cap), true_latents=False)
        objs = sds.world_objects(test_idx)
        near, _ = ev.nearest_train_scenes(cache, encoder.encode_images(ev.prompt_images(objs, p)), idx)
        views = ev.render_views(sds.select(near), sds.spec, p, p.eval_views)
        retrieval = float(metrics.image_similarity(encoder, views, ev.gt_views(objs, p, p.eval_views)).mean())
        rows.append({"split seed": k, "training seed": seed + k,
                     "test objects": ", ".join(sds.objects[i]["object_id"] for i in test_idx[:3]) + ", …",
                     "VAE + aligner seconds": round(seconds + a_seconds, 1),
                     "recon test vs GT (dB)": reconstruction(model, sds, p, test_idx)["PSNR vs ground truth (dB)"],
                     "generation test PSNR (dB)": test["aligner: PSNR vs GT (dB)"],
                     "generation test similarity": test["aligner: CLIP similarity"],
                     "generation train similarity": train["aligner: CLIP similarity"],
                     "retrieval test similarity": retrieval})
        rows[-1]["ours / retrieval"] = rows[-1]["generation test similarity"] / retrieval
    return pd.DataFrame(rows).set_index("split seed")


def choose(table: pd.DataFrame, lever: str = "loss", column: str = "recon val vs GT (dB)") -> str:
    """The row of ``lever`` with the best validation ``column`` (the choice is never made on test)."""
    rows = table[table.lever == lever][column].dropna()
    if rows.empty:
        raise ValueError(f"no {column!r} for the {lever!r} rows: the dataset has no validation split "
                         "(fewer than 3 objects per category)")
    return str(rows.idxmax())


def original_nerfs(ds, p: Profile) -> dict[str, float]:
    """The ceiling: the fitted test NeRFs themselves vs ground truth, at the study's poses."""
    idx = ds.indices("test")
    gt = ev.gt_views(ds.world_objects(idx), p, p.eval_views)
    views = ev.render_views(ds.select(idx), ds.spec, p, p.eval_views)
    return {"fitted NeRFs: PSNR vs GT (dB)": float(metrics.psnr(views, gt, (1, 2, 3, 4)).mean()),
            "mean NeRF: PSNR vs GT (dB)": float(metrics.psnr(
                ev.render_views({k: v.mean(0, keepdim=True).expand_as(v) for k, v in ds.select(idx).items()},
                                ds.spec, p, p.eval_views), gt, (1, 2, 3, 4)).mean())}

