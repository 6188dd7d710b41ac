"""``python -m inspector.cli``: the command line, as the ``inspector`` script runs it."""

import sys

from inspector.cli import main

sys.exit(main())
