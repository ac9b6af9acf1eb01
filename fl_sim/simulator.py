"""The in-process simulator: :func:`run` turns a :class:`SimConfig` into a :class:`RunResult`."""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import fnmatch
import platform
import signal
import threading
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from lowrank._validation import all_finite

from .algorithms import Algorithm, RoundContext, ServerState, make_algorithm
from .checkpoint import Checkpoint, load_checkpoint, save_checkpoint
from .config import SimConfig
from .device import resolve_device, synchronized_clock
from .evaluation import evaluate
from .export import load_params
from .federated_data import FederatedData, data_from_config
from .history import JOURNAL_NAME, History, HistoryJournal, RoundRecord
from .local_training import LocalTrainer
from .models import build_model
from .output_dir import check_output_dir
from .params import Params
from .participation import sample_participants
from .rng import RandomStreams
from .schedules import make_schedule

__all__ = ["DivergenceError", "Observer", "RunResult", "Simulation", "environment", "setup",
           "run"]

# fields that may differ between a checkpoint and the run resuming it: a run can be
# extended to more rounds, written elsewhere, or run on past the divergence guard
_RESUMABLE = frozenset({"rounds", "output_dir", "checkpoint_every", "divergence_factor"})
# what bit-identical results depend on besides the config (docs/reliability.md)
_ENVIRONMENT_KEYS = ("torch", "threads", "device")


class DivergenceError(FloatingPointError):
    """The training loss grew past ``SimConfig.divergence_factor`` times its initial value."""


def environment(device: torch.device) -> dict[str, object]:
    """What a history's bit-identity depends on besides its config.

    Parameters
    ----------
    device : torch.device
        The run's device.

    Returns
    -------
    dict
        ``torch`` (version), ``threads`` (``torch.get_num_threads()``), ``device``
        (with the GPU's name on CUDA), ``numpy`` and ``python`` versions.
    """
    name = str(device)
    if device.type == "cuda":
        name += f" ({torch.cuda.get_device_name(device)})"
    return {"torch": str(torch.__version__), "threads": torch.get_num_threads(), "device": name,
            "numpy": np.__version__, "python": platform.python_version()}


@dataclass
class Simulation:
    """A run's fixed parts, built once by :func:`setup`."""

    config: SimConfig
    device: torch.device
    data: FederatedData  # on the device
    model: nn.Module  # template for functional calls (its parameters hold w_0)
    trainer: LocalTrainer
    algorithm: Algorithm
    streams: RandomStreams

    def initial_params(self) -> Params:
        """``w_0`` as a dict of detached tensors."""
        return {n: p.detach().clone() for n, p in self.model.named_parameters()}

    def model_with(self, params: Params) -> nn.Module:
        """A copy of the model holding ``params`` (the template is left unchanged)."""
        return load_params(copy.deepcopy(self.model), params)


@dataclass(frozen=True)
class RunResult:
    """What :func:`run` gives back: the history, the final model and the run's parts."""

    history: History  # config and one record per round
    params: Params  # the final global model w_R
    simulation: Simulation  # data, model template, algorithm, device of the run

    @property
    def model(self) -> nn.Module:
        """The final global model as an ``nn.Module`` (a fresh copy on each access)."""
        return self.simulation.model_with(self.params)


def _init_model(config: SimConfig, data: FederatedData, streams: RandomStreams,
                dtype: torch.dtype, device: torch.device) -> nn.Module:
    model = build_model(config.model, data.input_shape, data.num_outputs,
                        generator=streams.init, **config.model_kwargs)
    return model.to(device=device, dtype=dtype)


def setup(config: SimConfig, data: FederatedData | None = None) -> Simulation:
    """Build data, model, trainer, algorithm and random streams for ``config``.

    Parameters
    ----------
    config : SimConfig
        The run.
    data : FederatedData, optional
        Prebuilt data (must come from the same config); built by
        :func:`fl_sim.federated_data.data_from_config` if omitted.
    """
    if config.output_dir is not None:  # before any work: a bad folder costs nothing
        check_output_dir(config.output_dir, "output_dir")
    device = resolve_device(config.device)
    dtype = getattr(torch, config.dtype)
    streams = RandomStreams.from_seed(config.seed)
    if data is None:
        data = data_from_config(config)
    if config.participation == "scheme2" and config.clients_per_round > data.num_clients:
        raise ValueError(f"clients_per_round: K={config.clients_per_round} exceeds the "
                         f"{data.num_clients} clients of {config.dataset}")
    largest = int(data.client_sizes.max())
    if config.batch_size is not None and config.batch_size > largest:
        raise ValueError(
            f"batch_size: {config.batch_size} exceeds the largest client's {largest} training "
            f"rows (clients hold {int(data.client_sizes.min())} to {largest}); minibatches are "
            f"drawn with replacement, so this only costs time and memory: use batch_size <= "
            f"{largest}, or None for full-batch gradient descent")
    data = data.to(device)
    if data.train_x.dtype.is_floating_point:
        data = _cast(data, dtype)
    model = _init_model(config, data, streams, dtype, device)
    _check_override_patterns(config, model)
    schedule = make_schedule(config.lr_schedule, config.lr, mu=config.lr_mu,
                             gamma=config.lr_gamma, decay_steps=config.lr_decay_steps)
    trainer = LocalTrainer(model=model, task=data.task, train_x=data.train_x,
                           train_y=data.train_y, client_offsets=data.client_offsets.cpu(),
                           client_sizes=data.client_sizes.cpu(), local_steps=config.local_steps,
                           batch_size=config.batch_size, weight_decay=config.weight_decay,
                           schedule=schedule, vectorized=config.vectorized,
                           chunk_size=config.chunk_size)
    algorithm = make_algorithm(config)
    return Simulation(config, device, data, model, trainer, algorithm, streams)


def _check_override_patterns(config: SimConfig, model: nn.Module) -> None:
    """Every ``policy_overrides`` pattern the user gave must match a parameter of the model.

    The field's default (``{"*out*": None}``, the classifier of the MLP, CNN and CNN1D)
    is exempt: on the one-layer models it matches nothing (docs/reliability.md).
    """
    field = next(f for f in dataclasses.fields(config) if f.name == "policy_overrides")
    if config.policy_overrides == field.default_factory():
        return
    names = [n for n, _ in model.named_parameters()]
    for pattern in config.policy_overrides:
        if not any(fnmatch.fnmatchcase(n, pattern) for n in names):
            raise ValueError(f"policy_overrides: pattern {pattern!r} matches no parameter of "
                             f"model {config.model!r}, whose parameters are {names}")


def _cast(data: FederatedData, dtype: torch.dtype) -> FederatedData:
    """Inputs (and regression targets) in the run's dtype."""

    def cast(t: torch.Tensor) -> torch.Tensor:
        return t.to(dtype) if t.dtype.is_floating_point else t

    return dataclasses.replace(
        data, train_x=cast(data.train_x), train_y=cast(data.train_y), test_x=cast(data.test_x),
        test_y=cast(data.test_y), client_test_x=[cast(t) for t in data.client_test_x],
        client_test_y=[cast(t) for t in data.client_test_y])


@dataclass(frozen=True)
class Observer:
    """Optional hooks into a run, e.g. to evaluate theory constants along the trajectory.

    Both receive live tensors: read them, do not modify them.
    """

    # (round index r from 0, local step j, stacked local iterates (K, ...), client ids)
    on_local_step: Callable[[int, int, Params, torch.Tensor], None] | None = None
    # (rounds completed, global model w_r) after each aggregation, and once with w_0
    on_global: Callable[[int, Params], None] | None = None


def _checked_train(sim: Simulation, round_index: int, observer: Observer | None
                   ) -> Callable[[Params, torch.Tensor], Params]:
    """The trainer for one round, stopping with a clear error on a non-finite loss."""

    def train(start: Params, clients: torch.Tensor) -> Params:
        on_step = None
        if observer is not None and observer.on_local_step is not None:
            def on_step(j: int, params: Params) -> None:
                observer.on_local_step(round_index, j, params, clients)
        params, losses = sim.trainer.train(start, clients, round_index, sim.streams.batches,
                                           on_step)
        finite = torch.isfinite(losses).cpu()
        for p in params.values():  # one sum per client and tensor (lowrank's all_finite)
            finite &= all_finite(p.reshape(p.shape[0], -1), dim=1).cpu()
        if not bool(finite.all()):
            bad = int(clients[~finite][0])
            raise FloatingPointError(
                f"non-finite loss or weights at round {round_index + 1}, client {bad} "
                f"(lr={sim.config.lr}); try a smaller learning rate")
        return params

    return train


def _metrics(sim: Simulation, params: Params, w_star: Params | None) -> dict:
    cfg, data = sim.config, sim.data
    train = evaluate(sim.model, params, data.train_x, data.train_y, data.task,
                     weight_decay=cfg.weight_decay)
    test = evaluate(sim.model, params, data.test_x, data.test_y, data.task)
    dist_sq = None
    if w_star is not None:
        dist_sq = sum(float((params[n].double() - w_star[n].to(params[n].device).double())
                            .square().sum()) for n in params)
    return {"train_loss": train.loss, "test_loss": test.loss, "test_accuracy": test.accuracy,
            "dist_sq": dist_sq}


def run(
    config: SimConfig,
    *,
    data: FederatedData | None = None,
    w_star: Params | None = None,
    resume_from: str | Path | None = None,
    progress: bool = False,
    observer: Observer | None = None,
) -> RunResult:
    """Run a federated simulation.

    Parameters
    ----------
    config : SimConfig
        The run; same config and seed give a bit-identical history.
    data : FederatedData, optional
        Prebuilt data for this config (saves rebuilding it across runs).
    w_star : dict[str, torch.Tensor], optional
        An optimum; the history then records ``||w_r - w*||^2`` each round.
    resume_from : str or Path, optional
        A checkpoint written by an earlier run of the same config, or the output folder
        holding it (``checkpoint.pt``); ``rounds``, ``output_dir``, ``checkpoint_every``
        and ``divergence_factor`` may differ: a run can be extended. The checkpoint's
        hash, round numbers, parameter names, shapes and dtypes are verified.
    progress : bool
        Show a tqdm progress bar.
    observer : Observer, optional
        Hooks called at every local step and after every aggregation.

    Notes
    -----
    With ``config.output_dir`` set, every finished round is appended to
    ``output_dir/history.jsonl`` (:class:`fl_sim.history.HistoryJournal`) before the
    next starts, and if the run stops early (an exception, Ctrl-C, the divergence
    guard) a checkpoint of the last finished round is written to
    ``output_dir/checkpoint.pt``, so ``resume_from=output_dir`` continues it
    bit-identically.

    Returns
    -------
    RunResult
        ``.history`` (config and one :class:`RoundRecord` per round), ``.params``
        (the final global model), ``.model`` (it as an ``nn.Module``) and
        ``.simulation`` (the run's data, model template and algorithm).
    """
    with _flushed_denormals():
        return _run(config, data=data, w_star=w_star, resume_from=resume_from,
                    progress=progress, observer=observer)


@contextlib.contextmanager
def _flushed_denormals():
    """Flush denormal floats to zero for the duration of a run.

    Truncated models can hold denormals, which are ~50x slower on CPUs; flushing them
    changes results only below ~1e-38 (float32). torch offers no getter for this
    global flag, so it is reset to torch's default (off) afterwards.
    """
    torch.set_flush_denormal(True)
    try:
        yield
    finally:
        torch.set_flush_denormal(False)


def _resume(sim: Simulation, path: str | Path, config: SimConfig) -> tuple[ServerState, History]:
    """State and history of a checkpoint, checked against this run's config and model."""
    if Path(path).is_dir():
        path = Path(path) / "checkpoint.pt"
    ckpt = load_checkpoint(path, sim.device, params=sim.initial_params(),
                           num_clients=sim.data.num_clients)
    now = config.to_dict()
    changed = sorted(k for k in now if k not in _RESUMABLE and ckpt.config.get(k) != now[k])
    if changed:
        raise ValueError(f"resume_from: checkpoint {path} was written by a different config "
                         f"(fields {changed})")
    if ckpt.state.round > config.rounds:
        raise ValueError(f"rounds: checkpoint {path} is at round {ckpt.state.round}, past "
                         f"rounds={config.rounds}")
    sim.streams.load_state_dict(ckpt.rng)
    history = History.from_dict(ckpt.history)
    history.config = now  # the resumed run's own config: rounds is the new total
    env = environment(sim.device)
    then = {k: history.environment.get(k) for k in _ENVIRONMENT_KEYS}
    if then != {k: env[k] for k in _ENVIRONMENT_KEYS}:
        warnings.warn(f"resume_from: {path} was written with {then}, this run has "
                      f"{ {k: env[k] for k in _ENVIRONMENT_KEYS} }; results stay bit-identical "
                      "only with the same torch version, thread count and device",
                      RuntimeWarning, stacklevel=4)
    history.environment = env
    return ckpt.state, history


@contextlib.contextmanager
def _sigint_deferred() -> Iterator[None]:
    """Ignore a second Ctrl-C while a recovery checkpoint is written (main thread only)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


class _RoundBoundary:
    """Defers Ctrl-C (SIGINT) to the end of the round in progress (main thread only).

    The first Ctrl-C lets the round finish and be recorded, then raises
    ``KeyboardInterrupt``; a second one raises at once. ``inside`` tells whether an
    exception left from inside a round.
    """

    def __init__(self) -> None:
        self.inside = False
        self._pending = False
        self._previous = None

    def _handler(self, signum, frame) -> None:
        if self._pending:  # the second Ctrl-C: stop now
            raise KeyboardInterrupt
        self._pending = True

    def __enter__(self) -> _RoundBoundary:
        self.inside, self._pending = True, False
        if threading.current_thread() is threading.main_thread():
            self._previous = signal.signal(signal.SIGINT, self._handler)
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)
            self._previous = None
        if exc_type is None:
            self.inside = False
            if self._pending:
                raise KeyboardInterrupt


def _check_divergence(config: SimConfig, history: History, round_number: int) -> None:
    factor, start = config.divergence_factor, history.initial.get("train_loss")
    loss = history.records[-1].train_loss
    if factor is None or loss is None or not start or start <= 0:
        return
    if loss > factor * start:
        raise DivergenceError(
            f"train_loss: {loss:.4g} at round {round_number} is more than divergence_factor="
            f"{factor:g} x the initial {start:.4g}; the run is diverging: lower lr (now "
            f"{config.lr:g}), or set divergence_factor=None to run on")


def _run(config: SimConfig, *, data, w_star, resume_from, progress, observer) -> RunResult:
    sim = setup(config, data)
    out = None if config.output_dir is None else Path(config.output_dir)
    if resume_from is not None:
        state, history = _resume(sim, resume_from, config)
    else:
        history = History(config=config.to_dict(), environment=environment(sim.device))
        state = sim.algorithm.init(sim.initial_params(), sim.data.num_clients)
        history.initial = _metrics(sim, state.params, w_star)
        if observer is not None and observer.on_global is not None:
            observer.on_global(0, state.params)
    journal = None if out is None else HistoryJournal(out / JOURNAL_NAME, history)
    rng_done = sim.streams.state_dict()  # the streams as they were after the last finished round
    p = torch.as_tensor(sim.data.weights, dtype=torch.float64)
    bar = tqdm(range(state.round, config.rounds), desc=config.algorithm, disable=not progress,
               initial=state.round, total=config.rounds)
    stopping = _RoundBoundary()
    try:
        for r in bar:
            with stopping:  # Ctrl-C waits for the round to finish and be recorded
                new_state, record = _one_round(sim, state, r, p, w_star, observer)
                if journal is not None:
                    journal.append(record)
                history.records.append(record)
                state, rng_done = new_state, sim.streams.state_dict()
            if record.test_accuracy is not None:
                bar.set_postfix(acc=f"{record.test_accuracy:.3f}")
            if config.checkpoint_every and ((r + 1) % config.checkpoint_every == 0
                                            or r + 1 == config.rounds):
                save_checkpoint(out / "checkpoint.pt", Checkpoint(
                    config.to_dict(), state, rng_done, history.to_dict()))
            _check_divergence(config, history, r + 1)
    except BaseException:
        # the finished rounds are in the journal; a checkpoint of the last one makes the
        # run resumable (python -m fl_sim run ... --resume-from OUTPUT_DIR), unless the
        # round was cut inside an algorithm that updates its per-client memory in place
        consumed = stopping.inside and any(state.memory.values())
        if consumed and out is not None:
            warnings.warn("output_dir: no recovery checkpoint: the run stopped inside a round "
                          "that updates per-client memory in place; the finished rounds are "
                          f"in {out / JOURNAL_NAME}", RuntimeWarning, stacklevel=3)
        elif out is not None:
            try:
                with _sigint_deferred():
                    save_checkpoint(out / "checkpoint.pt", Checkpoint(
                        config.to_dict(), state, rng_done, history.to_dict()))
            except Exception as exc:  # noqa: BLE001 - never hide the original error
                warnings.warn(f"output_dir: could not write a recovery checkpoint ({exc})",
                              RuntimeWarning, stacklevel=3)
        raise
    finally:
        bar.close()
        if journal is not None:
            journal.close()
    return RunResult(history=history, params=state.params, simulation=sim)


def _one_round(sim: Simulation, state: ServerState, r: int, p: torch.Tensor,
               w_star: Params | None, observer: Observer | None
               ) -> tuple[ServerState, RoundRecord]:
    """Round ``r`` (from 0): the new state and its record; ``state`` is left unchanged."""
    config = sim.config
    t0 = synchronized_clock(state.params)
    part = sample_participants(p, config.participation, config.clients_per_round,
                               sim.streams.sampling)
    ctx = RoundContext(part, _checked_train(sim, r, observer), sim.streams.compression,
                       sim.data.num_clients)
    state, comms = sim.algorithm.round(state, ctx)
    seconds = synchronized_clock(state.params) - t0
    if not all(bool(all_finite(v)) for v in state.params.values()):
        raise FloatingPointError(f"non-finite global model after round {r + 1}")
    if observer is not None and observer.on_global is not None:
        observer.on_global(r + 1, state.params)
    evaluated = (r + 1) % config.eval_every == 0 or r + 1 == config.rounds
    m = _metrics(sim, state.params, w_star) if evaluated else dict.fromkeys(
        ("train_loss", "test_loss", "test_accuracy", "dist_sq"))
    record = RoundRecord(
        round=r + 1, **m, bytes_up=sum(comms.bytes_up_per_client),
        bytes_down=sum(comms.bytes_down_per_client),
        bytes_up_per_client=comms.bytes_up_per_client,
        bytes_down_per_client=comms.bytes_down_per_client, ranks_down=comms.ranks_down,
        ranks_up=comms.ranks_up, err_server=comms.err_server, err_client=comms.err_client,
        clients=part.clients.tolist(), seconds=seconds,
        compress_seconds=comms.compress_seconds)
    return state, record
