"""Tests of fl_sim.partition: exact invariants of every partitioner."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from fl_sim.partition import (
    PARTITIONERS,
    dirichlet,
    iid,
    label_counts,
    make_partition,
    power_law,
    shards,
)


def balanced_labels(num_classes: int = 10, per_class: int = 100, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).permutation(np.repeat(np.arange(num_classes), per_class))


CASES = [
    ("iid", {}),
    ("dirichlet", {"alpha": 0.3, "min_size": 5}),
    ("shards", {"shards_per_client": 3}),
    ("power_law", {"exponent": 1.2, "min_size": 2}),
]


def test_cases_cover_every_partitioner():
    assert sorted(name for name, _ in CASES) == sorted(PARTITIONERS)


@pytest.mark.parametrize(("name", "kwargs"), CASES)
def test_parts_are_disjoint_sorted_int64_and_cover(name, kwargs):
    labels = balanced_labels()
    parts = make_partition(name, labels, 13, np.random.default_rng(0), **kwargs)
    assert len(parts) == 13
    assert all(p.dtype == np.int64 and p.size >= 1 for p in parts)
    assert all(np.all(np.diff(p) > 0) for p in parts)
    everything = np.concatenate(parts)
    np.testing.assert_array_equal(np.sort(everything), np.arange(labels.size))


@pytest.mark.parametrize(("name", "kwargs"), CASES)
def test_deterministic_by_seed(name, kwargs):
    labels = balanced_labels()
    a = make_partition(name, labels, 8, 7, **kwargs)
    b = make_partition(name, labels, 8, np.random.default_rng(7), **kwargs)
    c = make_partition(name, labels, 8, 8, **kwargs)
    assert all(np.array_equal(x, y) for x, y in zip(a, b, strict=True))
    assert not all(np.array_equal(x, y) for x, y in zip(a, c, strict=True))


def test_iid_sizes_differ_by_at_most_one():
    sizes = [p.size for p in iid(103, 10, 0)]
    assert sum(sizes) == 103 and max(sizes) - min(sizes) == 1


def label_fractions(labels, parts):
    counts = label_counts(labels, parts, 10)
    return counts / counts.sum(axis=1, keepdims=True)


def test_dirichlet_large_alpha_is_near_uniform():
    labels = balanced_labels(per_class=400)
    parts = dirichlet(labels, 5, alpha=1000.0, rng=np.random.default_rng(0))
    assert np.abs(label_fractions(labels, parts) - 0.1).max() < 0.05


def test_dirichlet_small_alpha_is_skewed():
    labels = balanced_labels(per_class=400)
    parts = dirichlet(labels, 5, alpha=0.05, rng=np.random.default_rng(0), min_size=1)
    fractions = label_fractions(labels, parts)
    assert fractions.max(axis=1).mean() > 0.4  # a uniform split would give ~0.1
    assert (fractions < 0.01).sum(axis=1).mean() > 4  # most classes nearly absent per client


def test_dirichlet_enforces_min_size():
    labels = balanced_labels()
    parts = dirichlet(labels, 20, alpha=0.2, rng=np.random.default_rng(1), min_size=25)
    assert min(p.size for p in parts) >= 25


def test_dirichlet_impossible_min_size_raises():
    labels = balanced_labels()
    with pytest.raises(ValueError, match="need 1100 samples, but there are only 1000"):
        dirichlet(labels, 11, alpha=1.0, rng=np.random.default_rng(0), min_size=100)
    with pytest.raises(ValueError, match="larger alpha"):
        dirichlet(labels, 10, alpha=1e-3, rng=np.random.default_rng(0), min_size=90, max_tries=5)


def test_dirichlet_rejects_nonpositive_alpha():
    with pytest.raises(ValueError, match="alpha"):
        dirichlet(balanced_labels(), 4, alpha=0.0, rng=np.random.default_rng(0))


def test_shards_give_at_most_shards_per_client_labels():
    labels = balanced_labels(num_classes=10, per_class=100)
    for per_client in (1, 2):
        parts = shards(labels, 20, np.random.default_rng(3), shards_per_client=per_client)
        counts = label_counts(labels, parts, 10)
        assert (counts > 0).sum(axis=1).max() <= per_client
        assert {p.size for p in parts} == {50}  # 1000 samples / 20 clients


def test_shards_rejects_too_many_shards():
    with pytest.raises(ValueError, match="shards_per_client"):
        shards(np.zeros(10, np.int64), 6, 0, shards_per_client=2)


def test_power_law_sizes_are_unequal_and_respect_min_size():
    parts = power_law(5000, 30, np.random.default_rng(0), exponent=1.0, min_size=20)
    sizes = np.array([p.size for p in parts])
    assert sizes.sum() == 5000 and sizes.min() >= 20
    assert sizes.max() > 5 * np.median(sizes)


def test_partition_argument_errors_name_the_parameter():
    with pytest.raises(ValueError, match="num_clients: must be >= 1, got 0"):
        iid(10, 0, 0)
    with pytest.raises(ValueError, match="num_clients"):
        iid(3, 4, 0)
    with pytest.raises(ValueError, match="labels: expected a 1-D array"):
        shards(np.zeros((4, 2), np.int64), 2, 0)
    with pytest.raises(TypeError, match="labels: expected integer"):
        dirichlet(np.zeros(40), 2, alpha=1.0, rng=0)


def test_make_partition_unknown_name_lists_valid_names():
    valid = r"'dirichlet', 'iid', 'power_law', 'shards'"
    with pytest.raises(ValueError, match=rf"unknown name 'random'; valid names are \[{valid}\]"):
        make_partition("random", balanced_labels(), 4, 0)


def test_label_counts_match_manual_count():
    labels = np.array([0, 1, 1, 2, 2, 2, 0])
    parts = [np.array([0, 1, 2]), np.array([3, 4, 5, 6])]
    counts = label_counts(labels, parts, num_classes=4)
    np.testing.assert_array_equal(counts, [[1, 2, 0, 0], [1, 0, 3, 0]])
    np.testing.assert_array_equal(label_counts(labels, parts), counts[:, :3])
    with pytest.raises(ValueError, match="client 1"):
        label_counts(labels, [parts[0], np.array([7])])


def test_partition_module_does_not_import_matplotlib():
    code = "import sys, fl_sim.partition; print('matplotlib' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout.strip()
    assert out == "False"
