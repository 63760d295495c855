"""Read a document: JSON text → ``${params.x}`` substitution → pydantic models, errors as JSON-path issues."""
from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, field as dc_field, replace
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from ir_compiler.errors import DocumentError, Issue, ValidationFailed
from ir_compiler.models import Pipeline

_PARAM = re.compile(r"\$\{params\.([A-Za-z_][A-Za-z0-9_]*)\}")
_PARAM_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_TRUE, _FALSE = ("true", "t", "yes", "y", "on", "1"), ("false", "f", "no", "n", "off", "0")


def _param_int(v):
    if isinstance(v, bool) or not (isinstance(v, int) or (isinstance(v, str) and re.fullmatch(r"\s*[+-]?\d+\s*", v))):
        raise ValueError
    return int(v)


def _param_float(v):
    if isinstance(v, bool) or not isinstance(v, (int, float, str)):
        raise ValueError
    out = float(v)
    if out != out or out in (float("inf"), float("-inf")):
        raise ValueError
    return out


def _param_bool(v):
    if isinstance(v, bool):
        return v
    text = str(v).strip().lower() if isinstance(v, (str, int)) else None
    if text in _TRUE or text in _FALSE:
        return text in _TRUE
    raise ValueError


def _param_string(v):
    if isinstance(v, (dict, list)):
        raise ValueError
    return v if isinstance(v, str) else json.dumps(v)


# a param's value (from --param text or a JSON default) as its declared type; anything else raises ValueError
_CASTS = {"string": _param_string, "int": _param_int, "float": _param_float, "bool": _param_bool}
_KINDS_TEXT = {"int": "an integer", "float": "a finite number", "string": "text",
               "bool": "true/false (also t/f, yes/no, y/n, on/off, 1/0)"}


MAX_DOCUMENT_BYTES = 10 * 1024 * 1024  # a pipeline document is at most 10 MB of JSON
MAX_DEPTH = 64  # nesting of objects and arrays (real documents stay under 12)
MAX_STRING = 1_000_000  # characters in one string value or key
MAX_NUMBER_DIGITS = 100  # digits of one number literal (decimal(38) values need 38)
_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]*$")


class _BadNumber(str):
    """A number literal the document cannot hold (too many digits, or beyond float range); reported with its path."""


def _parse_int(text: str):
    return _BadNumber(text) if len(text.lstrip("-")) > MAX_NUMBER_DIGITS else int(text)


class JsonFloat(float):
    """A JSON number with a fraction or exponent: a float that remembers how it was written, so a decimal
    constant (``add_field`` with ``type: decimal(38, 11)``) is taken from its digits, never from the float."""

    text: str

    def __new__(cls, text: str):
        number = super().__new__(cls, text)
        number.text = text
        return number


def _parse_float(text: str):
    value = JsonFloat(text)
    if len(text) > MAX_NUMBER_DIGITS + 10 or value in (float("inf"), float("-inf")):
        return _BadNumber(text)
    return value


def _no_constant(name: str):
    raise DocumentError(f"{name} is not a JSON value; write a number or a string")


class _Pairs(dict):
    """An object with the keys it repeated (JSON allows it; the last value would silently win)."""

    duplicates: list = []


def _pairs(items: list) -> dict:
    out = _Pairs(items)
    if len(out) != len(items):
        seen, dups = set(), []
        for k, _ in items:
            if k in seen and k not in dups:
                dups.append(k)
            seen.add(k)
        out.duplicates = dups
    return out


def _where_in_text(text: str, pos: int) -> str:
    line = text.count("\n", 0, pos) + 1
    return f"line {line}, column {pos - (text.rfind(chr(10), 0, pos) + 1) + 1}"


def _decode(data: bytes, name: str) -> str:
    if len(data) > MAX_DOCUMENT_BYTES:
        raise DocumentError(f"{name}: the document is {len(data):,} bytes; a pipeline document is at most "
                            f"{MAX_DOCUMENT_BYTES:,} bytes")
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        raise DocumentError(f"{name}: the file is UTF-16/UTF-32 encoded; save it as UTF-8")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        before = data[:exc.start].decode("utf-8", "replace")
        where = _where_in_text(before, len(before))
        raise DocumentError(f"{name}, {where}: not UTF-8 text (byte 0x{data[exc.start]:02x}); save the document "
                            f"as UTF-8") from None


def _read_file(text: str) -> tuple[str, str]:
    if len(text) > 4096 or "\0" in text:
        raise DocumentError("the argument is neither a JSON object nor the path of a file; pass the path of a "
                            "pipeline JSON document")
    path = Path(text)
    try:
        if path.is_dir():
            raise DocumentError(f"{path} is a folder; pass the path of a pipeline JSON document (e.g. "
                                f"{path / 'pipeline.json'})")
        if not path.exists():
            raise DocumentError(f"file not found: {path}; pass the path of a pipeline JSON document")
        with path.open("rb") as fh:
            data = fh.read(MAX_DOCUMENT_BYTES + 1)
    except OSError as exc:
        raise DocumentError(f"cannot read {path}: {exc.strerror or exc}") from None
    return _decode(data, str(path)), str(path)


def read_json(source: str | Path | bytes | dict) -> dict:
    """The raw document from a path, JSON text (str or bytes) or a dict.

    Syntax errors give file, line and column; encoding, size, nesting, number-range and duplicate-key problems
    are errors too (see :func:`check_limits`), never an exception from the JSON parser.
    """
    if isinstance(source, dict):
        return source
    name = "<document>"
    if isinstance(source, (bytes, bytearray)):
        text = _decode(bytes(source), name)
    elif isinstance(source, Path) or not str(source).lstrip("\ufeff \t\r\n").startswith(("{", "[")):
        text, name = _read_file(str(source))
    else:
        text = str(source)
        if len(text) > MAX_DOCUMENT_BYTES:
            raise DocumentError(f"the document is {len(text):,} characters; a pipeline document is at most "
                                f"{MAX_DOCUMENT_BYTES:,} bytes")
    text = text.removeprefix("\ufeff")
    try:
        doc = json.loads(text, parse_int=_parse_int, parse_float=_parse_float, parse_constant=_no_constant,
                         object_pairs_hook=_pairs)
    except json.JSONDecodeError as exc:
        raise DocumentError(f"{name}, line {exc.lineno}, column {exc.colno}: invalid JSON: {exc.msg}") from None
    except RecursionError:
        raise DocumentError(f"{name}: the document nests objects and arrays deeper than {MAX_DEPTH} levels") \
            from None
    except DocumentError as exc:
        raise DocumentError(f"{name}: {exc.message}") from None
    except ValueError as exc:  # anything else the parser refuses (e.g. the stdlib's int digit limit)
        raise DocumentError(f"{name}: invalid JSON: {exc}") from None
    if not isinstance(doc, dict):
        raise DocumentError(f"{name}: a pipeline document is a JSON object, got {_json_type(doc)}")
    return doc


def _json_type(value) -> str:
    return {dict: "an object", list: "an array", str: "a string", bool: "a boolean", int: "a number",
            float: "a number", type(None): "null"}.get(type(value), type(value).__name__)


def check_limits(doc: dict) -> list[Issue]:
    """Issues for what no model can hold, each with its JSON path: nesting deeper than ``MAX_DEPTH``, strings or
    keys longer than ``MAX_STRING``, unpaired surrogates (not Unicode text), number literals out of range,
    repeated keys. Iterative, so a document nested 100,000 deep is one issue and not a RecursionError."""
    issues: list[Issue] = []
    stack: list[tuple[Any, tuple, int]] = [(doc, (), 0)]
    while stack and len(issues) < 50:
        value, loc, depth = stack.pop()
        if isinstance(value, (dict, list)) and depth >= MAX_DEPTH:
            issues.append(Issue(json_path(loc) or "$", f"nested deeper than {MAX_DEPTH} levels; a pipeline "
                                                       f"document is a shallow tree of objects and arrays"))
            continue
        if isinstance(value, dict):
            for key in getattr(value, "duplicates", ()):
                issues.append(Issue(json_path(loc + (key,)), f"key '{_short(key)}' appears more than once in "
                                                             f"this object; keep one"))
            for key, item in value.items():
                if not isinstance(key, str):  # a dict built in Python
                    issues.append(Issue(json_path(loc) or "$", f"object key {key!r} is not a string"))
                    continue
                problem = _text_problem(key)
                if problem:
                    issues.append(Issue(json_path(loc + (key,)), f"key {problem}"))
                stack.append((item, loc + (key,), depth + 1))
        elif isinstance(value, list):
            stack += [(item, loc + (i,), depth + 1) for i, item in enumerate(value)]
        elif isinstance(value, _BadNumber):
            issues.append(Issue(json_path(loc), f"number {_short(value, 24)} is out of range; numbers have at most "
                                                f"{MAX_NUMBER_DIGITS} digits and stay within ±1.7e308"))
        elif isinstance(value, str):
            problem = _text_problem(value)
            if problem:
                issues.append(Issue(json_path(loc), f"string {problem}"))
        elif isinstance(value, float) and value != value:
            issues.append(Issue(json_path(loc), "NaN is not a JSON value; write a number or a string"))
        elif isinstance(value, float) and value in (float("inf"), float("-inf")):
            issues.append(Issue(json_path(loc), "number is out of range (infinite)"))
        elif isinstance(value, int) and not isinstance(value, bool) and value.bit_length() > 340:
            issues.append(Issue(json_path(loc), f"number is out of range; numbers have at most "
                                                f"{MAX_NUMBER_DIGITS} digits"))
    return issues


def _text_problem(text: str) -> str | None:
    if len(text) > MAX_STRING:
        return f"of {len(text):,} characters is too long (at most {MAX_STRING:,})"
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        return f"holds an unpaired surrogate {text[exc.start]!r} at character {exc.start + 1}; it is not Unicode " \
               f"text (write the character itself or a valid \\uXXXX pair)"
    return None


def _short(text: str, n: int = 40) -> str:
    """A key or value fit for a message: cut to ``n`` characters, unpaired surrogates escaped."""
    text = str(text)
    short = text if len(text) <= n else f"{text[:n]}… ({len(text):,} characters)"
    return short.encode("utf-8", "backslashreplace").decode("utf-8")


def json_path(loc: tuple | list) -> str:
    """``("nodes", 2, "ops", 0, "expr")`` → ``nodes[2].ops[0].expr``; a key that is not a plain name is quoted:
    ``metadata[""]``, ``params["my param"]``."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif _IDENT.match(str(part)):
            out += f".{part}" if out else str(part)
        else:
            out += f"[{json.dumps(_short(str(part), 60), ensure_ascii=False)}]"
    return out


def resolve_params(raw: dict, given: dict[str, Any] | None) -> tuple[dict, list[Issue]]:
    """Substitute ``${params.name}`` everywhere (a whole-string reference keeps the param's type)."""
    specs = raw.get("params") or {}
    issues: list[Issue] = []
    if not isinstance(specs, dict):
        return raw, [Issue("params", "params must be an object of {name: {type, default}}")]
    values: dict[str, Any] = {}
    bad: set[str] = set()  # a value or default of the wrong type: reported once, at the param
    for name, spec in specs.items():
        spec = spec if isinstance(spec, dict) else {}
        kind = spec.get("type", "string")
        cast = _CASTS.get(kind) if isinstance(kind, str) else None
        if spec.get("default") is not None and cast is not None:
            try:
                default = cast(spec["default"])
            except (TypeError, ValueError, OverflowError):
                issues.append(Issue(json_path(("params", name, "default")),
                                    f"default {_short(spec['default'])!r} is not {_KINDS_TEXT[kind]} (type {kind})"))
                bad.add(name)
                default = None
        else:
            default = spec.get("default")
        if given and name in given:
            try:
                values[name] = cast(given[name]) if cast is not None else given[name]
            except (TypeError, ValueError, OverflowError):
                issues.append(Issue(json_path(("params", name)), f"value {_short(given[name])!r} is not "
                                                                 f"{_KINDS_TEXT.get(kind, 'a valid ' + _short(kind))}"
                                                                 f" (type {_short(kind)})"))
                bad.add(name)
        elif default is not None:
            values[name] = default
    for name in specs:
        if not _PARAM_NAME.match(name):
            issues.append(Issue(json_path(("params", name)), f"param name '{_short(name)}' cannot be referenced; "
                                                             f"use letters, digits and _ (not first a digit)"))
    for name in (given or {}):
        if name not in specs:
            issues.append(Issue(json_path(("params", name)), f"unknown param '{_short(name)}'; declared: "
                                                             f"{sorted(specs) or 'none'}"))

    def sub(value, loc: tuple):
        if isinstance(value, dict):
            return {k: (v if not loc and k in ("params", "tests") else sub(v, loc + (k,))) for k, v in value.items()}
        if isinstance(value, list):
            return [sub(v, loc + (i,)) for i, v in enumerate(value)]
        if not isinstance(value, str) or "${" not in value:
            return value
        refs = _PARAM.findall(value)
        if value.count("${params.") != len(refs):
            issues.append(Issue(json_path(loc), "a '${params.' reference is not closed or names no param; write "
                                                "${params.name}"))
        for ref in refs:
            if ref not in specs:
                issues.append(Issue(json_path(loc), f"unknown param '${{params.{ref}}}'; declare it under 'params'"))
            elif ref not in values and ref not in bad:
                issues.append(Issue(json_path(loc), f"param '{ref}' has no value; give --param {ref}=... or a "
                                                    f"default"))
        whole = _PARAM.fullmatch(value)
        if whole and whole.group(1) in values:
            return values[whole.group(1)]
        return _PARAM.sub(lambda m: str(values.get(m.group(1), m.group(0))), value)

    out = sub(raw, ())
    if bad:  # a value of the wrong type: every later layer would report its reference again, misleadingly
        raise ValidationFailed(issues)
    return out, issues


def _strip_tags(loc: tuple, raw: Any) -> list:
    """Drop the union-tag entries pydantic puts in ``loc`` (``nodes.1.transform.ops``): a tag is never the last
    entry, and equals the ``kind``/``op`` of the object it stands in."""
    out, cur = [], raw
    for k, part in enumerate(loc):
        last = k == len(loc) - 1
        in_cur = isinstance(cur, dict) and part in cur
        if in_cur and not last and part == cur.get("kind") and not isinstance(cur[part], (dict, list)):
            in_cur = False  # a union tag that is also a field's name ({"kind": "rrule", "rrule": "..."})
        if not last and isinstance(cur, dict) and isinstance(part, str) and not in_cur and part in (
                cur.get("kind"), cur.get("op"), cur.get("type"), cur.get("connector"), _TABLE_TAG):
            continue
        if not last and isinstance(part, str) and not in_cur and part.startswith(
                ("function-", "list[", "dict[", "str", "int", "bool", "float", "nullable[", "union[", "json-or-")):
            continue
        out.append(part)
        try:
            cur = cur[part]
        except (KeyError, IndexError, TypeError):
            cur = None
    return out


def _node_id(raw: dict, loc: list) -> str | None:
    if len(loc) >= 2 and loc[0] == "nodes" and isinstance(loc[1], int):
        nodes = raw.get("nodes") or []
        if loc[1] < len(nodes) and isinstance(nodes[loc[1]], dict):
            node_id = nodes[loc[1]].get("id")
            return _short(node_id, 60) if isinstance(node_id, str) else None
    return None


_TABLE_TAG = "(table)"  # models.nodes.TABLE_TAG: the union tag of a target without a connector


def _at(raw: Any, loc: list) -> Any:
    for part in loc:
        try:
            raw = raw[part]
        except (KeyError, IndexError, TypeError):
            return None
    return raw


def _is_connector_tag(err: dict, loc: list, raw: dict) -> bool:
    """A tag error of the source/target unions (on ``connector``), at a node whose ``kind`` is the last entry."""
    node = _at(raw, loc[:-1])
    return bool(loc) and isinstance(node, dict) and loc[-1] in ("source", "target") and node.get("kind") == loc[-1]


def _connector_problem(err: dict, loc: list, raw: dict) -> tuple[list, str]:
    """``nodes[0].connector``: a missing or unknown connector name, with the names this kind takes."""
    from connectors.registry import SINKS, SOURCES

    kind = loc[-1]
    names = ", ".join(repr(n) for n in (SOURCES if kind == "source" else SINKS))
    value = _at(raw, loc[:-1] + ["connector"])
    if value is None:
        return loc[:-1] + ["connector"], f"a {kind} needs 'connector', one of {names}"
    return loc[:-1] + ["connector"], f"unknown {kind} connector {_short(str(value))!r}; expected one of {names}"


_FIELD_NAMES: list[str] = []


def _close_field(word: str) -> str | None:
    """The IR field name an unknown field most likely meant (``upsert_key`` → ``upsertKey``, ``delimeter`` →
    ``delimiter``), from every field name of the document model; None when nothing is close."""
    import difflib

    if not _FIELD_NAMES:
        names: set[str] = set()

        def walk(o):
            if isinstance(o, dict):
                if isinstance(o.get("properties"), dict):
                    names.update(o["properties"])
                for v in o.values():
                    walk(v)
            elif isinstance(o, list):
                for v in o:
                    walk(v)
        walk(Pipeline.model_json_schema())
        _FIELD_NAMES.extend(sorted(names))
    folded = word.replace("_", "").replace("-", "").lower()
    same = [n for n in _FIELD_NAMES if n.lower() == folded]
    if same:
        return same[0]
    close = difflib.get_close_matches(word, _FIELD_NAMES, n=1, cutoff=0.75)
    return close[0] if close else None


def pydantic_issues(exc: ValidationError, raw: dict, prefix: tuple = ()) -> list[Issue]:
    issues = []
    for err in exc.errors(include_url=False):
        loc = _strip_tags(prefix + tuple(err["loc"]), raw)
        msg = err["msg"].removeprefix("Value error, ")
        if err["type"] == "extra_forbidden":
            guess = _close_field(str(loc[-1]))
            hint = f"did you mean '{guess}'? " if guess else "check the spelling "
            msg = f"unknown field '{loc[-1]}'; {hint}(allowed fields are in `flow-beam schema`)"
        elif err["type"] == "model_type":
            msg = "Input should be an object"
        elif err["type"] in ("union_tag_invalid", "union_tag_not_found") and _is_connector_tag(err, loc, raw):
            loc, msg = _connector_problem(err, loc, raw)
        elif err["type"] == "union_tag_invalid":
            msg = f"unknown {err['ctx']['discriminator'].strip(chr(39))} {err['ctx']['tag']!r}; " \
                  f"expected one of {err['ctx']['expected_tags']}"
        issues.append(Issue(json_path(loc), msg, _node_id(raw, loc), "model"))
    return issues


def load_document(source: str | Path | dict, params: dict[str, Any] | None = None) -> tuple[Pipeline, dict]:
    """Parse and model-validate a document; raises ValidationFailed with every model-layer issue."""
    loaded = load_partial(source, params)
    if loaded.errors:
        raise ValidationFailed(loaded.issues)
    return loaded.full, loaded.raw


@dataclass
class Loaded:
    """A document after the model layer, with what the later layers may still check when parts of it are broken.

    ``pipeline`` holds the nodes that passed their models (the first of each id), so graph, rules and types can
    still look at them; ``index`` maps its node positions to the document's (for JSON paths); ``invalid`` are the
    ids of nodes left out (a reference to one is not a dangling reference). ``full`` is the whole validated
    pipeline, only when the model layer found no error.
    """

    raw: dict
    issues: list[Issue]
    pipeline: Pipeline | None = None
    full: Pipeline | None = None
    index: list[int] = dc_field(default_factory=list)
    invalid: set[str] = dc_field(default_factory=set)
    duplicates: list[tuple[int, Any]] = dc_field(default_factory=list)  # (document position, node) left out

    @property
    def errors(self) -> list[Issue]:
        return [i for i in self.issues if i.severity == "error"]

    def in_document(self, issues: list[Issue]) -> list[Issue]:
        """Issues found on ``pipeline`` with their ``nodes[k]`` paths moved to the document's positions."""
        def move(m):
            k = int(m.group(1))
            return f"nodes[{self.index[k] if k < len(self.index) else k}]"
        if self.index == list(range(len(self.index))):
            return issues
        return [replace(i, path=_NODE_AT.sub(move, i.path, count=1)) for i in issues]


_NODE_AT = re.compile(r"^nodes\[(\d+)\]")


def single_file_paths(doc: dict) -> dict:
    """A ``local_fs`` source whose ``config.path`` names one existing file (not a folder) and that has no
    ``pattern`` reads exactly that file: validated as its folder with a pattern matching only its name (the
    document itself is not changed). Its atomicity folders are then relative to that folder, as for any path."""
    nodes = doc.get("nodes")
    if not isinstance(nodes, list):
        return doc
    out = None
    for i, item in enumerate(nodes):
        cfg = item.get("config") if isinstance(item, dict) else None
        if (not isinstance(cfg, dict) or item.get("kind") != "source" or item.get("connector") != "local_fs"
                or "pattern" in cfg or not isinstance(cfg.get("path"), str) or not os.path.isfile(cfg["path"])):
            continue
        folder, name = os.path.split(os.path.abspath(cfg["path"]))
        if out is None:
            out = {**doc, "nodes": list(nodes)}
        out["nodes"][i] = {**item, "config": {**cfg, "path": folder,
                                              "pattern": {"type": "regex", "value": re.escape(name)}}}
    return doc if out is None else out


def load_partial(source: str | Path | dict, params: dict[str, Any] | None = None) -> Loaded:
    """Every model-layer issue of a document, and the part of it the later layers can check (see :class:`Loaded`).
    Raises DocumentError / ValidationFailed only when nothing can be checked (unreadable, beyond the limits)."""
    raw = read_json(source)
    limits = check_limits(raw)
    if limits:
        raise ValidationFailed(limits)
    resolved, issues = resolve_params(raw, params)
    nodes = resolved.get("nodes")
    full = None
    try:
        full = Pipeline.model_validate(single_file_paths(resolved))
    except ValidationError as exc:
        issues += pydantic_issues(exc, resolved)
    loaded = Loaded(resolved, issues)
    if not isinstance(nodes, list):
        return loaded
    seen: dict[str, int] = {}
    kept: list = []
    for i, item in enumerate(nodes):
        node = full.nodes[i] if full is not None else _node_or_none(item)
        if node is None:
            if isinstance(item, dict) and isinstance(item.get("id"), str):
                loaded.invalid.add(item["id"])
            continue
        if node.id in seen:
            issues.append(Issue(f"nodes[{i}].id", f"duplicate node id '{node.id}' (first used at "
                                                  f"nodes[{seen[node.id]}])", node.id, "graph"))
            loaded.duplicates.append((i, node))
            continue
        seen[node.id] = i
        kept.append(node)
        loaded.index.append(i)
    if not loaded.errors and full is not None:
        loaded.full = full
    loaded.pipeline = _with_nodes(resolved, kept, full)
    return loaded


def _node_or_none(item):
    from ir_compiler.models.nodes import NODE_ADAPTER
    try:
        return NODE_ADAPTER.validate_python(item)
    except ValidationError:
        return None


def _with_nodes(resolved: dict, nodes: list, full: Pipeline | None) -> Pipeline | None:
    """A Pipeline of ``nodes`` with the document's valid top-level fields (the broken ones left at defaults)."""
    if not nodes:
        return None
    if full is not None:
        return full if list(full.nodes) == nodes else full.model_copy(update={"nodes": nodes})
    top = {k: v for k, v in resolved.items() if k != "nodes"}
    for _ in range(len(top) + 2):
        try:
            return Pipeline.model_validate({**top, "nodes": nodes})
        except ValidationError as exc:
            bad = {e["loc"][0] for e in exc.errors() if e["loc"]} - {"nodes"}
            if not bad:
                return None
            for key in bad:
                top.pop(key, None)
            if "id" in bad:
                top["id"] = "invalid-document"
    return None


def connector_config(node):
    """The typed config model of a source or target node (the node models hold it typed since load_document)."""
    return node.config
