"""N8 · A learnable cluster centre (R §3.1–3.2, Figs 3.1–3.3, 3.5, 3.6): the chapter's knobs per
profile, the runs it trains, the steps of R Fig 3.3 and the architecture of R Fig 3.1 (its claims
and how each is measured are in ``n8_claims``).

``base`` is the ``quick`` profile; ``smoke`` and ``paper`` override some of it (``profiles.Settings``).
"""

from __future__ import annotations

import math

import torch
from torch import nn

from ..codebook import centre_step_hook, drift_hook
from ..config import ExperimentConfig
from ..geometry import perturbation_paths
from ..plotting import diagram_arrow, diagram_box
from ..profiles import ADAM_SQUARED_ERROR, Settings
from . import Chapter

# The quick profile's knobs (the book) in three groups: the networks, the runs, R's method.
NETS = dict(latent_dim=32, cnn_widths=[32, 64], celeba_latent_dim=128, celeba_widths=[16, 32, 64, 128])
RUNS = dict(epochs=12, celeba_epochs=6, batch_size=128, pool_size=64, train_size=5000, test_size=2000)
METHOD = dict(pull_weight=1.0, centre_recon_weight=0.0, zero_weight=1.0, codebook_size=20)
SMOKE = dict(latent_dim=8, cnn_widths=[8, 16], celeba_latent_dim=16, celeba_widths=[8, 16, 32, 64])
SETTINGS = Settings(
    base=dict(ADAM_SQUARED_ERROR, **NETS, **RUNS, **METHOD),
    smoke=dict(SMOKE, epochs=3, celeba_epochs=3, train_size=512, test_size=512),
    paper=dict(celeba_widths=[32, 64, 128, 256], epochs=20, celeba_epochs=20, train_size=60000, test_size=10000),
    shared=("seeds", "fd_samples", "device"),
    main=("epochs", "celeba_epochs", "seeds", "train_size"),
)

CHAPTER = Chapter("N8", "A learnable cluster centre", "R §3.1–3.2", SETTINGS)

# R §3.2 trains every model of these figures for 20 epochs ("trained for 20 epochs"; Fig 3.6: "20 epochs").
BUDGET = 20
DATASETS, DIGITS = ("mnist", "fashion_mnist", "celeba"), ("mnist", "fashion_mnist")
GROUPS = {"digits": DIGITS, "celeba": ("celeba",)}  # a claim about every dataset, decided per training length
DELTAS = (3.0, 2.0, 1.0, 0.0, -1.0, -2.0, -3.0)  # R Fig 3.2's rows, +3 to -3
PATH_STEPS = 13  # frames of each measured perturbation path, δ from −3 to +3
UNIT, OWN = "N(c, I)", "N(c, diag(s²))"
CENTRE_AE, ZERO_AE = "cluster-centre AE", "MSE-to-zero AE"

NET = dict(model="conv", latent="point", activation="relu", optimizer="adam", init_std=None)
KNOBS = ("likelihood", "lr", "batch_size", "train_size", "test_size", "device")


def net_config(params, dataset: str, seed: int) -> ExperimentConfig:
    """The plain convolutional AE of ``dataset`` (on the reconstruction term alone) that every model starts from."""
    small = dataset != "celeba"
    dim, widths = (params.latent_dim, params.cnn_widths) if small else (params.celeba_latent_dim, params.celeba_widths)
    sizes = dict(latent_dim=dim, widths=tuple(widths), epochs=params.epochs if small else params.celeba_epochs)
    knobs = {k: getattr(params, k) for k in KNOBS}
    return ExperimentConfig(**NET, **knobs, **sizes, dataset=dataset, loss_terms=(("recon", 1.0),), seed=seed)


def centres_config(params, dataset: str, seed: int, centres: int = 1) -> ExperimentConfig:
    """R §3.1's model: ``centres`` learnable vectors, each pulled together with its nearest pool encoding."""
    terms = (("recon", 1.0), ("centre_pull", params.pull_weight))
    terms += (("centre_recon", params.centre_recon_weight),) if params.centre_recon_weight else ()
    config = net_config(params, dataset, seed)
    return config.replace(latent="centres", codebook_size=centres, pool_size=params.pool_size, loss_terms=terms)


def experiments(params) -> dict:
    """Every run: R's one-centre model on each dataset (v's step and its baselines recorded each
    epoch), the MNIST model with ``codebook_size`` centres, and Fig 3.6's MSE-to-zero AE."""
    seeds, zero = params.seeds, (("recon", 1.0), ("centering", params.zero_weight))
    out = {
        ("centres", d, s): (centres_config(params, d, s), {**centre_step_hook(), **drift_hook()})
        for d in DATASETS
        for s in seeds
    }
    out.update({("many", s): centres_config(params, "mnist", s, params.codebook_size) for s in seeds})
    out.update({("zero", s): net_config(params, "mnist", s).replace(loss_terms=zero) for s in seeds})
    return out


def settings_rows(p) -> list:
    """The "R and this run" table of the run's parameters ``p``."""
    return [
        ("encoder, decoder", "convolutional", f"stride-2 convolutions {p.cnn_widths} (CelebA: {p.celeba_widths}) "
         f"and their mirror, a linear latent of {p.latent_dim} (CelebA: {p.celeba_latent_dim})"),
        ("N, M", "not stated", f"{p.batch_size}, {p.pool_size} (the pool drawn afresh for every batch)"),
        ("λ₁, λ₂", "not stated; λ₂'s term 'not included in subsequent experiments'",
         f"{p.pull_weight:g}, {p.centre_recon_weight:g}" + ("" if p.centre_recon_weight else " (off)")),
        ("matching", "minimum MSE ('dot product or cosine similarity could also be used')", "minimum squared distance"),
        ("centres start", "'meaningless' (random)", "N(0, I)"),
        ("training", f"{BUDGET} epochs", f"{p.epochs} epochs (CelebA: {p.celeba_epochs}) on {p.train_size:,} images "
         f"(CelebA: all this data folder holds), Adam {p.lr:g}; the verdicts' trends are carried to {BUDGET}"),
        ("Fig 3.6's constraint weight", "not stated", f"{p.zero_weight:g} ‖z‖²"),
        ("Fig 3.5's vectors", "20", f"{p.codebook_size}"),
        ("seeds", "not stated (one model each)", f"{p.seeds}: every claim is decided over all of them"),
    ]  # fmt: skip


def steps_of(history: list, key: str) -> list:
    """Per epoch after the first, the distance of a recorded position (a list) from the epoch before."""
    positions = [torch.tensor(row[key]) for row in history]
    return [float((b - a).norm()) for a, b in zip(positions, positions[1:])]


def scaled(steps: list) -> list:
    """``steps`` over the mean of their first third."""
    third = max(1, len(steps) // 3)
    return [s * third / max(sum(steps[:third]), 1e-12) for s in steps]


def shrink(steps: list) -> float:
    """Mean step over the last third of ``steps`` / over the first third (NaN without a step)."""
    third = max(1, len(steps) // 3)
    return sum(scaled(steps)[-third:]) / third if steps else math.nan


def annealing(history: list) -> dict:
    """R Fig 3.3's steps after the first epoch (the first is from the random start), shrunk:
    v's (``centre_step``), the mean encoding's and the encoder bias's; and each of v's and the
    bias's shrink over the mean encoding's (``relative``)."""
    v = [row["centre_step"] for row in history][1:]
    drift, bias = steps_of(history, "mean_encoding"), steps_of(history, "encoder_bias")
    out = {"v": shrink(v), "encoding": shrink(drift), "bias": shrink(bias)}
    return {**out, **{f"{k}_relative": out[k] / out["encoding"] for k in ("v", "bias")}}


@torch.no_grad()
def averaged_centre(model, images: torch.Tensor, epochs: int, batch: int, generator: torch.Generator) -> dict:
    """A centre known to anneal: the running mean of ``model``'s encodings of ``images``, one batch
    of ``batch`` drawn with ``generator`` more each epoch, whose step falls as 1/t (the law of large
    numbers). ``shrink``: its steps' shrink; ``relative``: that over the shrink of the steps between
    the batch means it averages (fresh draws of the same encoder: they do not drift)."""
    drawn = torch.randint(len(images), (epochs, batch), generator=generator).to(images.device)
    means = torch.stack([model.encode(images[rows])[0].mean(0) for rows in drawn]).cpu()
    running = means.cumsum(0) / torch.arange(1, epochs + 1).unsqueeze(1)
    moved = lambda positions: (positions[1:] - positions[:-1]).norm(dim=1).tolist()  # noqa: E731
    averaged, drifted = shrink(moved(running)), shrink(moved(means))
    return {"shrink": averaged, "relative": averaged / drifted}


def centre_paths(model, decoder=None, exposed: torch.Generator | None = None) -> torch.Tensor:
    """The paths v + δ e_d, δ from −3 to +3, for every latent dimension d, decoded by ``model``
    (or ``decoder`` in its place, the controls; ``exposed``: see ``geometry.perturbation_paths``):
    [D, T, C, H, W]."""
    v = model.codebook.codes[:1].detach()
    deltas = torch.linspace(-3, 3, PATH_STEPS)
    return perturbation_paths(decoder or model, v, range(v.shape[1]), deltas, exposed)[0]


def worst(values, highest: bool = False) -> float:
    """The least favourable of per-dataset values (NaN when any is NaN)."""
    values = list(values)
    return math.nan if any(math.isnan(v) for v in values) else (max if highest else min)(values)


def pixel_shuffled(images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Each image [N, C, H, W] with its pixels in a random order of its own: its ink kept, its shape gone."""
    flat = images.flatten(1)
    return flat.gather(1, torch.argsort(torch.rand(flat.shape, generator=generator), dim=1)).view_as(images)


def layers(module: nn.Module) -> str:
    """The shape-changing layers of a module, one per line."""
    names = []
    for layer in module.modules():
        if isinstance(layer, (nn.Conv2d, nn.ConvTranspose2d)):
            kind = "conv" if isinstance(layer, nn.Conv2d) else "deconv"
            names.append(f"{kind} {layer.in_channels}→{layer.out_channels}")
        elif isinstance(layer, nn.Linear):
            names.append(f"linear {layer.in_features}→{layer.out_features}")
    return "\n".join(names)


def draw_architecture(ax, run) -> None:
    """R Fig 3.1 drawn from a trained run: its layers from the modules, N, M, K and the loss
    weights from its config (a dashed term is off)."""
    config, model = run.config, run.model
    weights = dict(config.loss_terms)
    pull, recon = weights.get("centre_pull", 0.0), weights.get("centre_recon", 0.0)
    ax.set(xlim=(0, 12), ylim=(0, 5.2))
    ax.axis("off")
    text = f"x* = argminⱼ ‖E(xⱼ) − v‖²\nv: K = {config.codebook_size} learnable,\n{config.latent_dim}-d"
    for xy, label, colour, size in (
        ((0.1, 3.6), f"N = {config.batch_size} images xᵢ", "#eeeeee", (2.0, 0.7)),
        ((0.1, 1.0), f"M = {config.pool_size} images xⱼ", "#eeeeee", (2.0, 0.7)),
        ((2.8, 2.0), "encoder E (shared)\n" + layers(model.encoder), "#cfe2f3", (2.2, 2.3)),
        ((5.6, 3.6), "E(xᵢ)", "#eeeeee", (1.0, 0.7)),
        ((7.3, 3.3), "decoder D\n" + layers(model.decoder), "#d9ead3", (2.2, 1.6)),
        ((10.2, 3.6), "D(E(xᵢ))", "#eeeeee", (1.6, 0.7)),
        ((5.6, 1.0), "E(xⱼ)", "#eeeeee", (1.0, 0.7)),
        ((7.3, 0.2), text, "#fce5cd", (2.6, 1.5)),
    ):
        diagram_box(ax, xy, label, colour, *size)
    ends = [(2.1, 3.95), (2.8, 3.6), (2.1, 1.35), (2.8, 2.4), (5.0, 3.6), (5.6, 3.95), (5.0, 2.4), (5.6, 1.35)]
    ends += [(6.6, 3.95), (7.3, 3.95), (9.5, 3.95), (10.2, 3.95), (6.6, 1.35), (7.3, 1.0)]
    for start, end in zip(ends[::2], ends[1::2]):
        diagram_arrow(ax, start, end)
    diagram_arrow(ax, (6.1, 1.0), (7.3, 0.6), style="<|-|>", colour="tab:red", dashed=not pull)
    diagram_arrow(ax, (9.9, 1.7), (8.9, 3.3), colour="tab:green", dashed=not recon)
    ax.text(11.0, 3.2, f"L_recon × {weights['recon']:g}", ha="center", fontsize=8, color="tab:blue")
    ax.text(5.2, 0.35, f"λ₁ ‖E(x*) − v‖², λ₁ = {pull:g}", fontsize=8, color="tab:red")
    ax.text(10.0, 2.2, f"λ₂ ‖x* − D(v)‖², λ₂ = {recon:g}" + " (off)" * (not recon), fontsize=8, color="tab:green")
