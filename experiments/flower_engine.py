"""The benchmark's FedAvg workload on Flower's simulation engine (optional: needs flwr[simulation]).

Same data and initial model as fl_sim's run of the config (both from :func:`fl_sim.setup`), same
local work (E SGD steps of B samples drawn with replacement, constant lr), full
participation, Flower's own ``FedAvg`` strategy (weighted by client size, as fl_sim).
Each round is timed by the server-side evaluate callback, which Flower calls once
before the first round and after every round's aggregation.

Only imported when ``flwr`` is installed (``pip install -e ".[flower]"``).
"""

from __future__ import annotations

import os
import time

import numpy as np
import torch

from fl_sim import SimConfig, setup
from fl_sim.models import build_model

__all__ = ["run_flower_fedavg"]


def run_flower_fedavg(cfg: SimConfig, rounds: int, num_cpus_per_client: float = 1.0) -> dict:
    """Run FedAvg on Flower's simulation engine; returns per-round seconds and accuracies."""
    os.environ.setdefault("RAY_DEDUP_LOGS", "0")
    import flwr
    from flwr.client import ClientApp, NumPyClient
    from flwr.common import Context, ndarrays_to_parameters
    from flwr.server import ServerApp, ServerAppComponents, ServerConfig
    from flwr.server.strategy import FedAvg
    from flwr.simulation import run_simulation

    sim = setup(cfg.replace(device="cpu"))  # the same data and w_0 as fl_sim's run of cfg
    data, model = sim.data, sim.model
    names = [n for n, _ in model.named_parameters()]
    init = [p.detach().numpy().copy() for p in model.parameters()]
    offsets, sizes = data.client_offsets.tolist(), data.client_sizes.tolist()
    E, B, lr = cfg.local_steps, cfg.batch_size, cfg.lr

    def set_params(m, arrays):
        with torch.no_grad():
            for p, a in zip(m.parameters(), arrays, strict=True):
                p.copy_(torch.from_numpy(np.asarray(a)))

    class Client(NumPyClient):
        def __init__(self, k: int) -> None:
            self.k = k
            self.model = build_model(cfg.model, data.input_shape, data.num_outputs)
            self.x = data.train_x[offsets[k]:offsets[k] + sizes[k]]
            self.y = data.train_y[offsets[k]:offsets[k] + sizes[k]]
            self.gen = torch.Generator().manual_seed(1000 * cfg.seed + k)

        def fit(self, parameters, config):
            set_params(self.model, parameters)
            opt = torch.optim.SGD(self.model.parameters(), lr=lr)
            for _ in range(E):
                idx = torch.randint(0, self.x.shape[0], (B,), generator=self.gen)
                opt.zero_grad()
                loss = torch.nn.functional.cross_entropy(self.model(self.x[idx]), self.y[idx])
                loss.backward()
                opt.step()
            return [p.detach().numpy().copy() for p in self.model.parameters()], \
                int(self.x.shape[0]), {}

    def client_fn(context: Context):
        return Client(int(context.node_config["partition-id"])).to_client()

    stamps: list[float] = []
    accs: list[float] = []
    eval_model = build_model(cfg.model, data.input_shape, data.num_outputs)

    def evaluate(server_round, parameters, config):
        set_params(eval_model, parameters)
        with torch.no_grad():
            logits = eval_model(data.test_x)
            acc = float((logits.argmax(-1) == data.test_y).double().mean())
            loss = float(torch.nn.functional.cross_entropy(logits, data.test_y))
        stamps.append(time.perf_counter())
        accs.append(acc)
        return loss, {"accuracy": acc}

    def server_fn(context: Context):
        strategy = FedAvg(fraction_fit=1.0, fraction_evaluate=0.0,
                          min_fit_clients=cfg.num_clients, min_available_clients=cfg.num_clients,
                          initial_parameters=ndarrays_to_parameters(init),
                          evaluate_fn=evaluate)
        return ServerAppComponents(strategy=strategy, config=ServerConfig(num_rounds=rounds))

    t0 = time.perf_counter()
    run_simulation(server_app=ServerApp(server_fn=server_fn),
                   client_app=ClientApp(client_fn=client_fn), num_supernodes=cfg.num_clients,
                   backend_config={"client_resources": {"num_cpus": num_cpus_per_client,
                                                        "num_gpus": 0.0}},
                   verbose_logging=False)
    total = time.perf_counter() - t0
    per_round = list(np.diff(stamps)) if len(stamps) > 1 else []
    return {"flwr_version": flwr.__version__, "rounds": rounds, "param_names": names,
            "seconds_per_round": [float(s) for s in per_round], "accuracy": accs,
            "total_seconds": total, "num_cpus_per_client": num_cpus_per_client}
