"""Stages 1 and 2 and the one-pass generator (paper §3.2): the 14 per-tensor VAEs (``vae``), the
alignment Transformer from a CLIP embedding to the VAE latent (``align``), prompt -> NeRF in one forward
pass (``pipeline``), meshes out of a NeRF (``mesh``) and the ``p2n`` command line (``cli``). The
experiments on them (chapters 03, 04, 07) are in ``p2nlib.chapters``."""
