from flow_beam.cli import entry

entry()
