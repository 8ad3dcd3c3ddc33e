"""Allow `python -m nullmx_milter`."""

from nullmx_milter.cli import main

raise SystemExit(main())
