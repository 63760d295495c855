"""Sources, sinks and warehouses. Imports only the leaf modules ir_compiler.types / ir_compiler.errors."""
