"""Dependencies point one way, flow_beam → ir_compiler → connectors: a connector imports only the IR's leaf
modules (never the compiler's passes, the lowering or the runner), so the two packages do not import each other
in circles. Read from the source (every import, also the ones inside functions), and checked in a fresh
interpreter (what importing every connector module really loads)."""
import ast
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# the IR modules a connector may import: leaves that import nothing of the compiler (and no connector but the
# leaf connectors.runtime, which ir_compiler.ops.common re-exports)
ALLOWED = {
    "ir_compiler.errors",  # FlowError, ConnectorError, ...
    "ir_compiler.types",  # Schema, column types
    "ir_compiler.faults",  # crash-test fault points
    "ir_compiler.secrets",  # scrubbing secrets from texts and tables
    "ir_compiler.hooks",  # warehouses: the SQL safety checks of hooks and table queries
    "ir_compiler.ops.cast",  # warehouses: the IR's value casts (the stored high-water mark of a table)
}
# what the allowed leaves may pull in themselves (ir_compiler.ops.cast is part of the op/expression library)
LEAF_CLOSURE = ("ir_compiler.ops", "ir_compiler.expressions", "ir_compiler.types")


def _modules(package: str):
    for folder, _, files in os.walk(os.path.join(ROOT, package)):
        for name in files:
            if name.endswith(".py"):
                path = os.path.join(folder, name)
                rel = os.path.relpath(path, ROOT)[:-3].replace(os.sep, ".")
                yield rel.removesuffix(".__init__"), path


def _imports(path: str) -> list[tuple[int, str]]:
    """(line, module) of every import in a file, wherever it is (top level or inside a function)."""
    tree = ast.parse(open(path, encoding="utf-8").read(), path)
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out += [(node.lineno, a.name) for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            out.append((node.lineno, node.module))
            out += [(node.lineno, f"{node.module}.{a.name}") for a in node.names
                    if os.path.exists(os.path.join(ROOT, *f"{node.module}.{a.name}".split(".")) + ".py")]
    return out


def _ours(module: str) -> bool:
    return module.split(".")[0] in ("ir_compiler", "flow_beam")


def test_connectors_import_only_the_ir_leaf_modules():
    bad = [f"{os.path.relpath(path, ROOT)}:{line} imports {module}"
           for name, path in _modules("connectors") for line, module in _imports(path)
           if _ours(module) and module not in ALLOWED and module != "ir_compiler"]
    assert not bad, "connectors may import only " + ", ".join(sorted(ALLOWED)) + ":\n" + "\n".join(bad)


def test_the_allowed_leaves_import_nothing_of_the_compiler_or_the_runner():
    """The leaves (and what they import) stay leaves: no compiler pass, model, lowering or runner module, so a
    connector never reaches ``ir_compiler.lower``/``loader``/``check``/``propagate`` or ``flow_beam`` through one."""
    paths = dict(_modules("ir_compiler")) | dict(_modules("connectors"))
    seen, todo, bad = set(), sorted(ALLOWED), []
    while todo:
        mod = todo.pop()
        if mod in seen or mod not in paths:
            continue
        seen.add(mod)
        for line, imported in _imports(paths[mod]):
            if not _ours(imported) or imported == "ir_compiler":
                continue  # connectors modules import only these leaves (the test above): no way back
            if imported in ALLOWED or imported.startswith(LEAF_CLOSURE):
                todo.append(imported)
            else:
                bad.append(f"{mod}:{line} imports {imported}")
    assert not bad, "\n".join(bad)


def test_importing_every_connector_loads_no_compiler_module():
    """In a fresh interpreter: importing all of connectors/ (with its registry) loads only IR leaves."""
    names = sorted(n for n, _ in _modules("connectors"))
    code = ("import importlib, sys\n"
            f"for n in {names!r}:\n    importlib.import_module(n)\n"
            "print('\\n'.join(sorted(m for m in sys.modules if m.split('.')[0] in ('ir_compiler', 'flow_beam'))))")
    env = {**os.environ, "PYTHONPATH": ROOT}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, env=env,
                         timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    loaded = set(out.stdout.split())
    assert loaded <= ALLOWED | {"ir_compiler"}, sorted(loaded - ALLOWED - {"ir_compiler"})


def test_the_shared_stream_reader_is_covered_and_the_compiler_hands_it_its_targets():
    """connectors/streams.py (the one unbounded-reader core of every stream connector) is checked by the rules
    above and imports nothing of the compiler; the stream connectors reach it, never ir_compiler.lower (the targets'
    side reaches the readers through the StreamPlan it hands them)."""
    modules = dict(_modules("connectors"))
    assert "connectors.streams" in modules
    assert not [m for _, m in _imports(modules["connectors.streams"]) if _ours(m) and m not in ALLOWED]
    readers = [n for n in modules if n.split(".")[1:2] and n.split(".")[1] in ("kafka", "pubsub", "kinesis", "pulsar")]
    uses_core = {n for n in readers if any(m.startswith("connectors.streams") for _, m in _imports(modules[n]))}
    assert {"connectors.kafka.stream", "connectors.pubsub.reader", "connectors.kinesis.reader",
            "connectors.pulsar.reader"} <= uses_core
    assert "connectors.logstream" not in modules  # folded into connectors.streams: one reader core, no copies
