"""Prompts and evaluation renders shared by the results notebooks (§4.5, §4.6, §5.2): the prompt pose and
prompt images, evaluation poses and renders, image-prompt metrics, out-of-distribution prompt objects,
and the nearest training scene of an embedding."""
from __future__ import annotations

from collections import OrderedDict

import torch

from p2nlib.core.errors import InputError
from p2nlib.core.profiles import Profile
from p2nlib.data import cameras, fit, nerf, splits, world
from p2nlib.eval import metrics

PROMPT_AZIMUTH, PROMPT_ELEVATION = 30.0, 25.0


def prompt_pose() -> torch.Tensor:
    """The pose (1, 4, 4) image prompts are rendered from (also the baselines' reference view)."""
    return cameras.orbit([PROMPT_AZIMUTH], [PROMPT_ELEVATION])


def prompt_images(objects, p: Profile, device: torch.device | str = "cpu") -> torch.Tensor:
    """Ground-truth image prompts (N, S, S, 3) at the CLIP render size, from :func:`prompt_pose`."""
    return fit.render_ground_truth(objects, prompt_pose(), p.clip_image_size, p.samples_per_ray, device)[:, 0].cpu()


def eval_poses(n: int) -> torch.Tensor:
    """``n`` evaluation views evenly spaced in azimuth at 25° elevation."""
    return cameras.turntable(n, elevation=PROMPT_ELEVATION)


def render_views(params, spec: nerf.NerfSpec, p: Profile, n: int, size: int | None = None) -> torch.Tensor:
    """Renders (B, n, H, W, 3) of NeRFs at :func:`eval_poses`."""
    return fit.render_nerfs(params, spec, eval_poses(n), size or p.image_size, p.samples_per_ray).cpu()


class RenderMemo:
    """Evaluation renders that cannot change within a process, kept by what determines them: ground truth of
    world objects, and renders of a dataset's own fitted NeRFs. The studies measure many models against the same
    scenes; each reference is rendered once. Rendering is deterministic, so a hit is exactly what a new render
    would give. Least recently used entries leave first beyond ``max_bytes``; hits are copies."""

    def __init__(self, max_bytes: int = 256 << 20):
        self.max_bytes, self.entries, self.hits, self.bytes = max_bytes, OrderedDict(), 0, 0

    def get(self, key: tuple, make) -> torch.Tensor:
        if key in self.entries:
            self.entries.move_to_end(key)
            self.hits += 1
            return self.entries[key].clone()
        value = make().cpu()
        size = value.numel() * value.element_size()
        if size > self.max_bytes:                                      # too large to keep: not stored
            return value
        self.entries[key], self.bytes = value.clone(), self.bytes + size
        while self.bytes > self.max_bytes:
            _, old = self.entries.popitem(last=False)
            self.bytes -= old.numel() * old.element_size()
        return value


#: the process's memo of reference renders (:func:`ground_truth`, :func:`dataset_renders`)
MEMO = RenderMemo()


def _pose_key(c2w: torch.Tensor) -> bytes:
    return c2w.detach().cpu().float().contiguous().numpy().tobytes()


def ground_truth(objects, c2w: torch.Tensor, size: int, samples: int) -> torch.Tensor:
    """Ground-truth images (B, V, size, size, 3) of world objects at poses ``c2w``, rendered once per process."""
    key = ("gt", tuple((o.object_id, o.parts) for o in objects), _pose_key(c2w), size, samples)
    return MEMO.get(key, lambda: fit.render_ground_truth(objects, c2w, size, samples))


def dataset_renders(ds, idx: list[int], c2w: torch.Tensor, size: int, samples: int) -> torch.Tensor:
    """Renders (B, V, size, size, 3) of the dataset's own NeRFs ``idx`` at ``c2w``, rendered once per process (keyed
    by the parameters' checksum, so a refitted dataset is rendered anew)."""
    key = ("nerf", ds.manifest["checksums"]["params.safetensors"], tuple(int(i) for i in idx), _pose_key(c2w), size,
           samples)
    return MEMO.get(key, lambda: fit.render_nerfs(ds.select(idx), ds.spec, c2w, size, samples))


def gt_views(objects, p: Profile, n: int, size: int | None = None) -> torch.Tensor:
    """Ground-truth views (B, n, H, W, 3) of world objects at :func:`eval_poses` (rendered once per process)."""
    return ground_truth(objects, eval_poses(n), size or p.image_size, p.samples_per_ray)


def image_prompt_metrics(encoder, generated: torch.Tensor, truth: torch.Tensor) -> dict:
    """CLIP similarity (mean over objects and poses), Fréchet distance and PSNR (mean over objects and poses)
    of two view sets at the same poses: a fog of the right colour can score a high CLIP similarity, not a high
    PSNR."""
    sim = metrics.image_similarity(encoder, generated, truth)
    fd = metrics.frechet_images(encoder, generated, truth)
    psnr = metrics.psnr(generated, truth, (2, 3, 4))           # per object and view
    return {"similarity": float(sim.mean()), "similarity_per_object": sim, "frechet": fd.value,
            "metric": fd.metric, "samples": fd.samples, "psnr": float(psnr.mean())}


def ood_objects(categories, p: Profile) -> list:
    """One new object per out-of-distribution category (the ``ood_prompts`` object set), seen by no model."""
    bad = [c for c in categories if c in world.IN_DISTRIBUTION]
    if bad:
        raise InputError(f"{bad} are dataset categories; out-of-distribution prompts need one of "
                         f"{', '.join(world.OUT_OF_DISTRIBUTION)}")
    return splits.objects("ood_prompts", p, categories)


def nearest_train_scenes(cache: torch.Tensor, emb: torch.Tensor, train_idx: list[int]) -> tuple[list[int], list[float]]:
    """Semantically nearest *training* scene (dataset index) of each embedding (M, D), by cosine to
    the scenes' mean image embedding, as the paper does for text and out-of-distribution prompts."""
    from p2nlib.clip.cache import nearest_scene

    j, score = nearest_scene(emb, cache[train_idx])
    return [train_idx[int(i)] for i in j], [float(s) for s in score]


def empty_render(image, level: float = 0.1, share: float = 0.005) -> bool:
    """Whether a render on the white background (H, W, 3) in [0, 1] shows nothing (a collapsed run): fewer
    than ``share`` of its pixels differ from white by more than ``level`` in any channel."""
    a = torch.as_tensor(image).detach().cpu().float()
    return float(((1.0 - a).amax(dim=-1) > level).float().mean()) < share
