"""Local SGD: the vectorized path equals the sequential one; one full-batch step is GD."""

from __future__ import annotations

import torch
from torch import nn

from fl_sim.local_training import LocalTrainer
from fl_sim.schedules import Constant


def _mlp() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(6, 16), nn.ReLU(), nn.Linear(16, 3)).double()


def _trainer(model, batch_size, vectorized, sizes=(5, 9, 7, 12), steps=4, wd=0.01):
    g = torch.Generator().manual_seed(1)
    n = sum(sizes)
    x = torch.randn(n, 6, generator=g, dtype=torch.float64)
    y = torch.randint(0, 3, (n,), generator=g)
    offsets = torch.tensor([0, *torch.tensor(sizes).cumsum(0)[:-1].tolist()])
    return LocalTrainer(model=model, task="classification", train_x=x, train_y=y,
                        client_offsets=offsets, client_sizes=torch.tensor(sizes),
                        local_steps=steps, batch_size=batch_size, weight_decay=wd,
                        schedule=Constant(0.1), vectorized=vectorized)


def _start(model, k):
    return {n: p.detach().unsqueeze(0).repeat(k, *[1] * p.ndim) for n, p in
            model.named_parameters()}


def test_vectorized_equals_sequential():
    model = _mlp()
    clients = torch.tensor([0, 2, 3, 2])
    results = []
    for vectorized in (True, False):
        trainer = _trainer(model, batch_size=4, vectorized=vectorized)
        params, losses = trainer.train(_start(model, 4), clients, 3,
                                       torch.Generator().manual_seed(7))
        results.append((params, losses))
    (pv, lv), (ps, ls) = results
    for name in pv:
        torch.testing.assert_close(pv[name], ps[name], rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(lv, ls, rtol=1e-12, atol=1e-12)
    # the two copies of client 2 saw different minibatches, so they differ
    assert not torch.equal(pv["0.weight"][1], pv["0.weight"][3])


def test_full_batch_single_step_is_gradient_descent():
    model = _mlp()
    trainer = _trainer(model, batch_size=None, vectorized=True, steps=1, wd=0.01)
    params, _ = trainer.train(_start(model, 1), torch.tensor([1]), 0, torch.Generator())
    # reference: autograd on client 1's data (rows 5..13), mean loss + wd/2 ||w||^2
    ref = _mlp()
    x, y = trainer.train_x[5:14], trainer.train_y[5:14]
    loss = nn.functional.cross_entropy(ref(x), y) + 0.005 * sum(
        p.square().sum() for p in ref.parameters())
    loss.backward()
    for name, p in ref.named_parameters():
        torch.testing.assert_close(params[name][0], p.detach() - 0.1 * p.grad, rtol=1e-12,
                                   atol=1e-12)


def test_minibatches_stay_inside_each_client():
    trainer = _trainer(_mlp(), batch_size=50, vectorized=True)
    idx, weights = trainer._batches(torch.tensor([0, 3]), torch.Generator().manual_seed(0))
    assert idx.shape == (4, 2, 50)
    assert int(idx[:, 0].min()) >= 0 and int(idx[:, 0].max()) < 5
    assert int(idx[:, 1].min()) >= 21 and int(idx[:, 1].max()) < 33
    torch.testing.assert_close(weights.sum(-1), torch.ones(4, 2, dtype=torch.float64))


def test_fused_mlp_steps_equal_autograd_within_rounding():
    """fl_sim's MLP trains by hand-written batched matmuls with the update fused
    (``LocalTrainer.fused``); vmap of autograd is the reference: equal to 1e-12 in float64
    for both tasks, with weight decay, minibatches and full batches (padded rows)."""
    import dataclasses

    from fl_sim.local_training import _mlp_layers
    from fl_sim.models import MLP

    model = MLP(6, hidden=(16, 8), num_classes=3, generator=torch.Generator().manual_seed(0))
    model = model.double()
    assert _mlp_layers(model) == ["net.fc1", "net.fc2", "net.out"]
    assert _mlp_layers(_mlp()) is None  # any other model: the autograd path
    clients = torch.tensor([0, 2, 3, 2])
    for task, batch_size in (("classification", 4), ("classification", None),
                             ("regression", 3)):
        trainer = dataclasses.replace(_trainer(model, batch_size, True), task=task)
        if task == "regression":
            g = torch.Generator().manual_seed(2)
            trainer = dataclasses.replace(trainer, train_y=torch.randn(
                trainer.train_x.shape[0], 3, generator=g, dtype=torch.float64))
        out = {}
        for fused, chunk in ((True, None), (True, 3), (False, None)):
            t = dataclasses.replace(trainer, fused=fused, chunk_size=chunk)
            out[fused, chunk] = t.train(_start(model, 4), clients, 2,
                                        torch.Generator().manual_seed(7))
        (pa, la) = out[False, None]
        for pf, lf in (out[True, None], out[True, 3]):
            for name in pa:
                torch.testing.assert_close(pf[name], pa[name], rtol=1e-12, atol=1e-12)
            torch.testing.assert_close(lf, la, rtol=1e-12, atol=1e-12)
        pf = out[True, None][0]
        assert not torch.equal(pf["net.fc1.weight"][0], _start(model, 1)["net.fc1.weight"][0])


def test_output_stack_is_reused_only_when_nothing_holds_it():
    """On the CPU the trainer writes into its last output stack when the caller dropped it
    (no fresh pages to fault in each round); never while the models or a view of them
    are alive; the results are those of fresh tensors."""
    import dataclasses
    import weakref

    from fl_sim.models import MLP

    model = MLP(6, hidden=(16, 8), num_classes=3, generator=torch.Generator().manual_seed(0))
    model = model.double()
    trainer = _trainer(model, 4, True)
    clients = torch.tensor([0, 2, 3, 2])
    name = "net.fc1.weight"

    def train(t, seed):
        return t.train(_start(model, 4), clients, 2, torch.Generator().manual_seed(seed))[0]

    first = train(trainer, 7)
    first_ref = weakref.ref(first[name])
    # an alias of the storage (detach, numpy) that holds no reference to the tensor
    alias, kept = first[name].detach(), first[name].clone()
    del first
    second = train(trainer, 8)
    assert second[name] is not first_ref()
    assert torch.equal(alias, kept)  # not overwritten
    second_ref = weakref.ref(second[name])
    del second, alias
    third = train(trainer, 9)
    assert third[name] is second_ref()  # nothing held it: reused
    fresh = train(dataclasses.replace(trainer), 9)  # a new trainer: fresh tensors
    for n in fresh:
        assert torch.equal(third[n], fresh[n])
    fourth = train(trainer, 10)  # third is held: not reused, not overwritten
    assert fourth[name] is not third[name]
    for n in fresh:
        assert torch.equal(third[n], fresh[n])
