"""Several runs of one model trained at once, as one stacked model: a lever for many small runs
(N11's), whose steps are too small to keep a GPU busy one run at a time. ``cache.run_many`` stacks
only on a GPU (``stacks``): on the CPU a stacked step measured slower than its members' own steps.

Runs stack when their configs differ only by ``seed`` or by whether their data is binarised
(``stack_key``: each member takes its batches from its own data). Their weights are stacked
along a new first dimension (``torch.func.stack_module_state``) and each step is one ``vmap`` over
the members of the model's own forward pass and loss terms (``functional_call``), with one
optimiser over the stacked weights (Adagrad, Adam and SGD act weight by weight, so a member's
steps are its own). Each member keeps its own batch order and its own stream of torch's random
numbers (its initialisation, its reparameterisation noise, its hooks), as its separate run
would, so that on the CPU it ends where that run ends up to float rounding (batched matrix
products round differently; tests/test_stacking.py). On a GPU the noise still comes from each
member's CPU stream, where its separate run would draw on the GPU's: the same runs in law, not in
bits. Evaluation, hooks and kept states are per member.

On a GPU a small model's step costs its launch floor, not its arithmetic, so there the MLPs of
``PADDED`` also stack across latent sizes (K's z = 2 ... 200: one group instead of one per size).
Each member is padded to the group's largest latent size Z (``pad``): its encoder's head gives
[mu; log sigma^2] (or z) in blocks of Z, its decoder's first layer reads Z inputs, and the padded
weights, noise and codes are zero. Zero codes add exactly nothing to the loss (KL, spread terms and
the decoder's products), so the padded weights get zero gradients, stay zero under Adagrad, Adam,
SGD and weight decay, and each member's own weights follow its own run up to rounding. A padded
member does Z's arithmetic: the CPU, bound by arithmetic, keeps one group per latent size.
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
PADDED = ("shallow_mlp", "mlp")  # the encoder ends in Linear(., [mu; logvar] or z); the decoder starts in Linear(z, .)


def stack_key(config: ExperimentConfig, padded: bool | None = None) -> str:
    """Configs with the same stack key train as one stacked model: all fields but the seed and
    the binarisation of the data (K's two tracks of one latent size, when their step sizes agree),
    and, ``padded`` (by default on a GPU), the latent size of a ``PADDED`` model."""
    padded = config.device.startswith("cuda") if padded is None else padded
    latent_dim = 1 if padded and config.model in PADDED else config.latent_dim
    return config.replace(seed=0, binarize=False, latent_dim=latent_dim).key()


def stacks(config: ExperimentConfig) -> bool:
    """Whether ``cache.run_many`` trains ``config`` in a stacked group: a ``stackable`` config on a
    GPU. On the CPU, at the one thread per page ``make book`` gives, three seeds stacked took longer
    than one after the other (AMD EPYC: N1's CelebA conv AE 1.63x, N6's MLP VAE 1.20x, K's AE 1.16x,
    K's VAE 1.05x): there a step is bound by its arithmetic, not by its launches. (At two threads the
    VAEs gained, K's 1.35x and N6's 1.1x, while the conv AE and K's AE still lost, 1.53x and 1.22x.)"""
    return stackable(config) and config.device.startswith("cuda")


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


def _latent_axis(own: tuple, padded: tuple) -> int | None:
    """The one axis where a member's own shape and its padded shape differ (None: they agree)."""
    axes = [a for a, (n, m) in enumerate(zip(own, padded)) if n != m]
    if not axes:
        return None
    (axis,) = axes
    return axis


def pad(tensor: torch.Tensor, shape: tuple, z: int, big: int) -> torch.Tensor:
    """A member's ``tensor`` of latent size ``z`` in the ``shape`` of latent size ``big``: along the
    one axis that differs, its blocks of z ([mu; logvar], or z) start at multiples of ``big``; zeros elsewhere."""
    axis = _latent_axis(tensor.shape, shape)
    if axis is None:
        return tensor
    out = tensor.new_zeros(shape)
    for block in range(tensor.shape[axis] // z):
        out.narrow(axis, block * big, z).copy_(tensor.narrow(axis, block * z, z))
    return out


def unpad(tensor: torch.Tensor, shape: tuple, z: int, big: int) -> torch.Tensor:
    """The inverse of ``pad``: the member's own ``shape`` cut out of a padded tensor."""
    axis = _latent_axis(shape, tensor.shape)
    if axis is None:
        return tensor
    return torch.cat([tensor.narrow(axis, block * big, z) for block in range(shape[axis] // z)], axis)


def _member_optimizer_state(state: dict, member: int, size: int, shapes: list, z: int, big: int) -> dict:
    """The member's slice of the stacked optimiser's state, cut to its own parameters' ``shapes``
    (in the optimiser's order): what its own optimiser would hold."""

    def own(index, v):
        if not (torch.is_tensor(v) and v.dim() and v.shape[0] == size):
            return v
        return unpad(v[member], shapes[index], z, big) if v[member].dim() == len(shapes[index]) else v[member]

    sliced = {index: {k: own(index, v) for k, v in s.items()} for index, s in state["state"].items()}
    return {"state": sliced, "param_groups": copy.deepcopy(state["param_groups"])}


def train_stacked(
    configs: list,
    hooks: Mapping[str, EpochHook] | None = None,
    progress: bool = True,
    keeps: list | None = None,
) -> list:
    """Train ``configs`` (one padded stack key, see the module docstring) as one stacked model; a
    Run per config, in order. ``keeps[i](epoch, state)`` is called for member i as ``training.train``'s
    ``keep`` would be; TrainingDivergedError names the member whose loss or weights went non-finite."""
    first, size = configs[0], len(configs)
    if len({stack_key(c, padded=True) for c in configs}) != 1 or not all(stackable(c) for c in configs):
        raise ValueError(
            "train_stacked takes stackable configs that differ only by seed, binarisation or (padded) latent size"
        )
    data = {c.binarize: experiment_split(c) for c in configs}  # members on the same data share its tensors
    splits = [data[c.binarize] for c in configs]
    image_shape = tuple(splits[0][0].shape[1:])
    big = max(c.latent_dim for c in configs)
    shell = build_model(first.replace(latent_dim=big), image_shape)
    shapes = {k: tuple(v.shape) for k, v in shell.state_dict().items()}
    models, padded, streams, orders = [], [], [], []
    for config, split in zip(configs, splits):
        torch.manual_seed(config.seed)  # as the member's own run: its initialisation, then its stream goes on
        models.append(build_model(config, image_shape, split[0].mean(0)).to(config.device))
        streams.append(torch.Generator())
        streams[-1].set_state(torch.get_rng_state())
        orders.append(torch.Generator().manual_seed(config.seed))
        padded.append(copy.deepcopy(shell).to(config.device))
        start = models[-1].state_dict()
        padded[-1].load_state_dict({k: pad(v, shapes[k], config.latent_dim, big) for k, v in start.items()})
    weights, buffers = stack_module_state(padded)
    optimizer = make_optimizer(first, list(weights.values()))
    shell = shell.to("meta")
    own_shapes = [{k: tuple(v.shape) for k, v in m.state_dict().items()} for m in models]

    def member_terms(w, b, xb, yb, eps):
        return loss_terms(xb, yb, functional_call(shell, (w, b), (xb,), {"noise": eps}), first)

    step_terms: Callable = vmap(member_terms)
    histories = [[] for _ in configs]
    scored = set(checkpoint_epochs(first.epochs))
    kept = scored if keeps is not None else set()
    n, batch = len(splits[0][0]), first.batch_size
    members = ", ".join(
        str(c.seed) if c.latent_dim == first.latent_dim else f"{c.seed} (z={c.latent_dim})" for c in configs
    )
    label = f"{first.label()} with seeds {members} stacked" + (
        f", padded to z={big}" if big != first.latent_dim else ""
    )
    bar = progress_bar(range(1, first.epochs + 1), label, progress)
    for epoch in bar:
        started = time.perf_counter()
        permutations = [torch.randperm(n, generator=order).to(first.device) for order in orders]
        names, sums = (), None
        for start in range(0, n, batch):
            index = [p[start : start + batch] for p in permutations]
            xb = torch.stack([split[0].index_select(0, i) for split, i in zip(splits, index)])
            yb = torch.stack([split[1].index_select(0, i) for split, i in zip(splits, index)])
            rows = len(index[0])
            eps = torch.stack(
                [
                    pad(torch.randn((rows, c.latent_dim), generator=s), (rows, big), c.latent_dim, big)
                    if first.latent == "sampled"
                    else torch.zeros(rows, big)
                    for c, s in zip(configs, streams)
                ]
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
            z, own = config.latent_dim, own_shapes[i]
            with torch.no_grad():
                model.load_state_dict({k: unpad(v[i], own[k], z, big) for k, v in {**weights, **buffers}.items()})
            row = {"epoch": epoch, "samples": epoch * n, "seconds": seconds}
            row.update({f"train_{name}": float(total) / n for name, total in zip(names, sums[:, i].tolist())})
            with _own_stream(streams[i]), torch.no_grad():
                if len(split[2]) and epoch in scored:
                    row.update({f"test_{k}": v for k, v in evaluate(model, split[2], split[3], config).items()})
                model.eval()
                for hook in (hooks or {}).values():
                    row.update(hook(model, split))
                model.train()
            histories[i].append(row)
            if epoch in kept:
                check_finite(config.replace(epochs=epoch), model, histories[i])
                optimizer_i = _member_optimizer_state(state, i, size, [own[k] for k in weights], z, big)
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
