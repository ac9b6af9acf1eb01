"""Reproduce the empirical claims of FedDLR (reconstructed) into a results report.

``python -m experiments [--quick] [--out docs/results]`` runs four experiments and
writes ``results.md`` with tables and PNG figures next to it:

1. communication efficiency (:mod:`experiments.communication`),
2. key parameters against the theory's predictions (:mod:`experiments.parameters`),
3. computation of the exported compact model (:mod:`experiments.computation`),
4. simulator performance, and the same FedAvg workload on Flower
   (:mod:`experiments.engines`, :mod:`experiments.flower_engine` when ``flwr`` is
   installed).

This package sits outside ``fl_sim`` on purpose: it imports both ``fl_sim`` and
``theory``, and ``fl_sim`` must never import ``theory`` (tests/test_layering.py).
"""

from .settings import FULL, QUICK, Grid

__all__ = ["FULL", "QUICK", "Grid"]
