"""p2nlib: the library behind the Prompt2NeRF-PIL reproducibility book.

Every piece of logic lives here; the notebooks in ``notebooks/`` only call it and show results.
One idea per module: ``profiles`` (sizes), ``claims`` (the ledger), ``paths`` (where things go),
``world``/``cameras``/``render``/``nerf``/``store`` (the NeRF-parameter dataset), ``plots``.
"""

__version__ = "0.1.0"
