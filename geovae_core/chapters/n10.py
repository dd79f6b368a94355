"""N10 · VQ-AE: from one code to a codebook of many (P §3.5, App. A.5; R §4.3): the chapter's knobs
per profile, the runs it trains, its claims and how each is measured.

``base`` is the ``quick`` profile; ``smoke`` and ``paper`` override some of it (``profiles.Settings``).

P Fig 18 perturbs "the first dimension of the first vector"; in a 7 × 7 map the first vector is
the top-left position, which covers a background corner, so such a perturbation can hardly move
the class. Here each image's perturbed vector is the one over its garment: the map position whose
4 × 4-pixel block holds the most ink (``garment_positions``); the top-left one is shown beside it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F

from ..codebook import code_statistics
from ..config import ExperimentConfig
from ..criteria import COMPARABLE, NOISE_LIKE, RECOGNISED, Criterion, compared
from ..data import experiment_split
from ..geometry import within_share
from ..judges import SampleQuality
from ..metrics import excess_ratio
from ..profiles import ADAM_SQUARED_ERROR, Settings
from ..results import ClaimSpec
from ..training import initial_model
from . import Chapter, adam_fields

SETTINGS = Settings(
    base=dict(
        ADAM_SQUARED_ERROR,
        cnn_widths=[32, 64],
        map_channels=64,
        map_codebook_size=100,
        codebook_decay=0.99,
        pull_weight=0.1,
        epochs=5,
        batch_size=128,
        train_size=10000,
    ),
    smoke=dict(cnn_widths=[8, 16], map_channels=8, map_codebook_size=20, epochs=1, train_size=1000),
    paper=dict(cnn_widths=[64, 128], map_channels=512, train_size=60000),
    shared=("seeds", "fd_samples", "device"),
    main=("epochs", "seeds", "map_channels", "train_size"),
)

CHAPTER = Chapter("N10", "VQ-AE: from one code to a codebook of many", "P §3.5, App. A.5; R §4.3", SETTINGS)

BUDGET = 5  # P Fig 9: 'trained for 5 epochs'
DELTAS = [0, 1, 5, 10, 15, 30, 50, 100]  # P Fig 18: +1 … +100
PERTURBED = 256  # held-out images whose perturbation paths are measured
TEST_SIZE = 2000  # test images the kept epochs' loss is scored on (the claims use ``fd_samples`` held-out ones)


def models(params) -> dict:
    """{name: (codebook size, map shape)}: P Fig 9's two small models and the 7 × 7 one."""
    return {"a": (20, (2, 2)), "b": (50, (4, 5)), "main": (params.map_codebook_size, (7, 7))}


def label(params, name: str) -> str:
    size, (h, w) = models(params)[name]
    return {"a": "(a) ", "b": "(b) ", "main": ""}[name] + f"{size} codes, {h} × {w} map"


NO_TRANSITION = Criterion(
    "distortion, not a transition",
    "the other-class probability four in five images stay below: per image, the judge's highest calibrated "
    "probability of a class other than its unperturbed reading at any δ up to +100 (1 plus the largest fall, "
    "relative to its largest value, when the mean change from δ = 0 ever shrinks as δ grows)",
    "<",
    RECOGNISED.threshold,
    "P: 'no matter how much perturbation is added, the model does not gain a transition capability. Instead, it "
    "only increases distortion': the change grows, and four in five images are never confidently (RECOGNISED) "
    "another class. Four in five stay below the threshold exactly when this 80th percentile does, so the measure "
    "passes when that share does and moves with the images where the share jumps. A distorted image the judge "
    "cannot read confidently is distortion, not a transition.",
)
KEPT_SHARE = 0.8  # the share of images that must never be read as another class (``NO_TRANSITION``)

CLAIMS = {
    c.id: c
    for c in (
        ClaimSpec(
            "N10-quantised-close-to-direct",
            "P Fig 16; R Fig 4.4",
            "Quantised reconstructions are close to direct ones (7 × 7 model).",
            "P §3.5: the model 'still correctly reconstructs inputs, whether using the encoder's representation or "
            "finding the nearest neighbor in the codebook'.",
            COMPARABLE,
            "n10-fig16",
        ),
        ClaimSpec(
            "N10-random-combinations-meaningless",
            "P Figs 9, 17; R Fig 4.5",
            "Random combinations of codes are meaningless, for every model.",
            "P §3.5: 'randomly sampling from the codebook produces meaningless, fragmented outputs'.",
            compared(
                f"smallest over models of the {NOISE_LIKE.measure}",
                NOISE_LIKE.comparison,
                NOISE_LIKE.threshold,
                NOISE_LIKE.why,
            ),
            "n10-fig9",
        ),
        ClaimSpec(
            "N10-perturbations-distort",
            "P Fig 18; R Fig 4.6",
            "Perturbing the vector over the garment only adds distortion: the change grows with δ, and the image is "
            "not turned into another class.",
            "P App. A.4.2: 'no matter how much perturbation is added, the model does not gain a transition capability. "
            "Instead, it only increases distortion'.",
            NO_TRANSITION,
            "n10-fig18",
        ),
    )
}


def vq_config(params, name: str, seed: int) -> ExperimentConfig:
    """P §3.5's VQ-AE: a convolutional encoder to a [C, h, w] map, every position pulled toward
    its nearest code of an EMA codebook, the decoder given the encoder's own map (path A)."""
    size, shape = models(params)[name]
    return ExperimentConfig(
        **adam_fields(
            params,
            model="conv_map",
            dataset="fashion_mnist",
            latent="codebook",
            latent_dim=params.map_channels,
            map_shape=shape,
            widths=tuple(params.cnn_widths),
            activation="relu",
            likelihood=params.likelihood,
            loss_terms=(("recon", 1.0), ("pull", params.pull_weight)),
            codebook_size=size,
            codebook_decay=params.codebook_decay,
            test_size=TEST_SIZE,
            seed=seed,
        )
    )


def experiments(params) -> dict:
    """Every run: the three VQ-AEs per seed."""
    return {(name, s): vq_config(params, name, s) for name in models(params) for s in params.seeds}


def settings_rows(params) -> list:
    """The "P and this run" table."""
    c = params.map_channels
    return [
        ("data", "FashionMNIST", f"FashionMNIST, the first {params.train_size:,} training images"),
        (
            "encoder",
            "convolutional, output map [B, C, h, w]",
            f"stride-2 convolutions {params.cnn_widths}, a 1 × 1 convolution to C = {c}, pooled to the map size",
        ),
        (
            "maps and codebooks",
            "(a) 4 vectors, 20 codes; (b) 20 vectors, 50 codes; 7 × 7 × 512, about 100 codes",
            f"(a) 2 × 2, 20 codes; (b) 4 × 5, 50 codes; 7 × 7 × {c}, {params.map_codebook_size} codes",
        ),
        (
            "codebook update",
            "EMA (VQ-VAE convention)",
            f"EMA, α = {1 - params.codebook_decay:.2g}; codes start at distinct encoder vectors; idle codes stay",
        ),
        (
            "decoder input",
            "the encoder's map (VQ-AE)",
            "the encoder's map; the quantised map is decoded for comparison",
        ),
        ("training", "5 epochs, Adam 0.001", f"{params.epochs} epochs, Adam {params.lr:g}, λ = {params.pull_weight:g}"),
        (
            "Fig 18's perturbation",
            "+1 … +100 on the first dimension of the first vector",
            f"{DELTAS[1:]} on the first dimension of the vector over the garment (the 4 × 4-pixel block with "
            "the most ink); the first (top-left) vector shown beside it",
        ),
        ("seeds", "not stated (one model each)", f"{params.seeds}: every claim is decided over all of them"),
    ]


def random_combinations(model, n: int, shape: tuple, generator: torch.Generator) -> torch.Tensor:
    """Maps [n, C, h, w] whose every position holds a code drawn uniformly from the codebook."""
    codes = model.codebook.codes
    picks = torch.randint(len(codes), (n, *shape), generator=generator).to(codes.device)
    return codes[picks].permute(0, 3, 1, 2)


def one_vector_replaced(model, maps: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """P Fig 20: ``maps`` [N, C, h, w] with one position of each (drawn uniformly) replaced by a
    code drawn uniformly from the codebook."""
    codes, (n, _, h, w) = model.codebook.codes, maps.shape
    rows = torch.randint(h, (n,), generator=generator)
    columns = torch.randint(w, (n,), generator=generator)
    picks = torch.randint(len(codes), (n,), generator=generator)
    replaced = maps.clone()
    replaced[torch.arange(n), :, rows, columns] = codes[picks.to(codes.device)]
    return replaced


def garment_positions(images: torch.Tensor, shape: tuple) -> torch.Tensor:
    """Per image [N, 1, H, W], the (row, column) of the map position over its garment: the block
    of the image under that position with the most ink. [N, 2]."""
    ink = F.adaptive_avg_pool2d(images, shape).flatten(1)
    best = ink.argmax(dim=1)
    return torch.stack([best // shape[1], best % shape[1]], dim=1)


def perturbed_maps(mu: torch.Tensor, positions: torch.Tensor, deltas=DELTAS) -> torch.Tensor:
    """Maps mu [N, C, h, w] with each delta added to the first channel of each image's vector at
    ``positions`` [N, 2]: [N, len(deltas), C, h, w] (P Fig 18)."""
    paths = mu.unsqueeze(1).repeat(1, len(deltas), 1, 1, 1)
    rows = torch.arange(len(mu), device=mu.device)
    step = torch.as_tensor(deltas, dtype=mu.dtype, device=mu.device)
    paths[rows, :, 0, positions[:, 0], positions[:, 1]] += step
    return paths


def error_ratio(images: torch.Tensor, reconstructions: torch.Tensor, direct: torch.Tensor) -> float:
    """``COMPARABLE``'s measure for P Fig 16: the mean squared error of ``reconstructions`` of
    ``images`` over that of the ``direct`` ones."""
    return float((reconstructions - images).pow(2).mean()) / float((direct - images).pow(2).mean())


def transition_free(frames: torch.Tensor, probabilities) -> dict:
    """``NO_TRANSITION`` along paths [N, T, ...] whose first frame is the start: its ``measure``,
    the share of paths never read as another class (``kept``), the mean RMS change from the first
    frame per frame (``change``) and whether that change never shrinks (``grows``)."""
    n, t = frames.shape[:2]
    p = probabilities(frames.flatten(0, 1)).view(n, t, -1)
    start = p[:, 0].argmax(1)
    other = p.scatter(2, start.view(n, 1, 1).expand(n, t, 1), 0.0).amax(dim=(1, 2))  # best other class, any frame
    change = (frames - frames[:, :1]).flatten(2).pow(2).mean(-1).sqrt().mean(0)
    fall = float((change[:-1] - change[1:]).max() / change.max().clamp_min(1e-12))
    grows = fall <= 0
    return {
        "measure": within_share(other, KEPT_SHARE) if grows else 1 + fall,
        "kept": float((other < RECOGNISED.threshold).float().mean()),
        "change": change.tolist(),
        "grows": grows,
    }


@dataclass
class Measuring:
    """What the claims are measured on: ``fd_samples`` held-out FashionMNIST images outside the
    protocol's reference and floor (the same at every kept state), the sample-quality protocol
    with its judge, and the numbers of the whole budget (``details``)."""

    params: object
    quality: SampleQuality
    x: torch.Tensor
    garment: torch.Tensor  # the perturbed position of each of the first ``PERTURBED`` images [N, 2]
    details: dict = field(default_factory=dict)

    @classmethod
    def of(cls, params) -> Measuring:
        quality = SampleQuality("fashion_mnist", params.fd_samples, params.device, progress=False)
        x = quality.inputs(quality.n)
        return cls(params, quality, x, garment_positions(x[:PERTURBED], (7, 7)))

    def perturbation(self, model, positions: torch.Tensor, images: torch.Tensor | None = None) -> tuple:
        """``transition_free`` along Fig 18's perturbation at ``positions`` of ``images`` (the first
        ``PERTURBED`` held-out images by default), and the frames."""
        x = self.x[:PERTURBED] if images is None else images
        with torch.no_grad():
            frames = model.decode(perturbed_maps(model(x)["mu"], positions).flatten(0, 1))
        frames = frames.view(len(x), len(DELTAS), *x.shape[1:])
        return transition_free(frames, self.quality.probabilities), frames

    def __call__(self, runs: dict, final: bool) -> dict:
        """{claim id: {seed: value}} for the runs of one stage (the same measurement at every stage)."""
        out, x, n, garment = {claim: {} for claim in CLAIMS}, self.x, self.quality.n, self.garment
        for s in self.params.seeds:
            scores = {}
            for name in models(self.params):
                model = runs[name, s].model
                generator = torch.Generator().manual_seed(1000 + s)
                with torch.no_grad():
                    combos = model.decode(random_combinations(model, n, runs[name, s].config.map_shape, generator))
                scores[name] = self.quality.score(combos)
            main = runs["main", s].model
            with torch.no_grad():
                o = main(x)
                direct, quantised = main.decode(o["mu"]), main.decode(o["quantized"])
            mse = {"direct": float((direct - x).pow(2).mean()), "quantised": float((quantised - x).pow(2).mean())}
            out["N10-quantised-close-to-direct"][s] = error_ratio(x, quantised, direct)
            noise = {name: excess_ratio(score, self.quality.noise) for name, score in scores.items()}
            out["N10-random-combinations-meaningless"][s] = min(noise.values())
            path = self.perturbation(main, garment)[0]
            out["N10-perturbations-distort"][s] = path["measure"]
            if final:
                corner = self.perturbation(main, torch.zeros_like(garment))[0]
                self.details[s] = {"mse": mse, "noise": noise, "combos": scores, "change": path["change"]}
                self.details[s].update(kept=path["kept"], corner_change=corner["change"], corner_kept=corner["kept"])
                stats = {name: code_statistics(runs[name, s].model, x) for name in models(self.params)}
                self.details[s]["stats"] = stats
                self.details[s]["direct"] = excess_ratio(self.quality.score(direct), self.quality.noise)
        return out

    def controls(self, runs: dict, seed: int) -> dict:
        """Each claim's measure, for one seed, on real model outputs without and with the effect,
        on held-out images drawn for this seed: another image's quantised reconstruction and the
        next seed's direct one; this seed's direct reconstructions and random code combinations
        of the model at its initialisation; latent paths into a garment the judge reads as
        another class, and Fig 18's perturbation of a background corner."""
        p, x, quality = self.params, self.x, self.quality
        other = p.seeds[(p.seeds.index(seed) + 1) % len(p.seeds)]
        main, theirs, generator = runs["main", seed].model, runs["main", other].model, torch.Generator()
        generator.manual_seed(seed)
        drawn = x[torch.randperm(len(x), generator=generator).to(x.device)]
        start = drawn[:PERTURBED]
        with torch.no_grad():
            o = main(drawn)
            direct, theirs = main.decode(o["mu"]), theirs.decode(theirs(drawn)["mu"])
            elsewhere = main.decode(o["quantized"].roll(1, dims=0))  # the quantised map of the next image drawn
            combinations = self.at_start(runs["main", seed].config, generator)
            fades = main.decode(self.towards_another_class(o["mu"][:PERTURBED], start, generator).flatten(0, 1))
        fades = transition_free(fades.view(len(start), len(DELTAS), *x.shape[1:]), quality.probabilities)
        corner = self.perturbation(main, torch.zeros(len(start), 2, dtype=torch.long, device=x.device), start)[0]
        return {
            "N10-quantised-close-to-direct": (
                (error_ratio(drawn, elsewhere, direct), "another held-out image's quantised reconstruction"),
                (
                    error_ratio(drawn, theirs, direct) if other != seed else math.nan,
                    "the direct reconstructions of the next seed's 7 × 7 model",
                ),
            ),
            "N10-random-combinations-meaningless": (
                (
                    excess_ratio(quality.score(direct), quality.noise),
                    "the 7 × 7 model's direct reconstructions of held-out images",
                ),
                (
                    excess_ratio(quality.score(combinations), quality.noise),
                    "random combinations of codes decoded by the 7 × 7 model at its initialisation",
                ),
            ),
            "N10-perturbations-distort": (
                (
                    fades["measure"],
                    "latent paths from each image's map to that of an image the judge reads as another class "
                    f"(probability ≥ {RECOGNISED.threshold:g}), decoded",
                ),
                (
                    corner["measure"],
                    "Fig 18's perturbation on the top-left vector, a background corner away from the garment",
                ),
            ),
        }

    def at_start(self, config, generator: torch.Generator) -> torch.Tensor:
        """``n`` random code combinations decoded by the model of ``config`` at its initialisation,
        its codebook started as training starts it (at distinct encoder vectors of training images)."""
        model = initial_model(config)
        with torch.no_grad():
            model.initialise_codebook(experiment_split(config)[0], torch.Generator().manual_seed(config.seed))
            return model.decode(random_combinations(model, self.quality.n, config.map_shape, generator))

    def towards_another_class(self, mu: torch.Tensor, images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """Latent paths [N, len(DELTAS), C, h, w] from each map of ``mu`` to that of an image of
        ``images`` the judge reads, with probability ≥ 0.9, as a class other than this image's
        (drawn at random among them; the first image where there is none)."""
        confidence, read = self.quality.probabilities(images).max(dim=1)
        allowed = (read[None, :] != read[:, None]) & (confidence >= RECOGNISED.threshold)[None, :]
        partner = torch.rand(allowed.shape, generator=generator).masked_fill(~allowed, -1.0).argmax(dim=1)
        alpha = torch.linspace(0, 1, len(DELTAS), device=mu.device).view(1, -1, 1, 1, 1)
        return mu[:, None] + alpha * (mu[partner.to(mu.device)] - mu)[:, None]


def claims(params, followed, measuring: Measuring, controls: dict, runs: dict) -> list:
    """The chapter's claims as measured (see ``CLAIMS``)."""
    seeds, d = params.seeds, measuring.details
    main_runs = [runs["main", s] for s in seeds]
    measured = {
        "N10-quantised-close-to-direct": "MSE direct vs quantised: "
        + "; ".join(f"{d[s]['mse']['direct']:.4f} vs {d[s]['mse']['quantised']:.4f}" for s in seeds),
        "N10-random-combinations-meaningless": "FD excess / noise's, per model: "
        + "; ".join(f"{name}: " + ", ".join(f"{d[s]['noise'][name]:.2f}" for s in seeds) for name in models(params))
        + "; direct reconstructions: "
        + ", ".join(f"{d[s]['direct']:.2f}" for s in seeds),
        "N10-perturbations-distort": "RMS change at δ = 1, 10, 100 (garment vector): "
        + "; ".join(f"{d[s]['change'][1]:.3f}, {d[s]['change'][3]:.3f}, {d[s]['change'][-1]:.3f}" for s in seeds)
        + "; top-left vector at δ = 100: "
        + ", ".join(f"{d[s]['corner_change'][-1]:.3f}" for s in seeds),
    }
    out = []
    for spec in CLAIMS.values():
        every = spec.id == "N10-random-combinations-meaningless"
        behind = list(runs.values()) if every else main_runs
        out.append(
            spec.claim(
                followed, params.epochs, BUDGET, controls=controls[spec.id], measured=measured[spec.id], runs=behind
            )
        )
    return out
