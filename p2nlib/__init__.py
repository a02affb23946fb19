"""p2nlib: the library behind the Prompt2NeRF-PIL reproducibility book.

Every piece of logic lives here; the notebooks in ``notebooks/`` only call it and show results.
One package per stage of the paper's pipeline, in the order data flows:

* ``core``      foundations: profiles (every size), paths, the error family, artifacts with provenance
* ``data``      stage 0, the NeRF dataset (§3.1): procedural world, cameras, renderer, NeRF, fitting, store,
                object sets
* ``clip``      the CLIP encoders (§3.2): interface, the book's small CLIP, cached views, embedding cache
* ``generate``  stages 1–2 and the one-pass generator (§3.2): VAE, alignment Transformer, pipeline, ``p2n``
* ``baselines`` per-prompt optimisation (§4.3–4.6): guidances, batched optimiser with the convergence
                test, labelled runs
* ``priors``    the diffusion priors the baselines distil: trained UNets (``diffusers``) and the ideal
                closed-form prior of the world
* ``chapters``  the experiments of chapters 03–07 (stages 1–2, the generator study, Tables 1–6, the
                baselines' controls) as steps that return results, their tables, figures and claims
* ``eval``      metrics only (§4.3): CLIP similarity, FD, PSNR, CLIP quality, topology, built tests, intervals
* ``book``      the book around it: claims ledger, notebook setup, plots, runner, book build, benchmarks
"""

import warnings

__version__ = "0.1.0"

# tqdm.auto warns once per process when ipywidgets is missing; its text bars work all the same
warnings.filterwarnings("ignore", message="IProgress not found")
