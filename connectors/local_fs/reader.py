"""The Beam step of a local_fs source: the shared file reader (:mod:`connectors.filereader`) on local paths."""
from __future__ import annotations

from connectors.filereader import _ReadFilesFn, _WholeFiles, read_files  # noqa: F401
