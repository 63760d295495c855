"""Connector names and config models, as the IR sees them: taken from THE connector list (connectors.registry),
never written twice. Each source/target node model is one pydantic class per connector (see models.nodes)."""
from __future__ import annotations

from connectors.file_config import (FILE_FORMATS, Atomicity, FileSinkConfig, FileSourceConfig,  # noqa: F401
                                    Pattern, WaitPolicy)
from connectors.registry import SINKS, SOURCES

SOURCE_CONNECTORS = tuple(SOURCES)
SINK_CONNECTORS = tuple(SINKS)
FILE_CONNECTORS = tuple(n for n, s in SOURCES.items() if s.capabilities.reads_files)
STREAM_CONNECTORS = tuple(n for n, s in SOURCES.items() if not s.capabilities.bounded)
SOURCE_CONFIGS = {n: s.config for n, s in SOURCES.items()}
SINK_CONFIGS = {n: s.config for n, s in SINKS.items()}
