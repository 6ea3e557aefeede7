"""``python -m rust_tcp``: see ``rust_tcp.cli``."""

import sys

from .cli import main

sys.exit(main())
