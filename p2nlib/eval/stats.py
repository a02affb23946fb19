"""Intervals for the book's repeated measurements: a two-level (prompts, then seeds) bootstrap.

A speed-up claim is a median over prompts of a per-prompt ratio of medians over seeds. Its 95% interval
resamples the prompts with replacement and, within each drawn prompt, its seeds with replacement (the
same seed indices for both arms of the ratio: one seed draws the same views for every initialisation),
and recomputes the statistic each time (percentile interval). A similarity difference (Ours − S, NRS − DI)
is a mean over prompts of a per-prompt difference of medians over seeds (:func:`mean_median_difference`),
bootstrapped the same way.
"""
from __future__ import annotations

from typing import Callable

import numpy as np


def per_prompt_ratio(num: np.ndarray, den: np.ndarray, floor: float = 0.0) -> np.ndarray:
    """Per prompt: median over seeds of ``num`` over the median over seeds of ``den`` (floored at ``floor``).
    ``num``, ``den``: (prompts, seeds)."""
    return np.median(num, axis=-1) / np.maximum(np.median(den, axis=-1), floor)


def median_ratio(num: np.ndarray, den: np.ndarray, floor: float = 0.0) -> float:
    """The speed-up statistic: median over prompts of :func:`per_prompt_ratio`."""
    return float(np.median(per_prompt_ratio(num, den, floor)))


def mean_median_difference(a: np.ndarray, b: np.ndarray) -> float:
    """The similarity-difference statistic: mean over prompts of (median over seeds of ``a`` minus that of ``b``),
    missing runs (NaN) skipped as pandas' medians and means skip them. ``a``, ``b``: (prompts, seeds)."""
    with np.errstate(all="ignore"):
        return float(np.nanmean(np.nanmedian(a, axis=-1) - np.nanmedian(b, axis=-1)))


def bootstrap(stat: Callable[..., float], *arrays: np.ndarray, n_boot: int = 2000, seed: int = 0,
              level: float = 0.95) -> tuple[float, float]:
    """Percentile interval of ``stat(*arrays)`` under the two-level bootstrap; every array is (prompts, seeds)
    and all are resampled with the same prompt and seed indices."""
    arrays = [np.asarray(a, dtype=float) for a in arrays]
    shape = arrays[0].shape
    if len(shape) != 2 or any(a.shape != shape for a in arrays):
        raise ValueError(f"arrays must all be (prompts, seeds) of one shape, got {[a.shape for a in arrays]}")
    P, S = shape
    rng = np.random.default_rng(seed)
    out = np.empty(n_boot)
    for b in range(n_boot):
        rows = rng.integers(0, P, P)
        cols = rng.integers(0, S, (P, S))
        out[b] = stat(*[a[rows[:, None], cols] for a in arrays])
    lo, hi = np.quantile(out, [(1 - level) / 2, (1 + level) / 2])
    return float(lo), float(hi)


def t_interval(values, level: float = 0.95) -> tuple[float, tuple[float, float]]:
    """Mean of a few independent repeats (e.g. one value per dataset split) and its Student-t interval.

    With 3 repeats the interval is the mean ± 4.30 standard errors: wide, as it should be for so few. Needs at
    least two finite values."""
    from scipy import stats as st

    x = np.asarray(values, dtype=float)
    if x.ndim != 1 or x.size < 2 or not np.isfinite(x).all():
        raise ValueError(f"t_interval needs at least two finite values, got {values!r}")
    mean, sem = float(x.mean()), float(x.std(ddof=1) / np.sqrt(x.size))
    half = float(st.t.ppf((1 + level) / 2, x.size - 1)) * sem
    return mean, (mean - half, mean + half)


def km_median(times, observed) -> float | None:
    """Kaplan-Meier median of times-to-event with right censoring: ``times`` (n,) and ``observed`` (n,) bool (False:
    the event had not happened by that time, e.g. a run that never got there before the cap). The smallest time at
    which the estimated survival falls to 0.5 or below; None when it never does (more than half the mass censored)."""
    t = np.asarray(times, dtype=float)
    e = np.asarray(observed, dtype=bool)
    if t.shape != e.shape or t.ndim != 1:
        raise ValueError(f"times and observed must be two 1-d arrays of one length, got {t.shape} and {e.shape}")
    surv = 1.0
    for u in np.unique(t[e]):
        at_risk = int((t >= u).sum())
        surv *= 1.0 - int(((t == u) & e).sum()) / at_risk
        if surv <= 0.5 + 1e-12:
            return float(u)
    return None
