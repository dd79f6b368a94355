"""Check a profile's runs without training them: ``GEOVAE_DRY_RUN=<steps>`` (``runner --dry-run``).

With the variable set, ``cache.run`` calls ``dry_run``: it builds the config's model at its full
size on the CPU, takes <steps> optimisation steps on real batches, appends what it measured to
the JSON-lines file ``$GEOVAE_DRY_RUN_REPORT`` and returns the untrained model with one history
row per step (the loss terms, not the hooks' metrics: the runner's dry run stops a notebook after
its last training cell, so nothing reads them), so that a notebook's code between training cells
still runs. Nothing is trained and the cache is not touched.

- ``seconds_per_step``: the mean over the steps after the first (which also sets things up).
- ``flops_per_step``: ``torch.utils.flop_counter.FlopCounterMode``'s count over the first step's
  forward and backward pass (matrix products and convolutions; elementwise work is not counted).
- ``memory_bytes``: the bytes of the distinct tensor storages of the first step: parameters,
  gradients, optimiser state and every tensor autograd saves for the backward pass
  (``torch.autograd.graph.saved_tensors_hooks``), as if all were held at once. An estimate of the
  memory one step needs on a GPU, without the allocator's overhead and short-lived temporaries;
  not this process's RSS.
"""

from __future__ import annotations

import json
import math
import os
import time

import torch
from torch.utils.flop_counter import FlopCounterMode

from .config import ExperimentConfig
from .data import experiment_split
from .errors import TrainingDivergedError
from .models import build_model, count_parameters
from .stacking import stack_key, stackable
from .training import Run, batch_terms, checkpoint_epochs, evaluate, start_training

DRY_RUN = "GEOVAE_DRY_RUN"
REPORT = "GEOVAE_DRY_RUN_REPORT"


def steps() -> int:
    """The optimisation steps a dry run takes (``$GEOVAE_DRY_RUN``); 0: train for real."""
    return int(os.environ.get(DRY_RUN) or 0)


_MEASURED = {}  # a config's seedless key -> (record, history, image shape): seeds share shapes and costs


def _seedless(config: ExperimentConfig) -> str:
    start = config.init_from.replace(seed=0) if config.init_from is not None else None
    return config.replace(seed=0, init_from=start).key()


def dry_run(config: ExperimentConfig, hooks=None, progress: bool = True) -> Run:
    """Build, step and measure ``config`` (see the module docstring); return the untrained Run.
    A config that differs from one measured before in this process by its seed only is not
    stepped again: its record repeats that measurement under its own key and label."""
    seen = _MEASURED.get(_seedless(config))
    if seen is not None:
        record, history, image_shape = seen
        _report(
            {
                **record,
                "label": config.label(),
                "key": config.key(),
                "stack": _stack(config, hooks),
                "hooks": sorted(hooks or ()),
            }
        )
        model = build_model(config, image_shape).to(config.device).eval()
        return Run(config, model, [dict(row) for row in history], from_cache=False, image_shape=image_shape)
    cpu = config.replace(device="cpu")
    torch.manual_seed(config.seed)
    split = experiment_split(cpu)
    x_train, y_train, x_test, y_test = split
    image_shape = tuple(x_train.shape[1:])
    model = build_model(cpu, image_shape, x_train.mean(0))
    if config.init_from is not None:  # the weights it would start from must fit
        model.load_state_dict(build_model(config.init_from, image_shape).state_dict())
    order, optimizer = start_training(model, cpu, x_train)
    batch = min(config.batch_size, len(x_train))

    def step() -> dict:
        index = torch.randint(len(x_train), (batch,), generator=order)
        terms = batch_terms(model, cpu, x_train, x_train[index], y_train[index], order)
        optimizer.zero_grad()
        terms["loss"].backward()
        optimizer.step()
        return {name: float(value.detach()) for name, value in terms.items()}

    rows, storages = [], {}
    for i in range(steps()):
        started = time.perf_counter()
        if i == 0:
            with FlopCounterMode(display=False) as flops, _saved_storages(storages):
                terms = step()
        else:
            terms = step()
        rows.append((terms, time.perf_counter() - started))
        if not math.isfinite(terms["loss"]):
            raise TrainingDivergedError(f"{config.label()}: loss became {terms['loss']} in dry-run step {i + 1}")
    for tensor in [
        *model.parameters(),
        *[p.grad for p in model.parameters() if p.grad is not None],
        *[v for state in optimizer.state.values() for v in state.values() if torch.is_tensor(v)],
    ]:
        storages[tensor.untyped_storage().data_ptr()] = tensor.untyped_storage()
    timed = [seconds for _, seconds in rows[1:]] or [rows[0][1]]
    record = {
        "label": config.label(),
        "key": config.key(),
        "stack": _stack(config, hooks),
        "hooks": sorted(hooks or ()),
        "model": config.model,
        "dataset": config.dataset,
        "parameters": count_parameters(model),
        "train_images": len(x_train),
        "batch_size": batch,
        "epochs": config.epochs,
        "steps_per_epoch": math.ceil(len(x_train) / batch),
        "steps": len(rows),
        "seconds_per_step": sum(timed) / len(timed),
        "flops_per_step": flops.get_total_flops(),
        "memory_bytes": sum(s.nbytes() for s in storages.values()),
    }
    _report(record)
    if progress:
        print(
            f"{config.label()}: dry run, {record['parameters']:,} parameters, "
            f"{record['flops_per_step'] / 1e9:.3g} GFLOP and {record['seconds_per_step'] * 1e3:.0f} ms "
            f"per step on the CPU, {record['memory_bytes'] / 1e6:.0f} MB"
        )
    model.to(config.device)
    on_device = tuple(t.to(config.device) for t in split)
    test = evaluate(model, on_device[2][:batch], on_device[3][:batch], config) if len(x_test) else {}
    model.eval()
    scored = set(checkpoint_epochs(len(rows)))  # as ``training.train`` scores the test set
    history = [
        {
            "epoch": i + 1,
            "samples": (i + 1) * batch,
            "seconds": seconds,
            **{f"train_{k}": v for k, v in terms.items()},
            **({f"test_{k}": v for k, v in test.items()} if i + 1 in scored else {}),
        }
        for i, (terms, seconds) in enumerate(rows)
    ]
    _MEASURED[_seedless(config)] = (record, history, image_shape)
    return Run(config, model, history, from_cache=False, image_shape=image_shape)


def _stack(config: ExperimentConfig, hooks) -> str:
    """The group the run trains in on a GPU: its stack key there (``padded``) when ``cache.run_many``
    would stack it, else its own key."""
    return stack_key(config, padded=True) if stackable(config) and not hooks else config.key()


def _report(record: dict) -> None:
    if os.environ.get(REPORT):
        with open(os.environ[REPORT], "a") as report:
            report.write(json.dumps(record) + "\n")


class _saved_storages(torch.autograd.graph.saved_tensors_hooks):
    """Keep in ``storages`` (data pointer -> storage) every storage autograd saves for backward;
    kept alive, so that no later tensor reuses its address and hides in the count."""

    def __init__(self, storages: dict):
        def pack(tensor):
            storages[tensor.untyped_storage().data_ptr()] = tensor.untyped_storage()
            return tensor

        super().__init__(pack, lambda tensor: tensor)
