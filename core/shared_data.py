"""Where the shared evaluation data lives: ``../shared/data`` beside the repository.

The real measurements Heimdall is evaluated on (``powder/``, ``kiwi-dcf77/``, each with a
README) are not part of the repository; on a development machine they sit in
``shared/data`` next to the clone. ``HEIMDALL_SHARED_DATA`` points elsewhere. Paths are found
from this file (an editable install), never written as absolute paths, so a clone works in any
directory.
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["REPO_ROOT", "shared_data_dir"]

#: The repository root (this file is ``core/shared_data.py``; ``heimdall/core`` links to it).
REPO_ROOT = Path(__file__).resolve().parents[1]


def shared_data_dir(name: str = "") -> Path:
    """``$HEIMDALL_SHARED_DATA/<name>``, else ``<repo>/../shared/data/<name>`` (may not exist)."""
    base = os.environ.get("HEIMDALL_SHARED_DATA")
    root = Path(base) if base else REPO_ROOT.parent / "shared" / "data"
    return root / name if name else root
