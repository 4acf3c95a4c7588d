"""``python -m loopgate`` is the ``loopgate`` command."""

import sys

from loopgate.cli import main

sys.exit(main())
