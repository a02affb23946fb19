"""A cheap check of a matplotlib figure for the usual layout failures, run on every figure the book saves.

:func:`problems` draws the figure once with the Agg renderer and returns one readable line per problem
(an empty list when the figure is fine):

* **empty panel**: a visible Axes that shows no data (no line with points, collection, image, patch,
  text or table). An Axes turned off with ``ax.axis("off")`` and without a title is an intentionally
  blank cell and is skipped; an off Axes *with* a title is a header over an empty cell and is reported.
  Colorbar Axes are skipped.
* **title overlaps axes**: an Axes title or the figure's suptitle overlaps another Axes' tick labels,
  axis labels, title or data area (overlaid Axes such as twins and insets are not compared by area).
* **squeezed tick labels**: neighbouring x (or y) tick labels of one Axes overlap each other.
* **text outside the figure**: a text (tick label, axis label, title, legend, figure text) lies partly
  outside the figure's canvas. With ``tight=True`` (how :func:`p2nlib.book.plots.savefig` calls it, since
  it saves with ``bbox_inches="tight"``, which grows the canvas to every artist and so cuts no label)
  only text lying *entirely* outside the canvas is reported (text placed at wrong coordinates, floating
  beside the figure); axis decorations spilling over the edge and legends placed outside are fine then.

Overlaps use the drawn window extents with a tolerance of :data:`TOL` pixels; a rotated text is compared
as its rotated box (its window extent, the axis-aligned box around it, would report neighbouring 45-degree
tick labels that do not touch). Every per-artist check is
guarded, so an unusual artist is skipped rather than making the check raise.
"""
from __future__ import annotations

import math

from matplotlib import transforms as mtransforms
from matplotlib.text import Text

TOL = 1.0   # pixels two boxes must overlap by (in both directions) before it counts


# --------------------------------------------------------------------------------------------------- helpers
def _renderer(fig):
    """Draw ``fig`` with Agg and return the renderer (a figure without an Agg canvas gets one temporarily)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    canvas = fig.canvas
    if hasattr(canvas, "get_renderer"):
        canvas.draw()
        return canvas.get_renderer()
    agg = FigureCanvasAgg(fig)   # sets fig.canvas; put the original back afterwards
    try:
        agg.draw()
        return agg.get_renderer()
    finally:
        fig.set_canvas(canvas)


def _shown(text) -> bool:
    try:
        return bool(text is not None and text.get_visible() and str(text.get_text()).strip())
    except Exception:
        return False


def _extent(artist, renderer):
    try:
        bb = artist.get_window_extent(renderer)
    except Exception:
        return None
    if bb is None or not all(map(lambda v: v == v and abs(v) != float("inf"), bb.extents)):
        return None
    return bb


def _overlap(a, b, tol: float = TOL) -> bool:
    w = min(a.x1, b.x1) - max(a.x0, b.x0)
    h = min(a.y1, b.y1) - max(a.y0, b.y0)
    return w > tol and h > tol


def _corners(bb):
    return [(bb.x0, bb.y0), (bb.x1, bb.y0), (bb.x1, bb.y1), (bb.x0, bb.y1)]


def _shape(text, renderer):
    """The four corners of the drawn text's own (possibly rotated) box, or None. A rotated label's window
    extent is the axis-aligned box around it, much larger than the text: neighbouring 45-degree labels'
    extents overlap while the labels do not, so overlaps are tested on the rotated boxes."""
    bb = _extent(text, renderer)
    if bb is None:
        return None
    try:
        angle = float(text.get_rotation()) % 180.0
    except Exception:
        angle = 0.0
    if min(angle, abs(angle - 90.0), 180.0 - angle) < 0.5:   # 0 or 90 degrees: the extent is the box
        return _corners(bb)
    try:
        rotation = text.get_rotation()
        text.set_rotation(0)
        try:
            flat = text.get_window_extent(renderer)
        finally:
            text.set_rotation(rotation)
        w, h = flat.width / 2, flat.height / 2
        cx, cy = (bb.x0 + bb.x1) / 2, (bb.y0 + bb.y1) / 2   # the extent's centre is the box's centre
        c, s = math.cos(math.radians(angle)), math.sin(math.radians(angle))
        signs = ((-1, -1), (1, -1), (1, 1), (-1, 1))
        return [(cx + a * w * c - b * h * s, cy + a * w * s + b * h * c) for a, b in signs]
    except Exception:
        return _corners(bb)


def _polys_overlap(p, q, tol: float = TOL) -> bool:
    """Whether two convex quadrilaterals overlap by more than ``tol`` px (separating-axis test)."""
    for poly in (p, q):
        for k in range(4):
            (x0, y0), (x1, y1) = poly[k], poly[(k + 1) % 4]
            nx, ny = y0 - y1, x1 - x0
            norm = math.hypot(nx, ny)
            if norm == 0:
                continue
            nx, ny = nx / norm, ny / norm
            a = [x * nx + y * ny for x, y in p]
            b = [x * nx + y * ny for x, y in q]
            if min(max(a), max(b)) - max(min(a), min(b)) <= tol:
                return False
    return True


def _snippet(text) -> str:
    s = " ".join(str(text.get_text()).split())
    return repr(s if len(s) <= 40 else s[:37] + "...")


def _all_axes(fig):
    axes = list(fig.axes)
    for sub in getattr(fig, "subfigs", []) or []:
        axes += [a for a in _all_axes(sub) if a not in axes]
    return axes


def _figures(fig):
    yield fig
    for sub in getattr(fig, "subfigs", []) or []:
        yield from _figures(sub)


def _is_colorbar(ax) -> bool:
    return getattr(ax, "_colorbar", None) is not None or ax.get_label() == "<colorbar>"


def _titles(ax):
    out = []
    for name in ("title", "_left_title", "_right_title"):
        t = getattr(ax, name, None)
        if isinstance(t, Text) and _shown(t):
            out.append(t)
    return out


def _name(ax, index: int) -> str:
    titles = [str(t.get_text()) for t in _titles(ax)]
    title = " ".join(" / ".join(titles).split())
    if len(title) > 40:
        title = title[:37] + "..."
    return f"axes {index} ({title!r})" if title else f"axes {index}"


def _drawn_ticklabels(axis):
    """The tick labels ``axis`` actually draws (ticks inside the view interval, visible, non-empty)."""
    if not (axis.axes.axison and axis.get_visible()):
        return []
    try:
        ticks = axis._update_ticks()   # exactly the ticks that draw() uses
    except Exception:
        try:
            lo, hi = sorted(axis.get_view_interval())
            ticks = [t for t in axis.get_major_ticks() + axis.get_minor_ticks()
                     if mtransforms._interval_contains_close((lo, hi), t.get_loc())]
        except Exception:
            return []
    labels = []
    for tick in ticks:
        try:
            if not tick.get_visible():
                continue
            labels += [lab for lab in (tick.label1, tick.label2) if _shown(lab)]
        except Exception:
            continue
    return labels


def _axis_labels(ax):
    if not ax.axison:
        return []
    out = []
    for axis in (ax.xaxis, ax.yaxis):
        try:
            if axis.get_visible() and _shown(axis.label):
                out.append(axis.label)
        except Exception:
            continue
    return out


def _has_data(ax) -> bool:
    """Whether ``ax`` shows any data artist (lines with points, collections, images, patches, texts...)."""
    def visible(a):
        try:
            return a.get_visible()
        except Exception:
            return True

    for line in ax.lines:
        try:
            if visible(line) and len(line.get_xdata()) > 0:
                return True
        except Exception:
            return True
    for coll in ax.collections:
        try:
            if visible(coll) and len(coll.get_paths()) > 0 and len(coll.get_offsets()) > 0:
                return True
        except Exception:
            return True
    for img in ax.images:
        try:
            arr = img.get_array()
            if visible(img) and (arr is None or getattr(arr, "size", 1) > 0):
                return True
        except Exception:
            return True
    if any(visible(p) for p in ax.patches):
        return True
    if any(_shown(t) for t in ax.texts):
        return True
    if any(visible(a) for a in list(getattr(ax, "tables", [])) + list(getattr(ax, "artists", []))):
        return True
    return False


def _texts(fig, axes):
    """Every drawn text of the figure: (owner description, Text)."""
    out = []
    for f in _figures(fig):
        for attr in ("_suptitle", "_supxlabel", "_supylabel"):
            t = getattr(f, attr, None)
            if _shown(t):
                out.append(("figure", t))
        out += [("figure", t) for t in getattr(f, "texts", []) if _shown(t)]
        for leg in getattr(f, "legends", []) or []:
            out += _legend_texts("figure legend", leg)
    for i, ax in enumerate(axes):
        try:
            if not ax.get_visible():
                continue
            name = _name(ax, i)
            out += [(name, t) for t in _titles(ax)]
            out += [(name, t) for t in _axis_labels(ax)]
            out += [(name, t) for axis in (ax.xaxis, ax.yaxis) for t in _drawn_ticklabels(axis)]
            out += [(name, t) for t in ax.texts if _shown(t)]
            if ax.get_legend() is not None:
                out += _legend_texts(f"{name} legend", ax.get_legend())
        except Exception:
            continue
    return out


def _legend_texts(owner, leg):
    try:
        if not leg.get_visible():
            return []
        return [(owner, t) for t in list(leg.get_texts()) + [leg.get_title()] if _shown(t)]
    except Exception:
        return []


# ---------------------------------------------------------------------------------------------------- checks
def _empty_panels(axes):
    out = []
    for i, ax in enumerate(axes):
        try:
            if not ax.get_visible() or _is_colorbar(ax):
                continue
            titled = bool(_titles(ax))
            if not ax.axison and not titled:
                continue   # an intentionally blank cell
            if not _has_data(ax):
                what = "a title but no data (header over an empty cell)" if titled else "no data"
                out.append(f"{_name(ax, i)}: empty panel: it has {what}")
        except Exception:
            continue
    return out


def _title_overlaps(fig, axes, renderer):
    out = []
    targets = []   # per axes: (label, [bboxes]) groups that a foreign title must not touch
    for j, b in enumerate(axes):
        groups = []
        try:
            if b.get_visible():
                ticks = [_shape(t, renderer) for ax_ in (b.xaxis, b.yaxis) for t in _drawn_ticklabels(ax_)]
                groups.append(("tick labels", [q for q in ticks if q is not None]))
                groups.append(("axis labels", [q for q in (_shape(t, renderer) for t in _axis_labels(b))
                                               if q is not None]))
                groups.append(("title", [q for q in (_shape(t, renderer) for t in _titles(b)) if q is not None]))
                if b.axison or _has_data(b):
                    groups.append(("data area", [_corners(b.bbox)]))
        except Exception:
            groups = []
        targets.append(groups)

    title_pairs = set()   # (i, j) title-title overlaps already reported, so j-i is not reported again

    def check(title, owner_desc, skip, own_bbox):
        shape = _shape(title, renderer)
        if shape is None:
            return
        for j, b in enumerate(axes):
            if j == skip:
                continue
            for kind, boxes in targets[j]:
                if kind == "data area" and own_bbox is not None and _overlap(own_bbox, b.bbox):
                    continue   # overlaid axes (twin, inset): their areas overlap by design
                if kind == "title" and skip is not None and (j, skip) in title_pairs:
                    continue
                if any(_polys_overlap(shape, other) for other in boxes):
                    if kind == "title" and skip is not None:
                        title_pairs.add((skip, j))
                    out.append(f"{owner_desc} overlaps {_name(b, j)}'s {kind}")
                    break

    for i, a in enumerate(axes):
        try:
            if not a.get_visible():
                continue
            own = a.bbox.frozen()
            for t in _titles(a):
                check(t, f"{_name(a, i)}: title {_snippet(t)}", i, own)
        except Exception:
            continue
    for f in _figures(fig):
        t = getattr(f, "_suptitle", None)
        if _shown(t):
            try:
                check(t, f"figure: suptitle {_snippet(t)}", None, None)
            except Exception:
                continue
    return out


def _squeezed_ticklabels(axes, renderer):
    out = []
    for i, ax in enumerate(axes):
        try:
            if not ax.get_visible():
                continue
            for letter, axis in (("x", ax.xaxis), ("y", ax.yaxis)):
                labels = [(t, _shape(t, renderer)) for t in _drawn_ticklabels(axis)]
                labels = [(t, q) for t, q in labels if q is not None]
                hits = [(s, t) for k, (s, sq) in enumerate(labels) for t, tq in labels[k + 1:]
                        if _polys_overlap(sq, tq)]
                if hits:
                    s, t = hits[0]
                    more = f" (and {len(hits) - 1} more pairs)" if len(hits) > 1 else ""
                    out.append(f"{_name(ax, i)}: {letter} tick labels overlap each other: "
                               f"{_snippet(s)} and {_snippet(t)}{more}; rotate, shorten or thin them")
        except Exception:
            continue
    return out


def _outside(fig, axes, renderer, tight: bool):
    out = []
    canvas = fig.bbox
    decorations = set()   # axis and tick labels: a tight save keeps them even when they spill over the edge
    if tight:
        for ax in axes:
            try:
                decorations.update(map(id, _axis_labels(ax)))
                decorations.update(id(t) for axis in (ax.xaxis, ax.yaxis) for t in _drawn_ticklabels(axis))
            except Exception:
                continue
    for owner, t in _texts(fig, axes):
        try:
            if t.get_clip_on() and t.get_clip_box() is not None:
                continue   # clipped by its axes, never drawn past them
            if tight and (id(t) in decorations or "legend" in owner):
                continue
            bb = _extent(t, renderer)
            if bb is None or bb.width <= 0 or bb.height <= 0:
                continue
            if tight:
                if not _overlap(bb, canvas, 0.0):
                    out.append(f"{owner}: text {_snippet(t)} lies entirely outside the figure "
                               "(placed at wrong coordinates?)")
            elif (bb.x0 < canvas.x0 - TOL or bb.y0 < canvas.y0 - TOL
                    or bb.x1 > canvas.x1 + TOL or bb.y1 > canvas.y1 + TOL):
                out.append(f"{owner}: text {_snippet(t)} lies partly outside the figure (cut at its edge)")
        except Exception:
            continue
    return out


def problems(fig, *, tight: bool = False) -> list[str]:
    """Draw ``fig`` (Agg) and return one readable line per layout problem; empty when the figure is fine.

    ``tight=True`` says the figure will be saved with ``bbox_inches="tight"``: text that only spills over
    the canvas edge is then kept in the picture, so only text entirely outside the canvas is reported."""
    try:
        renderer = _renderer(fig)
    except Exception as exc:   # a figure that cannot even draw is a problem of its own
        return [f"figure: could not be drawn ({type(exc).__name__}: {exc})"]
    axes = _all_axes(fig)
    found = []
    for check in (lambda: _empty_panels(axes), lambda: _title_overlaps(fig, axes, renderer),
                  lambda: _squeezed_ticklabels(axes, renderer), lambda: _outside(fig, axes, renderer, tight)):
        try:
            found += check()
        except Exception:
            continue
    return list(dict.fromkeys(found))   # unique, in order
