"""Sources, sinks and warehouses. The front door every connector implements is :mod:`connectors.base`; THE list of
connectors is :mod:`connectors.registry`. Connectors import only the IR's leaf modules (``tests/test_connector_imports.py``)."""
