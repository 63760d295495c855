"""The connector front door: what every source and sink declares (name, typed config, capabilities) and what it
does over a run's whole life, from validation to after the loads committed.

A source's life (SeaTunnel's ``SeaTunnelSource`` split the same way: boundedness as data, an enumerator on the
driver, readers on the workers)::

    available()                      -> None, or why this build cannot run it (validates and plans anyway)
    infer_schema(node, warehouse)    -> Schema | None        validation: sample the data when it is reachable
    describe(node, unbounded)        -> [lines]              `flow-beam plan`
    prepare(node, run)               -> Prepared | None      driver, before the run: list and claim files,
                                                             plan offset ranges or start positions
    read(p, node, ctx, prepared, schema) -> {"main", "errors"}   the Beam step (Arrow tables / error rows);
                                                             a stream source reads unbounded when ctx.streaming,
                                                             with the shared reader of connectors.streams and the
                                                             StreamPlan the compiler put in ctx.stream_plans
    stream_readers(node, prepared)   -> int                  how many unbounded readers that starts
    finish(node, prepared, ok, run)  -> Finished             driver, after the run: move files to success or
                                                             failure, commit offsets, ack messages

A sink's life is ``available``/``describe`` and ``write`` (called by the target's commit step, once per run or per
streaming pane: the two-phase part — stage, then commit — belongs to the target, see ``ir_compiler.lower``).

Connectors import only the IR's leaf modules (see ``tests/test_connector_imports.py``); the compiler and the
runner reach them through :mod:`connectors.registry` and never name one.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict


class ConnectorConfig(BaseModel):
    """Base of every connector config: unknown fields are errors at their JSON path, values are frozen."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


@dataclass(frozen=True)
class Capabilities:
    """What a connector can do, as data the compiler and the runner read (never ``isinstance`` or a name)."""

    bounded: bool = True  # False: an unbounded stream (streaming on prism/flink/dataflow, drained on direct)
    samples_schema: bool = False  # infer_schema can learn the schema from the data at validation
    prepares: bool = False  # prepare() runs on the driver before the pipeline
    finishes: bool = False  # finish() runs on the driver after it (moves files, commits offsets, acks)
    reads_files: bool = False  # its input is files (archive nodes act on them; their paths are confined)
    writes_files: bool = False  # a sink that writes files under config.path
    atomicity: bool = False  # staging/success/failure folders and the _flow_files ledger (exactly-once loads)
    local_paths: bool = False  # config.path is a path on this machine (confined to the root, see ir_compiler.confine)
    on_dataflow: bool = True  # runs on Dataflow workers
    streams: bool = False  # an unbounded source with its own streaming reader: read() follows ctx.streaming and
    # gates its commits on the StreamPlan in ctx.stream_plans (the compiler builds one for it)
    windows_across_drains: bool = False  # a drained run keeps windows spanning runs whole: it records event times
    # and commits only what is final (the compiler puts the plan in ctx.drain_windowed, ir_compiler/lower/drain.py)
    beam_write_on_dataflow: bool = False  # a sink whose streaming write on Dataflow is its own Beam step


@dataclass
class RunInfo:
    """The driver-side view of a run that ``prepare`` and ``finish`` get."""

    run_id: str
    pipeline_id: str
    runner: str
    warehouse_url: str
    run_dir: str = ""
    streaming: bool = False
    table_targets: dict[str, tuple[list[str], bool]] = field(default_factory=dict)
    """source id -> (the warehouse tables its rows load into, whether every target downstream is a table)"""


@dataclass
class Prepared:
    """What ``prepare`` planned for one source, handed to ``read`` (pickled to the workers) and to ``finish``."""

    warnings: list[str] = field(default_factory=list)
    paths: list[str] = field(default_factory=list)  # input files this run reads (after finish: where they went)
    ledger: list[dict] | None = None  # identities the loads record in _flow_files ({source, index, hash, ...})

    def release(self) -> None:
        """The run failed before it started: give back what prepare took (locks, claims)."""


@dataclass
class Finished:
    """What ``finish`` did: warnings for the run result; ``degraded``: the run completed with errors."""

    warnings: list[str] = field(default_factory=list)
    degraded: bool = False


class Connector:
    name: ClassVar[str]
    config: ClassVar[type[ConnectorConfig]]
    capabilities: ClassVar[Capabilities] = Capabilities()
    doc: ClassVar[str] = ""  # one line for the README table and `flow-beam schema`

    def available(self) -> str | None:
        """None when this build runs the connector, else the reason it does not (it still validates and plans)."""
        return None

    def describe(self, node, unbounded: bool = False) -> list[str]:
        """The Beam primitives this connector's step becomes (``flow-beam plan``)."""
        reason = self.available()
        return [f"{self.name} ({reason})" if reason else self.name]


class Source(Connector):
    """A source connector (see the module docstring for its life)."""

    def infer_schema(self, node, warehouse=None):
        return None

    def prepare(self, node, run: RunInfo) -> Prepared | None:
        return None

    def read(self, p, node, ctx, prepared: Prepared | None, schema) -> dict[str, Any]:
        raise NotImplementedError

    def finish(self, node, prepared: Prepared | None, ok: bool, run: RunInfo) -> Finished:
        return Finished()

    def stream_readers(self, node, prepared: Prepared | None) -> int:
        """How many unbounded readers a streaming run of this source starts (each reports when it ends)."""
        return 1


class Sink(Connector):
    """A sink connector: ``write`` puts rows (in input order, internal columns still present) somewhere and
    returns (rows written, files written)."""

    def write(self, node, config, table, prefix: str) -> tuple[int, list[str]]:
        raise NotImplementedError

    def beam_write(self, pcoll, node, ctx, label: str):
        """Capability ``beam_write_on_dataflow``: the streaming write as a Beam step of its own on Dataflow."""
        raise NotImplementedError


def not_available(connector: Connector, node_id: str):
    """The error for running a connector this build cannot run."""
    from ir_compiler.errors import NotAvailableError
    return NotAvailableError(connector.available() or f"connector '{connector.name}' cannot run here",
                             node_id=node_id)
