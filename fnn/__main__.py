"""``python -m fnn`` runs the command line (see :mod:`fnn.cli`)."""

import sys

from fnn.cli import main

sys.exit(main())
