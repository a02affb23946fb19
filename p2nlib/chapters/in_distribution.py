"""§4.3–4.5, notebook 05: image prompts of the dataset's own scenes (Table 1, Figures 2–3) and text prompts of
its categories (Table 2), against the per-prompt optimisation baselines.

The computing steps return results: :meth:`InDistribution.generation_scores` (:class:`GenerationScores`),
:meth:`~InDistribution.image_baseline` (:class:`ImageBaseline`), :meth:`~InDistribution.subset_scores`
(:class:`SubsetScores`), :meth:`~InDistribution.text_generations` (:class:`TextGenerations`) and
:meth:`~InDistribution.text_baseline` (:class:`TextBaseline`); the tables and figures take them as arguments,
and :func:`p2nlib.chapters.verdicts.id_claims` turns them into the chapter's claims.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch

from p2nlib.baselines.optimize import repeat_init
from p2nlib.baselines.runs import Runs, mean_std
from p2nlib.chapters.base import (BASELINE_CATEGORIES, GUIDANCES, ID_TEXT_PROMPTS, PROMPT_CATEGORIES, Chapter, _cpu,
                                  _take)
from p2nlib.data import cameras, fit
from p2nlib.eval import metrics
from p2nlib.eval import views as ev
from p2nlib.eval.built import BuiltRule
from p2nlib.generate.pipeline import Generation

#: short names of the guidances, for column headers
SHORT = {"sds": "SDS", "clip": "CLIP-guided"}


@dataclass
class GenerationScores:
    """The one-pass generator on the whole train and test splits, and retrieval (the fitted NeRF of the
    nearest training scene) on the test split. ``scores``: per set (``"train"``, ``"test"``,
    ``"retrieval"``) the metrics of :func:`~p2nlib.eval.views.image_prompt_metrics` and the ``views`` per
    scene; ``gen_test``: the NeRFs generated from the test scenes' prompts, in the order of ``test_idx``."""
    scores: dict[str, dict]
    gen_test: dict[str, torch.Tensor]
    test_idx: list[int]

    def params(self, scenes) -> dict[str, torch.Tensor]:
        """The generated NeRFs of test ``scenes`` (dataset indices)."""
        return _take(self.gen_test, [self.test_idx.index(i) for i in scenes])

    def table(self) -> pd.DataFrame:
        """Similarity, Fréchet distance, images per set and views per scene of each set."""
        return pd.DataFrame({k: {m: v[m] for m in ("similarity", "frechet", "samples", "views")}
                             for k, v in self.scores.items()})


@dataclass
class ImageBaseline:
    """The image baseline (``guidance``: a key of :data:`~p2nlib.chapters.base.GUIDANCES`) on every test scene
    (:meth:`InDistribution.baseline_scenes`): the scenes (dataset indices), their prompt images (N, S, S, 3), and one run per scene × seed, labelled
    ``scene``, ``category``, ``seed``, each run to the cap or stopped at convergence."""
    guidance: str
    subset: list[int]
    prompts: torch.Tensor
    runs: Runs

    def table(self) -> pd.DataFrame:
        """One row per run (:meth:`~p2nlib.baselines.runs.Runs.table`)."""
        return self.runs.table()


@dataclass
class SubsetScores:
    """Ours and the image baseline on the baseline's scenes (every test scene), against the ground-truth views at the same poses
    (``views`` per scene): ``ours`` the generator's metrics, ``baseline[(when, seed)]`` the baseline's
    (``when``: ``"converged"`` or ``"final"``, the cap of ``cap`` iterations) and, with an ablation,
    ``ablation[("converged", seed)]`` that of the baseline under ``ablation_guidance``."""
    subset: list[int]
    views: int
    ours: dict
    baseline: dict
    guidance: str
    cap: int
    ablation: dict | None = None
    ablation_guidance: str | None = None


@dataclass
class TextGenerations:
    """Ours on the text prompts (text -> nearest training scene -> NeRF, one forward pass each): the
    generations, their renders (N, V, S, S, 3) at the convergence test's check views and the text–image CLIP
    similarity of each prompt over those views."""
    prompts: list[str]
    generations: list[Generation]
    views: torch.Tensor
    similarity: np.ndarray


@dataclass
class TextBaseline:
    """The text baseline (``guidance``: a key of :data:`~p2nlib.chapters.base.GUIDANCES`) from scratch:
    one run per prompt × seed, labelled ``prompt``, ``seed``; ``budget`` the fixed iteration count (a third
    of the cap) it is also read at; ``rule`` judges whether a run built its prompt's category."""
    guidance: str
    prompts: list[str]
    budget: int
    runs: Runs
    rule: BuiltRule | None = None

    def table(self) -> pd.DataFrame:
        """One row per run, with its similarity at the budget and, with a rule, whether it built its prompt's
        category (:meth:`~p2nlib.baselines.runs.Runs.table`)."""
        if self.rule is None:
            return self.runs.table(budget=self.budget)
        cats = [PROMPT_CATEGORIES[p] for p in self.runs.labels.prompt]
        return self.runs.table(budget=self.budget, rule=self.rule, categories=cats)


class InDistribution(Chapter):
    """Image prompts of the dataset's own scenes (Table 1, Figs. 2–3) and text prompts of its categories
    (Table 2), against the per-prompt optimisation baselines."""

    def __post_init__(self):
        super().__post_init__()
        self.seeds = list(range(self.P.opt_seeds))

    # ---------------------------------------------------------------- Table 1: one forward pass
    def _generate(self, idx):
        prompts = ev.prompt_images(self.ds.world_objects(idx), self.P)
        return prompts, _cpu(self.pipe.from_embedding(self.enc.encode_images(prompts)))

    def _scores(self, idx, params) -> dict:
        n = metrics.views_for_frechet(len(idx), self.enc.embed_dim)
        gen = ev.render_views(params, self.spec, self.P, n)
        gt = ev.gt_views(self.ds.world_objects(idx), self.P, n)
        return {**ev.image_prompt_metrics(self.enc, gen, gt), "views": n}

    def generation_scores(self) -> GenerationScores:
        """CLIP similarity and Fréchet distance of the one-pass generator on the whole train and test splits,
        and of retrieval (the fitted NeRF of the nearest training scene) on the test split."""
        _, gen_train = self._generate(self.train_idx)
        prompts_test, gen_test = self._generate(self.test_idx)
        scores = {"train": self._scores(self.train_idx, gen_train),
                  "test": self._scores(self.test_idx, gen_test)}
        near, _ = ev.nearest_train_scenes(self.pipe.cache, self.enc.encode_images(prompts_test), self.train_idx)
        scores["retrieval"] = self._scores(self.test_idx, self.ds.select(near))
        return GenerationScores(scores, gen_test, list(self.test_idx))

    # ---------------------------------------------------------------- Table 1: the image baseline
    def baseline_subset(self) -> list[int]:
        """A random test subset: :data:`BASELINE_CATEGORIES` random categories, one random test scene of each
        (dataset indices, drawn from the ``image-baseline`` generator); the image controls' scenes and Figure 3's."""
        rng = self.rng("image-baseline")
        cats = rng.sample(sorted({o["category"] for o in self.ds.objects}), BASELINE_CATEGORIES)
        return [rng.choice(self.ds.indices("test", c)) for c in cats]

    def baseline_scenes(self) -> list[int]:
        """The scenes of Table 1's image baseline: every test scene (dataset indices, in split order), or the
        profile's :meth:`baseline_subset` where it sets ``baseline_every_test_scene`` off (the CI profile)."""
        return list(self.test_idx) if self.P.baseline_every_test_scene else self.baseline_subset()

    def image_baseline(self, progress: bool = True) -> ImageBaseline:
        """The image baseline on :meth:`baseline_scenes`, every seed, run to the iteration cap (the convergence
        test marks where each run converged; the CLIP ablation stops there)."""
        subset = self.baseline_scenes()
        prompts = ev.prompt_images(self.ds.world_objects(subset), self.P)
        n_runs = len(subset) * len(self.seeds)
        init = repeat_init(self.scratch_init(len(subset)), len(self.seeds))
        refs = prompts.repeat_interleave(len(self.seeds), 0)
        guid = self.image_guidance(refs, ev.prompt_pose().expand(n_runs, 4, 4))
        labels = [{"scene": self.ds.objects[i]["object_id"], "category": self.ds.objects[i]["category"], "seed": s}
                  for i in subset for s in self.seeds]
        runs = Runs.optimise(labels, init, guid, self.spec, self.cfg, self.enc.encode_images(refs), self.enc,
                             profile=self.P.name, name=self.run_name("05-image-baseline"),
                             device=self.device, stop_at_convergence=self.stop, progress=progress)
        return ImageBaseline(self.guidance, subset, prompts, runs)

    def _baseline_scores(self, runs: Runs, gt_sub: torch.Tensor, n_sub: int,
                         whens: tuple[str, ...] = ("converged", "final")) -> dict:
        """Scores of a baseline's runs on its scenes, per (when, seed): at convergence and at the cap."""
        out = {}
        for when in whens:
            for s in self.seeds:
                views = ev.render_views(runs.params(runs.select(seed=s), when), self.spec, self.P, n_sub)
                out[(when, s)] = ev.image_prompt_metrics(self.enc, views, gt_sub)
        return out

    def subset_scores(self, gen: GenerationScores, base: ImageBaseline,
                      ablation: ImageBaseline | None = None) -> SubsetScores:
        """Ours (from ``gen``) and the image baseline ``base`` on its scenes, at convergence and at the cap;
        with ``ablation``, an image baseline under another guidance on the same scenes, at convergence."""
        if ablation is not None and ablation.subset != base.subset:
            raise ValueError(f"the ablation ran on scenes {ablation.subset}, the baseline on {base.subset}: "
                             "both need the same seed")
        n_sub = metrics.views_for_frechet(len(base.subset), self.enc.embed_dim)
        gt_sub = ev.gt_views(self.ds.world_objects(base.subset), self.P, n_sub)
        ours_sub = ev.render_views(gen.params(base.subset), self.spec, self.P, n_sub)
        return SubsetScores(
            list(base.subset), n_sub, ev.image_prompt_metrics(self.enc, ours_sub, gt_sub),
            self._baseline_scores(base.runs, gt_sub, n_sub), base.guidance, base.runs.result.cap,
            ablation=None if ablation is None else self._baseline_scores(ablation.runs, gt_sub, n_sub, ("converged",)),
            ablation_guidance=None if ablation is None else ablation.guidance)

    def table1(self, gen: GenerationScores, sub: SubsetScores) -> tuple[pd.DataFrame, str]:
        """Table 1 and its caption: ours on both splits, retrieval, and the image baseline on the test split's scenes
        (and the ablation's baseline at convergence, when ``sub`` has one). Ours is repeated at the baseline's scenes
        and views only where they are not the test column's (a profile that runs the baseline on a subset)."""
        keys = ("similarity", "psnr", "frechet")

        def baseline(scores, when):
            out = []
            for key in keys:
                vals = [scores[(when, s)][key] for s in self.seeds]
                best = min(vals) if key == "frechet" else max(vals)
                out.append(f"{mean_std(vals)} (best seed {best:.3f})")
            return out + [f"{len(sub.subset)} × {sub.views}"]

        def ours(sc, n_obj, n_views):
            return [f"{sc[k]:.3f}" for k in keys] + [f"{n_obj} × {n_views}"]

        sc = gen.scores
        fd_name = sc["test"]["metric"]
        columns = {
            "Ours (train split)": ours(sc["train"], len(self.train_idx), sc["train"]["views"]),
            "Ours (test split)": ours(sc["test"], len(self.test_idx), sc["test"]["views"]),
            "Retrieval: nearest training scene's NeRF (test split)":
                ours(sc["retrieval"], len(self.test_idx), sc["retrieval"]["views"]),
        }
        if list(sub.subset) != list(self.test_idx) or sub.views != sc["test"]["views"]:
            # the baseline ran on other scenes or views than the test column's: ours on its scenes and views too
            columns["Ours (test split, the baseline's views)"] = ours(sub.ours, len(sub.subset), sub.views)
        columns[f"Image baseline ({SHORT[sub.guidance]}), at convergence (test split)"] = \
            baseline(sub.baseline, "converged")
        columns[f"Image baseline ({SHORT[sub.guidance]}), {sub.cap} iterations (test split)"] = \
            baseline(sub.baseline, "final")
        if sub.ablation is not None:
            columns[f"Image baseline ({SHORT[sub.ablation_guidance]}, ablation), at convergence (test split)"] = \
                baseline(sub.ablation, "converged")
        table = pd.DataFrame(columns, index=["CLIP similarity", "PSNR vs ground truth (dB)", fd_name,
                                             "images per set (scenes × views)"])
        caption = (f"Table 1 (CLIP similarity and PSNR vs the ground-truth views at the same poses; {fd_name}; "
                   f"image baseline: {GUIDANCES[sub.guidance]}, mean ± std over {len(self.seeds)} seeds; {self.ours})")
        return table, caption

    # ---------------------------------------------------------------- Figures 2 and 3
    def gallery_scenes(self) -> dict[str, list[int]]:
        """Per category up to ``gallery_per_category`` random test scenes (dataset indices, drawn from the
        ``test-gallery`` generator)."""
        rng, per = self.rng("test-gallery"), self.P.gallery_per_category
        return {c: rng.sample(self.ds.indices("test", c), min(per, len(self.ds.indices("test", c))))
                for c in sorted({o["category"] for o in self.ds.objects})}

    def test_gallery(self, gen: GenerationScores) -> dict:
        """Figure 2: the :meth:`gallery_scenes`, ground truth next to ours, at a novel pose. Returns
        ``image_grid`` arguments."""
        scenes = self.gallery_scenes()
        per = max(len(pick) for pick in scenes.values())          # no empty columns when a split has fewer scenes
        novel = ev.eval_poses(4)[2:3]
        show, labels = [], []
        for c, pick in scenes.items():
            ours = self.render(gen.params(pick), novel)[:, 0]
            gt = fit.render_ground_truth(self.ds.world_objects(pick), novel, self.P.clip_image_size,
                                         self.P.samples_per_ray)[:, 0]
            row = torch.stack([x for pair in zip(gt, ours) for x in pair])
            show.append(torch.cat([row, torch.ones(2 * per - len(row), *row.shape[1:])]))
            labels.append(c)
        return dict(images=torch.cat(show), ncols=2 * per, size=0.9, row_labels=labels,
                    titles=["ground truth", "ours"] * per)

    def ours_vs_baseline(self, gen: GenerationScores, base: ImageBaseline) -> dict:
        """Figure 3: per scene of :meth:`baseline_subset` the prompt, then ours, the baseline at convergence and at
        the cap (best seed), each from three poses (the first is the prompt's). Returns ``image_grid`` arguments."""
        poses3 = torch.cat([ev.prompt_pose(), ev.eval_poses(3)[1:]])
        rows, row_labels = [], []
        for i in self.baseline_subset():
            j = base.subset.index(i)
            r = base.runs.best(scene=self.ds.objects[i]["object_id"])
            sets = [gen.params([i]), base.runs.params([r], "converged"), base.runs.params([r], "final")]
            row = [base.prompts[j]] + [x for prm in sets for x in self.render(prm, poses3)[0]]
            rows.append(torch.stack(row))
            row_labels.append(self.ds.objects[i]["category"])
        titles = ["prompt"] + [f"{n} {k + 1}" for n in ("ours", "conv.", "cap") for k in range(3)]
        return dict(images=torch.cat(rows), ncols=10, size=1.0, row_labels=row_labels, titles=titles)

    # ---------------------------------------------------------------- Table 2: text prompts
    def text_generations(self, prompts=ID_TEXT_PROMPTS) -> TextGenerations:
        """Ours on each text prompt (text -> nearest training scene -> NeRF), rendered at the check views, with
        its text–image CLIP similarity over them."""
        prompts = list(prompts)
        gens = [self.pipe.from_text(t) for t in prompts]
        check = cameras.turntable(self.cfg.check_views, elevation=25.0)
        views = torch.cat([self.render(g.params, check, self.P.image_size) for g in gens])
        return TextGenerations(prompts, gens, views, metrics.text_similarity(self.enc, prompts, views))

    def text_baseline(self, prompts=ID_TEXT_PROMPTS, progress: bool = True) -> TextBaseline:
        """The text baseline from scratch (S: :meth:`scratch_init`), every prompt × seed, run to the cap (the CLIP
        ablation stops at convergence); also read at a fixed budget of a third of the cap, and judged
        ``built`` (:meth:`rule`)."""
        prompts = list(prompts)
        budget = (self.cfg.max_epochs // 3) * self.cfg.epoch_iters
        targets = self.enc.encode_text(prompts).repeat_interleave(len(self.seeds), 0)
        labels = [{"prompt": t, "seed": s} for t in prompts for s in self.seeds]
        runs = Runs.optimise(labels, repeat_init(self.scratch_init(len(prompts)), len(self.seeds)),
                             self.text_guidance(targets), self.spec, self.cfg, targets, self.enc,
                             profile=self.P.name, name=self.run_name("05-text-baseline"),
                             device=self.device, stop_at_convergence=self.stop, progress=progress)
        return TextBaseline(self.guidance, prompts, budget, runs, self.rule())

    def table2(self, ours: TextGenerations, base: TextBaseline,
               ablation: TextBaseline | None = None) -> tuple[pd.DataFrame, str]:
        """Table 2 and its caption: ours vs the text baseline ``base`` at its budget and at convergence (with
        ``ablation``: a text baseline under another guidance at convergence, as two more columns)."""
        b, res, rows = base.budget, base.runs.result, {}
        table = base.table()
        abl = ablation.table() if ablation is not None else None
        for i, t in enumerate(ours.prompts):
            r = table[table.prompt == t]
            rows[t] = {"Ours: similarity": f"{ours.similarity[i]:.3f}",
                       "Ours: time (s)": f"{ours.generations[i].seconds:.3f}",
                       f"baseline @{b} it: similarity": mean_std(r[f"sim_at_{b}"]),
                       f"baseline @{b} it: time (s)": mean_std([res.seconds_to(j, b) for j in r.index], 1),
                       "baseline converged: similarity": mean_std(r.sim_converged),
                       "baseline converged: best seed": f"{r.sim_converged.max():.3f}",
                       "baseline converged: iterations": mean_std(r.iterations, 0),
                       "baseline converged: time (s)": mean_std(r.seconds_converged, 1)}
            if abl is not None:
                a = abl[abl.prompt == t]
                rows[t]["ablation (CLIP) converged: similarity"] = mean_std(a.sim_converged)
                rows[t]["ablation (CLIP) converged: iterations"] = mean_std(a.iterations, 0)
        caption = (f"Table 2 (text–image CLIP similarity over {self.cfg.check_views} views; text baseline: "
                   f"{GUIDANCES[base.guidance]}, mean ± std over {len(self.seeds)} seeds; wall time on this machine; "
                   f"{self.ours})")
        return pd.DataFrame(rows).T, caption

    def text_vs_baseline(self, ours: TextGenerations, base: TextBaseline) -> dict:
        """Ours next to the text baseline (best seed) at the start, at the budget and at the cap."""
        res = base.runs.result
        steps = [0, base.budget, res.cap]
        rows = []
        for i, t in enumerate(ours.prompts):
            r = base.runs.best(prompt=t)
            rows.append(torch.stack([ours.views[i, 0]] + [res.snapshot_at(r, s) for s in steps]))
        return dict(images=torch.cat(rows), ncols=4, size=1.1, row_labels=ours.prompts,
                    titles=["ours"] + [f"baseline @{s} it" for s in steps])

    def sensitivity(self, image: ImageBaseline, text: TextBaseline) -> pd.DataFrame:
        """Median iterations to convergence of both baselines under other ε (the profile's grid)."""
        lo, hi = self.P.opt_eps_sensitivity
        grid = [lo, self.cfg.eps, hi]
        return pd.concat([image.runs.sensitivity(grid).median().rename("image"),
                          text.runs.sensitivity(grid).median().rename("text")], axis=1).T

    # ---------------------------------------------------------------- multi-view renders
    def multiview_scenes(self, n: int = 4) -> list[int]:
        """``n`` random test scenes (dataset indices, drawn from the ``multiview`` generator)."""
        return [self.test_idx[i] for i in self.rng("multiview").sample(range(len(self.test_idx)), n)]

    def multiview(self, gen: GenerationScores, text: TextGenerations, n: int = 4) -> dict:
        """Ours on the :meth:`multiview_scenes` (image prompts) and on the first ``n`` text prompts, 8 poses.
        Returns ``image_grid`` arguments."""
        pick = self.multiview_scenes(n)
        size = self.P.clip_image_size
        mv = ev.render_views(gen.params(pick), self.spec, self.P, 8, size=size)
        mv_text = torch.cat([ev.render_views(g.params, self.spec, self.P, 8, size=size) for g in text.generations[:n]])
        labels = [self.ds.objects[i]["category"] for i in pick] + text.prompts[:n]
        return dict(images=torch.cat([mv, mv_text]).flatten(0, 1), ncols=8, size=0.9, row_labels=labels)
