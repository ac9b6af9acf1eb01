"""``simulate``: a config on Flower's simulation engine (Ray backend), in this process.

One virtual SuperNode per fl_sim client (node config ``partition-id = k``); the
ServerApp and ClientApp are bound to the config (:func:`make_server_app`,
:func:`make_client_app`), since ``flwr.simulation.run_simulation`` takes no run config;
:func:`simulate_many` runs several configs in one start of the engine.

``run_simulation`` is deprecated since Flower 1.42 in favour of ``flwr run``, which
loads the apps by module path into processes of a SuperLink in simulation mode (and,
for the default ``local`` connection, starts one detached on fixed ports); it is kept
here because it is the one call that runs in-process app objects (docs/flower.md).
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Sequence

from ..config import SimConfig
from ..federated_data import data_from_config
from ..history import History
from .client_app import make_client_app
from .ledger import FlowerLedger
from .protocols import check_runnable
from .run_config import FlowerOptions
from .server_app import make_server_app, output_paths, read_outputs

__all__ = ["simulate", "simulate_many"]

logger = logging.getLogger("flwr")


def _start_ray(attempts: int = 3) -> None:
    """Start Ray as Flower's Ray backend would, retrying a start-up that timed out.

    Ray gives its raylet a fixed 30 s to register, which an overloaded machine can
    miss; Flower's backend then finds Ray running and uses it (and shuts it down).
    """
    import ray

    if ray.is_initialized():
        return
    pythonpath = os.pathsep.join([*sys.path, *filter(None, [os.environ.get("PYTHONPATH")])])
    os.environ["PYTHONPATH"] = pythonpath
    for attempt in range(1, attempts + 1):
        try:
            ray.init(runtime_env={"env_vars": {"PYTHONPATH": pythonpath}},
                     include_dashboard=False)
            return
        except Exception as exc:  # Ray raises a bare Exception on a start-up time-out
            ray.shutdown()
            if "timed out during startup" not in str(exc) or attempt == attempts:
                raise RuntimeError(f"Ray: did not start after {attempt} tries: "
                                   f"{str(exc).splitlines()[0]}") from exc
            logger.warning("Ray: start-up timed out (try %d of %d), retrying", attempt,
                           attempts)


def simulate(config: SimConfig, options: FlowerOptions | None = None, *,
             num_cpus_per_client: float = 1.0, verbose: bool = False
             ) -> tuple[History, FlowerLedger]:
    """Run ``config`` on Flower's simulation engine.

    Parameters
    ----------
    config : SimConfig
        The run; ``output_dir`` receives ``<algorithm>.history.json`` and
        ``<algorithm>.flower.json``.
    options : FlowerOptions, optional
        Round timeout and minimum replies.
    num_cpus_per_client : float
        Ray resources of one ClientApp (how many run at once: CPUs / this).
    verbose : bool
        Flower's DEBUG logs.

    Returns
    -------
    (History, FlowerLedger)
        Also written to ``output_dir``; a run that stopped early raises
        ``RuntimeError`` with the ledger's one-line error.
    """
    return simulate_many([config], options, num_cpus_per_client=num_cpus_per_client,
                         verbose=verbose)[0]


def simulate_many(configs: Sequence[SimConfig], options: FlowerOptions | None = None, *,
                  num_cpus_per_client: float = 1.0, verbose: bool = False
                  ) -> list[tuple[History, FlowerLedger]]:
    """Run several configs, one after the other, in one start of the simulation engine.

    Ray and its actors start once (tens of seconds on a small machine) for all runs;
    each run is :func:`simulate`'s, on as many virtual SuperNodes as the largest run has
    clients. Each config needs its own output files (``output_dir``, ``algorithm``).

    Returns
    -------
    list of (History, FlowerLedger)
        One per config, in order; the first run that stopped early raises
        ``RuntimeError`` with its ledger's one-line error.
    """
    # Flower >= 1.42 marks run_simulation deprecated in favour of `flwr run`, which loads
    # its apps by module path in other processes; run_simulation is the one call that
    # takes in-process ServerApp/ClientApp objects (bound configs, several runs, notebooks).
    # tests/flower/test_flower_engines.py pins the signature used here.
    from flwr.simulation import run_simulation

    os.environ.setdefault("RAY_DEDUP_LOGS", "0")
    paths = []
    for config in configs:
        check_runnable(config)  # before any process starts
        paths.append(output_paths(config))
    if len(set(paths)) != len(paths):
        raise ValueError("output_dir: two runs would write the same files; give each run "
                         "its own output_dir or algorithm")
    for path in (p for pair in paths for p in pair):
        path.unlink(missing_ok=True)
    num_nodes = max(data_from_config(config).num_clients for config in configs)
    tagged = {str(i): config for i, config in enumerate(configs)}
    import ray

    try:
        _start_ray()
        run_simulation(server_app=make_server_app(tagged, options, engine="simulation"),
                       client_app=make_client_app(tagged), num_supernodes=num_nodes,
                       backend_config={"client_resources": {"num_cpus": num_cpus_per_client,
                                                            "num_gpus": 0.0}},
                       verbose_logging=verbose)
    finally:
        if ray.is_initialized():  # Flower shuts Ray down unless the run failed early
            ray.shutdown()
    return [read_outputs(config, "the log above") for config in configs]
