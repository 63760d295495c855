"""flow-beam: a typed JSON pipeline IR compiled to Apache Beam."""
__version__ = "0.1.0"
