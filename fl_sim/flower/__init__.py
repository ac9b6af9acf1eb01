"""fl_sim's algorithms on Flower (optional: ``pip install -e ".[flower]"``).

The same run as :func:`fl_sim.run`, on Flower's Message API: a ServerApp driving
:class:`~fl_sim.flower.strategy.FlSimStrategy` and a ClientApp that trains one client
at a time, both built from fl_sim's data, model, local trainer and algorithm object,
with :mod:`lowrank` payloads travelling as their arrays. Two ways to run it
(``python -m fl_sim.flower --help``):

- ``simulate``: Flower's simulation engine (Ray), :func:`fl_sim.flower.simulation.simulate`;
- ``deploy --supernodes N``: one SuperLink and N SuperNodes as local processes,
  :func:`fl_sim.flower.deployment.deploy`.

Modules: :mod:`~fl_sim.flower.run_config` (SimConfig <-> Flower run config),
:mod:`~fl_sim.flower.codec` (payloads <-> arrays, message sizes),
:mod:`~fl_sim.flower.local` (each side of a round, no Flower import),
:mod:`~fl_sim.flower.protocols` (every algorithm's round as send, client update and
aggregate, catch-up of stateful clients; no Flower import),
:mod:`~fl_sim.flower.client_app`, :mod:`~fl_sim.flower.strategy`,
:mod:`~fl_sim.flower.server_app`, :mod:`~fl_sim.flower.ledger` (wire bytes per message).
See docs/flower.md.
"""

from __future__ import annotations

import importlib.util

__all__ = ["FLOWER_MISSING", "flower_available"]

FLOWER_MISSING = ("fl_sim.flower: needs Flower; install the extra with "
                  "pip install -e '.[flower]'")


def flower_available() -> bool:
    """Whether ``flwr`` can be imported here."""
    return importlib.util.find_spec("flwr") is not None
