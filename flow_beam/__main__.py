from flow_beam.cli import main

raise SystemExit(main())
