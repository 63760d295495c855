"""The run folder's storage (moved to :mod:`connectors.runfs`, which connectors and warehouses share)."""
from connectors.runfs import is_local, join, list_names, read_bytes, write_bytes  # noqa: F401
