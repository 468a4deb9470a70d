"""The `maskwatch` command line: the composition root (see docs/architecture.md).

Everything here may import the apps; nothing in the core or the apps imports this package.
"""

from maskwatch.cli.main import build_parser, main

__all__ = ["build_parser", "main"]
