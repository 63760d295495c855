"""SQL expressions (PostgreSQL flavour): parsed by sqlglot into an AST, type-checked against a schema, and
compiled to two back-ends that give identical results, NULLs included:

- ``eval_row(row)``: a tree of Python closures, one per AST node (no source text, no eval/exec);
- ``eval_arrow(table)``: vectorised pyarrow.compute kernels over a whole batch.

Documented choices: division or modulo by zero gives NULL (PostgreSQL raises); comparison rules follow SQL
three-valued logic; round() on floats rounds half to even (like PostgreSQL's double precision), on decimals
half away from zero.
"""
__all__ = ["CastError", "CompiledExpression", "compile_expression", "referenced_columns"]


def __getattr__(name: str):
    """The compiler (and sqlglot, ~0.1 s to import) loads on first use: a document without expressions never
    imports it. Importers inside flow-beam import it where they use it, for the same reason."""
    if name in __all__:
        from ir_compiler.expressions import compile as _compile

        return getattr(_compile, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
