"""Prompt -> NeRF parameters in one forward pass (paper §3.2, Fig. 1).

An image prompt is embedded with the profile's CLIP image encoder. A text prompt goes, as in the
paper, to the semantically nearest training scene (CLIP text embedding vs each train-split scene's
mean image embedding in the embedding cache) and uses that scene's *image* embedding; the result says
which scene was chosen. An image prompt's result names its nearest training scene too (image
embedding vs the same means), as a report: the image's own embedding is what is decoded. The
alignment Transformer decodes 14 latent tokens, the 14 VAE decoders turn them into the NeRF's 14
parameter tensors.

Inputs are checked and answers explained: an image smaller than :data:`MIN_IMAGE_SIZE` pixels is
refused; a text prompt longer than the text encoder's context is used up to that context, with a
warning that says how many tokens were read; a text prompt whose nearest scene is further than
almost every dataset caption is from its own scene (cosine below the :data:`FAR_PERCENTILE`-th
percentile of the matched caption-scene cosines) is answered with that scene all the same, and the
answer says so; an image prompt is "far" when its nearest scene's cosine is below the same
percentile of the dataset's own views' cosines to their scene (each view against the mean of the
scene's other views). ``Generation.seconds`` is the call as made (a process's first call includes one-off
costs); ``Generation.warm_seconds`` repeats the same computation right away.
"""
from __future__ import annotations

import functools
import json
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from p2nlib import clip
from p2nlib.core.device import resolve_device
from p2nlib.core.errors import ArtifactError, InputError
from p2nlib.core.profiles import Profile, get_profile
from p2nlib.data import cameras, fit, nerf, store

from p2nlib.generate import align, vae


#: smallest image prompt accepted (pixels, each side)
MIN_IMAGE_SIZE = 16
#: a text prompt is "far from every training scene" when its nearest scene's cosine is below this
#: percentile of the dataset's matched caption-scene cosines
FAR_PERCENTILE = 5.0
FAR_NOTE = "far from every training scene; the result is the nearest of them"
#: at most this many dataset captions are embedded for that percentile (a fixed, even subset)
FAR_MAX_CAPTIONS = 2048


class PromptWarning(UserWarning):
    """A prompt was used, but not entirely as given (e.g. a text longer than the encoder reads)."""


@dataclass
class Generation:
    params: dict[str, torch.Tensor]      # one NeRF (leading axis 1)
    source: str                          # "image" or "text"
    prompt: str
    scene: dict | None = None            # the nearest training scene (text: the one used; image: a report)
    similarity: float | None = None      # its CLIP cosine to the prompt (text-image or image-image)
    seconds: float = 0.0                 # prompt -> parameters, this call (a process's first includes one-off costs)
    warm_seconds: float | None = None    # the same computation repeated right after: the warm cost
    far: bool | None = None              # nearest scene below the FAR_PERCENTILE cosine
    far_cosine: float | None = None      # that percentile of the dataset's matched cosines (captions or views)
    warnings: list[str] = field(default_factory=list)

    def _timing(self) -> str:
        first = f"{1000 * self.seconds:.1f} ms"
        if self.warm_seconds is None:
            return first
        return f"{first} (this call; {1000 * self.warm_seconds:.1f} ms warm)"

    def describe(self, with_warnings: bool = True) -> str:
        scene = ("" if self.scene is None else f"{self.scene['object_id']} ({self.scene['category']}: "
                 f"\"{self.scene['captions'][0]}\", cosine {self.similarity:.3f})")
        if self.source == "image":
            text = f"image prompt {self.prompt!r} -> NeRF in {self._timing()}"
            if scene:
                text += f"\nnearest training scene: {scene}"
            reference = "the dataset's view-scene cosines"
        else:
            text = f"text prompt {self.prompt!r} -> nearest training scene {scene} -> NeRF in {self._timing()}"
            reference = "the dataset's caption-scene cosines"
        if self.far:
            text += (f"\nthe prompt is {FAR_NOTE} (cosine {self.similarity:.3f} < {self.far_cosine:.3f}, the "
                     f"{FAR_PERCENTILE:g}th percentile of {reference})")
        return "\n".join([text, *(f"warning: {w}" for w in self.warnings if with_warnings)])


def load_image(image, size: int) -> torch.Tensor:
    """A file path, PIL image or array (H, W, 3|4) -> float (size, size, 3) on white. Clear errors.

    Images smaller than :data:`MIN_IMAGE_SIZE` pixels on a side are refused (there is no object to see)."""
    from PIL import Image, UnidentifiedImageError

    if isinstance(image, (str, Path)):
        path = Path(image)
        if not path.is_file():
            raise InputError(f"image file {path} does not exist")
        try:
            with Image.open(path) as im:
                im.load()
                image = im.copy()
        except (UnidentifiedImageError, OSError) as err:
            raise InputError(f"{path} is not a readable image ({err}); give a PNG or JPEG file") from None
        _check_image_size(image.width, image.height, f"image {path}")
    from_pil = isinstance(image, Image.Image)       # checked here, then already resized below
    if from_pil:
        _check_image_size(image.width, image.height, "the image")
        im = image.convert("RGBA")
        bg = Image.new("RGBA", im.size, (255, 255, 255, 255))
        image = np.asarray(Image.alpha_composite(bg, im).convert("RGB").resize((size, size), Image.BICUBIC))
    arr = torch.as_tensor(np.array(image))
    if arr.ndim != 3 or arr.shape[-1] not in (3, 4):
        raise InputError(f"image array must be (H, W, 3) or (H, W, 4), got {tuple(arr.shape)}")
    if not from_pil:
        _check_image_size(arr.shape[1], arr.shape[0], "the image array")
    arr = arr.float() / 255.0 if arr.dtype == torch.uint8 else arr.float()
    if arr.shape[-1] == 4:
        arr = arr[..., :3] * arr[..., 3:] + (1 - arr[..., 3:])
    if arr.shape[0] != size or arr.shape[1] != size:
        arr = torch.nn.functional.interpolate(arr.permute(2, 0, 1)[None], size=(size, size), mode="bilinear",
                                              antialias=True, align_corners=False)[0].permute(1, 2, 0)
    return arr.clamp(0, 1)


def _check_image_size(width: int, height: int, what) -> None:
    if min(width, height) < MIN_IMAGE_SIZE:
        raise InputError(f"{what} is {width}x{height} px; image prompts must be at least "
                         f"{MIN_IMAGE_SIZE}x{MIN_IMAGE_SIZE} px (give a larger picture of the object)")


@dataclass
class Prompt2NeRF:
    profile: Profile
    device: torch.device
    encoder: clip.Encoder
    cache: torch.Tensor                  # (N, V, D) image embeddings of the dataset scenes
    scenes: list[dict]                   # manifest entries of the dataset scenes
    vae: vae.ParamVAE
    aligner: align.Aligner
    spec: nerf.NerfSpec
    dataset: store.Dataset | None = None  # the NeRF dataset the parts were trained on (reused by notebooks)
    info: dict = field(default_factory=dict)

    @classmethod
    def load(cls, profile: Profile | str | None = None, device: str = "auto") -> "Prompt2NeRF":
        """Load every trained part of a profile; a missing part names the notebook that makes it."""
        p = get_profile(profile) if not isinstance(profile, Profile) else profile
        dev = resolve_device(device)
        ds = store.load(p)
        enc = clip.load_encoder(p, dev)
        cache_path = clip.clip_dir(p) / "embeddings.safetensors"
        if not cache_path.exists():
            raise ArtifactError(f"no embedding cache {cache_path}; build it with notebooks/02_clip (make book ONLY=02)")
        cache = clip.embedding_cache(p, enc, dev, progress=False)
        model_vae = vae.load(p, ds).to(dev)
        aligner = align.load(p, align.provenance(ds, cache, model_vae)).to(dev)
        if cache.image.shape[0] != len(ds.objects):
            raise ArtifactError(f"embedding cache has {cache.image.shape[0]} scenes, the dataset {len(ds.objects)}; "
                                "rerun notebooks/02_clip")
        return cls(p, dev, enc, cache.image, ds.objects, model_vae, aligner, ds.spec, ds)

    @torch.no_grad()
    def from_embedding(self, emb: torch.Tensor) -> dict[str, torch.Tensor]:
        z = self.aligner.generate(emb.reshape(-1, emb.shape[-1]).to(self.device))
        return self.vae.decode(z)

    def from_image(self, image, warm: bool = True) -> Generation:
        """Image -> CLIP image embedding -> NeRF, with the nearest training scene and whether the image is far
        from every one (a report; :meth:`far_image_cosine`). ``warm``: time the same computation again."""
        size = self.encoder.render_size or self.profile.clip_image_size

        def run():
            emb = self.encoder.encode_images(load_image(image, size)[None])
            return emb, self.from_embedding(emb)

        (emb, params), first, again = _timed(run, warm)
        idx, score = self._nearest(emb[0])
        far_at = self.far_image_cosine()
        return Generation(params, "image", str(image) if isinstance(image, (str, Path)) else "<array>",
                          scene=self.scenes[idx], similarity=score, seconds=first, warm_seconds=again,
                          far=score < far_at, far_cosine=far_at)

    @functools.cached_property
    def train_idx(self) -> list[int]:
        """The train-split scenes (the ones prompts are matched to; all scenes for a dataset without splits)."""
        idx = [i for i, s in enumerate(self.scenes) if s.get("split", "train") == "train"]
        return idx or list(range(len(self.scenes)))

    @functools.cached_property
    def _train_means(self) -> torch.Tensor:
        """(train scenes, D): each train scene's mean image embedding, computed once per pipeline."""
        return self.cache[self.train_idx].mean(1)

    def _nearest(self, emb: torch.Tensor) -> tuple[int, float]:
        """The train-split scene whose mean image embedding is nearest ``emb`` (text or image): (index, cosine)."""
        j, score = clip.nearest_scene(emb, self._train_means)
        return self.train_idx[j], score

    def far_image_cosine(self) -> float:
        """The :data:`FAR_PERCENTILE`-th percentile, over the train scenes' cached views, of each view's cosine
        to the mean embedding of its scene's *other* views (how near an image of a training object is to
        its own scene); computed once per pipeline and kept in ``info``."""
        if "far_image_cosine" not in self.info:
            emb = torch.nn.functional.normalize(self.cache[self.train_idx].float(), dim=-1)    # (N, V, D)
            v = emb.shape[1]
            if v < 2:
                raise ArtifactError("the embedding cache has one view per scene; an image prompt's distance "
                                    "to the training scenes needs at least two (rerun notebooks/02_clip)")
            others = torch.nn.functional.normalize((emb.sum(1, keepdim=True) - emb) / (v - 1), dim=-1)
            cos = (emb * others).sum(-1).flatten()
            self.info["far_image_cosine"] = float(np.percentile(cos.cpu().numpy(), FAR_PERCENTILE))
        return self.info["far_image_cosine"]

    def token_count(self, text: str) -> int:
        """Tokens of ``text`` for the text encoder, start and end tokens included, before any truncation."""
        return len(self.encoder.tokenizer.encode(text)) + 2

    def nearest_scene(self, text: str) -> tuple[int, float]:
        if not isinstance(text, str) or not text.strip():
            raise InputError("the text prompt is empty; give a description such as \"a brown table\"")
        return self._nearest(self.encoder.encode_text([text])[0])

    def far_cosine(self) -> float:
        """The :data:`FAR_PERCENTILE`-th percentile of the dataset's matched caption-scene cosines.

        The captions of the train-split scenes (all of them, or an even subset of :data:`FAR_MAX_CAPTIONS`)
        are embedded with the text encoder and compared with their own scene's mean image embedding (as
        :meth:`nearest_scene` compares a prompt); computed once per pipeline and kept in ``info``."""
        if "far_cosine" not in self.info:
            captions = [(i, c) for i in self.train_idx for c in self.scenes[i]["captions"]]
            captions = captions[::-(-len(captions) // FAR_MAX_CAPTIONS)]
            text = self.encoder.encode_text([c for _, c in captions])
            ref = torch.nn.functional.normalize(self.cache.mean(1), dim=-1)
            owner = torch.tensor([i for i, _ in captions], device=ref.device)
            cos = (text.to(ref.device) * ref[owner]).sum(-1).cpu()
            self.info["far_cosine"] = float(np.percentile(cos.numpy(), FAR_PERCENTILE))
            self.info["matched_cosines"] = {"n": len(captions), "median": float(cos.median())}
        return self.info["far_cosine"]

    def from_text(self, text: str, seed: int = 0, warm: bool = True) -> Generation:
        """Text -> nearest training scene -> that scene's image embedding (view chosen by ``seed``) -> NeRF.

        A prompt longer than the text encoder's context is used up to it, with a :class:`PromptWarning`
        (also in ``Generation.warnings``). ``warm``: time the same computation again (``warm_seconds``)."""
        if not isinstance(text, str) or not text.strip():
            raise InputError("the text prompt is empty; give a description such as \"a brown table\"")
        notes = []
        n_tokens, ctx = self.token_count(text), self.encoder.context_length
        if n_tokens > ctx:
            used = self.encoder.tokenizer.decode(self.encoder.tokenizer.encode(text)[:ctx - 2]).strip()
            notes.append(f"the text prompt has {n_tokens} tokens but the text encoder reads {ctx} (start and end "
                         f"tokens included), so only its first {ctx - 2} were used (\"{used}\"); the rest "
                         "was ignored: shorten the prompt to make every word count")
            warnings.warn(notes[-1], PromptWarning, stacklevel=2)
        view = seed % self.cache.shape[1]

        def run():
            idx, score = self.nearest_scene(text)
            return idx, score, self.from_embedding(self.cache[idx, view])

        (idx, score, params), first, again = _timed(run, warm)
        far_at = self.far_cosine()
        return Generation(params, "text", text, scene=self.scenes[idx], similarity=score, seconds=first,
                          warm_seconds=again, far=score < far_at, far_cosine=far_at, warnings=notes)

    def render(self, gen: Generation, views: int = 8, size: int | None = None) -> torch.Tensor:
        """Turntable renders (views, size, size, 3)."""
        size = size or self.profile.image_size
        return fit.render_nerfs(gen.params, self.spec, cameras.turntable(views), size,
                                self.profile.samples_per_ray)[0].cpu()

    def turntable_gif(self, gen: Generation, path: str | Path, views: int = 16, size: int = 64) -> Path:
        return save_gif(self.render(gen, views, size), path)


def save_gif(frames: torch.Tensor, path: str | Path, ms_per_frame: int = 120) -> Path:
    """Frames (N, H, W, 3) in [0, 1] -> looping GIF."""
    from PIL import Image

    path = Path(path)
    if path.suffix.lower() != ".gif":
        raise InputError(f"output {path} must end in .gif")
    path.parent.mkdir(parents=True, exist_ok=True)
    ims = [Image.fromarray((f.clamp(0, 1).numpy() * 255).astype(np.uint8)) for f in frames]
    ims[0].save(path, save_all=True, append_images=ims[1:], duration=ms_per_frame, loop=0)
    return path


def _timed(fn, warm: bool):
    """``(result, seconds of this call, seconds of an immediate repeat or None)``."""
    t0 = time.perf_counter()
    out = fn()
    first = time.perf_counter() - t0
    if not warm:
        return out, first, None
    t0 = time.perf_counter()
    fn()
    return out, first, time.perf_counter() - t0


def description(gen: Generation, outputs: dict | None = None, timings: dict | None = None) -> dict:
    """A machine-readable description of a generation (what :func:`describe_json` prints).

    Keys: ``prompt``, ``modality`` (text | image), ``nearest_scene`` (id, category, first caption),
    ``cosine``, ``far_from_training`` with ``far_cosine`` / ``far_percentile`` and ``note``,
    ``warnings``, ``timings`` (seconds: ``prompt_to_params`` this call, ``prompt_to_params_warm``, and
    any given), ``outputs`` (paths given)."""
    scene = None if gen.scene is None else {
        "object_id": gen.scene["object_id"], "category": gen.scene["category"], "caption": gen.scene["captions"][0]}
    return {"prompt": gen.prompt, "modality": gen.source, "nearest_scene": scene, "cosine": gen.similarity,
            "far_from_training": gen.far, "far_cosine": gen.far_cosine,
            "far_percentile": FAR_PERCENTILE if gen.far_cosine is not None else None,
            "note": FAR_NOTE if gen.far else None, "warnings": list(gen.warnings),
            "timings": {"prompt_to_params": gen.seconds, "prompt_to_params_warm": gen.warm_seconds,
                        **(timings or {})},
            "outputs": {k: str(v) for k, v in (outputs or {}).items()}}


def describe_json(gen: Generation, outputs: dict | None = None, timings: dict | None = None) -> str:
    """:func:`description` as JSON (``p2n generate --json``)."""
    return json.dumps(description(gen, outputs, timings), indent=1)
