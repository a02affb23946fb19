"""Per-prompt optimisation, the paper's slow baselines and its out-of-distribution use of our NeRFs
(§4.3–4.6, supplement VI): guidances (``guidance``), the batched optimiser with the convergence test
(``optimize``), labelled sets of runs (``runs``), and the experiments behind Tables 1–6 (``experiments``)."""
