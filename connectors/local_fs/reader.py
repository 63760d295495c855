"""The Beam step of a local_fs source: the shared file reader (:mod:`connectors.filereader`) on local paths
(large files split into ranges, :mod:`connectors.splits`)."""
from __future__ import annotations

from connectors.filereader import FILE, _ReadFilesFn, read_files  # noqa: F401
