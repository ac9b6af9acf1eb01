"""One owner of the seed: every purpose, data included, gets its own child stream."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from fl_sim.rng import PURPOSES, RandomStreams, purpose_seed


def test_every_purpose_gets_a_distinct_child_of_the_seed():
    states = {p: tuple(purpose_seed(7, p).generate_state(4)) for p in PURPOSES}
    assert len(set(states.values())) == len(PURPOSES)
    # and none equals the root sequence's own state (what a builder given the int would use)
    root = tuple(np.random.SeedSequence(7).generate_state(4))
    assert root not in states.values()


def test_runtime_streams_follow_the_purpose_seeds():
    a, b = RandomStreams.from_seed(3), RandomStreams.from_seed(3)
    for p in PURPOSES[1:]:
        assert torch.equal(getattr(a, p).get_state(), getattr(b, p).get_state())
    draws = {p: torch.rand(3, generator=getattr(RandomStreams.from_seed(3), p)).tolist()
             for p in PURPOSES[1:]}
    assert len({tuple(v) for v in draws.values()}) == len(draws)
    assert not hasattr(a, "data")  # the data stream is handed out by purpose_seed only


def test_state_dict_round_trip_restores_every_runtime_stream():
    s = RandomStreams.from_seed(0)
    saved = s.state_dict()
    first = {p: torch.rand(2, generator=getattr(s, p)) for p in PURPOSES[1:]}
    s.load_state_dict(saved)
    for p in PURPOSES[1:]:
        assert torch.equal(torch.rand(2, generator=getattr(s, p)), first[p])


@pytest.mark.parametrize("bad", [-1, 1.5, True, "0"])
def test_bad_seed_is_named(bad):
    with pytest.raises(ValueError, match="seed"):
        RandomStreams.from_seed(bad)


def test_unknown_purpose_lists_the_valid_ones():
    with pytest.raises(ValueError, match="data, init"):
        purpose_seed(0, "partition")
