"""Several runs of one model trained at once, as one stacked model: a lever for many small runs
(N11's), whose steps are too small to keep a GPU (or two CPU cores) busy one run at a time.

Runs stack when their configs differ only by ``seed`` or by whether their data is binarised
(``stack_key``: each member takes its batches from its own data). Their weights are stacked
along a new first dimension (``torch.func.stack_module_state``) and each step is one ``vmap`` over
the members of the model's own forward pass and loss terms (``functional_call``), with one
optimiser over the stacked weights (Adagrad, Adam and SGD act weight by weight, so a member's
steps are its own). Each member keeps its own batch order and its own stream of torch's random
numbers (its initialisation, its reparameterisation noise, its evaluation), as its separate run
would, so that on the CPU it ends where that run ends up to float rounding (batched matrix
products round differently; tests/test_stacking.py). On a GPU the noise still comes from each
member's CPU stream, where its separate run would draw on the GPU's: the same runs in law, not in
bits. Evaluation, hooks and kept states are per member.
"""

from __future__ import annotations

import contextlib
import copy
import time
from collections.abc import Callable, Mapping

import torch
from torch.func import functional_call, stack_module_state, vmap

from .config import ExperimentConfig
from .data import experiment_split
from .errors import TrainingDivergedError
from .losses import loss_terms
from .models import build_model
from .optimizers import make_optimizer
from .training import EpochHook, Run, check_finite, checkpoint_epochs, evaluate, progress_bar, run_state

AUTOENCODERS = ("shallow_mlp", "mlp", "conv", "resmlp", "classifier_ae")
LATENTS = ("sampled", "mean", "point")


def stack_key(config: ExperimentConfig) -> str:
    """Configs with the same stack key train as one stacked model: all fields but the seed and
    the binarisation of the data (K's two tracks of one latent size, when their step sizes agree)."""
    return config.replace(seed=0, binarize=False).key()


def stackable(config: ExperimentConfig) -> bool:
    """An autoencoder whose forward pass and steps depend only on its weights and its batch: no
    codebook (its in-place EMA updates), no matching pool, no warm start or frozen module."""
    return (
        config.model in AUTOENCODERS
        and config.latent in LATENTS
        and not config.codebook_size
        and not config.pool_size
        and config.init_from is None
        and not config.freeze
        and not config.reinit
    )


@contextlib.contextmanager
def _own_stream(stream: torch.Generator):
    """torch's global generator set to a member's stream inside the block, and the stream moved on after it."""
    torch.set_rng_state(stream.get_state())
    try:
        yield
    finally:
        stream.set_state(torch.get_rng_state())


def _member_optimizer_state(state: dict, member: int, size: int) -> dict:
    """The member's slice of the stacked optimiser's state: what its own optimiser would hold."""
    sliced = {
        index: {k: (v[member] if torch.is_tensor(v) and v.dim() and v.shape[0] == size else v) for k, v in s.items()}
        for index, s in state["state"].items()
    }
    return {"state": sliced, "param_groups": copy.deepcopy(state["param_groups"])}


def train_stacked(
    configs: list,
    hooks: Mapping[str, EpochHook] | None = None,
    progress: bool = True,
    keeps: list | None = None,
) -> list:
    """Train ``configs`` (one stack key, see the module docstring) as one stacked model; a Run per
    config, in order. ``keeps[i](epoch, state)`` is called for member i as ``training.train``'s
    ``keep`` would be; TrainingDivergedError names the member whose loss or weights went non-finite."""
    first, size = configs[0], len(configs)
    if len({stack_key(c) for c in configs}) != 1 or not all(stackable(c) for c in configs):
        raise ValueError("train_stacked takes stackable configs that differ only by seed or binarisation")
    splits = [experiment_split(c) for c in configs]
    image_shape = tuple(splits[0][0].shape[1:])
    models, streams, orders = [], [], []
    for config in configs:
        torch.manual_seed(config.seed)  # as the member's own run: its initialisation, then its stream goes on
        models.append(build_model(config, image_shape).to(config.device))
        streams.append(torch.Generator())
        streams[-1].set_state(torch.get_rng_state())
        orders.append(torch.Generator().manual_seed(config.seed))
    weights, buffers = stack_module_state(models)
    optimizer = make_optimizer(first, list(weights.values()))
    shell = copy.deepcopy(models[0]).to("meta")

    def member_terms(w, b, xb, yb, eps):
        return loss_terms(xb, yb, functional_call(shell, (w, b), (xb,), {"noise": eps}), first)

    step_terms: Callable = vmap(member_terms)
    histories = [[] for _ in configs]
    kept = set(checkpoint_epochs(first.epochs)) if keeps is not None else set()
    n, batch = len(splits[0][0]), first.batch_size
    label = f"{first.label()} with seeds {', '.join(str(c.seed) for c in configs)} stacked"
    bar = progress_bar(range(1, first.epochs + 1), label, progress)
    for epoch in bar:
        started = time.perf_counter()
        permutations = [torch.randperm(n, generator=order).to(first.device) for order in orders]
        names, sums = (), None
        for start in range(0, n, batch):
            index = [p[start : start + batch] for p in permutations]
            xb = torch.stack([split[0].index_select(0, i) for split, i in zip(splits, index)])
            yb = torch.stack([split[1].index_select(0, i) for split, i in zip(splits, index)])
            shape = (len(index[0]), first.latent_dim)
            eps = torch.stack(
                [torch.randn(shape, generator=s) if first.latent == "sampled" else torch.zeros(shape) for s in streams]
            ).to(first.device)
            terms = step_terms(weights, buffers, xb, yb, eps)
            loss = terms["loss"]
            if not bool(torch.isfinite(loss).all()):
                bad = [configs[i].label() for i in range(size) if not torch.isfinite(loss[i])]
                raise TrainingDivergedError(
                    f"{', '.join(bad)}: loss became non-finite in epoch {epoch}; nothing was cached"
                )
            optimizer.zero_grad()
            loss.sum().backward()
            optimizer.step()
            with torch.no_grad():
                values = torch.stack(tuple(terms.values())) * len(index[0])  # [terms, members]
                names, sums = tuple(terms), values if sums is None else sums + values
        seconds = (time.perf_counter() - started) / size
        state = optimizer.state_dict()
        for i, (config, model, split) in enumerate(zip(configs, models, splits)):
            with torch.no_grad():
                model.load_state_dict({k: v[i] for k, v in {**weights, **buffers}.items()})
            row = {"epoch": epoch, "samples": epoch * n, "seconds": seconds}
            row.update({f"train_{name}": float(total) / n for name, total in zip(names, sums[:, i].tolist())})
            with _own_stream(streams[i]), torch.no_grad():
                if len(split[2]):
                    row.update({f"test_{k}": v for k, v in evaluate(model, split[2], split[3], config).items()})
                model.eval()
                for hook in (hooks or {}).values():
                    row.update(hook(model, split))
                model.train()
            histories[i].append(row)
            if epoch in kept:
                check_finite(config.replace(epochs=epoch), model, histories[i])
                optimizer_i = _member_optimizer_state(state, i, size)
                keeps[i](
                    epoch,
                    {
                        **run_state(epoch, model, _Holding(optimizer_i), orders[i], histories[i], config.device),
                        "rng": streams[i].get_state(),
                    },
                )
        bar.set_postfix_str(f"train {float(sums[names.index('loss')].mean()) / n:.2f}", refresh=False)
    bar.close()
    runs = []
    for config, model, history in zip(configs, models, histories):
        model.eval()
        check_finite(config, model, history)
        runs.append(Run(config, model, history, from_cache=False, image_shape=image_shape))
    return runs


class _Holding:
    """An optimiser's state dict standing in for the optimiser (``training._state`` asks it for one)."""

    def __init__(self, state: dict):
        self.state = state

    def state_dict(self) -> dict:
        return self.state
