"""Pydantic v2 models of the whole IR (SPEC §2–3)."""
from ir_compiler.models.base import FieldSpec, Window, duration_seconds  # noqa: F401
from ir_compiler.models.connectors import (FILE_CONNECTORS, SINK_CONFIGS, SOURCE_CONFIGS,  # noqa: F401
                                           STREAM_CONNECTORS)
from ir_compiler.models.document import Pipeline  # noqa: F401
from ir_compiler.models.nodes import (NODE_KINDS, ArchiveNode, BranchNode, EnrichNode, JoinNode,  # noqa: F401
                                      SourceNode, TargetNode, TransformNode, ValidateNode)
