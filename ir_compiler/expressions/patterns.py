"""Pattern matching and JSON access: LIKE/ILIKE (a linear matcher, no backtracking), PostgreSQL regular expressions
(``~ ~* !~ !~*``, regexp_replace/regexp_match/regexp_like) and ``->``/``->>`` on JSON text.

PostgreSQL's regex flavour (ARE) is translated to the ``regex`` module: the constructs both engines read the
same way are accepted, the rest is a validation error naming the construct. Matches are POSIX leftmost-longest,
as PostgreSQL's are; non-greedy quantifiers are accepted only where the match text does not matter (``~``).
"""
from __future__ import annotations

import decimal
import functools
import json
import re

import pyarrow as pa
import pyarrow.compute as pc
import regex
from sqlglot import exp

from ir_compiler.expressions import pgvalues as pv
from ir_compiler.expressions.nodes import Node, arrow_of, const, elementwise, row_of, strict
from ir_compiler.types import BOOL, NULL, STRING, array_of


class PatternError(ValueError):
    pass


@functools.lru_cache(maxsize=4096)
def _simple_case(ch: str, upper: bool) -> str:
    import pyarrow as pa
    import pyarrow.compute as pc
    if upper and ch == "ß":  # Arrow (utf8proc) gives 'ẞ'; PostgreSQL (towupper) keeps 'ß'
        return ch
    return (pc.utf8_upper if upper else pc.utf8_lower)(pa.scalar(ch, pa.string())).as_py()


def simple_lower(s: str) -> str:
    """Per-character simple case mapping, exactly Arrow's utf8_lower (the batch path) and PostgreSQL's lower():
    'İ' → 'i', 'ΣΑΣ' → 'σασ' (Python's str.lower applies the final-sigma rule and maps 'İ' to two characters)."""
    if s.isascii():
        return s.lower()
    return "".join(_simple_case(ch, False) for ch in s)


def simple_upper(s: str) -> str:
    """Per-character upper case, as Arrow's utf8_upper and PostgreSQL's upper() ('ß' stays 'ß')."""
    if s.isascii():
        return s.upper()
    return "".join(_simple_case(ch, True) for ch in s)


# ---- LIKE ----------------------------------------------------------------------------------------------
class LikeMatcher:
    """A LIKE pattern split at ``%`` into fixed-length segments (``_`` = any one character): the first is anchored
    at the start, the last at the end, each middle one at its leftmost place. Time is linear in the text for each
    segment, whatever the number of wildcards (a backtracking regex is exponential on ``%a%a%a…b``)."""

    def __init__(self, pattern: str, escape: str | None = "\\"):
        segs, cur, i = [], [], 0
        while i < len(pattern):
            ch = pattern[i]
            if escape and ch == escape:
                if i + 1 >= len(pattern):
                    raise PatternError("LIKE pattern must not end with escape character")
                cur.append(pattern[i + 1])
                i += 2
                continue
            if ch == "%":
                segs.append(cur)
                cur = []
            else:
                cur.append(None if ch == "_" else ch)
            i += 1
        segs.append(cur)
        self.segs = segs
        self.rx = [re.compile("".join("." if c is None else re.escape(c) for c in s), re.DOTALL) for s in segs]

    @staticmethod
    def _at(s: str, pos: int, seg) -> bool:
        if pos < 0 or pos + len(seg) > len(s):
            return False
        return all(c is None or s[pos + k] == c for k, c in enumerate(seg))

    def __call__(self, s: str) -> bool:
        segs = self.segs
        if len(segs) == 1:
            return len(s) == len(segs[0]) and self._at(s, 0, segs[0])
        first, last = segs[0], segs[-1]
        if len(s) < len(first) + len(last) or not self._at(s, 0, first) or not self._at(s, len(s) - len(last),
                                                                                         last):
            return False
        pos, end = len(first), len(s) - len(last)
        for seg, rx in zip(segs[1:-1], self.rx[1:-1]):
            if not seg:
                continue
            m = rx.search(s, pos, end)
            if m is None:
                return False
            pos = m.end()
        return True

    def arrow_pattern(self) -> str:
        """The same pattern written with backslash escapes (what Arrow's match_like reads)."""
        out = []
        for i, seg in enumerate(self.segs):
            if i:
                out.append("%")
            out += ["_" if c is None else ("\\" + c if c in "%_\\" else c) for c in seg]
        return "".join(out)


def _like(c, node) -> Node:
    escape = "\\"
    if isinstance(node, exp.Escape):
        esc = c.compile(node.expression)
        if not esc.constant or esc.type != STRING or len(esc.row({}) or "") > 1:
            c.fail("ESCAPE takes one constant character", node)
        escape = esc.row({}) or None
        node = node.this
    value, pat = c.compile(node.this), c.compile(node.expression)
    if value.type == NULL:
        value = const(None, STRING)
    if value.type != STRING or not pat.constant or pat.type not in (STRING, NULL):
        c.fail("LIKE compares a text value with a constant text pattern", node)
    pattern = pat.row({})
    if pattern is None:
        return const(None, BOOL)
    ignore = isinstance(node, exp.ILike)
    try:
        match = LikeMatcher(simple_lower(pattern) if ignore else pattern, escape)
    except PatternError as exc:
        c.fail(str(exc), node)
    apat = match.arrow_pattern()
    if ignore:
        py = strict(lambda v: match(simple_lower(v)))
        arrow = arrow_of(lambda x: pc.match_like(pc.utf8_lower(x), pattern=apat), value)
    else:
        py = strict(match)
        arrow = arrow_of(lambda x: pc.match_like(x, pattern=apat), value)
    out = Node(BOOL, row_of(py, value), arrow)
    if node.args.get("negate"):
        from ir_compiler.expressions.compile import negate
        return negate(out)
    return out


def _similar(c, node):
    c.fail("SIMILAR TO is not supported; use LIKE or a regular expression (~)", node)


# ---- regular expressions -------------------------------------------------------------------------------
_CLASSES = {"alpha", "digit", "alnum", "upper", "lower", "space", "punct", "xdigit", "blank", "cntrl", "graph",
            "print", "word"}
_SIMPLE_ESCAPES = {"n": "\\n", "t": "\\t", "r": "\\r", "f": "\\f", "v": "\\v", "e": "\\x1b", "a": "\\x07",
                   "b": "\\x08", "B": "\\\\", "d": "[0-9]", "D": "[^0-9]", "s": "\\s", "S": "\\S", "w": "\\w",
                   "W": "\\W", "A": "\\A", "Z": "\\Z", "y": "\\b", "Y": "\\B", "m": "\\b(?=\\w)",
                   "M": "\\b(?<=\\w)"}


def translate_regex(pattern: str, *, extracting: bool) -> str:
    """PostgreSQL ARE → ``regex`` syntax, or PatternError naming what is not supported."""
    out, i, n = [], 0, len(pattern)
    flags = ""
    m = re.match(r"\(\?([a-z]+)\)", pattern)
    if m:
        for f in m.group(1):
            if f not in "ic":
                raise PatternError(f"embedded regex option '{f}' is not supported (only i and c)")
        if "i" in m.group(1) and "c" not in m.group(1)[m.group(1).index("i"):]:
            flags = "i"
        i = m.end()
    if pattern.startswith("***"):
        raise PatternError("regex directors (***=, ***:) are not supported")
    while i < n:
        ch = pattern[i]
        if ch == "\\":
            if i + 1 >= n:
                raise PatternError("invalid escape \\ at the end of the regular expression")
            nx = pattern[i + 1]
            if nx in "123456789":
                out.append("\\" + nx)
            elif nx in _SIMPLE_ESCAPES:
                out.append(_SIMPLE_ESCAPES[nx])
            elif nx == "u" and re.fullmatch(r"[0-9a-fA-F]{4}", pattern[i + 2:i + 6]):
                out.append("\\u" + pattern[i + 2:i + 6])
                i += 4
            elif not nx.isalnum():
                out.append("\\" + nx)
            else:
                raise PatternError(f"regex escape \\{nx} is not supported")
            i += 2
            continue
        if ch == "[":
            j, part = _bracket(pattern, i)
            out.append(part)
            i = j
            continue
        if ch == "(" and pattern.startswith("(?", i):
            m = re.match(r"\(\?(:|=|!|<=|<!)", pattern[i:])
            if not m:
                raise PatternError(f"regex group syntax {pattern[i:i + 4]!r} is not supported")
            out.append(m.group(0))
            i += len(m.group(0))
            continue
        if ch in "*+?}" and i + 1 < n and pattern[i + 1] == "?":
            if extracting:
                raise PatternError("non-greedy quantifiers (*? +? ??) are not supported where the matched text is "
                                   "used (PostgreSQL's rules for mixed greediness differ from other engines)")
            out.append(ch + "?")
            i += 2
            continue
        if ch == "{":
            m = re.match(r"\{(\d+)(,(\d*))?\}", pattern[i:])
            if not m:
                raise PatternError("a { in a regular expression must be a bound like {2} or {1,3}; write \\{")
            out.append(m.group(0))
            i += len(m.group(0))
            continue
        if ch == "$":
            out.append("\\Z")
        else:
            out.append(ch)
        i += 1
    return ("(?i)" if flags else "") + "".join(out)


def _bracket(p: str, i: int):
    """A bracket expression starting at p[i] == '['; returns (end index, translated text)."""
    j, out = i + 1, ["["]
    if j < len(p) and p[j] == "^":
        out.append("^")
        j += 1
    first = True
    while j < len(p):
        ch = p[j]
        if ch == "]" and not first:
            out.append("]")
            return j + 1, "".join(out)
        first = False
        if ch == "[" and j + 1 < len(p) and p[j + 1] in ":.=":
            kind = p[j + 1]
            end = p.find(kind + "]", j + 2)
            if end < 0:
                raise PatternError("unterminated [: :] in a bracket expression")
            name = p[j + 2:end]
            if kind != ":" or name not in _CLASSES:
                raise PatternError(f"bracket element [{kind}{name}{kind}] is not supported")
            out.append(f"[:{name}:]")
            j = end + 2
            continue
        if ch == "\\" and j + 1 < len(p):
            nx = p[j + 1]
            if nx == "d":
                out.append("0-9")
            elif nx in "swnt":
                out.append("\\" + nx)
            elif not nx.isalnum():
                out.append("\\" + nx)
            else:
                raise PatternError(f"escape \\{nx} inside [...] is not supported")
            j += 2
            continue
        out.append("\\" + ch if ch in "[&~|\\" else ch)
        j += 1
    raise PatternError("brackets [] not balanced in the regular expression")


def compile_regex(c, pattern: str, flags: str, src, *, extracting: bool):
    for f in flags:
        if f not in "icg":
            c.fail(f"regex flag '{f}' is not supported (use i, c and, for regexp_replace, g)", src)
    try:
        text = translate_regex(pattern, extracting=extracting)
        ignore = "i" in flags and "c" not in flags[flags.rindex("i"):]
        return regex.compile(text, regex.DOTALL | regex.POSIX | regex.V0 | (regex.IGNORECASE if ignore else 0))
    except PatternError as exc:
        c.fail(f"{exc} in regular expression {pattern!r}", src)
    except regex.error as exc:
        c.fail(f"invalid regular expression {pattern!r}: {exc}", src)


def _const_text(c, src, what):
    n = c.compile(src)
    if not n.constant or n.type not in (STRING, NULL):
        c.fail(f"{what} must be a constant text", src)
    return n.row({})


def _text_arg(c, src) -> Node:
    n = c.compile(src)
    if n.type == NULL:
        return const(None, STRING)
    if n.type != STRING:
        c.fail(f"`{src.sql(dialect='postgres')}` is {n.type}, but a regular expression needs text; add a cast", src)
    return n


def regex_match_node(c, value_src, pattern_src, flags: str, src) -> Node:
    value = _text_arg(c, value_src)
    pattern = _const_text(c, pattern_src, "the regular expression")
    if pattern is None:
        return const(None, BOOL)
    rx = compile_regex(c, pattern, flags, src, extracting=False)
    return elementwise(lambda v: rx.search(v) is not None, BOOL, value)


def _regexp_like_op(c, node) -> Node:
    return regex_match_node(c, node.this, node.expression, "i" if isinstance(node, exp.RegexpILike) else "", node)


def _replacement(rep: str):
    """PostgreSQL replacement text: \\1..\\9 groups, \\& the whole match, \\\\ a backslash."""
    parts, i = [], 0
    while i < len(rep):
        ch = rep[i]
        if ch == "\\" and i + 1 < len(rep):
            nx = rep[i + 1]
            if nx.isdigit() and nx != "0":
                parts.append(int(nx))
            elif nx == "&":
                parts.append(0)
            elif nx == "\\":
                parts.append("\\")
            else:
                parts.append("\\" + nx)
            i += 2
            continue
        parts.append(ch)
        i += 1

    def expand(m):
        out = []
        for p in parts:
            if isinstance(p, int):
                if p <= (m.re.groups if p else 0):
                    out.append(m.group(p) or "")
            else:
                out.append(p)
        return "".join(out)
    return expand


def regexp_replace(c, args, src) -> Node:
    if len(args) not in (3, 4):
        c.fail("regexp_replace takes (text, pattern, replacement [, flags])", src)
    value = _text_arg(c, args[0])
    pattern = _const_text(c, args[1], "the regular expression")
    rep = c.compile(args[2])
    if rep.type not in (STRING, NULL):
        c.fail("the replacement must be text", args[2])
    flags = _const_text(c, args[3], "the flags") if len(args) == 4 else ""
    if pattern is None or flags is None:
        return const(None, STRING)
    rx = compile_regex(c, pattern, flags, src, extracting=True)
    count = 0 if "g" in flags else 1
    if rep.constant:
        r = rep.row({})
        if r is None:
            return const(None, STRING)
        expand = _replacement(r)
        return elementwise(lambda v: rx.sub(expand, v, count=count), STRING, value)
    return elementwise(lambda v, r: rx.sub(_replacement(r), v, count=count), STRING, value, rep)


def regexp_match(c, args, src) -> Node:
    if len(args) not in (2, 3):
        c.fail("regexp_match takes (text, pattern [, flags])", src)
    value = _text_arg(c, args[0])
    pattern = _const_text(c, args[1], "the regular expression")
    flags = _const_text(c, args[2], "the flags") if len(args) == 3 else ""
    if "g" in (flags or ""):
        c.fail("regexp_match does not support the 'g' flag (PostgreSQL neither; use regexp_replace)", src)
    out_t = array_of(STRING)
    if pattern is None or flags is None:
        return const(None, out_t)
    rx = compile_regex(c, pattern, flags, src, extracting=True)

    def py(v):
        m = rx.search(v)
        if m is None:
            return None
        return list(m.groups()) if rx.groups else [m.group(0)]
    return elementwise(py, out_t, value)


def regexp_like(c, args, src) -> Node:
    if len(args) not in (2, 3):
        c.fail("regexp_like takes (text, pattern [, flags])", src)
    flags = _const_text(c, args[2], "the flags") if len(args) == 3 else ""
    if "g" in (flags or ""):
        c.fail("regexp_like does not support the 'g' flag", src)
    return regex_match_node(c, args[0], args[1], flags or "", src)


# ---- JSON ----------------------------------------------------------------------------------------------
def _no_constant(name):
    raise ValueError(f"invalid input syntax for type json: {name}")


def json_load(text: str):
    try:
        return json.loads(text, parse_float=decimal.Decimal, parse_constant=_no_constant)
    except json.JSONDecodeError as exc:
        raise ValueError(f"invalid input syntax for type json: {exc.msg}") from None


def _jkey(k: str):
    b = k.encode()
    return len(b), b


def json_text(v) -> str:
    """jsonb's text form: keys ordered by length then bytes, ``", "`` and ``": "`` separators."""
    if v is None:
        return "null"
    if v is True:
        return "true"
    if v is False:
        return "false"
    if isinstance(v, (int, decimal.Decimal)):
        return pv.decimal_text(decimal.Decimal(v))
    if isinstance(v, str):
        return json.dumps(v, ensure_ascii=False)
    if isinstance(v, list):
        return "[" + ", ".join(json_text(x) for x in v) + "]"
    return "{" + ", ".join(f"{json.dumps(k, ensure_ascii=False)}: {json_text(v[k])}"
                           for k in sorted(v, key=_jkey)) + "}"


_MISSING = object()


def _step(doc, key):
    if isinstance(key, int):
        if not isinstance(doc, (list, dict)):  # a jsonb scalar is a one-element array to subscripts
            doc = [doc]
        if not isinstance(doc, list):
            return _MISSING
        idx = key + len(doc) if key < 0 else key
        return doc[idx] if 0 <= idx < len(doc) else _MISSING
    if not isinstance(doc, dict):
        return _MISSING
    return doc.get(key, _MISSING)


def _json_access(c, node) -> Node:
    scalar = isinstance(node, exp.JSONExtractScalar)
    inner = c.compile(node.this)
    if inner.type not in (STRING, NULL):
        c.fail(f"-> and ->> read JSON text; `{node.this.sql(dialect='postgres')}` is {inner.type}", node)
    path = node.expression
    if not isinstance(path, exp.JSONPath):  # js -> (-1), js ->> col: an expression giving the key or index
        key_node = c.compile(path)
        if key_node.type.name not in ("string", "int", "null"):
            c.fail("-> and ->> take a text key or an integer index", node)

        def py2(text, key):
            v = _step(json_load(text), key)
            if v is _MISSING or (scalar and v is None):
                return None
            return v if scalar and isinstance(v, str) else json_text(v)
        return elementwise(py2, STRING, inner if inner.type == STRING else const(None, STRING), key_node)
    keys = []
    for part in (path.expressions if isinstance(path, exp.JSONPath) else []):
        if isinstance(part, exp.JSONPathRoot):
            continue
        if isinstance(part, exp.JSONPathKey):
            keys.append(str(part.this))
        elif isinstance(part, exp.JSONPathSubscript) and isinstance(part.this, int):
            keys.append(part.this)
        else:
            c.fail("-> and ->> take a constant key (text) or index (integer)", node)
    if len(keys) != 1:
        c.fail("-> and ->> take one constant key (text) or index (integer)", node)
    key = keys[0]

    def py(text):
        v = _step(json_load(text), key)
        if v is _MISSING or (scalar and v is None):
            return None
        if scalar and isinstance(v, str):
            return v
        return json_text(v)
    return elementwise(py, STRING, inner if inner.type == STRING else const(None, STRING))


HANDLERS = {
    exp.Like: _like, exp.ILike: _like, exp.Escape: _like, exp.SimilarTo: _similar,
    exp.RegexpLike: _regexp_like_op, exp.RegexpILike: _regexp_like_op,
    exp.JSONExtract: _json_access, exp.JSONExtractScalar: _json_access,
}
