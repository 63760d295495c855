"""IR compiler: models, validation, schema propagation, expressions, IR -> Beam."""
