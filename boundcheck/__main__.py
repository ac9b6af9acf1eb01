"""``python -m boundcheck``: errors print one line (exit 2 for bad input, 1 for a failed
run, 130 when interrupted); ``--debug`` adds the traceback (``fl_sim/cli_errors.py``)."""

import sys

from fl_sim.cli_errors import run_cli

from .cli import main

sys.exit(run_cli(main))
