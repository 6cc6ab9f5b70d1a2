"""vfio.migration benchmarks (see BENCHMARKS.md)."""

import sys

from demo.run_demo import collection_path


def importable():
    """Make ``ansible_collections.vfio.migration`` importable in this process; return the collections dir."""
    base = collection_path()
    if base not in sys.path:
        sys.path.insert(0, base)
    return base
