"""Join planning shared by type propagation and execution: key pairs, output columns, clashes."""
from __future__ import annotations

from dataclasses import dataclass

import pyarrow as pa
import pyarrow.compute as pc

from ir_compiler.ops.common import ORD
from ir_compiler.types import Field, Schema, common_type

ARROW_JOIN = {"inner": "inner", "left": "left outer", "right": "right outer", "full": "full outer",
              "semi": "left semi", "anti": "left anti"}


class JoinError(Exception):
    def __init__(self, message: str, field: str = "on"):
        super().__init__(message)
        self.field = field


@dataclass(frozen=True)
class JoinStep:
    """Join of the accumulated left side with input ``index`` (1..n-1)."""

    index: int
    left_keys: tuple[str, ...]  # column names in the accumulated left table
    right_keys: tuple[str, ...]  # column names in the (renamed) right table
    shared_keys: bool  # on: ["key"] form: the key appears once


def keys_for(node, i: int) -> list[str]:
    """The key columns of input ``i`` (by position)."""
    ref = node.inputs[i]
    if all(isinstance(k, str) for k in node.on):
        return list(node.on)
    out = []
    for j, pair in enumerate(node.on):
        name = pair.get(ref, pair.get(ref.split(".")[0]))
        if name is None:
            raise JoinError(f"on[{j}] has no key for input '{ref}'; give one column per input", f"on[{j}]")
        out.append(name)
    return out


def renamed_columns(node, i: int, names: list[str]) -> dict[str, str]:
    """Input column → output column after ``select`` and ``prefixes`` (columns not kept are absent)."""
    ref = node.inputs[i]
    keys = set(keys_for(node, i))
    shared = all(isinstance(k, str) for k in node.on)
    sel = (node.select or {}).get(ref, (node.select or {}).get(ref.split(".")[0]))
    prefix = (node.prefixes or {}).get(ref, (node.prefixes or {}).get(ref.split(".")[0], ""))
    out = {}
    for c in names:
        if shared and c in keys:
            out[c] = c
            continue
        if sel is not None:
            if isinstance(sel, dict):
                if c in sel:
                    out[c] = sel[c]
                elif c in keys:
                    out[c] = prefix + c
                continue
            if c not in sel and c not in keys:
                continue
        out[c] = prefix + c
    return out


def _check_selection(node, schemas: list[Schema]) -> None:
    """``select`` and ``prefixes`` name inputs of the join, and ``select`` columns those inputs have: a typo would
    otherwise silently drop (or keep) columns."""
    names = {ref: i for i, ref in enumerate(node.inputs)}
    names.update({ref.split(".")[0]: i for i, ref in enumerate(node.inputs) if ref.split(".")[0] not in names})
    for field_name, given in (("select", node.select), ("prefixes", node.prefixes)):
        for ref in (given or {}):
            if ref not in names:
                raise JoinError(f"{field_name} names '{ref}', which is not an input of this join (inputs: "
                                f"{', '.join(node.inputs)})", f"{field_name}.{ref}")
    for ref, sel in (node.select or {}).items():
        have = schemas[names[ref]]
        wanted = list(sel) if isinstance(sel, (dict, list)) else []
        missing = [c for c in wanted if c not in have]
        if missing and have is not None:
            raise JoinError(f"select of input '{ref}' names {', '.join(repr(c) for c in missing)}, which it does not "
                            f"have; it has {', '.join(have.names)}", f"select.{ref}")


def output_schema(node, schemas: list[Schema]) -> Schema:
    """Output columns of the join, or JoinError on missing keys, incompatible key types, clashes."""
    shared = all(isinstance(k, str) for k in node.on)
    for i, s in enumerate(schemas):
        for k in keys_for(node, i):
            if k not in s:
                raise JoinError(f"input '{node.inputs[i]}' has no key column '{k}'; it has {', '.join(s.names)}")
    left_keys = keys_for(node, 0)
    for i, s in enumerate(schemas[1:], 1):
        for lk, rk in zip(left_keys, keys_for(node, i)):
            if common_type(schemas[0][lk].type, s[rk].type) is None:
                raise JoinError(f"key '{lk}' ({schemas[0][lk].type}) and '{node.inputs[i]}'.'{rk}' "
                                f"({s[rk].type}) have incompatible types; add a cast")
    _check_selection(node, schemas)
    if node.type in ("semi", "anti"):
        return schemas[0]
    fields: list[Field] = []
    owner: dict[str, str] = {}
    for i, s in enumerate(schemas):
        mapping = renamed_columns(node, i, s.names)
        for c, out in mapping.items():
            if shared and c in left_keys and i > 0:
                continue
            if out in owner:
                raise JoinError(f"column '{out}' comes from both '{owner[out]}' and '{node.inputs[i]}'; "
                                f"use 'select' or 'prefixes' to rename one", "select")
            owner[out] = node.inputs[i]
            nullable = True if node.type in ("left", "right", "full") else s[c].nullable
            ftype = s[c].type
            if shared and c in left_keys and node.type in ("right", "full"):  # holds either side's key values
                j = left_keys.index(c)
                for other in range(1, len(schemas)):
                    ftype = common_type(ftype, schemas[other][keys_for(node, other)[j]].type) or ftype
            fields.append(Field(out, ftype, nullable))
    return Schema(fields)


def arrow_join(left: pa.Table, right: pa.Table, keys: list[str], right_keys: list[str], join_type: str,
               coalesce: bool) -> pa.Table:
    """``left.join(right)``, also when a non-key column is a list, struct or map (Arrow's hash join carries only
    flat columns): such a column rides through the join as the row numbers of its table, under its own name
    and place, and is gathered back afterwards (a row without a partner gets NULL)."""
    nested = {}

    def flat(table: pa.Table, key_names: list[str]) -> pa.Table:
        for j, f in enumerate(table.schema):
            if f.name not in key_names and pa.types.is_nested(f.type):
                nested[f.name] = table.column(j)
                table = table.set_column(j, f.name, pa.array(range(table.num_rows), pa.int64()))
        return table

    left, right = flat(left, keys), flat(right, right_keys)
    joined = left.join(right, keys=keys, right_keys=right_keys, join_type=join_type, use_threads=False,
                       coalesce_keys=coalesce)
    for name, column in nested.items():
        if name in joined.column_names:
            j = joined.column_names.index(name)
            joined = joined.set_column(j, name, column.take(joined.column(j)))
    return joined


def join_two(node, left: pa.Table, right: pa.Table, i: int, left_keys: list[str]) -> pa.Table:
    """Join the accumulated ``left`` with input ``i`` (already in its input column names).

    The tables are matched on copies of their keys with -0.0 made 0.0 (equal in SQL; NaN still matches NaN as in
    DuckDB), so the key columns keep their values; an ``on: ["key"]`` right/full join fills the key of the rows
    without a left partner from the right's key, in the left key's place."""
    from ir_compiler.ops.sets import normal_key

    shared = all(isinstance(k, str) for k in node.on)
    right_keys = keys_for(node, i)
    mapping = renamed_columns(node, i, [c for c in right.column_names if c != ORD])
    jt = ARROW_JOIN[node.type]
    fill = shared and node.type in ("right", "full")
    tmp_left = [f"__fb_lk{j}" for j in range(len(right_keys))]
    tmp_keys = [f"__fb_rk{j}" for j in range(len(right_keys))]
    for j, k in enumerate(left_keys):
        left = left.append_column(tmp_left[j], normal_key(left.column(k)))
    cols, names = [], []
    for j, k in enumerate(right_keys):
        col = right.column(k)
        ltype = left.schema.field(left_keys[j]).type
        col = col.cast(ltype) if col.type != ltype else col
        cols.append(normal_key(col))
        names.append(tmp_keys[j])
        if fill:
            cols.append(col)
            names.append(f"__fb_rv{j}")
    if node.type not in ("semi", "anti"):
        for c, out in mapping.items():
            if shared and c in right_keys:
                continue
            cols.append(right.column(c))
            names.append(out)
    r = pa.table(cols, names=names)
    joined = arrow_join(left, r, tmp_left, tmp_keys, jt, False)
    if fill:
        for j, k in enumerate(left_keys):
            at = joined.column_names.index(k)
            joined = joined.set_column(at, k, pc.coalesce(joined.column(k), joined.column(f"__fb_rv{j}")))
    return joined.drop_columns([c for c in joined.column_names if c.startswith(("__fb_rk", "__fb_lk", "__fb_rv"))])


def join_tables(node, tables: list[pa.Table]) -> pa.Table:
    """Join every input left to right (all tables hold only rows of the same key bucket)."""
    left = tables[0]
    mapping0 = renamed_columns(node, 0, [c for c in left.column_names if c != ORD])
    left_keys = keys_for(node, 0)
    if node.type not in ("semi", "anti"):
        keep = [c for c in left.column_names if c in mapping0 or c == ORD]
        left = left.select(keep).rename_columns([mapping0.get(c, c) for c in keep])
        left_keys = [mapping0[k] for k in left_keys]
    for i in range(1, len(tables)):
        left = join_two(node, left, tables[i], i, left_keys)
    if ORD in left.column_names:
        left = left.sort_by([(ORD, "ascending")])
    return left


def filter_null_keys(table: pa.Table, keys: list[str]) -> pa.Table:
    mask = None
    for k in keys:
        m = pc.is_valid(table.column(k))
        mask = m if mask is None else pc.and_(mask, m)
    return table if mask is None else table.filter(mask)
