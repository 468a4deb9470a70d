"""`python -m maskwatch` runs the command line, as the `maskwatch` script does."""

from maskwatch.cli import main

raise SystemExit(main())
