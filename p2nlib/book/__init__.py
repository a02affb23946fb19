"""The book around the library: the claims ledger and its spec (``claims``, ``claims_spec``), what every
notebook does first (``notebook``), figures (``plots``), executing the notebooks (``runner``), building
the Jupyter Book (``build``) and benchmarks that print their figures (``bench``)."""
