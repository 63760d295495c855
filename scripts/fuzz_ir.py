#!/usr/bin/env python3
"""Fuzz the IR validator in-process and count what escapes it.

    python scripts/fuzz_ir.py -n 100000 [--seed 1] [--show 5] [--infer]

The corpus is the catalog (``templates/pipelines/*/pipeline.json``), ``examples/`` and one document that uses every
node kind and op. Each fuzzed document is one of: a corpus document with 1-4 mutations (delete / rename /
duplicate keys, type swaps, huge numbers, deep nesting, unicode and lone surrogates, empty strings, long strings,
duplicated or dropped nodes), the JSON text of one with byte-level damage (non-UTF-8 bytes, truncation, a
duplicated key, a 5,000-digit number, 100,000 brackets), or random JSON.

Every document goes through ``check_document`` (models → graph → rules → types; ``--infer`` also samples the
catalog's data files). The outcome must be "valid" or a ``FlowError``; every ``Issue`` must carry a JSON path.
The script prints the counts and exits 1 when anything escaped (an uncaught exception or a path-less issue).
"""
from __future__ import annotations

import argparse
import copy
import glob
import json
import os
import random
import sys
import time
import traceback
from collections import Counter

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

from ir_compiler.errors import DocumentError, FlowError, ValidationFailed  # noqa: E402

KITCHEN = {  # every node kind and op, so mutations reach every model
    "kind": "pipeline", "version": "1.0", "id": "kitchen",
    "params": {"dir": {"type": "string", "default": "data/"}, "n": {"type": "int", "default": 3}},
    "errorHandling": {"dlq": {"enabled": True, "table": "dlq.rows"}, "retry": {"maxAttempts": 2}},
    "schedule": {"kind": "interval", "minutes": 5},
    "nodes": [
        {"id": "src", "kind": "source", "connector": "local_fs",
         "config": {"path": "${params.dir}", "format": "csv", "pattern": {"type": "glob", "value": "*.csv"}},
         "schema": [{"name": "id", "type": "int"}, {"name": "name", "type": "string"},
                    {"name": "amount", "type": "string"}, {"name": "ts", "type": "timestamp"},
                    {"name": "tags", "type": "string"}],
         "eventTime": {"field": "ts"}},
        {"id": "lk", "kind": "source", "connector": "local_fs", "config": {"path": "lk/", "format": "jsonl"},
         "schema": [{"name": "id", "type": "int"}, {"name": "region", "type": "string"}]},
        {"id": "t", "kind": "transform", "input": "src", "ops": [
            {"op": "rename", "from": "name", "to": "full_name"},
            {"op": "cast", "field": "amount", "to": "decimal(10,2)", "onError": "null"},
            {"op": "add_field", "field": "one", "value": 1, "type": "int"},
            {"op": "expression", "field": "big", "expr": "amount > ${params.n}"},
            {"op": "hash", "fields": ["full_name"], "output": "h", "algorithm": "md5"},
            {"op": "mask_pii", "field": "full_name", "strategy": "partial", "keepLast": 2},
            {"op": "map_values", "field": "tags", "mapping": {"a": "A", "b": "B"}, "default": "Z"},
            {"op": "split", "field": "tags", "delimiter": ",", "output": "tag_list"},
            {"op": "merge", "fields": ["full_name", "tags"], "into": "label", "separator": "-"},
            {"op": "filter", "condition": "id > 0"},
            {"op": "lookup_join", "lookup": {"rows": [{"id": 1, "region": "eu"}]}, "on": ["id"],
             "fields": ["region"]},
            {"op": "drop", "fields": ["one"]},
            {"op": "deduplicate", "keys": ["id"], "keep": "last", "orderBy": "-ts"}]},
        {"id": "v", "kind": "validate", "input": "t",
         "rowLevel": [{"id": "r1", "field": "amount", "rule": "gt:0"},
                      {"field": "full_name", "rule": "regex:^[A-Z].*$", "onFail": "drop"},
                      {"rule": "expr:id < 100", "onFail": "warn"}],
         "datasetLevel": {"rowCount": {"min": 1}, "unique": {"fields": ["id"]},
                          "nullRatio": {"field": "amount", "max": 0.5}, "columns": {"required": ["id"]}},
         "quarantine": {"table": "dlq.q"}},
        {"id": "b", "kind": "branch", "input": "v", "routes": [{"name": "hi", "condition": "amount > 10"}],
         "otherwise": "lo"},
        {"id": "j", "kind": "join", "inputs": ["b.hi", "lk"], "on": ["id"], "type": "left",
         "prefixes": {"lk": "lk_"}},
        {"id": "e", "kind": "enrich", "input": "j", "provider": {"kind": "http", "url": "http://127.0.0.1:9/{id}"},
         "output": "score", "onError": "null"},
        {"id": "agg", "kind": "transform", "input": "b.lo", "ops": [
            {"op": "aggregate", "groupBy": ["full_name"], "window": {"type": "fixed", "size": "1h"},
             "aggregations": [{"fn": "count", "as": "n"}, {"field": "amount", "fn": "sum", "as": "total"}]},
            {"op": "summarize", "fields": ["n"]}]},
        {"id": "out", "kind": "target", "input": "e", "schema": "public.out", "loadMode": "upsert",
         "upsertKey": "id", "preHook": {"type": "sql", "statement": "SELECT 1"}},
        {"id": "out2", "kind": "target", "input": "agg", "connector": "local_fs",
         "config": {"path": "out/", "format": "jsonl"}},
        {"id": "arch", "kind": "archive", "input": "out", "action": "move", "destination": "done/"},
    ],
    "tests": [{"name": "t1", "inputs": {"src": [{"id": 1}]}, "expect": {"out": []}}],
}

ODD_STRINGS = ["", " ", "x", "🍓", "\u0000", "\ud800", "é" * 3, "[red]x[/red]", "${params.nope}", "${params.dir}",
               "../../etc/passwd", "a" * 5000, "\n\t", "nodes", "main", "src.quarantine", "src", "t.errors",
               "0", "-1", "1e999", "NaN", "null", "true", "decimal(1000,2)", "array<array<int>>", "30s", "-5m"]
EXPRESSIONS = ["id + 1", "amount * 2", "upper(name)", "CAST(x AS int)", "a ~ '^[a-z]+$'", "coalesce(a, b, 1)",
               "id IN (1, 2, NULL)", "CASE WHEN a THEN 1 ELSE 'x' END", "sum(a)", "1/0", "'" + "x" * 3000 + "'",
               "((((((((((((((((((((1))))))))))))))))))))" * 3, "(" * 500 + "1" + ")" * 500, "-" * 2000 + "1",
               "NOT " * 1000 + "true", " AND ".join(["a = 1"] * 1500), "x::decimal(1000, 2)", "now()", "🍓 + 1",
               "a LIKE '%%%%%%%%%%%%%%%%%%%%_'", "to_char(ts, 'YYYY')", "select 1", "DROP TABLE t", "$1", ""]
ODD_NUMBERS = [0, -1, 1, 2 ** 63, -2 ** 63 - 1, 10 ** 30, 1.5, -0.0, 1e308, float("inf"), float("nan")]


def corpus() -> list[dict]:
    docs = [KITCHEN]
    for path in sorted(glob.glob(os.path.join(ROOT, "templates", "pipelines", "*", "pipeline.json")) +
                       glob.glob(os.path.join(ROOT, "examples", "*", "pipeline.json"))):
        with open(path, encoding="utf-8") as fh:
            docs.append(json.load(fh))
    return docs


# --- structural mutations on the parsed document --------------------------------------------------------------


def _slots(doc) -> list[tuple]:
    """(container, key) for every value in the document."""
    out, stack = [], [doc]
    while stack:
        cur = stack.pop()
        items = cur.items() if isinstance(cur, dict) else enumerate(cur) if isinstance(cur, list) else ()
        for k, v in items:
            out.append((cur, k))
            if isinstance(v, (dict, list)):
                stack.append(v)
    return out


def random_json(rng: random.Random, depth: int = 0):
    roll = rng.random()
    if depth > 4 or roll < 0.45:
        return rng.choice([None, True, False, rng.choice(ODD_NUMBERS), rng.randint(-10 ** 6, 10 ** 6),
                           rng.choice(ODD_STRINGS), rng.random()])
    if roll < 0.7:
        return [random_json(rng, depth + 1) for _ in range(rng.randint(0, 4))]
    keys = ODD_STRINGS[:8] + ["id", "kind", "nodes", "input", "ops", "op", "config", "schema", "field"]
    return {rng.choice(keys): random_json(rng, depth + 1) for _ in range(rng.randint(0, 4))}


def _deep(rng, depth: int):
    value = rng.choice([1, "x", None])
    for _ in range(depth):
        value = [value] if rng.random() < 0.5 else {"a": value}
    return value


def _type_swap(rng, value):
    choices = [None, True, 0, -1, 1.5, "", "x", [], {}, [value], {"x": value},
               value[:50] if isinstance(value, str) else "1"]
    return rng.choice(choices)


def mutate(rng: random.Random, doc: dict, kind: int | None = None) -> dict:
    """One mutation at a random place (``kind`` 4, deep nesting, only as the last one: nothing copies it)."""
    slots = _slots(doc)
    if not slots:
        return doc
    cont, key = rng.choice(slots)
    value = cont[key]
    kind = rng.choice([k for k in range(13) if k != 4] + [13] * 6) if kind is None else kind
    if kind == 13:  # same type, other value: documents that pass the model layer and reach graph/rules/types
        if isinstance(value, bool):
            cont[key] = not value
        elif isinstance(value, (int, float)):
            cont[key] = rng.choice([0, -1, 1, 2, 10 ** 6, 2 ** 31, 2 ** 63, -2 ** 63, 0.5, 1e300, 10 ** 90])
        elif isinstance(value, str):
            strings = [v for c, k in slots if isinstance(v := c[k], str) and len(v) < 200]
            cont[key] = rng.choice([rng.choice(strings), rng.choice(strings) + rng.choice(["", "x", ".errors"]),
                                    rng.choice(ODD_STRINGS), value + " " + rng.choice(strings),
                                    rng.choice(EXPRESSIONS)])
        else:
            return mutate(rng, doc)
    elif kind == 0:  # delete a key / list element
        del cont[key]
    elif kind == 1:  # type swap
        cont[key] = _type_swap(rng, value)
    elif kind == 2:  # odd string
        cont[key] = rng.choice(ODD_STRINGS)
    elif kind == 3:  # odd number
        cont[key] = rng.choice(ODD_NUMBERS + [10 ** rng.randint(20, 5000)])
    elif kind == 4:  # deep nesting
        cont[key] = _deep(rng, rng.choice([50, 500, 1000, 3000, 20000]))
    elif kind == 5 and isinstance(cont, dict):  # rename a key (typo, empty, unicode, odd)
        new = rng.choice(["", " ", key + "x", key.upper(), "🍓", "\ud800", key[:-1] or "k", "$ref"])
        cont[new] = cont.pop(key)
    elif kind == 6 and isinstance(cont, list):  # duplicate a list element (duplicate node ids, ops…)
        cont.insert(rng.randrange(len(cont) + 1), copy.deepcopy(value))
    elif kind == 7 and isinstance(value, list) and value:  # shuffle or empty a list
        if rng.random() < 0.5:
            rng.shuffle(value)
        else:
            value.clear()
    elif kind == 8 and isinstance(value, str):  # long string / unicode / empty
        cont[key] = rng.choice([value * rng.randint(50, 2000), value + "🍓\u200b", "", value[:-1], "\u0000" + value])
    elif kind == 9:  # random JSON in place
        cont[key] = random_json(rng)
    elif kind == 10 and isinstance(cont, dict):  # add an unknown key
        cont[rng.choice(["", "extra", "🍓", "a" * 300])] = random_json(rng)
    elif kind == 11:  # a node id or reference stretched or broken
        nodes = doc.get("nodes") if isinstance(doc.get("nodes"), list) else []
        node = rng.choice(nodes) if nodes else None
        if isinstance(node, dict):
            node[rng.choice(["id", "input", "inputs"])] = rng.choice(
                ["a" * rng.choice([129, 255, 5000]), "", "x.y.z", "src.", ".", "a" * 64, "🍓", ["src", "src"]])
    else:  # a value replaced by the same from elsewhere in the document (plausible but misplaced)
        other_cont, other_key = rng.choice(slots)
        cont[key] = copy.deepcopy(other_cont[other_key])
    return doc


# --- text / byte level damage --------------------------------------------------------------------------------


def _dup_key(text: str, rng) -> str:
    at = [i for i, c in enumerate(text) if c == "{"]
    if not at:
        return text
    i = rng.choice(at)
    return text[:i + 1] + '"id": "dup", ' + text[i + 1:] if text[i + 1:].lstrip().startswith('"') else text


def damage(rng: random.Random, doc) -> bytes:
    try:
        text = json.dumps(doc, ensure_ascii=rng.random() < 0.5, allow_nan=True)
    except (RecursionError, ValueError):  # too deep or a too long int for the stdlib encoder
        text = json.dumps({"kind": "pipeline", "nodes": [], "id": "x"})
    kind = rng.randrange(8)
    if kind == 0:  # non-UTF-8 bytes
        data = text.encode("utf-8", "surrogatepass")
        i = rng.randrange(len(data) + 1)
        return data[:i] + rng.choice([b"\xff", b"\xc3", b"\xed\xa0\x80", b"\x80\x80", b"\xfe\xff"]) + data[i:]
    if kind == 1:  # latin-1 / utf-16 encodings of the whole file
        return (text + "é").encode(rng.choice(["latin-1", "utf-16", "utf-32"]), "replace")
    if kind == 2:  # truncated
        return text[:rng.randrange(len(text) + 1)].encode("utf-8", "surrogatepass")
    if kind == 3:  # a duplicated key
        return _dup_key(text, rng).encode("utf-8", "surrogatepass")
    if kind == 4:  # a huge number literal
        i = text.find(": ", rng.randrange(len(text)))
        digits = rng.choice(["9" * 5000, "1" + "0" * 400 + ".5", "1e99999", "-" + "9" * 4301, "1" * 100000])
        return (text[:i + 2] + digits + ", \"zz\"" + text[i + 2:] if i > 0 else digits).encode("utf-8", "surrogatepass")
    if kind == 5:  # deep brackets around the whole document
        n = rng.choice([1000, 10000, 100000])
        return ("[" * n + text + "]" * n).encode("utf-8", "surrogatepass")
    if kind == 6:  # BOM, NUL and control characters
        return rng.choice([b"\xef\xbb\xbf", b"\x00", b" \x0c"]) + text.encode("utf-8", "surrogatepass")
    return text.encode("utf-8", "surrogatepass")  # a lone surrogate escaped or raw


def fuzzed(rng: random.Random, docs: list[dict]):
    roll = rng.random()
    if roll < 0.05:
        return random_json(rng)
    doc = copy.deepcopy(rng.choice(docs))
    for _ in range(rng.randint(1, 4)):
        doc = mutate(rng, doc)
    if rng.random() < 0.08:
        doc = mutate(rng, doc, 4)
    if roll < 0.30:
        return damage(rng, doc)
    return doc


# --- the harness ---------------------------------------------------------------------------------------------


def validate_one(source, ctx) -> tuple[str, list]:
    """("valid" | "invalid" | "crash" | "pathless", details) for one document."""
    from ir_compiler.check import check_document

    try:
        check_document(source, None, ctx)
    except ValidationFailed as exc:
        bad = [f"{i.layer}: {i}" for i in exc.issues if not i.path]
        return ("pathless", bad) if bad else ("invalid", sorted({i.layer for i in exc.issues}))
    except DocumentError:
        return "invalid", []
    except FlowError as exc:
        return "crash", [f"FlowError outside validation: {type(exc).__name__}: {exc}"[:300]]
    except RecursionError as exc:
        frames = Counter(f"{os.path.relpath(f.filename, ROOT)}:{f.lineno}"
                         for f in traceback.extract_tb(exc.__traceback__))
        return "crash", [f"RecursionError in {frames.most_common(1)[0][0]}"]
    except Exception as exc:  # noqa: BLE001 - the point: count what escapes
        frames = [f for f in traceback.extract_tb(exc.__traceback__) if ROOT in f.filename] or \
            traceback.extract_tb(exc.__traceback__)
        tb = frames[-1]
        return "crash", [f"{type(exc).__name__} at {os.path.relpath(tb.filename, ROOT)}:{tb.lineno}: "
                         f"{str(exc)[:120]}"]
    return "valid", []


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("-n", type=int, default=10000, help="documents to try")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--show", type=int, default=5, help="distinct failures to print")
    ap.add_argument("--infer", action="store_true", help="sample data files (as `flow-beam validate` does)")
    args = ap.parse_args(argv)

    import logging
    import warnings
    logging.disable(logging.CRITICAL)
    warnings.filterwarnings("ignore")
    from ir_compiler.check import default_context
    from ir_compiler.propagate import SchemaContext

    rng = random.Random(args.seed)
    docs = corpus()
    ctx = default_context(None) if args.infer else SchemaContext()
    counts, kinds, examples, layers = Counter(), Counter(), {}, Counter()
    start = time.monotonic()
    for k in range(args.n):
        source = fuzzed(rng, docs)
        outcome, details = validate_one(source, ctx)
        counts[outcome] += 1
        if outcome == "invalid":
            layers.update(details)
            continue
        for d in details:
            key = d if outcome == "crash" else f"path-less: {d}"
            kinds[key[:160]] += 1
            examples.setdefault(key[:160], source)
        if (k + 1) % 10000 == 0:
            print(f"  {k + 1:,} documents, {time.monotonic() - start:.0f}s: {dict(counts)}", file=sys.stderr)
    print(f"{args.n:,} fuzzed documents (seed {args.seed}) in {time.monotonic() - start:.0f}s: "
          f"{counts['valid']:,} valid, {counts['invalid']:,} invalid with issues, "
          f"{counts['crash']:,} uncaught exceptions, {counts['pathless']:,} with path-less issues")
    print("  invalid documents with issues of each layer: " + ", ".join(f"{k} {n:,}" for k, n in sorted(layers.items())))
    for key, n in kinds.most_common(args.show):
        sample = examples[key]
        shown = sample[:300] if isinstance(sample, bytes) else json.dumps(sample, default=str)[:300]
        print(f"  {n:6,}  {key}\n          e.g. {shown}")
    return 1 if counts["crash"] or counts["pathless"] else 0


if __name__ == "__main__":
    raise SystemExit(main())
