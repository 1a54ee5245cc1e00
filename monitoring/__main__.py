"""``python -m monitoring``: see monitoring/cli.py."""

from __future__ import annotations

import sys

from monitoring.cli import main

if __name__ == "__main__":
    sys.exit(main())
