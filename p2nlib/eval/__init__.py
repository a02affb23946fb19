"""Measuring: the paper's metrics (``metrics``: CLIP similarity, FID / FD-CLIP, PSNR), CLIP quality
(``clip_quality``: zero-shot, retrieval, modality gap), parameter-space topology (``topology``),
render-level evaluation of stages 1–2 (``stages``) and the prompt/evaluation renders shared by 05 and 06
(``views``)."""
