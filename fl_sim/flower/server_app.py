"""The ServerApp: connect to the nodes, run :class:`FlSimStrategy`, write fl_sim's outputs.

:func:`run_server` is the whole server side; :func:`make_server_app` binds it to a
config (the simulation engine), and the module-level ``app`` reads the config from
the run config (``flwr run``, the local deployment). Results go to the config's
``output_dir``: ``<algorithm>.history.json`` (fl_sim's :class:`~fl_sim.history.History`)
and ``<algorithm>.flower.json`` (the :class:`~fl_sim.flower.ledger.FlowerLedger`);
when the run stops early, the ledger holds the one-line error.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from pathlib import Path

import flwr
from flwr.app import Array, ArrayRecord, ConfigRecord, Context, Message, MessageType, RecordDict
from flwr.serverapp import Grid, ServerApp

from ..config import SimConfig
from ..history import History
from ..simulator import setup
from .ledger import FlowerLedger
from .protocols import check_supported
from .run_config import FlowerOptions, from_run_config
from .strategy import FlSimStrategy

__all__ = ["app", "connect_nodes", "make_server_app", "output_paths", "read_outputs",
           "run_server"]

logger = logging.getLogger("flwr")


def output_paths(config: SimConfig) -> tuple[Path, Path]:
    """``(<algorithm>.history.json, <algorithm>.flower.json)`` in the config's output_dir."""
    if config.output_dir is None:
        raise ValueError("output_dir: a Flower run writes its history there; give one")
    out = Path(config.output_dir)
    return out / f"{config.algorithm}.history.json", out / f"{config.algorithm}.flower.json"


def read_outputs(config: SimConfig, log_hint: str) -> tuple[History, FlowerLedger]:
    """The history and ledger a finished run wrote; its one-line error if it stopped early.

    ``log_hint`` says where the log is, for a run that wrote no ledger at all.
    """
    history_path, ledger_path = output_paths(config)
    if not ledger_path.exists():
        raise RuntimeError(f"{ledger_path}: the ServerApp wrote no ledger (see {log_hint})")
    ledger = FlowerLedger.load_json(ledger_path)
    if ledger.error is not None:
        raise RuntimeError(ledger.error)
    return History.load_json(history_path), ledger


def connect_nodes(grid: Grid, num_clients: int, timeout: float) -> dict[int, int]:
    """Ask every connected node which fl_sim clients it serves, until all are served.

    Parameters
    ----------
    grid : Grid
        The ServerApp's grid.
    num_clients : int
        fl_sim clients of the run (``0 .. num_clients - 1``).
    timeout : float
        Seconds to wait for nodes to connect and answer.

    Returns
    -------
    dict[int, int]
        Client index -> node id.
    """
    deadline = time.monotonic() + timeout
    node_of: dict[int, int] = {}
    asked: set[int] = set()
    while True:
        new = [n for n in grid.get_node_ids() if n not in asked]
        if new:
            queries = [Message(RecordDict({"config": ConfigRecord({})}), dst_node_id=n,
                               message_type=MessageType.QUERY) for n in new]
            left = max(deadline - time.monotonic(), 1.0)
            for reply in grid.send_and_receive(queries, timeout=left):
                node = reply.metadata.src_node_id
                if reply.has_error():
                    raise RuntimeError(f"node {node}: query failed: {reply.error.reason}")
                for k in reply.content["clients"]["clients"]:
                    if k in node_of and node_of[k] != node:
                        raise ValueError(f"client {k}: served by nodes {node_of[k]} and {node}")
                    node_of[int(k)] = node
                asked.add(node)
        missing = [k for k in range(num_clients) if k not in node_of]
        if not missing:
            return node_of
        if time.monotonic() > deadline:
            raise TimeoutError(f"clients {missing}: no node serves them after {timeout:g} s "
                               f"({len(list(grid.get_node_ids()))} nodes connected, "
                               f"{len(asked)} answered)")
        time.sleep(0.2)


def run_server(grid: Grid, config: SimConfig, options: FlowerOptions, engine: str,
               tag: str = "") -> tuple[History, FlowerLedger]:
    """Run ``config`` on the nodes of ``grid``; write and return its history and ledger.

    Parameters
    ----------
    grid : Grid
        The ServerApp's grid.
    config : SimConfig
        The run; ``output_dir`` receives the two JSON files.
    options : FlowerOptions
        Round timeout, minimum replies.
    engine : str
        ``"simulation"`` or ``"deployment"``, recorded in the ledger.
    tag : str
        The run's name in its messages when one Flower run carries several.
    """
    history_path, ledger_path = output_paths(config)
    ledger = FlowerLedger(engine=engine, flwr_version=flwr.__version__)
    try:
        sim = setup(config)
        check_supported(sim.algorithm)
        node_of = connect_nodes(grid, sim.data.num_clients, options.connect_timeout)
        ledger.nodes = {str(k): n for k, n in sorted(node_of.items())}
        strategy = FlSimStrategy(sim, options, node_of, ledger, tag)
        initial = ArrayRecord({n: Array(p.detach().cpu().numpy()) for n, p in
                               sim.initial_params().items()})
        strategy.start(grid, initial, num_rounds=config.rounds, timeout=options.round_timeout,
                       evaluate_fn=strategy.evaluate)
    except Exception as exc:
        ledger.error = f"{type(exc).__name__}: {exc}".splitlines()[0]
        ledger.save_json(ledger_path)
        raise
    strategy.history.save_json(history_path)
    ledger.save_json(ledger_path)
    return strategy.history, ledger


def make_server_app(config: SimConfig | Mapping[str, SimConfig] | None = None,
                    options: FlowerOptions | None = None,
                    engine: str = "simulation") -> ServerApp:
    """A ServerApp for ``config``, or for each run's run config when ``None``.

    A mapping ``run tag -> SimConfig`` runs each config in turn on the same nodes
    (with :func:`fl_sim.flower.client_app.make_client_app` of the same mapping); a run
    that fails stops the later ones.
    """
    server_app = ServerApp()

    @server_app.main()
    def main(grid: Grid, context: Context) -> None:
        if config is None:
            cfg, opts = from_run_config(context.run_config)
            run_server(grid, cfg, opts, engine)
        elif isinstance(config, SimConfig):
            run_server(grid, config, options or FlowerOptions(), engine)
        else:
            for tag, cfg in config.items():
                run_server(grid, cfg, options or FlowerOptions(), engine, tag)

    return server_app


app = make_server_app(engine="deployment")  # `flwr run` loads this one
