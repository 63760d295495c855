"""FLEX_TEMPLATE_PYTHON_PY_FILE: hands Dataflow's arguments to the flow-beam launcher."""
from flow_beam.flex import main

raise SystemExit(main())
