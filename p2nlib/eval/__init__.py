"""Measuring: the paper's metrics (``metrics``: CLIP similarity, FID / FD-CLIP, PSNR), CLIP quality
(``clip_quality``: zero-shot, retrieval, modality gap), parameter-space topology (``topology``),
the prompt/evaluation renders shared by 05 and 06 (``views``), built-object tests (``built``) and
intervals (``stats``). Metrics only: the experiments that use them are in ``p2nlib.chapters``."""
