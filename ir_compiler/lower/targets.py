"""Targets → Beam: a two-phase sink. Workers stage Arrow tables as Arrow IPC files in the run folder; one
commit step per target (after the gate side input says every upstream check passed) loads all staged files
in a single warehouse transaction, or publishes the files of a file sink."""
from __future__ import annotations

import os
import uuid

import apache_beam as beam
import pyarrow as pa

from ir_compiler.errors import FlowError
from ir_compiler.lower.context import counter, dlq_rows, quarantine_rows, write_report
from ir_compiler.ops.common import ORD


@beam.typehints.with_output_types(beam.typehints.Any)  # declared: Beam skips inferring it from the bytecode
class _StageFn(beam.DoFn):
    """Phase 1: write each table to its own staged Arrow file (a retried bundle writes new names, and only
    the files of successful bundles reach the commit)."""

    def __init__(self, node_id, folder):
        self.node_id, self.folder = node_id, folder

    def process(self, table):
        if table.num_rows == 0:
            return
        yield stage_table(self.folder, table), table.schema


def stage_table(folder: str, table: pa.Table) -> str:
    """Write ``table`` to a new Arrow IPC file in ``folder`` (local or object storage); returns its path."""
    from ir_compiler.lower import runfs

    path = runfs.join(folder, f"{uuid.uuid4().hex}.arrow")  # Arrow IPC: no encoding cost
    if runfs.is_local(path):
        os.makedirs(folder, exist_ok=True)
        with pa.OSFile(path, "wb") as sink, pa.ipc.new_file(sink, table.schema) as writer:
            writer.write_table(table)
    else:
        buf = pa.BufferOutputStream()
        with pa.ipc.new_file(buf, table.schema) as writer:
            writer.write_table(table)
        runfs.write_bytes(path, buf.getvalue().to_pybytes())
    return path


FILE = "__fb_file"  # a reader's row errors: the index of the file they come from (connectors.local_fs.reader)


def broken_files(run_dir: str, sources=None, emitted_only: bool = True) -> dict[str, dict[int, dict]]:
    """{source id: {file index: report}} of the files of ``sources`` (None: every source) that could not be read
    (the readers' ``files`` reports); ``emitted_only``: only those that broke after some of their rows had
    gone downstream."""
    from ir_compiler.lower.context import read_reports

    out: dict[str, dict[int, dict]] = {}
    for key, rep in read_reports(run_dir, "files").items():
        src, _, idx = key.rpartition(".")
        if (sources is None or src in sources) and idx.isdigit() and (
                not emitted_only or rep.get("rowsEmitted", rep.get("rowsBeforeBreak"))):
            out.setdefault(src, {})[int(idx)] = rep
    return out


def drop_broken_errors(table: pa.Table, broken: dict[str, dict[int, dict]]) -> pa.Table:
    """A reader's row errors (``node_id`` + hidden ``__fb_file``) without those of the ``broken`` files."""
    import pyarrow.compute as pc

    if FILE not in table.column_names or not broken or not table.num_rows:
        return table
    mask = None
    for src, reps in broken.items():
        m = pc.and_(pc.equal(table.column("node_id"), src),
                    pc.is_in(table.column(FILE), pa.array(sorted(reps), pa.int64())))
        mask = m if mask is None else pc.or_(mask, m)
    return table.filter(pc.invert(pc.fill_null(mask, False)))


_ROW_WISE = {"source", "validate", "branch", "enrich", "target"}


def rows_by_file(graph, target_id: str) -> str | None:
    """The one source whose file index the target's rows still carry in ORD (every node between them keeps rows
    as they are: no aggregation, deduplication or join), else None (the same rule as the ledger's)."""
    ups = graph.upstream(target_id)
    sources = [n for n in ups if graph.nodes[n].kind == "source"]
    if len(sources) != 1:
        return None
    for n in ups:
        node = graph.nodes[n]
        if node.kind == "transform" and any(op.op in ("aggregate", "summarize", "deduplicate") for op in node.ops):
            return None
        if node.kind not in _ROW_WISE and node.kind != "transform":
            return None
    return sources[0]


@beam.typehints.with_output_types(beam.typehints.Any)  # declared: Beam skips inferring it from the bytecode
class _CommitFn(beam.DoFn):
    """Phase 2: one transaction per target, or nothing when the gate carries abort reasons."""

    def __init__(self, node, ctx_info: dict, lineage_source: str, sink: dict | None):
        self.node, self.info, self.lineage_source, self.sink = node, ctx_info, lineage_source, sink

    def process(self, staged, *gates):
        from ir_compiler.lower.gates import reasons_of

        node, info = self.node, self.info
        reasons = reasons_of(gates)
        if reasons:
            write_report(info["run_dir"], "targets", node.id, {"status": "aborted", "error": "; ".join(reasons)})
            return
        staged, dropped = list(staged), []
        unread = broken_files(info["run_dir"], info.get("sources") or (), emitted_only=False)
        if unread:  # files that broke part-way: their rows are left out, or nothing loads
            broken = {s: {i: r for i, r in reps.items() if r.get("rowsEmitted", r.get("rowsBeforeBreak"))}
                      for s, reps in unread.items()}
            broken = {s: reps for s, reps in broken.items() if reps}
            try:
                staged, dropped = self._without(staged, broken, unread)
            except FlowError as exc:
                write_report(info["run_dir"], "targets", node.id, {"status": "failed", "error": exc.message,
                                                                   "heldBack": sorted(broken)})
                return
        files = [p for p, _ in staged]
        try:
            report = self._sink(files) if self.sink is not None else self._load(files, staged)
        except FlowError as exc:
            write_report(info["run_dir"], "targets", node.id, {"status": "failed", "error": exc.message})
            return
        report["warnings"] = list(report.get("warnings") or []) + dropped
        counter(node.id, "rows_loaded").inc(report["rowsLoaded"])
        write_report(info["run_dir"], "targets", node.id, {"status": "loaded", **report})
        yield report

    def _load(self, files, staged):
        from connectors.warehouse import open_warehouse
        from connectors.warehouse.base import LoadRequest

        node, info = self.node, self.info
        schema = staged[0][1] if staged else pa.schema(info.get("schema") or [])
        lineage = {"runId": info["run_id"], "pipelineId": info["pipeline_id"],
                   "sourceNodeId": self.lineage_source} if node.lineage else None
        req = LoadRequest(table=node.schema_, mode=node.loadMode, files=files, schema=schema,
                          keys=node.upsert_keys, watermark=node.watermarkColumn, pipeline_id=info["pipeline_id"],
                          node_id=node.id, lineage=lineage,
                          pre_sql=node.preHook.statement if node.preHook and node.preHook.type == "sql" else None,
                          ledger=self._ledger(), json_columns=info.get("json") or [])
        self._webhook(node.preHook, "pre", None)  # a failing pre webhook stops the load (raises FlowError)
        wh = open_warehouse(info["warehouse_url"])
        rep = self._with_retry(lambda: wh.load(req))
        from ir_compiler.faults import fault
        fault("after_commit")
        warnings = list(rep.warnings)
        post = node.postHook
        if post is not None:  # only after the load committed; a failure is a warning, the load stays
            try:
                if post.type == "sql":
                    wh.run_hook(post.statement, "postHook")  # read-only / maintenance only
                else:
                    self._webhook(post, "post", rep.rows_loaded)
            except Exception as exc:  # noqa: BLE001 - reported in the run result
                warnings.append(f"postHook failed after the load committed: {str(exc).splitlines()[0]}")
        return {"rowsLoaded": rep.rows_loaded, "rowsSkipped": rep.rows_skipped, "warnings": warnings,
                "table": node.schema_}

    def _without(self, staged, broken, unread):
        """(staged files without the rows of the files that broke part-way, warnings). Only for a target whose
        rows carry one source's file index (rows_by_file), or a reader's row errors (``__fb_file``: those of
        every ``unread`` file are left out); a target whose rows combine files raises FlowError (nothing of it
        loads: no partial file in a table)."""
        import pyarrow.compute as pc

        from connectors.warehouse.loading import read_staged
        from ir_compiler.lower import runfs

        node, info = self.node, self.info
        by_file = info.get("by_file")
        names = ", ".join(sorted({os.path.basename(r["path"]) for reps in broken.values() for r in reps.values()}))
        why = "; ".join(r["error"] for reps in broken.values() for r in reps.values())
        if any(FILE in schema.names for _, schema in staged):  # a reader's errors port
            out = []
            for path, schema in staged:
                table = read_staged(path)
                kept = drop_broken_errors(table, unread)
                if kept.num_rows == table.num_rows:
                    out.append((path, schema))
                elif kept.num_rows:
                    out.append((stage_table(runfs.join(info["run_dir"], "staging", node.id), kept), schema))
                counter(node.id, "rows_in").inc(kept.num_rows - table.num_rows)
            return out, []
        if not broken:
            return staged, []
        if by_file is None or set(broken) != {by_file}:
            raise FlowError(f"file(s) {names} broke part-way while they were read ({why}), and the rows of target "
                            f"'{node.id}' combine several files (aggregation, deduplication or join), so that "
                            f"file's rows cannot be left out: nothing was loaded. The broken file goes to the "
                            f"failure folder; the next run loads the other files", node_id=node.id)
        drop = pa.array(sorted(broken[by_file]), pa.int64())
        out, dropped = [], 0
        for path, schema in staged:
            table = read_staged(path)
            if ORD not in table.column_names:
                raise FlowError(f"file(s) {names} broke part-way while they were read ({why}), and the rows of "
                                f"target '{node.id}' do not say which file they came from: nothing was loaded. The "
                                f"broken file goes to the failure folder; the next run loads the other files",
                                node_id=node.id)
            keep = pc.invert(pc.is_in(pc.shift_right(table.column(ORD), 36), drop))
            kept = table.filter(keep)
            if kept.num_rows == table.num_rows:
                out.append((path, schema))
                continue
            dropped += table.num_rows - kept.num_rows
            if kept.num_rows:
                out.append((stage_table(runfs.join(info["run_dir"], "staging", node.id), kept), schema))
        counter(node.id, "rows_in").inc(-dropped)  # taken back: these rows never were the target's to load
        if not dropped:
            return out, []
        return out, [f"{dropped} row(s) of file(s) {names} left out: the file broke part-way while it was read "
                     f"({why}); it is not loaded (whole file or nothing) and goes to the failure folder"]

    def _ledger(self) -> dict | None:
        """The input files this load records in ``_flow_files``, minus the unreadable ones (their rows never
        reach a target: the source drops them, so they are not loaded)."""
        from ir_compiler.lower.context import read_reports

        led = self.info.get("ledger")
        if not led:
            return None
        bad = set(read_reports(self.info["run_dir"], "files"))
        return {**led, "files": [e for e in led["files"] if f"{e['source']}.{e['index']}" not in bad]}

    def _with_retry(self, fn):
        """errorHandling.retry for the load: an unreachable warehouse is retried (a failed load rolled back, so
        trying again cannot duplicate rows); a load error (bad rows, constraint) is not."""
        import time

        from flow_beam.hooks import backoff_delays
        from ir_compiler.errors import ConnectorError

        for delay in [*backoff_delays(self.info.get("retry")), None]:
            try:
                return fn()
            except ConnectorError:
                if delay is None:
                    raise
                time.sleep(delay)

    def _webhook(self, hook, when: str, rows):
        if hook is None or hook.type != "webhook":
            return
        from flow_beam.hooks import call_webhook
        payload = {"event": f"{when}_load", "pipelineId": self.info["pipeline_id"], "runId": self.info["run_id"],
                   "nodeId": self.node.id, "table": self.node.schema_, "rowsLoaded": rows}
        try:
            call_webhook(hook.url, payload, self.info.get("retry"))
        except RuntimeError as exc:
            if when == "pre":
                raise FlowError(f"preHook: {exc}; nothing was loaded") from None
            raise

    def _sink(self, files):
        from connectors.warehouse.loading import read_staged
        tables = [read_staged(f) for f in files]
        if not tables:
            return {"rowsLoaded": 0, "files": [], "warnings": []}
        table = pa.concat_tables(tables, promote_options="permissive")
        from connectors.warehouse.base import mark_json
        table = mark_json(table, self.info.get("json"))  # `json` columns: JSON values in JSONL / JSON messages
        prefix = self.sink.get("prefix") or f"{self.info['pipeline_id']}-{self.node.id}-{self.info['run_id'][:8]}"
        rows, paths = write_sink(self.node, self.sink, table, prefix)
        return {"rowsLoaded": rows, "files": paths, "warnings": []}


def write_sink(node, cfg: dict, table: pa.Table, prefix: str) -> tuple[int, list[str]]:
    """Rows (in input order) to the target's sink connector (messages acknowledged, or one file, before this
    returns). ``cfg``: the node's config as a dict, ``path`` possibly moved (embedded tests' sink root).
    Returns (rows written, files written)."""
    from connectors.registry import get_sink, local_file_sink

    if ORD in table.column_names:
        table = table.sort_by([(ORD, "ascending")])
    config = node.config
    if cfg.get("_local"):  # embedded tests: a file sink (remote too) writes the same files under a local folder
        local = local_file_sink()
        config = local.config(path=cfg["path"], **{k: getattr(config, k) for k in ("format", "prefix", "compression")
                                                   if getattr(config, k, None) is not None})
        return local.write(node, config, table, prefix)
    if cfg.get("path") is not None and cfg.get("path") != getattr(config, "path", None):
        config = config.model_copy(update={"path": cfg["path"]})
    return get_sink(node.connector).write(node, config, table, prefix)


def lower_target(pcoll, node, ctx, label, gate, lineage_source: str, schema_fields, by_file: str | None = None,
                 json_columns=()):
    """The two-phase sink of a target. ``lineage_source``: its upstream sources (comma-separated); ``by_file``:
    the source whose file index its rows carry (rows_by_file), so rows of a file that broke part-way can be
    left out at commit time."""
    if node.connector is not None:
        from connectors.base import not_available
        from connectors.registry import get_sink
        if get_sink(node.connector).available() is not None:
            raise not_available(get_sink(node.connector), node.id)
    from ir_compiler.lower import runfs
    folder = runfs.join(ctx.run_dir, "staging", node.id)
    info = {"run_dir": ctx.run_dir, "run_id": ctx.run_id, "pipeline_id": ctx.pipeline_id,
            "warehouse_url": ctx.warehouse_url, "schema": schema_fields, "retry": ctx.retry,
            "ledger": ctx.ledger.get(node.id), "sources": [s for s in lineage_source.split(",") if s],
            "by_file": by_file, "json": list(json_columns)}
    staged = (pcoll | f"{label}/StageArrow" >> beam.ParDo(_StageFn(node.id, folder))
              | f"{label}/CollectStaged" >> beam.combiners.ToList())
    side = [beam.pvalue.AsList(g) for g in gate or []]
    sink = dict(node.config) if node.connector else None
    if sink is not None and ctx.sink_root and _writes_files(node):
        sink["path"] = os.path.join(ctx.sink_root, node.id)
        sink["_local"] = True  # embedded tests never write to a real bucket or server
    return staged | f"{label}/Commit" >> beam.ParDo(_CommitFn(node, info, lineage_source, sink), *side)


NUL_REASON = "text contains a NUL byte, which PostgreSQL text cannot store"


def nul_rows(table: pa.Table):
    """A boolean mask of the rows holding a NUL byte in a text (or list-of-text) column, or None when none does."""
    import numpy as np
    import pyarrow.compute as pc

    hit = None
    for i, f in enumerate(table.schema):
        if f.name.startswith("__fb_"):
            continue
        col = table.column(i)
        if pa.types.is_string(f.type) or pa.types.is_large_string(f.type):
            if not _may_hold_nul(col):
                continue
            m = pc.fill_null(pc.match_substring(col, "\x00"), False).to_numpy(zero_copy_only=False)
        elif (pa.types.is_list(f.type) or pa.types.is_large_list(f.type)) and (
                pa.types.is_string(f.type.value_type) or pa.types.is_large_string(f.type.value_type)):
            m = np.zeros(table.num_rows, dtype=bool)
            flat = col.combine_chunks() if col.num_chunks != 1 else col.chunk(0)
            found = pc.fill_null(pc.match_substring(pc.list_flatten(flat), "\x00"), False)
            parents = pc.filter(pc.list_parent_indices(flat), found).to_numpy(zero_copy_only=False)
            m[parents] = True
        else:
            continue
        if m.any():
            hit = m if hit is None else (hit | m)
    return hit


def _may_hold_nul(col) -> bool:
    """False when no chunk's character data holds a zero byte (one vectorised scan of the data buffers, ~5×
    cheaper than matching row by row); True sends the column to the exact per-row check."""
    import numpy as np

    for chunk in col.chunks:
        data = chunk.buffers()[2]
        if data is not None and data.size and not np.all(np.frombuffer(data, dtype=np.uint8)):
            return True
    return False


class _StorableFn(beam.DoFn):
    """PostgreSQL targets: a row whose text holds a NUL byte cannot be stored (COPY would fail the whole load), so
    it leaves through the target's error output with the reason (→ DLQ, or an ``errors`` consumer); the rest
    load."""

    def __init__(self, node_id):
        self.node_id = node_id

    def process(self, table):
        import pyarrow.compute as pc

        from ir_compiler.lower.context import to_error_table
        from ir_compiler.ops.common import ERROR

        hit = nul_rows(table)
        if hit is None:
            yield table
            return
        mask = pa.array(hit)
        bad = table.filter(mask)
        counter(self.node_id, "rows_errored").inc(bad.num_rows)
        counter(self.node_id, f"note:rows sent to the error output ({NUL_REASON})").inc(bad.num_rows)
        bad = bad.append_column(ERROR, pa.array([NUL_REASON] * bad.num_rows, pa.string()))
        yield beam.pvalue.TaggedOutput("errors", to_error_table(self.node_id, bad))
        good = table.filter(pc.invert(mask))
        if good.num_rows:
            yield good


def split_unstorable(pcoll, node, ctx, label):
    """(rows the target's warehouse can store, error rows); only PostgreSQL table targets split (see
    :class:`_StorableFn`), every other target gets all rows and no errors."""
    if node.schema_ is None or ctx.warehouse_url.split("://", 1)[0] not in ("postgresql", "postgres"):
        return pcoll, None
    from ir_compiler.lower.arrow_coder import tables
    out = pcoll | f"{label}/NulBytes" >> beam.ParDo(_StorableFn(node.id)).with_outputs("errors", main="main")
    return tables(out.main), tables(out.errors)


def _writes_files(node) -> bool:
    return sink_of(node).capabilities.writes_files


def sink_of(node):
    """The sink connector of a target (None: a warehouse table)."""
    if node.connector is None:
        return None
    from connectors.registry import get_sink
    return get_sink(node.connector)


class _AppendFn(beam.DoFn):
    """Quarantine and DLQ tables: append the rows (recorded even when the run fails, with its run id)."""

    def __init__(self, table_name, kind, node_id, ctx_info):
        self.table_name, self.kind, self.node_id, self.info = table_name, kind, node_id, ctx_info

    def process(self, tables):
        tables = [t for t in tables if t.num_rows]
        if not tables:
            return
        rows = pa.concat_tables(tables, promote_options="permissive")
        if FILE in rows.column_names:  # a reader's row errors: none of a file that could not be read whole
            rows = drop_broken_errors(rows, broken_files(self.info["run_dir"], emitted_only=False))
            if not rows.num_rows:
                return
        if self.kind == "quarantine":
            rows = quarantine_rows(rows, (self.info["run_id"], self.info["pipeline_id"]), self.node_id)
        else:
            rows = dlq_rows(rows, self.info["run_id"], self.info["pipeline_id"])
        name = f"{self.kind}.{self.node_id}" if self.kind == "quarantine" else "dlq"
        try:
            n = _append_retrying(self.info["warehouse_url"], self.table_name, rows)
            write_report(self.info["run_dir"], "side_tables", name, {"table": self.table_name, "rows": n})
        except FlowError as exc:
            write_report(self.info["run_dir"], "side_tables", name, {"table": self.table_name, "error": exc.message,
                                                                     "lost": rows.num_rows})


def _append_retrying(url: str, table_name: str, rows: pa.Table, attempts: int = 4) -> int:
    """Append quarantine/DLQ rows; a warehouse that cannot be reached (or a DuckDB file held past its wait) is
    tried again with backoff — the append is one transaction, so a retry cannot duplicate rows."""
    import time

    from connectors.warehouse import open_warehouse
    from ir_compiler.errors import ConnectorError

    for attempt in range(attempts):
        try:
            return open_warehouse(url).append_rows(table_name, rows)
        except ConnectorError:
            if attempt == attempts - 1:
                raise
            time.sleep(0.5 * 2 ** attempt)
    return 0


def lower_append(pcoll, table_name, kind, node_id, ctx, label):
    info = {"run_dir": ctx.run_dir, "run_id": ctx.run_id, "pipeline_id": ctx.pipeline_id,
            "warehouse_url": ctx.warehouse_url}
    return (pcoll | f"{label}/Collect" >> beam.combiners.ToList()
            | f"{label}/Append" >> beam.ParDo(_AppendFn(table_name, kind, node_id, info)))
