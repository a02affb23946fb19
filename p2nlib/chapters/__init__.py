"""The results chapters as library objects (§4.3–4.6, §5.2, supplement VI): what notebooks 05 and 06 compute.

* ``base``                 the shared :class:`~p2nlib.chapters.base.Chapter` (pipeline, guidance, optimiser
                           settings, seeded draws), the prompts, initialisation names and levels of both chapters
* ``in_distribution``      Tables 1–2, Figures 2–3 (notebook 05): image and text prompts of the dataset's
                           categories against the per-prompt baselines
* ``out_of_distribution``  Tables 3–6, Figure 9 (notebook 06): out-of-distribution prompts optimised from
                           four initialisations
* ``verdicts``             the chapters' claims, from their results, as ``claims.record`` arguments

Each computing step returns a results dataclass; tables, figures and claims take those results as
arguments, so the order of a notebook's cells changes nothing. Optimisation runs are
:class:`~p2nlib.baselines.runs.Runs`, cached on disk by what produced them.
"""
