"""Per-prompt optimisation, the paper's slow baselines and its out-of-distribution use of our NeRFs
(§4.3–4.6, supplement VI): CLIP guidances (``guidance``), score distillation from the book's priors
(``sds``), the batched optimiser with the convergence test (``optimize``) and labelled sets of runs
(``runs``). The experiments of Tables 1–6 that use them are in :mod:`p2nlib.chapters`."""
