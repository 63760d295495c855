"""Validate nodes → Beam: row rules in one ParDo with tagged outputs (valid / quarantine / errors);
dataset checks as a CombineGlobally whose verdict gates every downstream load."""
from __future__ import annotations

import datetime as dt

import apache_beam as beam
import pyarrow as pa
import pyarrow.compute as pc
from ir_compiler.lower.context import counter, mask_count, write_report
from ir_compiler.ops import sets
from ir_compiler.ops.cast import cast_array
from ir_compiler.ops.exprs import table_schema
from ir_compiler.rowrules import _SQL_CMP, parse_rule, rule_sql
from ir_compiler.types import from_arrow, parse_type

QUARANTINE, ERRORS, ABORT = "quarantine", "errors", "abort"
EMAIL = r"^[^@\s]+@[^@\s]+\.[^@\s]+$"


def rule_failures(spec, column, table) -> pa.Array:
    """True where a row fails the rule. Rules other than not_null and expr pass on null values."""
    from ir_compiler.expressions import compile_expression

    if spec.name == "expr":
        compiled = compile_expression(spec.args[0], table_schema(table), boolean=True)
        return pc.invert(pc.fill_null(compiled.eval_arrow(table), False))
    col = table.column(column)
    if spec.name == "not_null":
        return pc.is_null(col)
    sql = rule_sql(spec, column, from_arrow(col.type)) if spec.name in (*_SQL_CMP, "between", "in") else None
    if sql is not None:
        ok = compile_expression(sql, table_schema(table), boolean=True).eval_arrow(table)
    elif spec.name == "in":  # a text column: an exact match of the listed texts
        values = pa.array(list(spec.args), pa.string())
        ok = pc.is_in(pc.cast(col, pa.string()), value_set=values)
    elif spec.name in ("regex", "email"):
        pattern = spec.args[0] if spec.name == "regex" else EMAIL
        ok = pc.match_substring_regex(pc.cast(col, pa.string()), pattern=pattern)
    elif spec.name == "min_length":
        ok = pc.greater_equal(pc.utf8_length(pc.cast(col, pa.string())), spec.args[0])
    elif spec.name == "max_length":
        ok = pc.less_equal(pc.utf8_length(pc.cast(col, pa.string())), spec.args[0])
    else:  # type:<t>
        _, failed = cast_array(col, parse_type(spec.args[0]), None)
        return pa.array([False] * len(col)) if failed is None else failed
    return pc.and_(pc.is_valid(col), pc.invert(pc.fill_null(ok, True)))


def _reason(rule, spec) -> str:
    if rule.message:
        return rule.message
    return f"{rule.field}: failed {spec.text}" if rule.field else f"failed {spec.text}"


class _RowRulesFn(beam.DoFn):
    def __init__(self, node_id, rules):
        self.node_id, self.rules = node_id, rules

    def setup(self):
        self.specs = [parse_rule(r.rule) for r in self.rules]
        names = ("rows_quarantined", "rows_filtered", "rows_warned")
        self.c = {n: counter(self.node_id, n) for n in names}
        self.warn_by_rule = {r.id or f"rowLevel[{i}]": counter(self.node_id, f"warn:{r.id or f'rowLevel[{i}]'}")
                             for i, r in enumerate(self.rules)}
        self.abort_by_rule = {r.id or f"rowLevel[{i}]": counter(self.node_id, f"abort:{r.id or f'rowLevel[{i}]'}")
                              for i, r in enumerate(self.rules)}

    def process(self, table):
        for i, (rule, spec) in enumerate(zip(self.rules, self.specs)):
            if table.num_rows == 0:
                break
            failed = rule_failures(spec, rule.field, table)
            n = mask_count(failed)
            if not n:
                continue
            rid = rule.id or f"rowLevel[{i}]"
            if rule.onFail == "warn":
                self.c["rows_warned"].inc(n)
                self.warn_by_rule[rid].inc(n)
                continue
            if rule.onFail == "abort":
                self.abort_by_rule[rid].inc(n)
                yield beam.pvalue.TaggedOutput(ABORT, f"node '{self.node_id}': rule {rid} ({_reason(rule, spec)}) "
                                                      f"failed on {n} row(s) and its onFail is abort")
                continue
            keep = pc.invert(pc.fill_null(failed, False))
            if rule.onFail == "quarantine":
                bad = table.filter(pc.fill_null(failed, False))
                bad = bad.append_column("_rule_id", pa.array([rid] * n, pa.string()))
                bad = bad.append_column("_error", pa.array([_reason(rule, spec)] * n, pa.string()))
                self.c["rows_quarantined"].inc(n)
                yield beam.pvalue.TaggedOutput(QUARANTINE, bad)
            else:
                self.c["rows_filtered"].inc(n)
            table = table.filter(keep)
        if table.num_rows:
            yield table


# ---- dataset checks --------------------------------------------------------------------------------
class _DatasetStatsFn(beam.CombineFn):
    """Row count, null counts, max of freshness field and column names over the valid rows."""

    def __init__(self, dl):
        self.dl = dl

    def create_accumulator(self):
        return {"rows": 0, "nulls": 0, "fresh": None, "columns": None}

    def add_input(self, acc, table):
        acc["rows"] += table.num_rows
        if self.dl.nullRatio and self.dl.nullRatio.field in table.column_names:
            acc["nulls"] += table.column(self.dl.nullRatio.field).null_count
        if self.dl.freshness and self.dl.freshness.field in table.column_names and table.num_rows:
            m = pc.max(table.column(self.dl.freshness.field)).as_py()
            if m is not None and not isinstance(m, dt.datetime):
                m = dt.datetime(m.year, m.month, m.day)
            if m is not None and (acc["fresh"] is None or m > acc["fresh"]):
                acc["fresh"] = m
        cols = set(table.column_names)
        acc["columns"] = cols if acc["columns"] is None else acc["columns"] | cols
        return acc

    def merge_accumulators(self, accs):
        out = self.create_accumulator()
        for a in accs:
            out["rows"] += a["rows"]
            out["nulls"] += a["nulls"]
            if a["fresh"] is not None and (out["fresh"] is None or a["fresh"] > out["fresh"]):
                out["fresh"] = a["fresh"]
            if a["columns"] is not None:
                out["columns"] = a["columns"] if out["columns"] is None else out["columns"] | a["columns"]
        return out

    def extract_output(self, acc):
        return acc


class _DupCountFn(beam.DoFn):
    def __init__(self, fields):
        self.fields = fields

    def process(self, item):
        _, parts = item
        table = pa.concat_tables(list(parts), promote_options="permissive").select(self.fields)
        table = sets.normal_keys(table, self.fields)  # -0.0 and 0.0: one value, as in GROUP BY (NaN = NaN already)
        groups = table.group_by(self.fields).aggregate([]).num_rows
        yield table.num_rows - groups


def _bucket_keys(fields, buckets):
    def fn(table):
        yield from sets.split_by_bucket(table.select(fields), fields, buckets)
    return fn


def evaluate_checks(dl, stats: dict, duplicates: int, expected_columns: list[str] | None, now=None):
    """[(check name, passed, message, onFail)] for every configured dataset check."""
    now = now or dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)
    out = []
    if dl.rowCount:
        rc, n = dl.rowCount, stats["rows"]
        ok = (rc.min is None or n >= rc.min) and (rc.max is None or n <= rc.max)
        out.append(("rowCount", ok, f"row count {n} outside [{rc.min}, {rc.max}]", rc.onFail))
    if dl.unique:
        out.append(("unique", duplicates == 0, f"{duplicates} duplicate row(s) on {dl.unique.fields}",
                    dl.unique.onFail))
    if dl.nullRatio:
        ratio = stats["nulls"] / stats["rows"] if stats["rows"] else 0.0
        out.append(("nullRatio", ratio <= dl.nullRatio.max,
                    f"null ratio of {dl.nullRatio.field} is {ratio:.3f} > {dl.nullRatio.max}", dl.nullRatio.onFail))
    if dl.freshness:
        newest = stats["fresh"]
        age = (now - newest).total_seconds() / 60 if newest is not None else None
        ok = age is not None and age <= dl.freshness.maxAgeMinutes
        msg = f"newest {dl.freshness.field} is {newest} ({age:.0f} min old > {dl.freshness.maxAgeMinutes})" \
            if age is not None else f"no value in {dl.freshness.field} to judge freshness"
        out.append(("freshness", ok, msg, dl.freshness.onFail))
    if dl.columns:
        have = stats["columns"] if stats["columns"] is not None else set(expected_columns or [])
        missing = [c for c in dl.columns.required if c not in have]
        out.append(("columns", not missing, f"missing required column(s) {missing}", dl.columns.onFail))
    return out


def lower_dataset_checks(pcoll, node, ctx, label, expected_columns):
    """A one-element PCollection: the list of abort reasons (empty when every aborting check passed)."""
    dl = node.datasetLevel
    stats = pcoll | f"{label}/Stats" >> beam.CombineGlobally(_DatasetStatsFn(dl))
    if dl.unique:
        fields = list(dl.unique.fields)
        dups = (pcoll | f"{label}/UniqueKeys" >> beam.FlatMap(_bucket_keys(fields, ctx.buckets))
                | f"{label}/UniqueShuffle" >> beam.GroupByKey()
                | f"{label}/UniqueCount" >> beam.ParDo(_DupCountFn(fields))
                | f"{label}/UniqueSum" >> beam.CombineGlobally(sum))
    else:
        dups = pcoll.pipeline | f"{label}/NoUnique" >> beam.Create([0])
    run_dir, node_id = ctx.run_dir, node.id

    def verdict(st, dup_count):
        results = evaluate_checks(dl, st, dup_count, expected_columns)
        write_report(run_dir, "checks", node_id, {"checks": [
            {"check": c, "passed": ok, "message": None if ok else msg, "onFail": on} for c, ok, msg, on in results]})
        return [f"node '{node_id}': dataset check {c} failed: {msg}" for c, ok, msg, on in results
                if not ok and on == "abort"]

    return stats | f"{label}/Verdict" >> beam.Map(verdict, beam.pvalue.AsSingleton(dups))


def lower_validate(pcoll, node, ctx, label, expected_columns):
    out = pcoll | f"{label}/RowRules" >> beam.ParDo(_RowRulesFn(node.id, list(node.rowLevel))) \
        .with_outputs(QUARANTINE, ABORT, main="main")
    ports = {"main": out.main, QUARANTINE: out[QUARANTINE]}
    signals = []
    if abort_rule_ids(node):
        signals.append(out[ABORT])
    if node.datasetLevel is not None:
        signals.append(lower_dataset_checks(out.main, node, ctx, f"{label}/Dataset", expected_columns)
                       | f"{label}/AbortReasons" >> beam.FlatMap(lambda reasons: reasons))
    return ports, signals


def abort_rule_ids(node) -> list[str]:
    return [r.id or f"rowLevel[{i}]" for i, r in enumerate(node.rowLevel) if r.onFail == "abort"]


