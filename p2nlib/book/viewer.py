"""Interactive 3D views of meshes in the book (plotly ``Mesh3d`` with vertex colours).

:func:`mesh_figure` shows one mesh, :func:`mesh_gallery` a few side by side. Meshes come from
:func:`p2nlib.generate.mesh.extract_mesh` (``trimesh.Trimesh`` with vertex colours); the world
frame has ``y`` up, so the camera looks at the object from the front and slightly above.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

HEIGHT = 320
_CAMERA = {"up": {"x": 0, "y": 1, "z": 0}, "eye": {"x": 1.2, "y": 0.9, "z": 1.5}}
_MARGIN = {"l": 4, "r": 4, "t": 28, "b": 4}


def _axis(lo: float, hi: float) -> dict:
    return {"visible": False, "showgrid": False, "zeroline": False, "showbackground": False, "range": [lo, hi]}


def _scene(mesh) -> dict:
    """Equal aspect (a cube around the mesh's bounds), no axes, y up."""
    if len(mesh.vertices):
        lo, hi = np.asarray(mesh.bounds, dtype=float)
        centre, half = (lo + hi) / 2, max(float((hi - lo).max()) / 2, 1e-6) * 1.05
    else:
        centre, half = np.zeros(3), 0.5
    return {"xaxis": _axis(centre[0] - half, centre[0] + half), "yaxis": _axis(centre[1] - half, centre[1] + half),
            "zaxis": _axis(centre[2] - half, centre[2] + half), "aspectmode": "cube", "camera": _CAMERA,
            "bgcolor": "white"}


def _trace(mesh, name: str | None = None):
    """A ``Mesh3d`` trace with the mesh's vertex colours (grey where it has none)."""
    import plotly.graph_objects as go

    v, f = np.asarray(mesh.vertices, dtype=float), np.asarray(mesh.faces)
    colors = None
    visual = getattr(mesh, "visual", None)
    if visual is not None and getattr(visual, "kind", None) == "vertex":
        rgba = np.asarray(visual.vertex_colors)
        colors = [f"rgb({r},{g},{b})" for r, g, b in rgba[:, :3]]
    return go.Mesh3d(x=v[:, 0], y=v[:, 1], z=v[:, 2], i=f[:, 0], j=f[:, 1], k=f[:, 2],
                     vertexcolor=colors, color=None if colors else "lightgrey", flatshading=False,
                     lighting={"ambient": 0.55, "diffuse": 0.6, "specular": 0.1, "roughness": 0.9},
                     name=name or "", hoverinfo="skip", showscale=False)


def mesh_figure(mesh, title: str | None = None, height: int = HEIGHT):
    """One mesh as a rotatable plotly figure: vertex colours, equal aspect, no axes, small margins."""
    import plotly.graph_objects as go

    fig = go.Figure(_trace(mesh, title))
    fig.update_layout(scene=_scene(mesh), height=height, margin=_MARGIN if title else {**_MARGIN, "t": 4},
                      title={"text": title, "x": 0.5, "font": {"size": 13}} if title else None,
                      showlegend=False, paper_bgcolor="white")
    return fig


def mesh_gallery(meshes: Sequence, titles: Sequence[str] | None = None, height: int = HEIGHT):
    """A few meshes side by side in one figure, each in its own rotatable 3D scene."""
    from plotly.subplots import make_subplots

    meshes = list(meshes)
    if not meshes:
        raise ValueError("mesh_gallery needs at least one mesh")
    titles = list(titles) if titles is not None else [""] * len(meshes)
    if len(titles) != len(meshes):
        raise ValueError(f"mesh_gallery got {len(meshes)} meshes but {len(titles)} titles")
    n = len(meshes)
    fig = make_subplots(rows=1, cols=n, specs=[[{"type": "scene"}] * n], subplot_titles=titles,
                        horizontal_spacing=0.01)
    for i, (m, t) in enumerate(zip(meshes, titles)):
        fig.add_trace(_trace(m, t), row=1, col=i + 1)
        fig.update_layout({f"scene{i + 1 if i else ''}": _scene(m)})
    fig.update_layout(height=height, margin=_MARGIN, showlegend=False, paper_bgcolor="white")
    return fig


def nerf_gallery(nerfs: Sequence[dict], spec, titles: Sequence[str], resolution: int = 40, height: int = HEIGHT):
    """A few NeRFs as meshes side by side (:func:`p2nlib.generate.mesh.extract_mesh`), each at the level
    :func:`p2nlib.generate.mesh.surface_level` chooses from the NeRF: a NeRF too faint for the default density
    threshold (a foggy generation) is drawn at half its highest density, and its title says so."""
    from p2nlib.generate import mesh

    meshes, named = [], []
    for params, title in zip(nerfs, titles):
        m = mesh.extract_mesh(params, spec, resolution=resolution, threshold=None)
        level = m.metadata["threshold_density"]
        meshes.append(m)
        named.append(title if level == mesh.DEFAULT_THRESHOLD else f"{title} (faint: surface at density {level:.2g})")
    return mesh_gallery(meshes, named, height)
