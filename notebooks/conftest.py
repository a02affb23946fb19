"""pytest setup for the notebooks run as tests (``make test``: nbval, the tiny profile)."""

import pytest


def pytest_itemcollected(item):
    """Under pytest-xdist (``make test`` runs two workers with ``--dist loadgroup``) every notebook cell joins one
    group, so one worker runs the notebooks cell by cell, in order (00 → 08, each reading what the earlier ones
    trained, one kernel per notebook), while the other worker runs tests/."""
    if item.path.suffix == ".ipynb":
        item.add_marker(pytest.mark.xdist_group("notebooks"))
