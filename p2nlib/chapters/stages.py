"""Render-level evaluation of stages 1 and 2 (03, 04): reconstruction tables, render pairs, latent
interpolation, generation from views, rotation invariance."""
from __future__ import annotations


import pandas as pd
import torch

from p2nlib.core.profiles import Profile
from p2nlib.data import fit
from p2nlib.eval import views
from p2nlib.generate import vae


def _poses(p: Profile) -> torch.Tensor:
    return fit.heldout_poses(fit.FitConfig.from_profile(p))


def render(params, spec, p: Profile, poses: torch.Tensor | None = None) -> torch.Tensor:
    """Render NeRFs at the held-out poses (default) -> (B, V, H, W, 3)."""
    return fit.render_nerfs(params, spec, _poses(p) if poses is None else poses, p.image_size, p.samples_per_ray)


def render_psnrs(params, ds, p: Profile, idx: list[int]) -> dict[str, float]:
    """Mean PSNR of NeRFs ``params`` (for objects ``idx``) against the original NeRFs and the ground truth (both
    rendered once per process: :data:`p2nlib.eval.views.MEMO`)."""
    ours = render(params, ds.spec, p).cpu()
    orig = views.dataset_renders(ds, idx, _poses(p), p.image_size, p.samples_per_ray)
    gt = views.ground_truth(ds.world_objects(idx), _poses(p), p.image_size, p.samples_per_ray)
    dims = (1, 2, 3, 4)
    return {"PSNR vs original NeRF (dB)": fit.psnr(ours, orig, dims).mean().item(),
            "PSNR vs ground truth (dB)": fit.psnr(ours, gt, dims).mean().item(),
            "original NeRF vs ground truth (dB)": fit.psnr(orig, gt, dims).mean().item()}


def spread(idx: list[int], cap: int) -> list[int]:
    """At most ``cap`` of ``idx``, evenly spaced through it. The dataset is ordered by category, so a prefix
    ``idx[:cap]`` would hold the first categories only; every k-th scene keeps them all."""
    step = max(1, -(-len(idx) // cap))
    return list(idx[::step])


def vae_reconstruction_table(model, ds, p: Profile, splits: dict[str, list[int]]) -> pd.DataFrame:
    """Parameter MSE and render PSNRs of VAE reconstructions per split (at most `p.eval_train_cap` scenes each,
    spread over every category: :func:`spread`)."""
    rows = {}
    for name, idx in splits.items():
        idx = spread(idx, p.eval_train_cap)
        params = ds.select(idx)
        rec = vae.reconstruct(model, params)
        rows[name] = {"objects": len(idx), "parameter MSE (normalised)": vae.param_mse(model, params),
                      **render_psnrs(rec, ds, p, idx)}
    return pd.DataFrame(rows).T


def render_pair(model, ds, p: Profile, idx: list[int]) -> torch.Tensor:
    """First held-out view of original NeRFs then of their reconstructions: (2 * len(idx), H, W, 3)."""
    poses = _poses(p)[:1]
    orig = render(ds.select(idx), ds.spec, p, poses)[:, 0]
    rec = render(vae.reconstruct(model, ds.select(idx)), ds.spec, p, poses)[:, 0]
    return torch.cat([orig, rec])


def interpolation_pairs(ds) -> list[tuple[str, str, tuple[int, int]]]:
    """Two within-category pairs (different colours where possible) and two across categories."""
    out = []
    for cat in ("chair", "car"):
        idx = ds.indices("train", cat)
        a = idx[0]
        b = next((i for i in idx[1:] if ds.objects[i]["attributes"].get("color") != ds.objects[a]["attributes"].get("color")), idx[-1])
        out.append((f"{cat} ({ds.objects[a]['attributes'].get('color')})",
                    f"{cat} ({ds.objects[b]['attributes'].get('color')})", (a, b)))
    for c1, c2 in (("chair", "airplane"), ("table", "lamp")):
        a, b = ds.indices("train", c1)[0], ds.indices("train", c2)[0]
        out.append((c1, c2, (a, b)))
    return out


@torch.no_grad()
def interpolate(model, ds, p: Profile, pairs, steps: int = 7) -> torch.Tensor:
    """Decoded renders along the line between two latent means -> (pairs, steps, H, W, 3)."""
    rows = []
    t = torch.linspace(0, 1, steps)[:, None, None]
    for _, _, (a, b) in pairs:
        mu, _ = model.encode(ds.select([a, b]))
        z = (1 - t) * mu[0] + t * mu[1]
        rows.append(render(model.decode(z), ds.spec, p, _poses(p)[:1])[:, 0])
    return torch.stack(rows)


@torch.no_grad()
def generate_from_views(aligner, model_vae, emb: torch.Tensor, view: int = 0) -> dict[str, torch.Tensor]:
    """NeRF parameters generated from view ``view`` of each scene's embeddings (N, V, D)."""
    return model_vae.decode(aligner.generate(emb[:, view]))


def gt_vs_generated(aligner, model_vae, emb: torch.Tensor, ds, p: Profile, idx: list[int]) -> torch.Tensor:
    """Ground-truth first held-out view, then the generated NeRF's render: (2 * len(idx), H, W, 3)."""
    poses = _poses(p)[:1]
    gen = render(model_vae.decode(aligner.generate(emb)), ds.spec, p, poses)[:, 0]
    gt = fit.render_ground_truth(ds.world_objects(idx), poses, p.image_size, p.samples_per_ray)[:, 0]
    return torch.cat([gt, gen])


@torch.no_grad()
def rotation_study(aligner, model_vae, emb: torch.Tensor, ds, p: Profile, idx: list[int]
                   ) -> tuple[dict[str, float], pd.DataFrame]:
    """Generate from every view of each scene; consistency across views and PSNR vs ground truth.

    Returns the means (one table row) and, per scene (rows in the order of ``idx``), its PSNR vs ground truth
    averaged over input views and its consistency (mean pairwise PSNR between the views' renders), which pair
    the scenes of two aligners for an interval of their difference."""
    N, V = emb.shape[:2]
    poses = _poses(p)
    gt = fit.render_ground_truth(ds.world_objects(idx), poses, p.image_size, p.samples_per_ray)   # (N, P, ...)
    renders = torch.stack([render(model_vae.decode(aligner.generate(emb[:, v])), ds.spec, p, poses)
                           for v in range(V)], 1)                                              # (N, V, P, ...)
    dims = (-4, -3, -2, -1)
    vs_gt = fit.psnr(renders, gt[:, None], dims)                                              # (N, V)
    pairs = [fit.psnr(renders[:, a], renders[:, b], dims) for a in range(V) for b in range(a + 1, V)]   # (N,) each
    per_scene = pd.DataFrame({"PSNR vs ground truth (dB)": vs_gt.mean(1).cpu().numpy(),
                              "consistency (dB)": (torch.stack(pairs, 1).mean(1) if pairs else torch.zeros(N)).cpu().numpy()},
                             index=[ds.objects[i]["object_id"] for i in idx])
    return {"PSNR vs ground truth (dB)": vs_gt.mean().item(), "PSNR from view 0 (dB)": vs_gt[:, 0].mean().item(),
            "PSNR std over views (dB)": vs_gt.std(1).mean().item() if V > 1 else 0.0,
            "consistency (dB)": sum(q.mean().item() for q in pairs) / max(len(pairs), 1)}, per_scene


@torch.no_grad()
def generate_strip(aligner, model_vae, emb_views: torch.Tensor, ds, p: Profile) -> torch.Tensor:
    """One scene prompted with each of its views (V, D) -> renders at one fixed pose (V, H, W, 3)."""
    return render(model_vae.decode(aligner.generate(emb_views)), ds.spec, p, _poses(p)[:1])[:, 0]
