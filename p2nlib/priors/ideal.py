"""The ideal priors of the book's world (ours): closed-form denoisers of its renders, beside the trained UNets.

The world is procedural and fully known, so the best diffusion prior of it needs no training: the minimum-error
denoiser of the empirical distribution of its renders. For renders ``y_i`` with prior weights ``pi_i(c)`` under a
condition ``c``, and ``x_t = sqrt(a) x_0 + sqrt(1 - a) eps`` (``a`` = alpha-bar of the prior's own schedule),

    E[x_0 | x_t, c] = sum_i softmax_i(log pi_i(c) - |x_t - sqrt(a) y_i|^2 / (2 (1 - a))) y_i,

and the noise prediction is ``(x_t - sqrt(a) E[x_0 | x_t, c]) / sqrt(1 - a)``: one (batch x renders) matrix product
per step. Both priors take the trained priors' inputs (:class:`~p2nlib.priors.models.TextPrior`,
:class:`~p2nlib.priors.models.ViewPrior`) and ``drop`` (the condition replaced by "none": uniform over every
object, seen from the camera of the render, so classifier-free guidance works unchanged), so score distillation uses them unchanged
(:class:`p2nlib.baselines.sds.TextSDSGuidance`, :class:`~p2nlib.baselines.sds.ImageSDSGuidance`).

The renders (:func:`render_bank`): every object of the CLIP training set (``clip_train``) that the book never
scores against — the NeRF dataset's validation and test scenes and the image prompts' objects are left out
(:func:`excluded_ids`; a test proves it) — seen from a dense orbit of cameras (:data:`AZIMUTHS` x
:data:`ELEVATIONS`, the range score distillation samples) at the prior's size.

* **text** (stands in for Stable Diffusion / Imagen, :class:`IdealTextPrior`): ``pi(c)`` is uniform over the
  ``top_k`` objects whose captions are nearest the prompt's CLIP text embedding (the book's CLIP), and over their
  renders from the camera nearest the one score distillation renders (DreamFusion's view-dependent prompting,
  here exact).
* **view** (stands in for Zero-1-to-3, :class:`IdealViewPrior`): each object weighted by how well its render at
  the reference camera explains the reference image (a Gaussian likelihood of pixel noise ``ref_sigma``); the
  target view is that object's render from the camera nearest the requested one.
"""
from __future__ import annotations

import math
import sys
from dataclasses import asdict, dataclass, replace

import torch
from torch import nn

from p2nlib.core import artifacts, paths
from p2nlib.core.profiles import Profile
from p2nlib.data import cameras, world
from p2nlib.priors import models

#: the dense orbit of the render bank: azimuths every 360 / AZIMUTHS degrees, and these elevations (degrees),
#: which cover the range the per-prompt optimisation samples its views from (10-40 degrees)
AZIMUTHS, ELEVATIONS = 24, (10.0, 25.0, 40.0)
#: samples per ray of the bank's renders (the ground-truth renderer supersamples them 2x)
BANK_SAMPLES = 20
#: objects rendered together
BANK_GROUP = 16


@dataclass(frozen=True)
class IdealConfig:
    """What an ideal prior is made of: how many caption-nearest objects the text condition keeps (``top_k``), the
    reference likelihood's pixel noise of the view prior (model space, [-1, 1]), whether the text prior reads
    the camera, and the guidance scales score distillation uses with them (an exact prior needs no large scale
    to be sharp: DreamFusion's 100 compensates a weak one)."""
    top_k: int = 1                  # the caption-nearest object alone: measured against 3 on the from-scratch study
                                    # (one seed: 7 of 10 prompts built against 6, the colours right)
    ref_sigma: float = 0.1
    camera_aware: bool = True
    text_scale: float = 3.0         # the classifier-free guidance scale score distillation uses with the text prior
    view_scale: float = 3.0         # ... with the view prior (Zero-1-to-3's 3)


def grid_angles() -> torch.Tensor:
    """(C, 2) azimuth and elevation (degrees) of the bank's cameras, elevation-major."""
    az = torch.arange(AZIMUTHS, dtype=torch.float32) * (360.0 / AZIMUTHS)
    return torch.stack([torch.stack([az, torch.full_like(az, el)], -1) for el in ELEVATIONS]).reshape(-1, 2)


def nearest_camera(az: torch.Tensor, el: torch.Tensor) -> torch.Tensor:
    """Index (B,) of the bank camera nearest azimuths and elevations (degrees), by the angle between view directions."""
    g = torch.deg2rad(grid_angles())
    a, e = torch.deg2rad(az.float()), torch.deg2rad(el.float())

    def unit(a_, e_):
        return torch.stack([torch.cos(e_) * torch.sin(a_), torch.sin(e_), torch.cos(e_) * torch.cos(a_)], -1)

    return (unit(a, e) @ unit(g[:, 0], g[:, 1]).T).argmax(-1)


def excluded_ids(p: Profile) -> set[str]:
    """Object ids the book scores against, which no ideal prior may hold: the NeRF dataset's validation and test
    scenes, and every object of the image-prompt and control sets."""
    from p2nlib.data import splits, store

    objs = store.dataset_objects(p)
    split = store.split_for(objs)
    out = {o.object_id for o in objs if split[o.object_id] != "train"}
    for name in ("ood_prompts", "controls"):
        if name in splits.OBJECT_SETS:
            out |= {o.object_id for o in splits.objects(name, p)}
    return out


def bank_objects(p: Profile) -> list[world.WorldObject]:
    """The ideal priors' objects: the CLIP training set without :func:`excluded_ids`."""
    from p2nlib.clip import views as cviews

    bad = excluded_ids(p)
    return [o for o in cviews.training_objects(p) if o.object_id not in bad]


@dataclass
class RenderBank:
    """Renders (N, C, 3, S, S) in [-1, 1] of N objects from the C cameras of :func:`grid_angles`, with each object's
    id, category and captions (its own and the category caption)."""
    renders: torch.Tensor
    object_ids: list[str]
    categories: list[str]
    captions: list[list[str]]

    @property
    def size(self) -> int:
        return self.renders.shape[-1]

    def digest(self) -> str:
        return artifacts.tensor_digest(self.renders)


def render_bank(p: Profile, size: int | None = None, progress: bool = True) -> RenderBank:
    """The ideal priors' renders at the profile's prior size, rendered once and cached under
    ``artifacts/<profile>/priors/``."""
    from tqdm.auto import tqdm

    from p2nlib.data import fit

    size = size or p.prior_size
    objs = bank_objects(p)
    poses = cameras.orbit(grid_angles()[:, 0], grid_angles()[:, 1])
    key = {"profile": p.name, "objects": [o.object_id for o in objs], "azimuths": AZIMUTHS,
           "elevations": list(ELEVATIONS), "size": size, "samples": BANK_SAMPLES}

    def compute():
        out = []
        for s in tqdm(range(0, len(objs), BANK_GROUP), desc="render the ideal priors' bank", disable=not progress,
                      mininterval=5):
            imgs = fit.render_ground_truth(objs[s:s + BANK_GROUP], poses, size, BANK_SAMPLES).cpu()
            out.append((imgs.permute(0, 1, 4, 2, 3) * 2 - 1).half())
        return {"renders": torch.cat(out)}, {}

    tensors, _ = artifacts.cached(paths.stage_dir(p.name, "priors"), "ideal-bank", key, compute)
    caps = [list(o.captions) + [world.category_caption(o.category)] for o in objs]
    return RenderBank(tensors["renders"].float(), [o.object_id for o in objs], [o.category for o in objs], caps)


def posterior_mean(x_t: torch.Tensor, a: torch.Tensor, renders: torch.Tensor, log_pi: torch.Tensor) -> torch.Tensor:
    """E[x_0 | x_t] under the empirical distribution: ``x_t`` (B, D), alpha-bar ``a`` (B,), candidate renders
    (B, J, D) or shared (J, D), log prior weights (B, J) (-inf: excluded) -> (B, D)."""
    sa = a.sqrt()[:, None]
    if renders.dim() == 2:
        cross = x_t @ renders.T                                        # (B, J)
        sq = renders.pow(2).sum(-1)[None]
    else:
        cross = torch.einsum("bd,bjd->bj", x_t, renders)
        sq = renders.pow(2).sum(-1)
    dist = x_t.pow(2).sum(-1, keepdim=True) - 2 * sa * cross + a[:, None] * sq
    w = torch.softmax(log_pi - dist / (2 * (1 - a))[:, None], -1)
    return torch.einsum("bj,jd->bd", w, renders) if renders.dim() == 2 else torch.einsum("bj,bjd->bd", w, renders)


class _Ideal(nn.Module):
    """What both ideal priors share: the bank, the trained priors' schedule and size (``cfg``), the noise
    prediction from the posterior mean, and a fingerprint of what determines them."""

    def __init__(self, bank: RenderBank, cfg: models.PriorConfig, ideal: IdealConfig, kind: str, extra: str = ""):
        super().__init__()
        if bank.size != cfg.size:
            raise ValueError(f"the bank's renders are {bank.size} px, the prior's schedule is for {cfg.size} px")
        self.bank, self.cfg, self.ideal = bank, cfg, ideal
        self.alphas = models.scheduler(cfg).alphas_cumprod.float()
        self.flat = bank.renders.flatten(2)                          # (N, C, D)
        self.fingerprint = artifacts.key_digest({"kind": kind, "bank": bank.digest(), "ideal": asdict(ideal),
                                                 "timesteps": cfg.timesteps, "extra": extra,
                                                 "code": artifacts.code_digest(sys.modules[__name__])})

    def _eps(self, x_t: torch.Tensor, t: torch.Tensor, renders: torch.Tensor, log_pi: torch.Tensor) -> torch.Tensor:
        b = x_t.shape[0]
        a = self.alphas[t.cpu().long()].to(x_t.device)
        x = x_t.float().reshape(b, -1)
        x0 = posterior_mean(x, a, renders, log_pi)
        eps = (x - a.sqrt()[:, None] * x0) / (1 - a).sqrt()[:, None]
        return eps.reshape(x_t.shape)

    def _marginal(self, x_t: torch.Tensor, t: torch.Tensor, cam: torch.Tensor | None) -> torch.Tensor:
        """The unconditional prediction: uniform over every object, seen from the bank cameras ``cam`` (B,) nearest
        the rendered views (the camera belongs to the render, not to the prompt), or from every camera (None)."""
        if cam is None:
            flat = self.flat.reshape(-1, self.flat.shape[-1])
            return self._eps(x_t, t, flat, torch.zeros(x_t.shape[0], flat.shape[0]))
        renders = self.flat[:, cam].transpose(0, 1)                                   # (B, N, D)
        return self._eps(x_t, t, renders, torch.zeros(renders.shape[:2]))

    def _with_drop(self, x_t, t, drop, conditional, cams: torch.Tensor | None) -> torch.Tensor:
        """``conditional(rows)`` where the condition is kept, :meth:`_marginal` where ``drop`` is set; ``cams`` (B,):
        each row's nearest bank camera, or None."""
        if drop is None or not bool(drop.any()):
            return conditional(torch.arange(x_t.shape[0]))
        out = torch.empty_like(x_t, dtype=torch.float32)
        keep = (~drop.cpu()).nonzero().flatten()
        gone = drop.cpu().nonzero().flatten()
        if len(keep):
            out[keep] = conditional(keep)
        out[gone] = self._marginal(x_t[gone], t[gone], None if cams is None else cams[gone])
        return out


class IdealTextPrior(_Ideal):
    """The closed-form text-conditioned prior of the world (ours; stands in for Stable Diffusion / Imagen):
    uniform over the ``top_k`` caption-nearest objects' renders, from the camera nearest the requested one."""

    def __init__(self, bank: RenderBank, cfg: models.PriorConfig, ideal: IdealConfig, caption_emb: torch.Tensor,
                 caption_owner: torch.Tensor, encoder_fingerprint: str = ""):
        """``caption_emb`` (M, D): unit CLIP text embeddings of every object's captions; ``caption_owner`` (M,): the
        bank object each caption belongs to; ``encoder_fingerprint``: the CLIP that embedded them."""
        super().__init__(bank, cfg, ideal, "text", encoder_fingerprint)
        self.encoder_fingerprint = encoder_fingerprint
        self.caption_emb, self.caption_owner = caption_emb.float(), caption_owner.long()
        self.camera_aware = ideal.camera_aware

    def object_scores(self, text_emb: torch.Tensor) -> torch.Tensor:
        """(B, N): per bank object, the highest cosine of its captions to each text embedding."""
        cos = torch.nn.functional.normalize(text_emb.float(), dim=-1) @ self.caption_emb.T      # (B, M)
        n = len(self.bank.object_ids)
        out = torch.full((cos.shape[0], n), -2.0)
        return out.scatter_reduce(1, self.caption_owner.expand_as(cos), cos, reduce="amax")

    def top_objects(self, text_emb: torch.Tensor) -> torch.Tensor:
        """(B, k): the bank objects the prior is uniform over, the ``top_k`` caption-nearest of each prompt."""
        s = self.object_scores(text_emb)
        return s.topk(min(self.ideal.top_k, s.shape[1]), -1).indices

    def log_weights(self, text_emb: torch.Tensor) -> torch.Tensor:
        """(B, N): log pi over bank objects, uniform over :meth:`top_objects`."""
        top = self.top_objects(text_emb)
        return torch.full((top.shape[0], len(self.bank.object_ids)), -math.inf).scatter(1, top, 0.0)

    def forward(self, x_t: torch.Tensor, t: torch.Tensor, text_emb: torch.Tensor, camera: torch.Tensor | None = None,
                drop: torch.Tensor | None = None) -> torch.Tensor:
        """Predicted noise (B, 3, S, S); ``camera`` (B, 2) azimuth and elevation (degrees) of each render when the
        prior is camera-aware (None: every camera of the chosen objects)."""
        cams = None
        if camera is not None and self.camera_aware:
            cams = nearest_camera(camera[:, 0].cpu(), camera[:, 1].cpu())

        def conditional(rows):
            top = self.top_objects(text_emb[rows].cpu())                                # (b, k) kept objects
            if cams is not None:                                                     # from the nearest camera
                return self._eps(x_t[rows], t[rows], self.flat[top, cams[rows, None]], torch.zeros(top.shape))
            renders = self.flat[top].flatten(1, 2)                                    # (b, k C, D): every camera
            return self._eps(x_t[rows], t[rows], renders, torch.zeros(renders.shape[:2]))

        return self._with_drop(x_t, t, drop, conditional, cams).to(x_t.device)


class IdealViewPrior(_Ideal):
    """The closed-form view-conditioned prior of the world (ours; stands in for Zero-1-to-3): objects weighted by
    how well their render at the reference camera explains the reference image, each seen from the camera nearest
    the requested one. The reference camera is the book's prompt pose (every image prompt's)."""

    def __init__(self, bank: RenderBank, cfg: models.PriorConfig, ideal: IdealConfig, reference_angles=(30.0, 25.0)):
        super().__init__(bank, cfg, ideal, "view")
        self.reference_angles = tuple(float(v) for v in reference_angles)
        ref = nearest_camera(torch.tensor([self.reference_angles[0]]), torch.tensor([self.reference_angles[1]]))
        got = grid_angles()[ref[0]]
        if (got - torch.tensor(self.reference_angles)).abs().max() > 1e-3:
            raise ValueError(f"the reference camera {self.reference_angles} is not a camera of the bank's orbit")
        self.ref_index = int(ref[0])

    def log_weights(self, reference: torch.Tensor) -> torch.Tensor:
        """(B, N): log p(reference | object), pixel noise ``ref_sigma`` in model space, normalised per row."""
        r = reference.float().flatten(1).cpu()
        d = torch.cdist(r, self.flat[:, self.ref_index]).pow(2)
        lw = -d / (2 * self.ideal.ref_sigma ** 2)
        return lw - torch.logsumexp(lw, -1, keepdim=True)

    def target_cameras(self, camera: torch.Tensor) -> torch.Tensor:
        """Bank camera index (B,) of the requested view, from the relative camera encoding (B, 4)."""
        d_el, s, c = camera[:, 0] * 90.0, camera[:, 1], camera[:, 2]
        az = self.reference_angles[0] + torch.rad2deg(torch.atan2(s, c))
        return nearest_camera(az % 360, self.reference_angles[1] + d_el)

    def forward(self, x_t: torch.Tensor, t: torch.Tensor, reference: torch.Tensor, camera: torch.Tensor,
                drop: torch.Tensor | None = None) -> torch.Tensor:
        cams = self.target_cameras(camera.cpu().float())

        def conditional(rows):
            lw = self.log_weights(reference[rows])
            return self._eps(x_t[rows], t[rows], self.flat[:, cams[rows]].transpose(0, 1), lw)

        return self._with_drop(x_t, t, drop, conditional, cams).to(x_t.device)


def text_prior(p: Profile, encoder, ideal: IdealConfig | None = None, bank: RenderBank | None = None,
               progress: bool = True) -> IdealTextPrior:
    """The profile's ideal text prior: its bank, and every bank object's captions embedded by ``encoder``."""
    ideal = ideal or IdealConfig()
    bank = bank or render_bank(p, progress=progress)
    texts = sorted({c for caps in bank.captions for c in caps})
    with torch.no_grad():
        emb = torch.cat([encoder.encode_text(texts[s:s + 256]) for s in range(0, len(texts), 256)]).float().cpu()
    tid = {c: i for i, c in enumerate(texts)}
    rows = [(j, tid[c]) for j, caps in enumerate(bank.captions) for c in caps]
    owner = torch.tensor([j for j, _ in rows])
    prior = IdealTextPrior(bank, models.PriorConfig.from_profile(p, "text"), ideal,
                           torch.nn.functional.normalize(emb[[i for _, i in rows]], dim=-1), owner, encoder.fingerprint)
    return prior.eval()


def view_prior(p: Profile, ideal: IdealConfig | None = None, bank: RenderBank | None = None,
               progress: bool = True) -> IdealViewPrior:
    """The profile's ideal view prior (reference camera: the image prompts' pose)."""
    from p2nlib.eval import views as ev

    ideal = ideal or IdealConfig()
    bank = bank or render_bank(p, progress=progress)
    return IdealViewPrior(bank, models.PriorConfig.from_profile(p, "view"), ideal,
                          (ev.PROMPT_AZIMUTH, ev.PROMPT_ELEVATION)).eval()


def with_config(prior: _Ideal, **changes) -> _Ideal:
    """The same ideal prior with other :class:`IdealConfig` values (the bank is shared, nothing is recomputed)."""
    ideal = replace(prior.ideal, **changes)
    if isinstance(prior, IdealTextPrior):
        out = IdealTextPrior(prior.bank, prior.cfg, ideal, prior.caption_emb, prior.caption_owner,
                             prior.encoder_fingerprint)
    else:
        out = IdealViewPrior(prior.bank, prior.cfg, ideal, prior.reference_angles)
    return out.eval()
