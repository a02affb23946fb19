"""The experiments of the chapters as library objects: what notebooks 03–07 compute.

* ``base``                 the shared :class:`~p2nlib.chapters.base.Chapter` (pipeline, guidance, optimiser
                           settings, seeded draws), the prompts, initialisation names and levels of both chapters
* ``in_distribution``      Tables 1–2, Figures 2–3 (notebook 05): image and text prompts of the dataset's
                           categories against the per-prompt baselines
* ``out_of_distribution``  Tables 3–6, Figure 9 (notebook 06): out-of-distribution prompts optimised from
                           four initialisations
* ``stages``               stages 1–2 measured on renders (notebooks 03, 04): reconstruction and
                           generation PSNR, interpolation, rotation invariance
* ``study``                what stages 1 and 2 need to generalise (notebook 07): recipes, levers,
                           dataset splits
* ``controls``             the per-prompt baselines' positive, negative and from-scratch controls (05)
* ``verdicts``             the chapters' claims, from their results, as ``claims.record`` arguments

Each computing step returns a results dataclass; tables, figures and claims take those results as
arguments, so the order of a notebook's cells changes nothing. Optimisation runs are
:class:`~p2nlib.baselines.runs.Runs`, cached on disk by what produced them.
"""
