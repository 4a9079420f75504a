"""``python -m etm`` runs the command line (also the entry point torchrun uses)."""

from etm.cli import main

raise SystemExit(main())
