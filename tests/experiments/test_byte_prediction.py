"""theory.costs predicts the simulator's bytes exactly: one byte rule, two callers.

For every policy family (fixed, ratio, energy, error budget), on the MLP and the CNN,
on both links and on one, with per-layer overrides and a min_compression_rate: the
bytes recorded by ``fl_sim.run`` equal ``theory.costs.round_bytes`` of the model's
shapes (from its ``state_dict()``) and the ranks. Ranks are planned a priori where a
policy allows it (fixed, ratio) and read from the run where it picks them from the
spectrum (energy, error budget).
"""

from __future__ import annotations

import pytest

import fl_sim
from experiments.parameters import predicted_round_bytes
from fl_sim import SimConfig
from fl_sim.federated_data import data_from_config

MLP = SimConfig(dataset="digits", model="mlp", model_kwargs={"hidden": [24, 16]},
                num_clients=5, partition="iid", rounds=2, local_steps=2, batch_size=8,
                lr=0.05, device="cpu")
CNN = MLP.replace(dataset="digits_images", model="cnn", model_kwargs={})

CASES = [
    ("feddlr", "fixed:3", "fixed:2", {}, 1.0),
    ("feddlr", "ratio:0.25", "ratio:0.5", {"*out*": None}, 1.0),
    ("feddlr", "fixed:6", "fixed:6", {"*out*": None}, 2.0),  # some layers go dense by the rule
    ("feddlr", "energy:0.9", "energy:0.95", {}, 1.0),
    ("feddlr", "error:0.2", "error:0.3", {"*fc1*": "fixed:2"}, 1.0),
    ("feddlr_up", "fixed:2", "ratio:0.25", {}, 1.0),
    ("feddlr_down", "energy:0.8", "fixed:2", {"*out*": None}, 1.5),
    ("fedavg", "fixed:2", "fixed:2", {}, 1.0),
]


@pytest.mark.parametrize("base", [MLP, CNN], ids=["mlp", "cnn"])
@pytest.mark.parametrize(("algorithm", "down", "up", "overrides", "rate"), CASES)
def test_theory_costs_predicts_the_simulators_bytes(base, algorithm, down, up, overrides, rate):
    cfg = base.replace(algorithm=algorithm, policy_down=down, policy_up=up,
                       policy_overrides=overrides, min_compression_rate=rate)
    data = data_from_config(cfg)
    history = fl_sim.run(cfg, data=data).history
    a_priori = predicted_round_bytes(cfg, data)
    spectral = any(p.startswith(("energy", "error")) for p, used in
                   ((down, algorithm in ("feddlr", "feddlr_down")),
                    (up, algorithm in ("feddlr", "feddlr_up"))) if used)
    assert (a_priori is None) == spectral
    for record in history.records:
        measured = record.bytes_up + record.bytes_down
        assert predicted_round_bytes(cfg, data, measured=vars(record)) == measured
        if a_priori is not None:
            assert a_priori == measured
