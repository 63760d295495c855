"""IR → Beam: walks the checked graph in topological order and wires every node's PTransforms.

Step names are derived from node ids (``orders/ReadFiles``), so Beam job graphs map back to the IR.
Error routing follows the spec: a node's failed rows go to ``<id>.errors`` when something reads it, else to
the DLQ when enabled, else they become a gate input that fails the run and stops downstream loads.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field

import apache_beam as beam
import pyarrow as pa

from ir_compiler.check import CheckedPipeline
from ir_compiler.graph import MAIN
from ir_compiler.joins import keys_for
from ir_compiler.lower.branch_join import estimate_input_bytes, lower_branch, lower_join
from ir_compiler.lower.context import RunContext, count
from ir_compiler.lower.gates import ReportGateFn
from ir_compiler.lower.sources import lower_source
from ir_compiler.lower.targets import lower_append, lower_target, rows_by_file, split_unstorable
from ir_compiler.lower.transform import lower_transform
from ir_compiler.lower.validate import lower_validate
from ir_compiler.types import common_type, to_arrow


@dataclass
class Lowered:
    ports: dict = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)


class _CaptureFn(beam.DoFn):
    def __init__(self, folder):
        self.folder = folder

    def process(self, table):
        import uuid

        import pyarrow.parquet as pq
        os.makedirs(self.folder, exist_ok=True)
        pq.write_table(table, os.path.join(self.folder, f"{uuid.uuid4().hex}.parquet"))


class Builder:
    def __init__(self, p, checked: CheckedPipeline, ctx: RunContext, lookups: dict):
        self.p, self.checked, self.ctx, self.lookups = p, checked, ctx, lookups
        self.graph = checked.graph
        self.out = Lowered()
        self.signals: dict[str, list] = {}
        self.dlq: list = []
        self.ctx.dlq_enabled = bool(checked.pipeline.dlq_enabled)

    def build(self) -> Lowered:
        for node_id in self.graph.order:
            node = self.graph.nodes[node_id]
            getattr(self, f"_{node.kind}")(node)
        self._finish_dlq()
        return self.out

    # ---- helpers -----------------------------------------------------------------------------------
    def _input(self, node, k=0):
        return self.out.ports[str(self.graph.inputs[node.id][k])]

    def _set_ports(self, node, ports: dict, errors: list):
        for port, pcoll in ports.items():
            key = node.id if port == MAIN or port == "main" else f"{node.id}.{port}"
            self.out.ports[key] = pcoll
        if node.id in self.ctx.capture and "main" in ports:
            ports["main"] | f"{node.id}/Capture" >> beam.ParDo(
                _CaptureFn(os.path.join(self.ctx.run_dir, "capture", node.id)))
        self._route_errors(node, errors)

    def _route_errors(self, node, errors: list):
        errs = [e for e in errors if e is not None]
        if not errs and "errors" not in self.graph.consumed_ports(node.id):
            return  # no error output and no reader: no gate input, no DLQ rows (and fewer Beam stages)
        if not errs:
            errs = [self.p | f"{node.id}/NoErrors" >> beam.Create([])]
        merged = errs[0] if len(errs) == 1 else errs | f"{node.id}/MergeErrors" >> beam.Flatten()
        if "errors" in self.graph.consumed_ports(node.id):
            self.out.ports[f"{node.id}.errors"] = merged
        elif self.checked.pipeline.dlq_enabled:
            self.dlq.append(merged)
        else:
            self._add_signal(node.id, merged)

    def _add_signal(self, node_id: str, signal):
        """A gate input (abort reasons or unrouted error rows): gates downstream loads and is reported."""
        k = len(self.signals.setdefault(node_id, []))
        self.signals[node_id].append(signal)
        signal | f"{node_id}/ReportGate{k}" >> beam.ParDo(ReportGateFn(self.ctx.run_dir, node_id))

    def _gate(self, node):
        """Every upstream gate input, as side inputs of the target's commit."""
        return [s for up in sorted(self.graph.upstream(node.id)) for s in self.signals.get(up, [])]

    def _schema(self, ref: str):
        return self.checked.types.of(ref)

    # ---- kinds -------------------------------------------------------------------------------------
    def _source(self, node):
        """Every source is its connector's read step (lower_source); a stream source first gets what its targets
        tell its reader: the StreamPlan of a streaming run, the windows kept whole across drained runs."""
        from connectors.registry import get_source

        tested = self.ctx.test_inputs is not None and node.id in self.ctx.test_inputs
        caps = get_source(node.connector).capabilities
        if not tested and self.ctx.streaming and caps.streams:
            self.ctx.stream_plans[node.id] = self._stream_plan(node)
        elif not tested and not self.ctx.streaming and caps.windows_across_drains:
            self._drain_windowed(node)
        ports = lower_source(self.p, node, self.ctx, node.id, self._schema(node.id))
        main = count(ports["main"], node.id, "rows_out", f"{node.id}/CountOut")
        self._set_ports(node, {"main": main}, [ports["errors"]])

    def _stream_plan(self, node):
        """What a stream source's own unbounded reader gates its commits on (connectors.streams.StreamPlan)."""
        from connectors.streams import StreamPlan
        from ir_compiler.lower.streaming import TargetProgress, window_shape

        windowed, plain, retention = self._frontier_of(node)
        return StreamPlan(tuple(windowed), tuple(plain), retention,
                          tuple(window_shape(w) for w in self._windows_after(node)),
                          TargetProgress(self.ctx.pipeline_id, self.ctx.warehouse_url, windowed, plain),
                          float(os.environ.get("FLOW_BEAM_COMMIT_EVERY_S", "5")), self._final_shapes(node))

    def _drain_windowed(self, node):
        """A drained stream source feeding windowed targets keeps open windows re-readable (lower/drain.py)."""
        from ir_compiler.lower.drain import stored_frontier
        from ir_compiler.lower.streaming import NEVER_FINAL
        targets, _, retention = self._frontier_of(node)
        if not targets or retention >= NEVER_FINAL:
            return  # no fixed/sliding window downstream: every offset read is committed
        import functools

        from ir_compiler.lower.drain import event_micros
        self.ctx.drain_windowed[node.id] = {"targets": targets, "retention_us": retention,
                                            "final_shapes": [list(x) for x in self._final_shapes(node)],
                                            "event_us": functools.partial(event_micros, node.eventTime)}
        for n in self.graph.order:
            if node.id in self.graph.upstream(n) and self.graph.nodes[n].kind == "transform" and any(
                    getattr(op, "window", None) is not None for op in self.graph.nodes[n].ops):
                below = [t for t in targets if n in self.graph.upstream(t)]
                frontier = stored_frontier(self.ctx.warehouse_url, self.ctx.pipeline_id, below) if below else None
                if frontier is not None:
                    self.ctx.drain_frontiers[n] = frontier

    def _windows_after(self, node) -> list:
        """Every window (windowed ops, windowed joins) downstream of a stream source: where its rows get stamped."""
        down = [n for n in self.graph.order if node.id in self.graph.upstream(n)]
        out = [op.window for n in down if self.graph.nodes[n].kind == "transform"
               for op in self.graph.nodes[n].ops if getattr(op, "window", None) is not None]
        return out + [self.graph.nodes[n].window for n in down if self.graph.nodes[n].kind == "join"
                      and getattr(self.graph.nodes[n], "window", None) is not None]

    def _final_shapes(self, node) -> tuple:
        """(size, period, lateness) µs of every fixed/sliding window between a stream source and its windowed
        targets: when a row's last window is final (streaming.final_at)."""
        from ir_compiler.lower.streaming import final_shape
        shapes = {final_shape(w) for w in self._windows_after(node)}
        return tuple(sorted(x for x in shapes if x is not None))

    def _frontier_of(self, node):
        """The targets fed by a stream source (whose frontiers gate its offset commits / acks) and how long after
        a row's event time its last window can become final."""
        from ir_compiler.lower.streaming import retention_us
        down = [n for n in self.graph.order if node.id in self.graph.upstream(n)]
        from ir_compiler.lower.streaming import UNWINDOWED

        def windows_before(target):
            between = [n for n in down if n in self.graph.upstream(target)]
            out = [op.window for n in between if self.graph.nodes[n].kind == "transform"
                   for op in self.graph.nodes[n].ops if getattr(op, "window", None) is not None]
            return out + [self.graph.nodes[n].window for n in between if self.graph.nodes[n].kind == "join"
                          and self.graph.nodes[n].window is not None]
        targets = [n for n in down if self.graph.nodes[n].kind == "target"]
        windowed = [t for t in targets if windows_before(t)]
        plain = [t for t in targets if not windows_before(t)]
        retention = max([retention_us(w) for t in windowed for w in windows_before(t)] or [UNWINDOWED])
        return windowed, plain, retention

    def _transform(self, node):
        pcoll = count(self._input(node), node.id, "rows_in", f"{node.id}/CountIn")
        from ir_compiler.windows import event_time_of
        types = self.checked.types
        before = [self._schema(node.input)] + list(types.op_schemas.get(node.id, []))  # each op's input schema
        main, errors = lower_transform(pcoll, node, self.ctx, node.id, self.lookups.get(node.id, {}),
                                       event_time_of(self.graph, node.id), op_inputs=before)
        main = count(main, node.id, "rows_out", f"{node.id}/CountOut")
        self._set_ports(node, {"main": main}, errors)

    def _validate(self, node):
        pcoll = count(self._input(node), node.id, "rows_in", f"{node.id}/CountIn")
        schema = self._schema(node.input)
        ports, signals = lower_validate(pcoll, node, self.ctx, node.id, schema.names if schema else None)
        ports["main"] = count(ports["main"], node.id, "rows_out", f"{node.id}/CountOut")
        for signal in signals:
            self._add_signal(node.id, signal)
        qtable = node.quarantine.table if node.quarantine else None
        if qtable:
            _append(ports["quarantine"], qtable, "quarantine", node.id, self.ctx, f"{node.id}/QuarantineTable")
        elif "quarantine" not in self.graph.consumed_ports(node.id) and self.checked.pipeline.dlq_enabled:
            self.dlq.append(ports["quarantine"] | f"{node.id}/QuarantineToDlq" >> beam.Map(_quarantine_as_errors,
                                                                                          node.id))
        self._set_ports(node, ports, [])

    def _branch(self, node):
        pcoll = count(self._input(node), node.id, "rows_in", f"{node.id}/CountIn")
        self._set_ports(node, lower_branch(pcoll, node, node.id), [])

    def _join(self, node):
        inputs = [count(self._input(node, i), node.id, "rows_in", f"{node.id}/CountIn{i}")
                  for i in range(len(node.inputs))]
        schemas = [self._schema(ref) for ref in node.inputs]
        key_types = self._key_types(node, schemas)
        arrow = [s.to_arrow() if s is not None else None for s in schemas]
        errors = []
        if self.ctx.streaming:
            main, errors = self._stream_join(node, inputs, arrow, key_types)
        else:
            known = estimate_input_bytes(self.graph, self.ctx, self.graph.inputs[node.id][1:])  # strategy auto
            main = lower_join(inputs, node, self.ctx, node.id, arrow, key_types, self.out.warnings, known)
        planned = self._schema(node.id)
        if planned is not None and key_types is not None:  # keys were matched in their common type
            main = main | f"{node.id}/AsPlanned" >> beam.Map(as_planned, planned.to_arrow())
        main = count(main, node.id, "rows_out", f"{node.id}/CountOut")
        self._set_ports(node, {"main": main}, errors)

    def _stream_join(self, node, inputs, arrow, key_types):
        """A windowed join of streams (every input unbounded; fixed, sliding or global-with-trigger windows)."""
        from ir_compiler.errors import NotAvailableError
        from ir_compiler.lower.branch_join import lower_stream_join
        from ir_compiler.rules import is_unbounded
        from ir_compiler.windows import event_time_of
        ids = [str(ref).split(".")[0] for ref in node.inputs]
        if not all(is_unbounded(self.graph, i) for i in ids):
            raise NotAvailableError("a streaming join needs every input to be a stream; join a stream with a table "
                                    "through a lookup_join op (or run the pipeline with --drain)", node_id=node.id)
        if node.window.type == "session":
            raise NotAvailableError("session windows on a join of streams are not in this build; use fixed or "
                                    "sliding windows (or a windowed aggregate per stream)", node_id=node.id)
        times = [self.graph.nodes[i].eventTime if self.graph.nodes[i].kind == "source"
                 else event_time_of(self.graph, i) for i in ids]
        return lower_stream_join(inputs, node, self.ctx, node.id, arrow, key_types, times)

    @staticmethod
    def _key_types(node, schemas):  # noqa: D401 - see as_planned
        if any(s is None for s in schemas):
            return None
        out = []
        for j, k0 in enumerate(keys_for(node, 0)):
            t = schemas[0][k0].type
            for i in range(1, len(schemas)):
                t = common_type(t, schemas[i][keys_for(node, i)[j]].type) or t
            out.append(to_arrow(t))
        return out

    def _enrich(self, node):
        from ir_compiler.lower.enrich import lower_enrich

        pcoll = count(self._input(node), node.id, "rows_in", f"{node.id}/CountIn")
        main, errors = lower_enrich(pcoll, node, self.ctx, node.id, self.lookups.get(("enrich", node.id)))
        main = count(main, node.id, "rows_out", f"{node.id}/CountOut")
        self._set_ports(node, {"main": main}, [errors])

    def _target(self, node):
        pcoll = count(self._input(node), node.id, "rows_in", f"{node.id}/CountIn")
        sources = sorted(u for u in self.graph.upstream(node.id) if self.graph.nodes[u].kind == "source")
        schema = self._schema(node.input)
        fields = [(f.name, to_arrow(f.type)) for f in schema] if schema is not None else None
        json_columns = [f.name for f in schema if f.type.name == "json"] if schema is not None else []
        if self.ctx.streaming:
            from ir_compiler.lower.streaming import lower_stream_target
            done = lower_stream_target(pcoll, node, self.ctx, node.id, ",".join(sources), self._lateness_us(node),
                                       self._accumulating(node), json_columns=json_columns)
            self._set_ports(node, {"main": done}, [])
            return
        pcoll, unstorable = split_unstorable(pcoll, node, self.ctx, node.id)  # NUL bytes on PostgreSQL
        done = lower_target(pcoll, node, self.ctx, node.id, self._gate(node), ",".join(sources), fields,
                            rows_by_file(self.graph, node.id), json_columns=json_columns)
        self._set_ports(node, {"main": done}, [unstorable])

    def _lateness_us(self, node) -> int:
        """The largest allowedLateness of the windows upstream of a target (a pane is final that long after)."""
        from ir_compiler.lower.streaming import US, lateness_s
        windows = self._windows_before(node)
        return int(max([lateness_s(w) for w in windows] or [0]) * US)

    def _windows_before(self, node) -> list:
        """The windows upstream of a node: windowed ops and windowed joins."""
        up = self.graph.upstream(node.id)
        return [op.window for n in up if self.graph.nodes[n].kind == "transform"
                for op in self.graph.nodes[n].ops if getattr(op, "window", None) is not None] + [
            self.graph.nodes[n].window for n in up if self.graph.nodes[n].kind == "join"
            and getattr(self.graph.nodes[n], "window", None) is not None]

    def _accumulating(self, node) -> bool:
        """Whether the panes reaching a target carry whole windows (else deltas, applied once each)."""
        windows = self._windows_before(node)
        return not any(w.trigger is not None and w.trigger.accumulation == "discarding" for w in windows)

    def _archive(self, node):
        """Archives run in the driver after the run, once the target's commit is known (flow_beam.archive)."""

    def _finish_dlq(self):
        if not self.dlq:
            return
        pipeline = self.checked.pipeline
        table = (pipeline.errorHandling.dlq.table if pipeline.errorHandling.dlq.table
                 else f"dlq.{pipeline.id.replace('-', '_')}")
        merged = self.dlq | "DLQ/Flatten" >> beam.Flatten()
        _append(merged, table, "dlq", "dlq", self.ctx, "DLQ")


def _append(pcoll, table_name, kind, node_id, ctx, label):
    """Quarantine/DLQ rows: one append per run (batch) or per arriving table (streaming)."""
    if not ctx.streaming:
        return lower_append(pcoll, table_name, kind, node_id, ctx, label)
    from ir_compiler.lower.streaming import AppendEachFn
    info = {"run_dir": ctx.run_dir, "run_id": ctx.run_id, "pipeline_id": ctx.pipeline_id,
            "warehouse_url": ctx.warehouse_url}
    return pcoll | f"{label}/AppendEach" >> beam.ParDo(AppendEachFn(table_name, kind, node_id, info))


def _quarantine_as_errors(table: pa.Table, node_id: str) -> pa.Table:
    from ir_compiler.lower.context import rows_json
    return pa.table({"node_id": pa.array([node_id] * table.num_rows, pa.string()),
                     "error": table.column("_error"), "row": pa.array(rows_json(table), pa.string())})


def build_pipeline(p, checked: CheckedPipeline, ctx: RunContext, lookups: dict | None = None) -> Lowered:
    return Builder(p, checked, ctx, lookups or {}).build()


def as_planned(table, planned):
    """A join's output in the planned column types: keys are matched in their common type (int with decimal,
    date with timestamp), and a key column that holds one input's values gets that input's type back (lossless:
    the values came from it); a right/full join's shared key is planned in the common type."""
    import pyarrow as pa
    fields = {f.name: f.type for f in planned}
    if all(fields.get(f.name, f.type) == f.type for f in table.schema):
        return table
    return table.cast(pa.schema([f.with_type(fields.get(f.name, f.type)) for f in table.schema],
                                metadata=table.schema.metadata))
