"""Foundations every stage uses: the profile table (``profiles``), where files go (``paths``), the
one error family (``errors``) and trained parts / cached results with provenance (``artifacts``).
Nothing here imports another package of the library."""
