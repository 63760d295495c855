"""SQL expressions (PostgreSQL flavour): parsed by sqlglot into an AST, type-checked against a schema, and
compiled to two back-ends that give identical results, NULLs included:

- ``eval_row(row)``: a tree of Python closures, one per AST node (no source text, no eval/exec);
- ``eval_arrow(table)``: vectorised pyarrow.compute kernels over a whole batch.

Documented choices: division or modulo by zero gives NULL (PostgreSQL raises); comparison rules follow SQL
three-valued logic; round() on floats rounds half to even (like PostgreSQL's double precision), on decimals
half away from zero.
"""
from ir_compiler.expressions.compile import CastError, CompiledExpression, compile_expression, referenced_columns

__all__ = ["CastError", "CompiledExpression", "compile_expression", "referenced_columns"]
