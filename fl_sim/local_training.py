"""Local SGD on many clients at once.

A client runs ``E`` local SGD steps (steps, not epochs). Each step draws a
minibatch of ``B`` of its samples uniformly *with replacement* (the sampling
model under which the theory's ``sigma_k^2`` is computed), or uses all its
samples when ``batch_size`` is None (full-batch gradient descent). The loss is
the mean per-sample loss plus ``weight_decay / 2 * ||w||^2``.

Two paths give the same result for the same random draws:

- vectorized: ``torch.func.vmap`` over stacked client parameters of
  ``grad(functional_call(...))`` — one batched kernel per layer and step;
- sequential: the same function, one client at a time, for models vmap cannot take.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from torch import nn
from torch.func import functional_call, grad_and_value, vmap

from .algorithms.base import chunks
from .models import MLP, per_sample_loss
from .params import Params
from .schedules import LearningRate

__all__ = ["LocalTrainer", "StepObserver"]

StepObserver = Callable[[int, Params], None]  # (local step j, stacked local iterates)


@dataclass(frozen=True)
class LocalTrainer:
    """Runs ``local_steps`` SGD steps for a set of clients from given start points."""

    model: nn.Module  # template for functional_call; its own parameters are not used
    task: str  # "classification" or "regression"
    train_x: torch.Tensor  # all clients' inputs, concatenated (on the compute device)
    train_y: torch.Tensor
    client_offsets: torch.Tensor  # int64 (N,), CPU
    client_sizes: torch.Tensor  # int64 (N,), CPU
    local_steps: int  # E
    batch_size: int | None  # B; None = full batch
    weight_decay: float  # lambda of the L2 term
    schedule: LearningRate  # eta_t for global local-step index t = round * E + j
    vectorized: bool = True  # vmap over clients, else a Python loop
    chunk_size: int | None = None  # clients trained at a time (bounds memory); None = all.
    #   The minibatches of a round are drawn for all clients first, so chunks change no draw
    fused: bool = True  # fl_sim's MLP: forward and backward written out as batched matmuls,
    #   the SGD update fused into the weight-gradient product (_mlp_steps); False, another
    #   model, or an observer: vmap of autograd. Equal up to float rounding (tested)
    _spare: dict[str, torch.Tensor] = field(default_factory=dict, init=False, repr=False,
                                            compare=False)  # last output stack (CPU)

    def _loss(self, params: Params, x: torch.Tensor, y: torch.Tensor, w: torch.Tensor):
        out = functional_call(self.model, params, (x,))
        return (per_sample_loss(self.task)(out, y) * w).sum()

    def _batches(self, clients: torch.Tensor, generator: torch.Generator):
        """Row indices ``(E, K, B)`` into the training arrays and weights per row."""
        offsets = self.client_offsets[clients]
        sizes = self.client_sizes[clients]
        k = clients.numel()
        if self.batch_size is None:
            width = int(sizes.max())
            pos = torch.arange(width).expand(k, width)
            valid = pos < sizes.unsqueeze(1)
            idx = offsets.unsqueeze(1) + torch.where(valid, pos, torch.zeros_like(pos))
            weights = valid.double() / sizes.unsqueeze(1).double()
            return idx.expand(self.local_steps, k, width), weights.expand(self.local_steps, k,
                                                                          width)
        u = torch.rand(self.local_steps, k, self.batch_size, generator=generator,
                       dtype=torch.float64)
        idx = offsets.view(1, k, 1) + (u * sizes.view(1, k, 1)).long()
        weights = torch.full(idx.shape, 1.0 / self.batch_size, dtype=torch.float64)
        return idx, weights

    def train(
        self,
        start: Params,
        clients: torch.Tensor,
        round_index: int,
        generator: torch.Generator,
        on_step: StepObserver | None = None,
    ) -> tuple[Params, torch.Tensor]:
        """Train each listed client from its start point.

        Parameters
        ----------
        start : dict[str, torch.Tensor]
            Stacked start parameters, each ``(K, *shape)``.
        clients : torch.Tensor
            int64 ``(K,)`` client indices (repeats allowed).
        round_index : int
            Round number, used to index the learning-rate schedule.
        generator : torch.Generator
            Minibatch stream.
        on_step : callable, optional
            ``on_step(j, params)`` is called before local step ``j`` with the stacked
            local iterates (read-only), e.g. to evaluate gradient bounds along a run.

        Returns
        -------
        params : dict[str, torch.Tensor]
            Stacked local models after ``E`` steps.
        losses : torch.Tensor
            ``(K,)`` minibatch loss at the last step (before its update).
        """
        idx, weights = self._batches(clients, generator)
        device = self.train_x.device
        idx, weights = idx.to(device), weights.to(device)
        k = clients.numel()
        layers = _mlp_layers(self.model) if self.fused and self.vectorized else None
        whole = self.chunk_size is None or self.chunk_size >= k
        if on_step is not None or (whole and layers is None):
            return self._train(start, idx, weights, round_index, on_step)
        # chunks of clients (an observer needs every client's iterate at each step, so
        # it gets one chunk); the output stack is filled chunk by chunk, and the fused
        # MLP steps update their chunk of it in place (no second copy of the models)
        out = self._output_stack(start, k)
        losses = torch.empty(k, device=device, dtype=next(iter(start.values())).dtype)
        for part in chunks(k, None if whole else self.chunk_size):
            if layers is not None:
                own = {n: out[n][part] for n in out}
                for n, p in own.items():
                    p.copy_(start[n][part])
                losses[part] = self._mlp_steps(own, layers, idx[:, part], weights[:, part],
                                               round_index)
                continue
            params, losses[part] = self._train({n: p[part] for n, p in start.items()},
                                               idx[:, part], weights[:, part], round_index, None)
            for n, p in params.items():
                out[n][part] = p
            del params
        return out, losses

    def _output_stack(self, start: Params, k: int) -> Params:
        """The tensors :meth:`train` writes the ``k`` local models into.

        On the CPU, the previous call's when nothing else holds them any more (the
        caller dropped the models it was given, and no view of them is alive), else new
        ones. A stack past glibc's mmap threshold (32 MB) is otherwise mapped afresh on
        every call and the kernel zeroes every page on first touch: at 10,000
        participants of the scaling benchmark those page faults made FedAvg's round
        superlinear in the participants (docs/benchmarks.md). The trainer keeps the last
        stack between calls (one stack of ``k`` models more, resident between rounds).
        Every entry is written before it is read, so results do not depend on the reuse.
        """
        out: Params = {}
        for n, p in start.items():
            shape = (k, *p.shape[1:])
            old = self._spare.pop(n, None)
            if (old is not None and p.device.type == "cpu" and old.shape == shape
                    and old.dtype == p.dtype and old.device == p.device
                    and sys.getrefcount(old) == 2 and _storage_uses(old) == _FREE_USES):
                out[n] = old
            else:
                out[n] = torch.empty(shape, dtype=p.dtype, device=p.device)
            del old
        if all(t.device.type == "cpu" for t in out.values()):
            self._spare.update(out)
        return out

    def _train(self, start: Params, idx: torch.Tensor, weights: torch.Tensor, round_index: int,
               on_step: StepObserver | None) -> tuple[Params, torch.Tensor]:
        """:meth:`train` of the clients whose minibatch rows are ``idx`` ``(E, K, B)``."""
        device = self.train_x.device
        k = idx.shape[1]
        # ``start`` may be a broadcast view and is never written: the first step writes its
        # result to fresh tensors, the later ones update those in place (unless an
        # observer is shown the iterates: it may keep them)
        params = dict(start)
        owned = False
        step_fn = grad_and_value(self._loss)
        batched_step = vmap(step_fn) if self.vectorized else None
        losses = torch.zeros(k, device=device)
        for j in range(self.local_steps):
            eta = self.schedule(round_index * self.local_steps + j)
            if on_step is not None:
                on_step(j, params)
            x, y = self.train_x[idx[j]], self.train_y[idx[j]]
            w = weights[j].to(self.train_x.dtype)
            if batched_step is not None:
                grads, losses = batched_step(params, x, y, w)
            else:
                per_client = [step_fn({n: p[i] for n, p in params.items()}, x[i], y[i], w[i])
                              for i in range(k)]
                grads = {n: torch.stack([g[n] for g, _ in per_client]) for n in params}
                losses = torch.stack([loss for _, loss in per_client])
            params = self._sgd_step(params, grads, eta, in_place=owned)
            owned = on_step is None
        return params, losses

    def _mlp_steps(self, params: Params, layers: list[str], idx: torch.Tensor,
                   weights: torch.Tensor, round_index: int) -> torch.Tensor:
        """The ``E`` steps of :meth:`_train` for fl_sim's MLP, without autograd, in place.

        ``params`` (each ``(K, ...)``, contiguous) are updated in place; returns the
        losses ``(K,)`` of the last step.

        Per step and layer ``z = h W^T + b`` (``baddbmm`` over clients), ReLU between
        layers; the loss gradient at the output (``softmax - onehot`` for cross-entropy,
        ``pred - y`` for the squared loss, times each row's weight); then, from the last
        layer back, the input gradient ``g W`` with the old ``W``, and the update
        ``W <- (1 - eta lambda) W - eta g^T h`` as one ``baddbmm_`` into ``W`` (the weight
        gradient is never stored), ``b <- (1 - eta lambda) b - eta sum g``. The same
        arithmetic as autograd's, in another order: equal up to float rounding.
        """
        ws = [params[f"{name}.weight"] for name in layers]
        bs = [params[f"{name}.bias"] for name in layers]
        k = idx.shape[1]
        classification = self.task == "classification"
        losses = torch.zeros(k, device=self.train_x.device)
        for j in range(self.local_steps):
            eta = self.schedule(round_index * self.local_steps + j)
            x, y = self.train_x[idx[j]], self.train_y[idx[j]]
            w = weights[j].to(self.train_x.dtype).unsqueeze(-1)  # (K, B, 1)
            acts = [x.reshape(k, x.shape[1], -1)]
            for i, (wt, b) in enumerate(zip(ws, bs, strict=True)):
                z = torch.baddbmm(b.unsqueeze(1), acts[-1], wt.mT)
                acts.append(z.relu_() if i + 1 < len(ws) else z)
            out = acts.pop()
            if classification:
                logp = torch.log_softmax(out, dim=-1)
                labels = y.unsqueeze(-1)
                losses = -(logp.gather(-1, labels) * w).sum(dim=(1, 2))
                g = logp.exp_().scatter_add_(-1, labels, torch.full_like(w, -1.0)).mul_(w)
            else:
                diff = out - y.reshape(out.shape)
                losses = (0.5 * diff.square().sum(-1, keepdim=True) * w).sum(dim=(1, 2))
                g = diff.mul_(w)
            for i in reversed(range(len(ws))):
                h = acts[i]
                below = torch.bmm(g, ws[i]) if i else None  # with the old W
                if self.weight_decay:
                    ws[i].mul_(1 - eta * self.weight_decay)
                    bs[i].mul_(1 - eta * self.weight_decay)
                ws[i].baddbmm_(g.mT, h, alpha=-eta)
                bs[i].sub_(g.sum(dim=1), alpha=eta)
                if below is not None:
                    g = below.mul_(h > 0)  # ReLU's derivative at z, from h = relu(z)
        return losses

    def _sgd_step(self, params: Params, grads: Params, eta: float, in_place: bool) -> Params:
        """``p - eta * (g + weight_decay * p)`` for every tensor, in fused multi-tensor ops.

        One ``torch._foreach_add_`` updates every tensor of the model (no Python loop over
        parameters, no temporary of the size of the stacked models: on a CPU each fresh
        buffer costs page faults, and the update used to take longer than the matmuls).
        ``weight_decay * p`` is added to the gradients first (they are ours: ``grad``
        returns fresh tensors); with ``weight_decay == 0`` that term is skipped. The
        update ``p + (-eta) g`` may be computed with a fused multiply-add, so results can
        differ from ``p - eta * g`` in the last bit. ``in_place`` overwrites ``params``;
        otherwise the result is written to new tensors.
        """
        names = list(params)
        ps, gs = [params[n] for n in names], [grads[n] for n in names]
        if self.weight_decay:
            torch._foreach_add_(gs, ps, alpha=self.weight_decay)
        if in_place:
            torch._foreach_add_(ps, gs, alpha=-eta)
            return params
        return dict(zip(names, torch._foreach_add(ps, gs, alpha=-eta), strict=True))


def _storage_uses(t: torch.Tensor) -> int:
    """References to ``t``'s storage (tensors and views on it), as torch counts them."""
    return torch._C._storage_Use_Count(t.untyped_storage()._cdata)


_FREE_USES = _storage_uses(torch.empty(1))  # the count of a tensor nothing else shares


def _mlp_layers(model: nn.Module) -> list[str] | None:
    """Names of the linear layers of fl_sim's :class:`~fl_sim.models.MLP` (Linear with
    bias, ReLU, ..., Linear), in order; None for any other model."""
    if type(model) is not MLP:
        return None
    layers = []
    children = list(model.net.named_children())
    for i, (name, m) in enumerate(children):
        if i % 2 == 0 and isinstance(m, nn.Linear) and m.bias is not None:
            layers.append(f"net.{name}")
        elif i % 2 == 1 and type(m) is nn.ReLU and i + 1 < len(children):
            continue
        else:
            return None
    return layers
