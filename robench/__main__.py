"""``python -m robench`` runs the command line."""

import sys

from robench.cli import main

sys.exit(main())
