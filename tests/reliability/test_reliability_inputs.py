"""Nothing silently wrong (issue 11, items 6-17): each bad input is a clear error or a
correct result."""

from __future__ import annotations

import dataclasses
import gzip
import os
import warnings

import numpy as np
import pytest
import torch
from reliability_helpers import tiny
from torch import nn

import fl_sim.simulator
from fl_sim import SimConfig, run
from fl_sim.checkpoint import content_hash, load_checkpoint
from fl_sim.dataset_files import load_mnist_idx
from fl_sim.federated_data import build_federated_data
from lowrank import QSGD, compress_matrix, factorize
from lowrank.state import resolve_policy
from lowrank.svd import exact_svd

# --------------------------------------------------------- 6. unmatched override patterns


def test_6_override_pattern_matching_nothing_is_an_error_listing_the_names():
    cfg = tiny(policy_overrides={"*classifier*": None})
    with pytest.raises(ValueError, match=r"policy_overrides: pattern '\*classifier\*' matches "
                                         r"no parameter .*net\.out\.weight"):
        fl_sim.simulator.setup(cfg)
    cnn = SimConfig(model="cnn", dataset="digits_images", num_clients=3, rounds=1,
                    device="cpu", policy_overrides={"*out*": None, "fc2.*": None})
    with pytest.raises(ValueError, match=r"'fc2\.\*' matches no parameter .*out\.weight"):
        fl_sim.simulator.setup(cnn)
    # a malformed value is refused when the config is built, matched or not
    with pytest.raises(ValueError, match=r"policy_overrides\['nomatch'\]"):
        tiny(policy_overrides={"nomatch": "fixed:x"})
    # README's {"*out*": None} keeps every network's classifier dense, the CNN's included
    for model, data in (("cnn", "digits_images"), ("mlp", "digits")):
        sim = fl_sim.simulator.setup(cnn.replace(model=model, dataset=data,
                                                 policy_overrides={"*out*": None}))
        names = [n for n, _ in sim.model.named_parameters()]
        classifier = [n for n in names if n.endswith("out.weight")]
        assert classifier == [names[-2]]  # the last layer's weight
        assert resolve_policy(classifier[0], "fixed:3", sim.config.policy_overrides) is None


# ------------------------------------------------------------------- 7. checkpoints


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    out = tmp_path_factory.mktemp("ckpt")
    cfg = tiny(rounds=2, checkpoint_every=1, output_dir=str(out))
    run(cfg)
    return cfg, out / "checkpoint.pt"


def _rewrite(path, change, rehash=True):
    data = torch.load(path, weights_only=True)
    change(data)
    if rehash:
        data["sha256"] = content_hash(data)
    torch.save(data, path)


def test_7_a_flipped_bit_is_detected(checkpoint, tmp_path):
    cfg, path = checkpoint
    bad = tmp_path / "flip.pt"
    bad.write_bytes(path.read_bytes())
    data = torch.load(bad, weights_only=True)
    blob = bad.read_bytes()
    # flip one bit inside the stored bytes of a weight (found by its exact bytes)
    weight = data["params"]["net.fc1.weight"].numpy().tobytes()
    at = blob.index(weight[:64]) + 5
    bad.write_bytes(blob[:at] + bytes([blob[at] ^ 0x10]) + blob[at + 1:])
    with pytest.raises(ValueError, match=r"flip\.pt: (content hash mismatch|not a readable)"):
        run(cfg.replace(rounds=3, checkpoint_every=0), resume_from=bad)


@pytest.mark.parametrize("change, match", [
    (lambda d: d["params"].pop("net.out.bias"), r"missing parameters \['net\.out\.bias'\]"),
    (lambda d: d["params"].update({"net.fc1.weight": torch.zeros(5, 5)}),
     r"'net\.fc1\.weight' is torch\.float32 \(5, 5\)"),
    (lambda d: d.update(round=-5), "round must be an integer >= 0"),
    (lambda d: d["history"]["records"].pop(), r"at round 2 but its history holds rounds \[1\]"),
    (lambda d: d.pop("rng"), r"missing \['rng'\]"),
])
def test_7_inconsistent_checkpoints_are_refused_naming_the_file(checkpoint, tmp_path, change,
                                                                match):
    cfg, path = checkpoint
    bad = tmp_path / "bad.pt"
    bad.write_bytes(path.read_bytes())
    _rewrite(bad, change)
    with pytest.raises(ValueError, match=f"bad\\.pt: .*{match}"):
        run(cfg.replace(rounds=3, checkpoint_every=0), resume_from=bad)


def test_7_truncated_edited_and_foreign_files(checkpoint, tmp_path):
    _, path = checkpoint
    cut = tmp_path / "cut.pt"
    cut.write_bytes(path.read_bytes()[: len(path.read_bytes()) // 2])
    with pytest.raises(ValueError, match="cut.pt: not a readable checkpoint"):
        load_checkpoint(cut)
    edited = tmp_path / "edited.pt"
    edited.write_bytes(path.read_bytes())
    _rewrite(edited, lambda d: d["params"]["net.fc1.weight"].mul_(2), rehash=False)
    with pytest.raises(ValueError, match="content hash mismatch"):
        load_checkpoint(edited)

    class Evil:
        def __reduce__(self):
            return (os.system, (f"touch {tmp_path / 'PWNED'}",))

    evil = tmp_path / "evil.pt"
    torch.save({"format": 2, "evil": Evil()}, evil)
    with pytest.raises(ValueError, match="refused"):
        load_checkpoint(evil)
    assert not (tmp_path / "PWNED").exists()


# ---------------------------------------------------------------- 8, 9. lowrank numbers


@pytest.mark.parametrize("dtype", [torch.int8, torch.bool, torch.complex64, "float16"])
def test_8_payload_dtype_must_be_floating(dtype):
    with pytest.raises(TypeError, match="payload_dtype"):
        compress_matrix(torch.randn(20, 10), "fixed:2", payload_dtype=dtype)
    f = compress_matrix(torch.randn(20, 10), "fixed:2", payload_dtype=torch.float16)
    assert float(f.relative_sq_error) < 1


def test_9_finite_inputs_give_finite_results_or_a_named_error():
    with pytest.raises(ValueError, match="layer: norm 5.2e\\+38 exceeds"):
        QSGD(4).compress(torch.tensor([3e38] * 3), name="layer")
    with pytest.raises(ValueError, match="norm 1e\\+200"):
        QSGD(4).compress(torch.tensor([1e200, 1.0], dtype=torch.float64))
    x = torch.tensor([1e38, -1e38, 1.0])  # norm fits float32, levels * norm would not
    out = QSGD(4, generator=torch.Generator().manual_seed(0)).compress(x).decompress()
    assert bool(torch.isfinite(out).all())
    levels = torch.linspace(-1, 1, 5)
    for s in (2**31 - 1, 2**31, 2**33):  # no more int32 wrap-around
        out = QSGD(s, generator=torch.Generator().manual_seed(0)).compress(levels).decompress()
        assert float((out - levels).abs().max()) < 1e-6, s
    with pytest.raises(ValueError, match="s: must be <= 2\\*\\*52"):
        QSGD(2**60)
    with pytest.raises(ValueError, match="fc: the factors overflow torch.float32"):
        compress_matrix(torch.full((4, 4), 3e38), "fixed:1", name="fc")
    f = compress_matrix(torch.full((2, 2), 1e38), "fixed:1")  # singular value 2e38 fits
    assert bool(torch.isfinite(f.to_dense()).all()) and float(f.relative_sq_error) < 1e-6


# ---------------------------------------------------------------- 10. batch size


def test_10_batch_size_above_every_client_is_refused_before_training():
    with pytest.raises(ValueError, match=r"batch_size: 100000 exceeds the largest client's "
                                         r"\d+ training rows .* or None"):
        fl_sim.simulator.setup(tiny(batch_size=100000))


# ---------------------------------------------------------------- 11. config types


@pytest.mark.parametrize("field, value, error", [
    ("rounds", 1.5, TypeError), ("local_steps", 1.5, TypeError), ("num_clients", "5", TypeError),
    ("vectorized", "no", TypeError), ("batch_size", 2.5, TypeError),
    ("clients_per_round", 2.5, TypeError), ("lr", "0.1", TypeError), ("lr", float("inf"),
                                                                      ValueError),
    ("model_kwargs", None, TypeError), ("policy_overrides", [("a", None)], TypeError),
    ("method", "svd", ValueError), ("device", "tpu", ValueError), ("max_rank", -1, ValueError),
])
def test_11_config_types_are_checked_when_the_config_is_built(field, value, error):
    with pytest.raises(error, match=f"^{field}: "):
        tiny(**{field: value})
    assert tiny(rounds=np.int64(3)).rounds == 3 and type(tiny(rounds=np.int64(3)).rounds) is int


def test_11_checkpoints_without_output_dir_are_refused_up_front():
    with pytest.raises(ValueError, match="checkpoint_every: checkpoints need an output_dir"):
        tiny(checkpoint_every=1)


# --------------------------------------------------- 12. divergence guard (in test_runs)
# --------------------------------------------------------------------- 13. NaN data


def test_13_nan_data_is_reported_as_bad_data_naming_the_dataset():
    data = build_federated_data("ridge", 3, seed=0)
    x = data.train_x.clone()
    x[4, 2] = float("nan")
    with pytest.raises(ValueError, match="ridge: train_x holds 1 NaN or Inf values; the data "
                                         "are bad"):
        dataclasses.replace(data, train_x=x)


# ------------------------------------------------------------------- 14. tied weights


class _Tied(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.emb = nn.Embedding(10, 40)
        self.mid = nn.Linear(40, 40)
        self.head = nn.Linear(40, 10, bias=False)
        self.head.weight = self.emb.weight


def test_14_factorize_keeps_ties_counts_once_and_never_grows():
    model = _Tied()
    compact, report = factorize(model, "fixed:2")
    assert report.params_before == 400 + 40 * 40 + 40  # the tied weight counted once
    assert "head" in report.kept_dense and "emb.weight" in report.kept_dense["head"]
    assert compact.head.weight is compact.emb.weight  # the tie survives
    assert report.params_after <= report.params_before and report.ranks == {"mid": 2}
    # a rank that would not shrink a layer leaves it dense, whatever min_compression_rate
    _, report = factorize(nn.Sequential(nn.Linear(4, 4)), "fixed:3", min_compression_rate=0.1)
    assert report.params_after == report.params_before and "0" in report.kept_dense
    _, report = factorize(nn.Sequential(nn.Conv1d(16, 16, 3)), "fixed:2")
    assert "Conv1d" in report.kept_dense["0"]


# ------------------------------------------------------------------ 15. SVD retries


def test_15_only_convergence_failures_are_retried(monkeypatch):
    a = torch.randn(6, 5)
    real = torch.linalg.svd

    def oom(*args, **kwargs):
        raise RuntimeError("CUDA out of memory")

    monkeypatch.setattr(torch.linalg, "svd", oom)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no "did not converge" warning
        with pytest.raises(RuntimeError, match="out of memory"):
            exact_svd(a)
    calls = []

    def once(x, **kwargs):
        calls.append(x.dtype)
        if len(calls) == 1:
            raise torch.linalg.LinAlgError("did not converge")
        return real(x, **kwargs)

    monkeypatch.setattr(torch.linalg, "svd", once)
    with pytest.warns(RuntimeWarning, match="did not converge .* retrying in float64"):
        exact_svd(a)
    assert calls == [torch.float32, torch.float64]
    monkeypatch.setattr(torch.linalg, "svd", real)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # half precision is not a convergence failure
        assert exact_svd(a.half()).S.dtype == torch.float16


# ------------------------------------------------------------- 16. environment


def test_16_histories_record_threads_torch_and_device(tmp_path):
    h = run(tiny(rounds=1, checkpoint_every=1, output_dir=str(tmp_path))).history
    assert h.environment["threads"] == torch.get_num_threads()
    assert h.environment["torch"] == str(torch.__version__) and h.environment["device"] == "cpu"
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(threads + 1)
        with pytest.warns(RuntimeWarning, match="thread count"):
            run(tiny(rounds=2, output_dir=str(tmp_path)), resume_from=tmp_path)
    finally:
        torch.set_num_threads(threads)


# --------------------------------------------------------------------- 17. MNIST types


def _idx(path, magic_type, array):
    header = bytes([0, 0, magic_type, array.ndim]) + b"".join(
        int(d).to_bytes(4, "big") for d in array.shape)
    with gzip.open(path, "wb") as fh:
        fh.write(header + array.tobytes())


@pytest.mark.parametrize("type_code, dtype", [(0x09, np.int8), (0x0D, ">f4")])
def test_17_mnist_accepts_only_unsigned_bytes(tmp_path, type_code, dtype):
    images = np.zeros((4, 28, 28), dtype=np.uint8)
    labels = np.arange(4, dtype=np.uint8)
    _idx(tmp_path / "train-labels-idx1-ubyte.gz", 0x08, labels)
    _idx(tmp_path / "train-images-idx3-ubyte.gz", 0x08, images)
    x, _ = load_mnist_idx(tmp_path)
    assert x.min() >= 0 and x.max() <= 1
    _idx(tmp_path / "train-images-idx3-ubyte.gz", type_code, images.astype(dtype))
    with pytest.raises(ValueError, match=r"train-images-idx3-ubyte\.gz: MNIST images must be "
                                         r"unsigned bytes"):
        load_mnist_idx(tmp_path)
