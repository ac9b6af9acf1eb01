"""Shared tiny settings of the reliability tests (issue 11)."""

from __future__ import annotations

import dataclasses

from fl_sim import SimConfig
from fl_sim.history import History

# a run of a few hundred milliseconds: 3 clients, MLP 64-8-10, one local step
TINY = dict(num_clients=3, rounds=2, local_steps=1, model_kwargs={"hidden": [8]},
            partition="iid", device="cpu", policy_down="fixed:2", policy_up="fixed:2")
TINY_ARGS = ["--num-clients", "3", "--local-steps", "1", "--model-kwargs", '{"hidden": [8]}',
             "--partition", "iid", "--device", "cpu", "--policy-down", "fixed:2",
             "--policy-up", "fixed:2"]


def tiny(**changes) -> SimConfig:
    return SimConfig(**{**TINY, **changes})


def one_error_line(stderr: str, *needles: str) -> str:
    """The single line of a CLI error; asserts there is exactly one and no traceback."""
    # progress bars (tqdm) also write to stderr, with carriage returns
    lines = [line for line in stderr.replace("\r", "\n").splitlines()
             if line.startswith(("error", "interrupted", "Traceback", "  File"))]
    assert len(lines) == 1, stderr
    assert "Traceback" not in stderr
    line = lines[0]
    assert line.startswith(("error: ", "interrupted: ")), line
    for needle in needles:
        assert needle in line, line
    return line


def records(h: History) -> list[dict]:
    """A history's records without their wall-clock timings (what must be bit-identical)."""
    return [{k: v for k, v in dataclasses.asdict(r).items() if "seconds" not in k}
            for r in h.records]
