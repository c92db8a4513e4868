"""``python -m fnn`` runs the command line (see `fnn.cli`)."""

import sys

from fnn.cli import main

sys.exit(main())
