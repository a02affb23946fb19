"""Diffusion priors trained in the book: the stand-ins for DreamFusion's Stable Diffusion and for
Zero-1-to-3.

Neither model's weights can be had offline, but the procedural world renders unlimited training
images, so the book trains its own small priors, as it trains its own small CLIP:

* :class:`~p2nlib.priors.models.TextPrior` — a ``diffusers`` ``UNet2DModel`` denoising renders of all
  16 categories, conditioned on the book's CLIP text embedding of their captions (classifier-free
  guidance: the condition is dropped for a fraction of training samples).
* :class:`~p2nlib.priors.models.ViewPrior` — the same UNet with the reference view concatenated to
  its input and the relative camera (elevation, azimuth, radius change) as its condition: given a
  view of an object and a camera move, it denoises the object's view from the new camera.

:mod:`p2nlib.priors.train` trains them (cached by config and inputs), :mod:`p2nlib.priors.sampling`
samples them (ancestral DDPM; DDIM for comparison);
the score-distillation guidances that use them are in :mod:`p2nlib.baselines.sds`.
"""
from p2nlib.priors.models import PriorConfig, TextPrior, ViewPrior, camera_encoding, relative_camera

__all__ = ["PriorConfig", "TextPrior", "ViewPrior", "camera_encoding", "relative_camera"]
