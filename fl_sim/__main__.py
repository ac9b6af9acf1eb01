"""``python -m fl_sim``: see :mod:`fl_sim.cli`."""

import sys

from .cli import main

sys.exit(main())
