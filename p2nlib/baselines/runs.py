"""A labelled set of optimisation runs: one :class:`~p2nlib.baselines.optimize.OptimResult` plus a
table with one row of labels per run (prompt, initialisation, seed, ...).

Runs are addressed by their labels, never by index arithmetic: ``runs.select(prompt="a red mug",
init="S")`` gives the run numbers, ``runs.params(...)`` their NeRFs, ``runs.best(...)`` the best seed,
and :meth:`Runs.table` one row per run with the convergence test's outcome. :meth:`Runs.optimise`
runs a batch and caches it on disk keyed by everything that determines it (profile, optimiser config,
the initialisations, the guidance and its targets, the seeds, and the optimiser's source code), so a
rerun that changes only a figure takes seconds, and any changed input recomputes.
"""
from __future__ import annotations

import sys
from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd
import torch

from p2nlib.baselines import guidance as guidance_module
from p2nlib.baselines import optimize as optimize_module
from p2nlib.baselines.optimize import OptimConfig, OptimResult, converged_epoch, optimize
from p2nlib.core import artifacts, paths
from p2nlib.eval.built import first_stays
from p2nlib.data import cameras, nerf, render

#: a run whose first check view has a pixel standard deviation below this where it stopped shows an empty
#: or uniform scene (nothing built, or a fog of one colour): counted as failed
FAILED_STD = 0.03


def mean_std(values, digits: int = 3) -> str:
    """'mean ± std' of a sequence (the std over seeds; a single value is shown alone; None/NaN skipped)."""
    v = np.asarray([x for x in values if x is not None and np.isfinite(x)], dtype=float)
    if len(v) == 0:
        return "n/a"
    return f"{v.mean():.{digits}f}" if len(v) == 1 else f"{v.mean():.{digits}f} ± {v.std(ddof=1):.{digits}f}"


@dataclass
class Runs:
    result: OptimResult
    labels: pd.DataFrame        # one row per run, index 0..R-1 = run number in ``result``

    # ------------------------------------------------------------------ making them
    @classmethod
    def optimise(cls, labels: list[dict], init: dict[str, torch.Tensor], guidance, spec: nerf.NerfSpec,
                 cfg: OptimConfig, targets: torch.Tensor, encoder, *, profile: str, name: str,
                 device: torch.device | str = "cpu", stop_at_convergence: bool = False,
                 progress: bool = True, raw_test: bool = True) -> "Runs":
        """Optimise one run per row of ``labels`` (each needs a ``seed``) from ``init`` (R, ...) with
        ``guidance``; cached in ``artifacts/<profile>/baselines/<name>-<key>.safetensors``. ``raw_test=False``:
        without the paper's convergence test on the raw weights (:func:`~p2nlib.baselines.optimize.optimize`)."""
        if len(labels) != nerf.check_params(init, spec):
            raise ValueError(f"{len(labels)} label rows for {nerf.check_params(init, spec)} initialisations")
        seeds = [int(lab["seed"]) for lab in labels]
        module = sys.modules[type(guidance).__module__]          # a guidance defined elsewhere (e.g. sds)
        extra = () if module is guidance_module else (module,)   # adds its own code to the key
        key = {"profile": profile, "name": name, "config": asdict(cfg), "spec": spec.to_dict(), "labels": labels,
               "init": artifacts.tensor_digest(init), "targets": artifacts.tensor_digest(targets),
               "guidance": guidance.key(), "encoder": encoder.fingerprint, "stop": stop_at_convergence,
               "code": artifacts.code_digest(optimize_module, guidance_module, render, nerf, cameras, *extra),
               "torch": torch.__version__, "device": torch.device(device).type, "raw_test": raw_test}

        def compute():
            res = optimize(init, guidance, spec, cfg, seeds=seeds, targets=targets, encoder=encoder, device=device,
                           progress=progress, desc=name, stop_at_convergence=stop_at_convergence, raw_test=raw_test)
            return res.to_tensors()

        tensors, data = artifacts.cached(paths.stage_dir(profile, "baselines"), name, key, compute)
        return cls(OptimResult.from_tensors(tensors, data), pd.DataFrame(labels))

    # ------------------------------------------------------------------ addressing them
    def __len__(self) -> int:
        return len(self.labels)

    def select(self, **where) -> list[int]:
        """Run numbers whose labels match every ``label=value`` (a list or tuple value matches any of them),
        in run order."""
        mask = np.ones(len(self.labels), dtype=bool)
        for col, want in where.items():
            if col not in self.labels:
                raise KeyError(f"no label {col!r}; the labels are {', '.join(self.labels.columns)}")
            vals = list(want) if isinstance(want, (list, tuple)) else [want]
            mask &= self.labels[col].isin(vals).to_numpy()
        return [int(i) for i in np.flatnonzero(mask)]

    def one(self, **where) -> int:
        """The single run matching ``where`` (an error when none or several match)."""
        rs = self.select(**where)
        if len(rs) != 1:
            raise KeyError(f"{len(rs)} runs match {where}; expected exactly one")
        return rs[0]

    def params(self, runs: list[int], when: str = "converged") -> dict[str, torch.Tensor]:
        """NeRF parameters of ``runs`` at convergence (``when="converged"``) or at the end (``"final"``)."""
        src = {"converged": self.result.params, "final": self.result.final_params}[when]
        return {k: v[runs] for k, v in src.items()}

    def best(self, by: str = "final", **where) -> int:
        """Among the runs matching ``where``, the one with the highest similarity at the end (``by="final"``)
        or at convergence (``by="converged"``)."""
        score = {"final": self.result.final_similarity, "converged": self.result.converged_similarity}[by]
        return max(self.select(**where), key=score)

    def iterations(self, run: int) -> int:
        """Iterations to convergence, or the cap for a run that did not converge."""
        it = self.result.iterations[run]
        return it if it is not None else self.result.cap

    # ------------------------------------------------------------------ tables
    def built_flags(self, run: int, rule, category: str) -> list[bool]:
        """Whether ``run`` had built its ``category`` object at each logged epoch (index 0 = the start), by
        ``rule`` (:class:`p2nlib.eval.built.BuiltRule`) on the logged check views."""
        res = self.result
        if res.embeddings is None or res.occupancy is None:
            raise ValueError("these runs were optimised without check-view logs; rerun them to judge 'built'")
        epochs = len(res.similarity[run])
        return rule.built(res.embeddings[run, :epochs], res.occupancy[run, :epochs], category).tolist()

    def table(self, budget: int | None = None, quality: list[float] | None = None, rule=None,
              categories: list[str] | None = None) -> pd.DataFrame:
        """One row per run: its labels, whether and when the supplement VI test converged (non-converged runs
        count at the cap), whether it failed (an empty or uniform scene where it stopped: the pixel standard
        deviation of its first check view below :data:`FAILED_STD`), similarity at the start, at convergence
        and at the end, attributed wall times;
        optionally similarity at a fixed ``budget`` and iterations to reach a ``quality`` level (one per run);
        with a ``rule`` and each run's category: whether it is ``built`` where it stopped, and the iterations until
        it is built and stays built to the cap (``iterations_to_built``; the cap when never).
        ``iterations_raw``: the paper's test on the raw weights (= ``iterations`` when the test reads them; None
        for runs made without it)."""
        res = self.result
        raw = res.iterations_raw if res.changes_raw is not None or not res.config.average else None
        rows = []
        for r in range(len(self)):
            it = res.iterations[r]
            shown = res.snapshot_at(r, self.iterations(r))            # check view 0 where the run stopped
            row = {"converged": it is not None, "iterations": self.iterations(r), "sim_init": res.similarity[r][0],
                   "failed": bool(shown.std((0, 1)).mean() < FAILED_STD),
                   "sim_converged": res.converged_similarity(r), "sim_final": res.final_similarity(r),
                   "seconds_converged": res.seconds_to(r, it), "seconds_total": res.seconds[r],
                   # None for runs made without the paper's test (optimize(raw_test=False))
                   "converged_raw": None if raw is None else raw[r] is not None,
                   "iterations_raw": None if raw is None else raw[r] if raw[r] is not None else res.cap}
            if rule is not None:
                flags = self.built_flags(r, rule, categories[r])
                stays = first_stays(flags)
                row["built"] = bool(flags[res._epoch(r, self.iterations(r))])
                row["built_final"] = bool(flags[-1])
                row["iterations_to_built"] = stays * res.config.epoch_iters if stays is not None else res.cap
                row["stays_built"] = stays is not None
            if budget is not None:
                row[f"sim_at_{budget}"] = res.similarity_at(r, budget)
            if quality is not None:
                hit = res.iterations_to_reach(r, quality[r])
                row.update({"quality_level": quality[r], "iterations_to_quality": hit if hit is not None else res.cap,
                            "reached_quality": hit is not None})
            rows.append(row)
        return pd.concat([self.labels.reset_index(drop=True), pd.DataFrame(rows)], axis=1)

    def sensitivity(self, eps_values) -> pd.DataFrame:
        """Iterations to convergence of every run under other thresholds ε (recomputed from the logged
        curves; valid for runs that went on to the cap)."""
        res, out = self.result, {}
        for eps in eps_values:
            its = []
            for ch in res.changes:
                e = converged_epoch(ch, eps, res.config.k)
                its.append(res.cap if e is None else e * res.config.epoch_iters)
            out[f"eps={eps:g}"] = its
        return pd.DataFrame(out)
