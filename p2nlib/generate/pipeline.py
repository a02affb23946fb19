"""Prompt -> NeRF parameters in one forward pass (paper §3.2, Fig. 1).

An image prompt is embedded with the profile's CLIP image encoder. A text prompt goes, as in the
paper, to the semantically nearest training scene (CLIP text embedding vs each scene's mean image
embedding in the embedding cache) and uses that scene's *image* embedding; the result says which
scene was chosen. The alignment Transformer decodes 14 latent tokens, the 14 VAE decoders turn
them into the NeRF's 14 parameter tensors.
"""
from __future__ import annotations

import json
import time
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


@dataclass
class Generation:
    params: dict[str, torch.Tensor]      # one NeRF (leading axis 1)
    source: str                          # "image" or "text"
    prompt: str
    scene: dict | None = None            # text prompts: the nearest training scene
    similarity: float | None = None      # text prompts: its CLIP text-image cosine
    seconds: float = 0.0                 # prompt -> parameters

    def describe(self) -> str:
        if self.scene is None:
            return f"image prompt {self.prompt!r} -> NeRF in {1000 * self.seconds:.1f} ms"
        return (f"text prompt {self.prompt!r} -> nearest training scene {self.scene['object_id']} "
                f"({self.scene['category']}: \"{self.scene['captions'][0]}\", cosine {self.similarity:.3f}) "
                f"-> NeRF in {1000 * self.seconds:.1f} ms")


def load_image(image, size: int) -> torch.Tensor:
    """A file path, PIL image or array (H, W, 3|4) -> float (size, size, 3) on white. Clear errors."""
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
    if isinstance(image, Image.Image):
        im = image.convert("RGBA")
        bg = Image.new("RGBA", im.size, (255, 255, 255, 255))
        image = np.asarray(Image.alpha_composite(bg, im).convert("RGB").resize((size, size), Image.BICUBIC))
    arr = torch.as_tensor(np.array(image))
    if arr.ndim != 3 or arr.shape[-1] not in (3, 4):
        raise InputError(f"image array must be (H, W, 3) or (H, W, 4), got {tuple(arr.shape)}")
    arr = arr.float() / 255.0 if arr.dtype == torch.uint8 else arr.float()
    if arr.shape[-1] == 4:
        arr = arr[..., :3] * arr[..., 3:] + (1 - arr[..., 3:])
    if arr.shape[0] != size or arr.shape[1] != size:
        arr = torch.nn.functional.interpolate(arr.permute(2, 0, 1)[None], size=(size, size), mode="bilinear",
                                              antialias=True, align_corners=False)[0].permute(1, 2, 0)
    return arr.clamp(0, 1)


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

    def from_image(self, image) -> Generation:
        t0 = time.perf_counter()
        img = load_image(image, self.encoder.render_size or self.profile.clip_image_size)
        params = self.from_embedding(self.encoder.encode_images(img[None]))
        return Generation(params, "image", str(image) if isinstance(image, (str, Path)) else "<array>",
                          seconds=time.perf_counter() - t0)

    def nearest_scene(self, text: str) -> tuple[int, float]:
        if not isinstance(text, str) or not text.strip():
            raise InputError("the text prompt is empty; give a description such as \"a brown table\"")
        return clip.nearest_scene(self.encoder.encode_text([text])[0], self.cache)

    def from_text(self, text: str, seed: int = 0) -> Generation:
        """Text -> nearest training scene -> that scene's image embedding (view chosen by ``seed``) -> NeRF."""
        t0 = time.perf_counter()
        idx, score = self.nearest_scene(text)
        view = seed % self.cache.shape[1]
        params = self.from_embedding(self.cache[idx, view])
        return Generation(params, "text", text, scene=self.scenes[idx], similarity=score,
                          seconds=time.perf_counter() - t0)

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


def describe_json(gen: Generation) -> str:
    return json.dumps({"source": gen.source, "prompt": gen.prompt, "seconds": gen.seconds,
                       "scene": None if gen.scene is None else gen.scene["object_id"],
                       "similarity": gen.similarity})
