"""Stage 0, the NeRF-parameter dataset (paper §3.1): the procedural world that stands in for ShapeNet
(``world``), cameras and the volume renderer (``cameras``, ``render``), the 7-layer NeRF and its shared
template (``nerf``), batched fitting (``fit``), the store of fitted NeRFs with chunks and manifest
(``store``), and every object set the book uses (``splits``)."""
