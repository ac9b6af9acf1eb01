"""The exact-map bound of ridge (docs/theory.md §12) against simulator runs."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

import boundcheck as bc
from boundcheck.check import exact_variant, run_seeds, validate_config


@pytest.fixture(scope="module")
def ridge():
    return bc.ridge_problem(num_clients=4, samples_per_client=25, dim=8, out_dim=3)


def test_full_batch_fedavg_is_predicted_exactly(ridge):
    cfg = ridge.config(algorithm="fedavg", local_steps=3, rounds=6, batch_size=None)
    rep = bc.check(cfg, ridge, seeds=2, bound="exact")
    np.testing.assert_allclose(rep.bound_dist_sq, rep.measured_dist_sq, rtol=1e-10)
    assert rep.constants["exact"]["holds_within_3_standard_errors"]
    assert rep.constants["li"]["tightness"] > 10  # Li et al.'s bound, as a column
    assert rep.constants["bound"] == "exact"


def test_exact_bound_is_refused_for_logistic():
    prob = bc.synthetic_problem(num_clients=3, max_samples_per_client=50, dim=6, num_classes=3)
    with pytest.raises(ValueError, match="bound: 'exact'"):
        bc.check(prob.config(rounds=2, local_steps=2), prob, seeds=2, bound="exact")


@settings(max_examples=4, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(N=st.integers(2, 4), E=st.integers(1, 4), frac=st.floats(0.2, 1.0),
       policy=st.sampled_from(["none", "fixed:1", "energy:0.8"]),
       part=st.sampled_from(["full", "scheme1", "scheme2"]),
       batch=st.sampled_from([None, 3]), seed=st.integers(0, 100))
def test_exact_bound_holds_on_random_configurations(N, E, frac, policy, part, batch, seed):
    prob = bc.ridge_problem(num_clients=N, samples_per_client=15, dim=5, out_dim=3,
                            data_seed=seed)
    kw = dict(local_steps=E, rounds=5, batch_size=batch, seed=seed,
              lr=frac / (4 * prob.convex.L), participation=part,
              clients_per_round=None if part == "full" else max(1, N // 2))
    if policy == "none":
        kw["algorithm"] = "fedavg"
    else:
        kw.update(algorithm="feddlr", policy_down=policy, policy_up=policy)
    cfg = prob.config(**kw)
    etas = validate_config(cfg, prob)
    runs = run_seeds(cfg, prob, [seed, seed + 1, seed + 2])
    variant, parts = exact_variant(runs, cfg, prob, etas)
    measured = runs.measured_dist_sq
    slack = 3 * parts.mc_standard_error + 1e-12 * measured
    assert np.all(variant.bound_dist_sq >= measured - slack)
    if batch is None and part == "full":  # no randomness at all
        if policy == "none":  # the exact trajectory, to rounding
            np.testing.assert_allclose(variant.bound_dist_sq, measured, rtol=1e-10)
        else:  # compression adds D_r > 0 on top: a strict bound
            assert variant.holds


def test_coordinatewise_bound_is_tighter_than_adding_error_norms(ridge):
    cfg = ridge.config(algorithm="feddlr", policy_down="fixed:1", policy_up="fixed:1",
                       local_steps=3, rounds=8, batch_size=None)
    etas = validate_config(cfg, ridge)
    runs = run_seeds(cfg, ridge, [0, 1])
    variant, parts = exact_variant(runs, cfg, ridge, etas)
    assert variant.holds and parts.modal is not None
    assert parts.modal.err_client_gap < 1e-9  # the client error is recomputed exactly
    modal = parts.modal.bound_dist_sq
    assert np.all(modal[1:] < parts.norm_bound[1:])
    assert np.max(variant.ratio) < 0.8 * np.max(parts.norm_bound / runs.measured_dist_sq)


def test_compressed_map_is_the_simulators_full_batch_feddlr(ridge):
    import fl_sim
    from theory.quadratic import LeastSquaresClients, compressed_trajectory, round_maps

    cfg = ridge.config(algorithm="feddlr", policy_down="fixed:1", policy_up="energy:0.9",
                       local_steps=3, rounds=12, batch_size=None)
    w0 = {}
    obs = fl_sim.Observer(on_global=lambda r, p: w0.setdefault(
        r, p["linear.weight"].double().numpy().T.copy()))
    h = fl_sim.run(cfg, data=ridge.data, w_star=ridge.w_star_params(), observer=obs).history
    c = ridge.convex
    rm = round_maps(LeastSquaresClients.from_convex(c), [cfg.lr] * 3, 3)[0]
    tr = compressed_trajectory(rm, w0[0], 12, "fixed:1", "energy:0.9")
    np.testing.assert_allclose(np.sum((tr[1:] - c.w_star) ** 2, axis=(1, 2)),
                               h.column("dist_sq"), rtol=1e-10)


def test_floors_predicted_before_any_run_match_the_runs(ridge):
    from boundcheck.predict import predict_floors

    res = predict_floors(ridge, ["none", "fixed:1"], local_steps=3, rounds=60, seeds=[0, 1])
    np.testing.assert_allclose(res.predicted, res.measured, rtol=1e-3)
    assert res.same_ordering and res.predicted[1] > res.predicted[0]


def test_rounds_to_target_against_E_full_batch_is_exact(ridge):
    from boundcheck.predict import predict_local_steps

    res = predict_local_steps(ridge, [1, 3], target_sq=0.05, max_rounds=25, seeds=[0, 1],
                              batch_size=None)
    np.testing.assert_allclose(res.predicted_dist_sq, res.measured_dist_sq, rtol=1e-10)
    assert res.predicted_rounds == res.measured_rounds
    assert res.predicted_best_E == res.measured_best_E


def test_best_policy_under_a_byte_budget_is_predicted_before_any_run(ridge):
    from boundcheck.predict import predict_budget

    dense_round = 2 * 4 * 8 * 3 * 8  # both ways, 4 clients, (3 x 8) float64 weights
    res = predict_budget(ridge, ["none", "fixed:1", "fixed:2"], 3 * dense_round,
                         local_steps=3, seeds=[0])
    assert res.bytes_match  # theory.costs counts the simulator's bytes exactly
    np.testing.assert_allclose(res.predicted_dist_sq, res.measured_dist_sq, rtol=1e-9)
    assert res.predicted_rounds == res.measured_rounds
    assert res.predicted_rounds[0] == 3 and res.predicted_rounds[1] > 3  # factors are cheaper
    assert res.predicted_best == res.measured_best


def test_local_steps_on_logistic_use_the_linearisation():
    from boundcheck.predict import predict_local_steps

    prob = bc.synthetic_problem(num_clients=3, max_samples_per_client=50, dim=6, num_classes=3,
                                lam=0.5)
    with pytest.raises(ValueError, match="batch_size"):
        predict_local_steps(prob, [1], seeds=[0], batch_size=5)
    res = predict_local_steps(prob, [1, 4], target_sq=1e-3, max_rounds=40, seeds=[0],
                              batch_size=None, lr=1 / prob.convex.L)
    pred, meas = np.array(res.predicted_dist_sq), np.array(res.measured_dist_sq)
    assert pred[0, 0] == pytest.approx(meas[0, 0], rel=1e-9)  # same w_0
    # asymptotic: what the early, nonlinear rounds put in contracts at the linear rate, so
    # the relative gap settles (measured here: 4% and 8% at round 40), it does not vanish
    gap = np.abs(pred - meas) / meas
    assert np.all(gap[:, -1] < 0.1)
    assert res.predicted_rounds == res.measured_rounds
    assert "linearised" in res.method


def test_error_feedback_removes_the_compression_floor(ridge):
    """docs/theory.md §12.6: a fixed point of FedDLR-EF is FedAvg's (full batch)."""
    import fl_sim
    from theory.quadratic import LeastSquaresClients, bias, compressed_trajectory, round_maps

    c = ridge.convex
    cfg = ridge.config(algorithm="feddlr_ef", policy_down="fixed:1", policy_up="fixed:1",
                       local_steps=3, rounds=150, batch_size=None)
    dist = fl_sim.run(cfg, data=ridge.data, w_star=ridge.w_star_params()).history.column(
        "dist_sq")
    rm = round_maps(LeastSquaresClients.from_convex(c), [cfg.lr] * 3, 3)[0]
    fedavg_floor = float(np.sum(bias(rm, c.w_star) ** 2))
    feddlr_floor = float(np.sum((compressed_trajectory(rm, np.zeros(c.shape), 200, "fixed:1",
                                                       "fixed:1")[-1] - c.w_star) ** 2))
    # relative gap to the FedAvg floor: 3e-3 at round 120, 6e-6 at round 200 (geometric)
    assert dist[-1] == pytest.approx(fedavg_floor, rel=1e-3)
    assert feddlr_floor > 10 * fedavg_floor  # without EF the truncation sets the floor


@settings(max_examples=3, deadline=None, derandomize=True, phases=[Phase.generate])
@given(N=st.integers(2, 4), E=st.integers(2, 5), policy=st.sampled_from(
    ["fixed:1", "fixed:2", "energy:0.8"]), seed=st.integers(0, 100))
def test_a_priori_floor_bound_holds_on_random_ridge_problems(N, E, policy, seed):
    """docs/theory.md §12.4: the bound (problem alone) covers every run entering its basin."""
    from boundcheck.floors import floor_bounds

    prob = bc.ridge_problem(num_clients=N, samples_per_client=15, dim=6, out_dim=3,
                            data_seed=seed)
    res = floor_bounds(prob, [policy], local_steps=E, rounds=120, seeds=[seed, seed + 1])
    assert any(r is not None for r in res.entry_round[0])  # a run entered the basin
    assert res.holds  # its last round is below the bound on that round
    assert res.floor_lower[0] <= res.floor_bound[0] <= 2.0 * min(res.covered(0))


def test_exact_bound_covers_error_feedback(ridge):
    """docs/theory.md §12.6: FedDLR-EF's rounds are the FedAvg map plus measured errors."""
    cfg = ridge.config(algorithm="feddlr_ef", policy_down="fixed:1", policy_up="fixed:1",
                       local_steps=3, rounds=8, batch_size=None)
    rep = bc.check(cfg, ridge, seeds=2, bound="exact")
    assert rep.summary()["holds"]  # strict: full batch is deterministic given w_0
    assert np.all(rep.e_c[1:] > 0)  # the uplink compressed: the bound has work to do
    cfg = cfg.replace(batch_size=3, participation="scheme1", clients_per_round=2)
    rep = bc.check(cfg, ridge, seeds=3, bound="exact")
    assert rep.constants["exact"]["holds_within_3_standard_errors"]


def test_a_failed_floor_enclosure_covers_no_run(monkeypatch):
    """An enclosure that could not be built (r_min = r_max = inf) is no bound: no run counts
    as covered, and the floor check does not report success."""
    import dataclasses

    import boundcheck.floors as floors

    real = floors.floor_enclosure

    def failed(*args, **kwargs):
        return dataclasses.replace(real(*args, **kwargs), r_min=np.inf, r_max=np.inf)

    monkeypatch.setattr(floors, "floor_enclosure", failed)
    prob = bc.ridge_problem(num_clients=2, samples_per_client=10, dim=4, out_dim=2, data_seed=1)
    res = floors.floor_bounds(prob, ["fixed:1"], local_steps=2, rounds=5, seeds=[0])
    assert res.entry_round == [[None]]
    assert not res.holds
