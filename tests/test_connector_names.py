"""The compiler's lowering, the plan and the runner name no connector (issue #13 §1): they reach every connector
through connectors.registry and its capabilities. Read from the source code itself: every identifier, attribute,
import and string (f-strings too), ignoring comments and docstrings."""
import ast
import glob
import io
import os
import re
import tokenize

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FILES = sorted(glob.glob(os.path.join(ROOT, "ir_compiler", "lower", "*.py"))) + [
    os.path.join(ROOT, "flow_beam", "running.py"), os.path.join(ROOT, "ir_compiler", "plan.py")]
NAMES = re.compile(r"kafka|pubsub|kinesis|pulsar|local_fs", re.IGNORECASE)


def _docstring_lines(tree) -> set[int]:
    """The lines of every docstring (module, class, function)."""
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)) and node.body:
            first = node.body[0]
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant) \
                    and isinstance(first.value.value, str):
                out |= set(range(first.lineno, first.end_lineno + 1))
    return out


def connector_names(path: str) -> list[str]:
    """``file:line: token`` for every code token (not a comment, not a docstring) naming a connector."""
    text = open(path, encoding="utf-8").read()
    docs = _docstring_lines(ast.parse(text, path))
    hits = []
    for tok in tokenize.generate_tokens(io.StringIO(text).readline):
        if tok.type in (tokenize.COMMENT, tokenize.NL, tokenize.NEWLINE):
            continue
        if tok.type == tokenize.STRING and tok.start[0] in docs:
            continue
        if NAMES.search(tok.string):
            hits.append(f"{os.path.relpath(path, ROOT)}:{tok.start[0]}: {tok.string.strip()[:80]}")
    return hits


def test_lowering_plan_and_runner_name_no_connector():
    assert FILES and all(os.path.exists(f) for f in FILES)
    hits = [h for path in FILES for h in connector_names(path)]
    assert not hits, "use connectors.registry and capabilities instead of connector names:\n" + "\n".join(hits)


def test_the_check_sees_code_and_skips_comments_and_docstrings(tmp_path):
    sample = tmp_path / "sample.py"
    sample.write_text('"""Reads kafka_consumer topics."""\n'
                      'def f(node):\n'
                      '    """pubsub too."""\n'
                      '    x = 1  # kinesis in a comment\n'
                      '    if node.connector == "local_fs":\n'
                      '        return f"{node.id}-pulsar"\n'
                      '    from connectors.kafka import client\n')
    lines = [int(h.split(":")[1]) for h in connector_names(str(sample))]
    assert sorted(set(lines)) == [5, 6, 7]  # the string, the f-string, the import; not the docstrings or comment
