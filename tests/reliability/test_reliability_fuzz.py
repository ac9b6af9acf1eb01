"""Fuzz suite (issue 11): SimConfig fields, policy strings and CLI arguments.

Each generated case either runs or raises ``ValueError``/``TypeError`` (or, for a
diverging run, the simulator's ``FloatingPointError``) whose message names the field,
policy, client, dataset or file, and whose last frame is in the project, never inside
torch or numpy. The examples are derandomized (the same cases on every CI run):
``SIMCONFIG_CASES + POLICY_CASES + CLI_CASES`` = 330 cases.
"""

from __future__ import annotations

import dataclasses
import math
import traceback
from pathlib import Path

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from reliability_helpers import TINY, TINY_ARGS

from fl_sim import SimConfig, run
from fl_sim.cli import main
from lowrank import compress_matrix, parse_policy

ROOT = Path(__file__).resolve().parents[2]
FIELDS = [f.name for f in dataclasses.fields(SimConfig)]
SIMCONFIG_CASES, POLICY_CASES, CLI_CASES = 150, 150, 30

_NAMES = ["fedavg", "feddlr", "qsgd", "topk_ef", "digits", "synthetic", "ridge", "mlp", "cnn",
          "logreg", "linreg", "iid", "dirichlet", "shards", "full", "scheme1", "scheme2",
          "exact", "randomized", "power", "cpu", "auto", "float64", "inverse", "li",
          "fixed:2", "ratio:0.5", "energy:0.9", "error:0.1"]
VALUES = st.one_of(
    st.none(), st.booleans(), st.integers(-3, 12), st.sampled_from([2**31, 2**70, -(2**63)]),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([0.0, 1e-300, 0.5, 1.0, 1e300, float("nan"), float("inf")]),
    st.text(max_size=10), st.sampled_from(_NAMES),
    st.dictionaries(st.sampled_from(["hidden", "*out*", "net.*", "bogus", ""]),
                    st.one_of(st.none(), st.integers(-1, 4), st.sampled_from(["fixed:2", "x"]),
                              st.lists(st.integers(1, 4), max_size=2)), max_size=2),
    st.lists(st.integers(), max_size=2))
# cases must stay cheap when they run: these fields get small values only
_SMALL = {"rounds": 3, "local_steps": 3, "num_clients": 8, "eval_every": 3, "batch_size": 40,
          "clients_per_round": 8, "update_rank": 8, "max_rank": 8, "subspace_iters": 3,
          "rank_growth": 3}


def _named(exc: BaseException, *names: str) -> None:
    """The error names something the user can act on, and was raised by our code."""
    msg = str(exc)
    head = msg.split(":", 1)[0].strip()
    known = set(FIELDS) | {"policy", "client", "model", "data_dir", "name", "train_loss"}
    assert (any(n in msg for n in names) or head.split("[")[0] in known
            or head.startswith(("client ", "resume_from", "--"))
            or head in {"digits", "digits_images", "synthetic", "ridge", "mnist", "cifar10"}), \
        f"{type(exc).__name__} names nothing: {msg!r}"
    last = traceback.extract_tb(exc.__traceback__)[-1].filename
    assert str(ROOT) in last and "site-packages" not in last, \
        f"raised inside a library ({last}): {msg!r}"


@settings(max_examples=SIMCONFIG_CASES, deadline=None, derandomize=True, database=None,
          suppress_health_check=list(HealthCheck))
@given(field=st.sampled_from(FIELDS), value=VALUES)
def test_fuzz_simconfig_fields(field, value):
    if field in _SMALL and isinstance(value, int) and not isinstance(value, bool) \
            and value > _SMALL[field]:
        value = _SMALL[field]
    if field == "output_dir":
        value = None if value is None else "/proc/fuzz/x"  # never write into the checkout
    if field == "data_dir" and value is not None:
        value = "/nonexistent/fuzz"
    kwargs = {**TINY, "rounds": 1, field: value}
    try:
        cfg = SimConfig(**kwargs)
    except (ValueError, TypeError) as exc:
        _named(exc, field)
        return
    try:
        run(cfg)
    except (ValueError, TypeError, FileNotFoundError) as exc:
        _named(exc, field)
    except FloatingPointError as exc:  # a diverging run stops, naming round and lr
        assert "round" in str(exc) and "lr" in str(exc), str(exc)
        _named(exc, field)


_PREFIXES = st.sampled_from(["fixed", "ratio", "energy", "error", "FIXED", "", " fixed", "top"])
_ARGS = st.one_of(st.integers(-3, 40).map(str), st.floats().map(repr), st.text(max_size=6),
                  st.sampled_from(["0", "1", "0.5", "1e3", "nan", "inf", "-0", "2.5", ""]))
POLICIES = st.one_of(st.builds(lambda p, a: f"{p}:{a}", _PREFIXES, _ARGS),
                     st.text(max_size=12), st.none(), st.integers(-2, 5), st.floats())


@settings(max_examples=POLICY_CASES, deadline=None, derandomize=True, database=None,
          suppress_health_check=list(HealthCheck))
@given(spec=POLICIES, shape=st.sampled_from([(6, 5), (3, 8, 4), (1, 7)]))
def test_fuzz_policy_strings(spec, shape):
    try:
        policy = parse_policy(spec)
    except (ValueError, TypeError) as exc:
        _named(exc, "policy", "rank", "rho", "tau", "eps")
        return
    w = torch.randn(*shape, generator=torch.Generator().manual_seed(0))
    f = compress_matrix(w, policy, name="layer")
    assert bool(torch.isfinite(f.to_dense()).all())
    assert all(math.isfinite(float(e)) for e in f.sq_error.reshape(-1))
    assert bool((f.ranks >= 1).all()) and bool((f.ranks <= min(shape[-2:])).all())


_OPTIONS = [f"--{n.replace('_', '-')}" for n in FIELDS if n not in ("output_dir", "data_dir")]
_TEXT = st.one_of(st.text(max_size=8), st.sampled_from(_NAMES),
                  st.integers(-3, 3).map(str), st.floats().map(repr),
                  st.sampled_from(["none", "true", "flase", "{}", '{"hidden": [4]}', "[1]",
                                   "{bad", "1e400", "-0"]))


@settings(max_examples=CLI_CASES, deadline=None, derandomize=True, database=None,
          suppress_health_check=list(HealthCheck))
@given(option=st.sampled_from([*_OPTIONS, "--bogus", "--resume-from"]), value=_TEXT)
def test_fuzz_cli_arguments(option, value, tmp_path_factory, capsys):
    out = tmp_path_factory.mktemp("cli")
    if option in ("--rounds", "--local-steps", "--num-clients", "--eval-every"):
        value = value if not value.lstrip("-").isdigit() else str(min(int(value), 3))
    code = main(["run", *TINY_ARGS, "--rounds", "1", option, value, "--output-dir", str(out)])
    err = capsys.readouterr().err
    assert code in (0, 1, 2), code
    assert "Traceback" not in err
    if code:
        lines = [line for line in err.replace("\r", "\n").splitlines()
                 if line.startswith("error")]
        assert len(lines) == 1, err
    else:
        assert (out / f"{SimConfig().algorithm}.history.json").exists() or \
            any(out.glob("*.history.json"))


pytestmark = pytest.mark.timeout(900)
