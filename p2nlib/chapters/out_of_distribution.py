"""§4.6, §5.2, supplement VI, notebook 06: prompts outside the dataset's categories, optimised from four
initialisations × seeds (Tables 3–6, Figure 9).

:meth:`OutOfDistribution.initialisations` returns :class:`Initialisations`, :meth:`~OutOfDistribution.run`
returns :class:`OODResults` (the initialisations, both modalities' runs and the per-run table); the tables and
figures take those results as arguments, and :func:`p2nlib.chapters.verdicts.ood_claims` turns them into the
chapter's claims (those its initialisations can measure).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch

from p2nlib.baselines.optimize import template_init
from p2nlib.baselines.runs import Runs, mean_std
from p2nlib.chapters.base import (ID_TEXT_PROMPTS, INITS, OOD_IMAGE_CATEGORIES, OOD_TEXT_PROMPTS,
                                  PROMPT_CATEGORIES, QUALITY_FRACTION, SCRATCH_INITS, TEMPLATE, Chapter, _cpu)
from p2nlib.data import cameras, fit
from p2nlib.eval import metrics
from p2nlib.eval import views as ev
from p2nlib.eval.built import OPACITY_LEVEL

#: the mark of a render with nothing in it (a collapsed run), so a blank cell is not read as missing
EMPTY_SCENE = "(empty scene)"


@dataclass
class Initialisations:
    """Every prompt's four initialisations (``text`` and ``image``: per name of
    :data:`~p2nlib.chapters.base.INITS` the NeRFs, one per prompt of that modality) and its nearest training
    scene: per prompt (the text prompts, then the image prompts' object ids) the scene's dataset index, id,
    first caption and cosine to the prompt."""
    text: dict[str, dict[str, torch.Tensor]]
    image: dict[str, dict[str, torch.Tensor]]
    prompts: list[str]
    nearest: list[int]
    scene_ids: list[str]
    captions: list[str]
    cosine: list[float]

    def table(self) -> pd.DataFrame:
        """Per prompt its nearest training scene, that scene's caption and the cosine."""
        return pd.DataFrame({"prompt": self.prompts, "nearest training scene": self.scene_ids,
                             "its caption": self.captions, "cosine": np.round(self.cosine, 3)})


@dataclass
class OODResults:
    """The optimisation of every prompt × initialisation × seed: the initialisations, the runs of each
    modality (labelled ``modality``, ``prompt``, ``init``, ``seed``) and the per-run ``table``
    (:meth:`OutOfDistribution.run`)."""
    initialisations: Initialisations
    text_runs: Runs
    image_runs: Runs
    table: pd.DataFrame

    def runs(self, modality: str) -> Runs:
        """The runs of one modality (``"text"`` or ``"image"``)."""
        return {"text": self.text_runs, "image": self.image_runs}[modality]


@dataclass
class ScratchStudy:
    """Does text SDS build the object from scratch? Every text prompt of 05 and 06 from DreamFusion's blob (S),
    from the template (the earlier start) and from Ours (NRS), × seeds (:meth:`OutOfDistribution.scratch_study`);
    ``table``: one row per run with ``built`` (:mod:`p2nlib.eval.built`) and ``failed``."""
    runs: Runs
    table: pd.DataFrame
    rule: str
    schedule: str = ""

    def per_prompt(self) -> pd.DataFrame:
        """Per prompt and start: the share of seeds built where the test stopped the run, and of failed runs."""
        g = self.table.groupby(["prompt", "init"], sort=False)
        built, failed = g.built.mean().unstack("init"), g.failed.mean().unstack("init")
        names = [n for n in SCRATCH_INITS if n in built.columns]
        return pd.concat({"built (share of seeds)": built[names], "failed (share of seeds)": failed[names]}, axis=1)

    def counts(self) -> pd.DataFrame:
        """Per start: prompts built (more than half their seeds built where the test stopped), share of runs
        built, failed, converged by the adopted test, and the median iterations until built for good."""
        t, out = self.table, {}
        for name in [n for n in SCRATCH_INITS if n in set(self.table.init)]:
            d = t[t.init == name]
            per = d.groupby("prompt", sort=False).built.mean()
            out[name] = {"prompts built": int((per > 0.5).sum()), "prompts": len(per),
                         "runs built": float(d.built.mean()), "runs failed": float(d.failed.mean()),
                         "runs converged": float(d.converged.mean()),
                         "median iterations to built": float(d.iterations_to_built.median())}
        return pd.DataFrame(out).T


@dataclass
class OutOfDistribution(Chapter):
    """Prompts outside the dataset's categories, optimised from four initialisations × seeds (``inits``: a
    subset of :data:`~p2nlib.chapters.base.INITS` with S and Ours (NRS), e.g. for an ablation that needs
    only those two; the tables and claims that need P or Ours (DI) leave them out when they were not run)."""
    inits: tuple = INITS

    def __post_init__(self):
        super().__post_init__()
        known = INITS + (TEMPLATE,)
        if not set(self.inits) <= set(known) or not {"S", "Ours (NRS)"} <= set(self.inits):
            raise ValueError(f"inits must include 'S' and 'Ours (NRS)' and come from {known}, got {self.inits}")
        self.seeds = list(range(self.P.ood_seeds))
        self.text = list(OOD_TEXT_PROMPTS)
        self.image_cats = list(OOD_IMAGE_CATEGORIES)
        self.image_objs = ev.ood_objects(self.image_cats, self.P)
        self.image_prompts = ev.prompt_images(self.image_objs, self.P)
        self.image_names = [o.object_id for o in self.image_objs]
        self.t_emb = self.enc.encode_text(self.text)
        self.i_emb = self.enc.encode_images(self.image_prompts)

    def _others(self) -> list[str]:
        """The reference initialisations beside Ours (NRS) that were run: S, and P when it was."""
        return [n for n in ("S", "P") if n in self.inits]

    # ---------------------------------------------------------------- initialisations
    def _initialisations(self, prompt_emb):
        near, score = ev.nearest_train_scenes(self.pipe.cache, prompt_emb, self.train_idx)
        inits = {"S": self.scratch_init(len(near)), TEMPLATE: template_init(self.spec, len(near)),
                 "P": self.ds.select(near),
                 "Ours (NRS)": _cpu(self.pipe.from_embedding(self.pipe.cache[near, 0])),
                 "Ours (DI)": _cpu(self.pipe.from_embedding(prompt_emb))}
        return inits, near, score

    def initialisations(self) -> Initialisations:
        """For each prompt its nearest training scene (by cosine to the scenes' mean image embedding) and the
        four initialisations S, P, NRS, DI."""
        text, t_near, t_score = self._initialisations(self.t_emb)
        image, i_near, i_score = self._initialisations(self.i_emb)
        near = t_near + i_near
        return Initialisations(text, image, self.text + self.image_names, near,
                               [self.ds.objects[i]["object_id"] for i in near],
                               [self.ds.objects[i]["captions"][0] for i in near], t_score + i_score)

    def initialisation_views(self, inits: Initialisations) -> dict:
        """Every prompt's four initialisations from the first check view. Returns ``image_grid`` arguments."""
        check = cameras.turntable(self.cfg.check_views, elevation=25.0)
        rows = [self.render(by_name[name], check[:1])[:, 0] for by_name in (inits.text, inits.image)
                for name in INITS]
        imgs = torch.stack(rows).reshape(2, len(INITS), -1, *rows[0].shape[1:]).permute(0, 2, 1, 3, 4, 5).flatten(0, 2)
        return dict(images=imgs, ncols=len(INITS), size=1.0, titles=list(INITS),
                    row_labels=self.text + self.image_cats)

    # ---------------------------------------------------------------- optimisation
    def _run(self, modality: str, inits, emb, names, make_guidance, progress) -> Runs:
        order = [(p, name, s) for p in range(len(names)) for name in self.inits for s in self.seeds]
        init = {k: torch.stack([inits[name][k][p] for p, name, _ in order]) for k in inits["S"]}
        rows = [p for p, _, _ in order]
        labels = [{"modality": modality, "prompt": names[p], "init": name, "seed": s} for p, name, s in order]
        return Runs.optimise(labels, init, make_guidance(rows), self.spec, self.cfg, emb[rows], self.enc,
                             profile=self.P.name, name=self.run_name(f"06-{modality}-prompts"), device=self.device,
                             stop_at_convergence=self.stop, progress=progress)

    def run(self, initialisations: Initialisations | None = None, progress: bool = True) -> OODResults:
        """Every prompt × initialisation × seed, to the cap (the CLIP ablation stops at convergence), one batch
        per modality, from ``initialisations`` (default: :meth:`initialisations`). The per-run table also has each run's
        similarity at Ours (NRS)'s iteration count for the same prompt and seed, the iterations to reach
        :data:`~p2nlib.chapters.base.QUALITY_FRACTION` of the best similarity any run of the prompt reached,
        and, for image prompts, the PSNR where the run stopped and the novel-view quality
        (:func:`p2nlib.chapters.controls.image_quality`: ``built`` is mask IoU >= 0.7 on views >= 60 degrees from the
        reference, and the iterations until built for good)."""
        inits = initialisations if initialisations is not None else self.initialisations()
        text_runs = self._run("text", inits.text, self.t_emb, self.text,
                              lambda rows: self.text_guidance(self.t_emb[rows]), progress)
        image_runs = self._run(
            "image", inits.image, self.i_emb, self.image_names,
            lambda rows: self.image_guidance(self.image_prompts[rows], ev.prompt_pose().expand(len(rows), 4, 4)),
            progress)
        from p2nlib.chapters.controls import image_quality

        img = self._table(image_runs)
        img["psnr_converged"], img["iou_converged"] = self._image_truth(image_runs)
        novel = image_quality(image_runs, [self.image_objs[self.image_names.index(p)] for p in image_runs.labels.prompt],
                              self)
        img = pd.concat([img, novel[["built", "built_final", "iterations_to_built", "stays_built",
                                     "novel_psnr_converged", "novel_iou_converged"]]], axis=1)
        table = pd.concat([self._table(text_runs, self._categories(text_runs)), img], ignore_index=True)
        return OODResults(inits, text_runs, image_runs, table)

    def _image_truth(self, runs: Runs) -> tuple[list[float], list[float]]:
        """Per image run, where it stopped, against the prompt object's ground-truth views at the evaluation
        poses: PSNR and mask IoU (opacity > 0.5). The world knows every object; CLIP similarity alone cannot
        tell a built object from a fog of the right colour."""
        poses = ev.eval_poses(self.P.eval_views)
        gt, gt_alpha = fit.render_ground_truth(self.image_objs, poses, self.P.image_size, self.P.samples_per_ray,
                                               opacity=True)
        views, alpha = fit.render_nerfs(runs.params(list(range(len(runs))), "converged"), self.spec, poses,
                                        self.P.image_size, self.P.samples_per_ray, opacity=True)
        obj = [self.image_names.index(p) for p in runs.labels.prompt]
        a, b = alpha.cpu() > OPACITY_LEVEL, gt_alpha[obj].cpu() > OPACITY_LEVEL
        iou = (a & b).flatten(1).sum(1) / (a | b).flatten(1).sum(1).clamp_min(1)
        return metrics.psnr(views.cpu(), gt[obj].cpu(), (1, 2, 3, 4)).tolist(), iou.tolist()

    def _categories(self, runs: Runs) -> list:
        return [PROMPT_CATEGORIES[p] for p in runs.labels.prompt]

    def _table(self, runs: Runs, categories: list | None = None) -> pd.DataFrame:
        res, lab = runs.result, runs.labels
        best = {p: max(max(res.similarity[r]) for r in runs.select(prompt=p)) for p in lab.prompt.unique()}
        rule = self.rule() if categories is not None else None
        df = runs.table(quality=[QUALITY_FRACTION * best[p] for p in lab.prompt], rule=rule, categories=categories)
        ours_it = {(p, s): df.iterations[runs.one(prompt=p, seed=s, init="Ours (NRS)")]
                   for p, s in zip(lab.prompt, lab.seed)}
        df["sim_at_ours_iterations"] = [res.similarity_at(r, int(ours_it[(p, s)]))
                                        for r, (p, s) in enumerate(zip(lab.prompt, lab.seed))]
        return df

    def scratch_study(self, prompts=ID_TEXT_PROMPTS + OOD_TEXT_PROMPTS, inits=SCRATCH_INITS,
                      progress: bool = True) -> ScratchStudy:
        """Every text prompt × start (``inits``, from :data:`~p2nlib.chapters.base.SCRATCH_INITS`) × seed with this
        chapter's text guidance, to the cap, one batch: does the baseline build the object, from which start?"""
        prompts, inits = list(prompts), tuple(inits)
        if not set(inits) <= set(SCRATCH_INITS):
            raise ValueError(f"the study's starts come from {SCRATCH_INITS}, got {inits}")
        emb = self.enc.encode_text(prompts)
        near, _ = ev.nearest_train_scenes(self.pipe.cache, emb, self.train_idx)
        starts = {"S": self.scratch_init(len(prompts)), TEMPLATE: template_init(self.spec, len(prompts)),
                  "Ours (NRS)": _cpu(self.pipe.from_embedding(self.pipe.cache[near, 0]))}
        order = [(p, name, s) for p in range(len(prompts)) for name in inits for s in self.seeds]
        init = {k: torch.stack([starts[name][k][p] for p, name, _ in order]) for k in starts["S"]}
        rows = [p for p, _, _ in order]
        labels = [{"prompt": prompts[p], "init": name, "seed": s} for p, name, s in order]
        runs = Runs.optimise(labels, init, self.text_guidance(emb[rows]), self.spec, self.cfg, emb[rows], self.enc,
                             profile=self.P.name, name=self.run_name("06-scratch-study"), device=self.device,
                             stop_at_convergence=self.stop, progress=progress)
        cats = [PROMPT_CATEGORIES[p] for p in runs.labels.prompt]
        return ScratchStudy(runs, runs.table(rule=self.rule(), categories=cats), self.rule().describe(),
                            self.schedule_name)

    @staticmethod
    def scratch_views(study: ScratchStudy, seed: int) -> dict:
        """Every prompt of the study, seed ``seed``, where the test stopped each start's run (check view 0); the
        row label marks which starts had built the object there. Returns ``image_grid`` arguments."""
        runs, t = study.runs, study.table
        prompts = list(dict.fromkeys(t.prompt))
        images, labels = [], []
        names = [n for n in SCRATCH_INITS if n in set(t.init)]
        for p in prompts:
            marks = []
            for name in names:
                r = runs.one(prompt=p, init=name, seed=seed)
                images.append(runs.result.snapshot_at(r, runs.iterations(r)))
                marks.append("✓" if t.built[r] else "✗")
            labels.append(f"{p} ({' '.join(marks)})")
        return dict(images=torch.stack(images), ncols=len(names), size=1.0, titles=names, row_labels=labels)

    # ---------------------------------------------------------------- Tables 3–6
    def paper_table(self, res: OODResults, modality: str) -> pd.DataFrame:
        """Table 5 (image) or 6 (text): Ours (NRS) at convergence, S and P after the same iterations, S and P at
        their own convergence; mean ± std over seeds with the best seed in brackets (without P when it was
        not run)."""
        others = self._others()
        cols = (["Ours (conv.): similarity", "Ours (conv.): iterations"]
                + [f"{n} (same it.): similarity" for n in others]
                + [f"{n} (conv.): {what}" for n in others for what in ("similarity", "iterations")])
        runs, out = res.table, {}
        for prompt, g in runs[runs.modality == modality].groupby("prompt", sort=False):
            o = g[g.init == "Ours (NRS)"]
            row = {"Ours (conv.): similarity": f"{mean_std(o.sim_converged)} (best {o.sim_converged.max():.3f})",
                   "Ours (conv.): iterations": f"{mean_std(o.iterations, 0)} (best {o.iterations.min():.0f})"}
            for name in others:
                d = g[g.init == name]
                row[f"{name} (same it.): similarity"] = mean_std(d.sim_at_ours_iterations)
                row[f"{name} (conv.): similarity"] = f"{mean_std(d.sim_converged)} (best {d.sim_converged.max():.3f})"
                row[f"{name} (conv.): iterations"] = f"{mean_std(d.iterations, 0)} (best {d.iterations.min():.0f})"
            out[prompt] = row
        return pd.DataFrame(out).T[cols]

    def table_header(self, res: OODResults, modality: str) -> str:
        """The header of Table 5 or 6: what Ours is, the statistics, and how many runs converged."""
        sel = res.table[res.table.modality == modality]
        return (f"{self.ours}; mean ± std over {len(self.seeds)} seeds (best seed in brackets); runs that did not "
                f"converge count "
                f"at the cap ({res.text_runs.result.cap} iterations): converged {int(sel.converged.sum())} of "
                f"{len(sel)} runs")

    def table3_images(self, res: OODResults, n: int = 2) -> dict:
        """Table 3 as images: two image and two text prompts (best seed of Ours at convergence): Ours at
        convergence, S and P after the same iterations, S and P at their own convergence (without P when it was
        not run). Returns ``image_grid`` arguments."""
        others = self._others()
        cells = []
        for modality, prompts in (("image", self.image_names[:n]), ("text", self.text[:n])):
            runs = res.runs(modality)
            rr = runs.result
            for prompt in prompts:
                o = runs.best(by="converged", prompt=prompt, init="Ours (NRS)")
                seed = runs.labels.seed[o]
                ref = [runs.one(prompt=prompt, init=name, seed=seed) for name in others]
                it = runs.iterations(o)
                cells.append([rr.snapshot_at(o, it)] + [rr.snapshot_at(r, it) for r in ref]
                             + [rr.snapshot_at(r, runs.iterations(r)) for r in ref])
        size = self.P.image_size
        prompt_col = [torch.nn.functional.interpolate(self.image_prompts[i:i + 1].permute(0, 3, 1, 2), size=size,
                                                      mode="bilinear", antialias=True).permute(0, 2, 3, 1)[0]
                      for i in range(n)] + [torch.ones(size, size, 3)] * n
        grid = torch.stack([torch.stack([pc] + row) for pc, row in zip(prompt_col, cells)]).flatten(0, 1)
        titles = (["prompt", "Ours (conv.)"] + [f"{name} (same it.)" for name in others]
                  + [f"{name} (conv.)" for name in others])
        ncols = len(titles)
        # a text prompt is written where an image prompt would be; a render with nothing in it is marked
        texts = {(n + j) * ncols: f'"{prompt}"' for j, prompt in enumerate(self.text[:n])}
        texts.update({k: EMPTY_SCENE for k in range(len(grid)) if k % ncols and ev.empty_render(grid[k])})
        return dict(images=grid, ncols=ncols, size=1.1, row_labels=self.image_cats[:n] + self.text[:n],
                    titles=titles, texts=texts)

    def table4(self, res: OODResults) -> pd.DataFrame:
        """Table 4 (§5.2): NRS vs DI vs S on the text prompts, similarity at convergence and iterations (the
        initialisations that were run)."""
        names = [n for n in ("Ours (NRS)", "Ours (DI)", "S") if n in self.inits]
        runs = res.table
        t4 = (runs[runs.modality == "text"].groupby(["prompt", "init"], sort=False)
              .agg(similarity=("sim_converged", mean_std), iterations=("iterations", lambda x: mean_std(x, 0)))
              .unstack("init"))
        t4 = t4.reindex(columns=pd.MultiIndex.from_product([["similarity", "iterations"], names]))
        t4.columns = [f"{init}: {what}" for what, init in t4.columns]
        return t4

    # ---------------------------------------------------------------- Figure 9 and renders
    def curves(self, res: OODResults, modality: str, prompt: str) -> list[dict]:
        """Figure 9: for one prompt and the first seed, each initialisation's pixel change and similarity per
        epoch, and the iteration at which it converged (None: never)."""
        runs = res.runs(modality)
        rr = runs.result
        out = []
        for r in runs.select(prompt=prompt, seed=self.seeds[0]):
            its = np.arange(len(rr.changes[r]) + 1) * self.cfg.epoch_iters
            out.append({"init": runs.labels.init[r], "iterations": its, "changes": rr.changes[r],
                        "similarity": rr.similarity[r], "converged_at": rr.iterations[r]})
        return out

    def best_final(self, res: OODResults, modality: str, prompt: str,
                   init: str = "Ours (NRS)") -> dict[str, torch.Tensor]:
        """The NeRF at the end of the optimisation of the seed with the highest final similarity."""
        runs = res.runs(modality)
        return runs.params([runs.best(prompt=prompt, init=init)], "final")

    def multiview(self, res: OODResults) -> dict:
        """Ours (NRS), best seed, at the end of its optimisation, 8 poses: image prompts, then text prompts.
        Returns ``image_grid`` arguments."""
        mv = [ev.render_views(self.best_final(res, m, p), self.spec, self.P, 8, size=self.P.clip_image_size)[0]
              for m, prompts in (("image", self.image_names), ("text", self.text)) for p in prompts]
        return dict(images=torch.cat(mv), ncols=8, size=0.9, row_labels=self.image_cats + self.text)

    # ---------------------------------------------------------------- the speed-up
    def summary(self, res: OODResults) -> pd.DataFrame:
        """Per prompt, medians over seeds: S / Ours and P / Ours iterations to convergence (the adopted test, and
        the paper's test on the raw weights), S / Ours iterations to the quality level and, for text prompts, to
        built-and-stays-built (Ours floored at one epoch in both), and similarity differences at convergence (the
        P and DI columns when those initialisations were run)."""
        cols_in = ["iterations", "iterations_raw", "iterations_to_quality", "sim_converged"]
        if "iterations_to_built" in res.table:
            cols_in.append("iterations_to_built")
        med = res.table.groupby(["modality", "prompt", "init"], sort=False)[cols_in].median().unstack("init")
        it, raw, q, sim = med["iterations"], med["iterations_raw"], med["iterations_to_quality"], med["sim_converged"]
        floor = self.cfg.epoch_iters
        cols = {"S / Ours iterations (test)": it["S"] / it["Ours (NRS)"]}
        if "P" in self.inits:
            cols["P / Ours iterations (test)"] = it["P"] / it["Ours (NRS)"]
        cols["S / Ours iterations (raw-weights test)"] = raw["S"] / raw["Ours (NRS)"]
        cols[f"S / Ours iterations to {QUALITY_FRACTION:.0%} quality"] = q["S"] / q["Ours (NRS)"].clip(lower=floor)
        if "iterations_to_built" in med:
            b = med["iterations_to_built"]
            cols["S / Ours iterations to built"] = b["S"] / b["Ours (NRS)"].clip(lower=floor)
        cols["Ours - S similarity (conv.)"] = sim["Ours (NRS)"] - sim["S"]
        if "Ours (DI)" in self.inits:
            cols["NRS - DI similarity (conv.)"] = sim["Ours (NRS)"] - sim["Ours (DI)"]
        return pd.DataFrame(cols)

    def time_to_built(self, res: OODResults) -> pd.DataFrame:
        """Per start, the Kaplan-Meier median over prompts × seeds (both modalities) of the iterations until the
        run is built for good, runs never built censored at the cap (:func:`p2nlib.eval.stats.km_median`); and the
        ratio of each start's median to Ours (NRS)'s. A start whose median lies beyond the cap gives a lower bound
        ("≥ cap / Ours"), as the paper's own runs that never converged do; Ours beyond the cap: no ratio."""
        from p2nlib.eval import stats

        cap, floor = res.text_runs.result.cap, self.cfg.epoch_iters
        t = res.table
        med = {}
        for name in self.inits:
            d = t[t.init == name]
            med[name] = stats.km_median(d.iterations_to_built.clip(lower=floor), d.stays_built)
        ours = med["Ours (NRS)"]
        rows = {}
        for name in self.inits:
            m = med[name]
            if ours is None:
                ratio = "Ours (NRS) not built for good by the cap in half its runs: no ratio"
            elif m is None:
                ratio = f"≥ {cap / ours:.2f}× (its median lies beyond the cap)"
            else:
                ratio = f"{m / ours:.2f}×"
            rows[f"{name} / Ours (NRS)"] = {"median iterations (KM)": f"> {cap}" if m is None else f"{m:g}",
                                            "built for good": f"{t[t.init == name].stays_built.mean():.0%}",
                                            "ratio": ratio}
        return pd.DataFrame(rows).T

    def pairs(self, res: OODResults, column: str, init: str, modality: str | None = None) -> np.ndarray:
        """(prompts, seeds) array of one per-run ``column`` for ``init`` (one modality, or both), prompts in
        table order: the input of the bootstrap intervals."""
        t = res.table if modality is None else res.table[res.table.modality == modality]
        d = t[t.init == init]
        return d.pivot_table(index=["modality", "prompt"], columns="seed", values=column, sort=False).to_numpy(float)
