"""N1 · Autoencoders can generate (P Fig 1, App. A.2–A.3; R §2.1): the chapter's knobs per
profile, the runs it trains, its claims and how each is measured.

``base`` is the ``quick`` profile; ``smoke`` and ``paper`` override some of it (``profiles.Settings``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
from torchvision.transforms.functional import gaussian_blur

from ..config import ExperimentConfig
from ..criteria import BARELY_CHANGES, DEGRADES, DIGIT_LIKE, MAY_GO_BLACK, MEANINGFUL_MIDPOINTS, SMOOTH, SMOOTH_PATHS
from ..data import experiment_split, load_dataset
from ..geometry import (
    NearestImageDecoder,
    decode,
    ink_lost,
    interpolation_paths,
    paths_unevenness,
    perturbation_paths,
    perturbation_response,
    unevenness,
    within_share,
)
from ..judges import SampleQuality
from ..metrics import digit_like, lowest_digit_like
from ..profiles import ADAM_SQUARED_ERROR, Settings
from ..results import ClaimSpec
from ..training import initial_model
from . import Chapter

SETTINGS = Settings(
    base=dict(
        ADAM_SQUARED_ERROR,
        latent_dim=128,
        widths=[64, 64],
        epochs=20,
        batch_size=128,
        train_size=60000,
        celeba_latent_dim=786,
        cnn_widths=[16, 32, 64, 128],
        celeba_epochs=5,
        celeba_batch_size=32,
        magnitudes=[0.1, 0.5, 1.0, 2.0, 5.0, 10.0, 15.0],
        interpolation_steps=10,
        n_paths=64,
    ),
    smoke=dict(
        latent_dim=16,
        celeba_latent_dim=32,
        cnn_widths=[8, 16, 32, 64],
        epochs=2,
        celeba_epochs=2,
        train_size=1000,
        n_paths=8,
    ),
    paper=dict(cnn_widths=[32, 64, 128, 256], celeba_epochs=10, n_paths=256),
    shared=("seeds", "device"),
    main=("epochs", "celeba_epochs", "seeds", "train_size"),
)

CHAPTER = Chapter("N1", "Autoencoders can generate", "P Fig 1, App. A.2–A.3; R §2.1", SETTINGS)

# The documents' training lengths, where each claim's trend is carried to: P Fig 1 trains 10
# epochs; P does not state the MNIST AE's (the paper profile's 20 epochs stand in).
MNIST_BUDGET, CELEBA_BUDGET = 20, 10

CLAIMS = {
    c.id: c
    for c in (
        ClaimSpec(
            "N1-small-perturbations-barely-change",
            "P Fig 10; R Fig 2.1",
            "A +{small:g} perturbation ({small_sd:.2g} code standard deviations) barely changes the AE's output.",
            "P App. A.3: 'small perturbations do not significantly alter the decoder's output'.",
            BARELY_CHANGES,
            "n1-fig10",
        ),
        ClaimSpec(
            "N1-large-perturbations-degrade",
            "P Fig 10; R Fig 2.1",
            "By +{large:g} ({large_sd:.2g} code standard deviations) the outputs have degraded: the calibrated "
            "judge no longer reads them as digits, or they lost half their ink.",
            "P App. A.3: 'under large perturbations, the generated images degrade'.",
            DEGRADES,
            "n1-fig10",
        ),
        ClaimSpec(
            "N1-large-perturbations-may-go-black",
            "P Fig 10; R Fig 2.1",
            "At +{large:g} some outputs collapse into black: one in twenty keeps less than a tenth of its ink.",
            "P App. A.3: the generated images 'may even collapse into merely pure black'.",
            MAY_GO_BLACK,
            "n1-fig10",
        ),
        ClaimSpec(
            "N1-interpolation-smooth",
            "P Fig 11; R Fig 2.2",
            "Latent interpolations between MNIST test digits are smooth, path by path.",
            "P App. A.3: 'The decoder produces smoothly transitioning outputs'.",
            SMOOTH_PATHS,
            "n1-fig11",
        ),
        ClaimSpec(
            "N1-interpolation-meaningful",
            "P Fig 11; R Fig 2.2",
            "Latent-interpolation midpoints are read as digits more often than pixel cross-fade midpoints.",
            "P §2: interpolated images are 'not present in the training set, yet they are meaningfully generated'.",
            MEANINGFUL_MIDPOINTS,
            "n1-fig11",
        ),
        ClaimSpec(
            "N1-celeba-interpolation-smooth",
            "P Fig 1",
            "Latent interpolations between CelebA test faces are smooth, path by path.",
            "P Fig 1: 'the model can achieve smooth and natural transitions through linear interpolation'.",
            SMOOTH_PATHS,
            "n1-fig1",
        ),
    )
}
PERTURBED_DIMS = 8  # P Fig 10: the first 8 latent dimensions
NEAREST_POOL = 2000  # training images the nearest-image decoder (a control) may return


def ae_config(params, dataset: str, seed: int) -> ExperimentConfig:
    """A plain AE (``latent="point"``) on the reconstruction term alone: the MNIST MLP of P Fig 10
    or the CelebA convolutional AE of P Fig 1."""
    mnist = dataset == "mnist"
    return ExperimentConfig(
        model="mlp" if mnist else "conv",
        dataset=dataset,
        latent="point",
        latent_dim=params.latent_dim if mnist else params.celeba_latent_dim,
        widths=tuple(params.widths if mnist else params.cnn_widths),
        activation="relu",
        likelihood=params.likelihood,
        loss_terms=(("recon", 1.0),),
        optimizer="adam",
        lr=params.lr,
        init_std=None,
        batch_size=params.batch_size if mnist else params.celeba_batch_size,
        epochs=params.epochs if mnist else params.celeba_epochs,
        train_size=params.train_size,
        seed=seed,
        device=params.device,
    )


def experiments(params) -> dict:
    """Every run of the chapter: an MNIST AE and a CelebA AE per seed."""
    return {(dataset, s): ae_config(params, dataset, s) for dataset in ("mnist", "celeba") for s in params.seeds}


def settings_rows(params, celeba_images: int) -> list:
    """The "P and this run" table."""
    return [
        (
            "MNIST AE",
            "encoder and decoder '64-dimensional MLPs, 3 layers', latent 128",
            f"784-{'-'.join(map(str, params.widths))}-{params.latent_dim} (ReLU) and its mirror",
        ),
        (
            "MNIST training",
            "not stated",
            f"Adam {params.lr:g}, {params.epochs} epochs, batch {params.batch_size}, {params.train_size:,} images",
        ),
        (
            "CelebA AE",
            "convolutional, latent 786",
            f"stride-2 convolutions {params.cnn_widths}, mirrored; latent {params.celeba_latent_dim}",
        ),
        (
            "CelebA training",
            "10,000 images, 10 epochs, batch 32",
            f"Adam {params.lr:g}, {params.celeba_epochs} epochs, batch {params.celeba_batch_size}, "
            f"{celeba_images:,} images (all this data folder holds)",
        ),
        ("reconstruction term", "‖x − x̂‖² (P §1)", params.likelihood),
        ("perturbations", "+0.1 … +15 on the first 8 dimensions", f"{params.magnitudes} on the first 8 dimensions"),
        ("interpolation", "10 steps", f"{params.interpolation_steps} steps"),
        ("seeds", "not stated (one model)", f"{params.seeds}: every claim is decided over all of them"),
    ]


@dataclass
class Measuring:
    """What the claims are measured on: the test images, the test pairs each seed interpolates,
    the MNIST judge, and the numbers of the whole budget's measurement (``details``, by seed)."""

    params: object
    mnist: tuple
    celeba: tuple
    judge: SampleQuality
    details: dict = field(default_factory=dict)

    @classmethod
    def of(cls, params) -> Measuring:
        first = params.seeds[0]
        judge = SampleQuality("mnist", 200, params.device, progress=False)
        return cls(
            params,
            experiment_split(ae_config(params, "mnist", first)),
            experiment_split(ae_config(params, "celeba", first)),
            judge,
        )

    def pairs(self, images: torch.Tensor, seed: int) -> torch.Tensor:
        """The random test pairs seed ``seed`` interpolates (``n_paths`` of them)."""
        n = min(self.params.n_paths, len(images))
        return torch.randint(len(images), (n, 2), generator=torch.Generator().manual_seed(seed))

    def digits(self, seed: int) -> torch.Tensor:
        """``n_paths`` test digits drawn for seed ``seed`` (the controls' real digits)."""
        test = self.mnist[2]
        return test[torch.randperm(len(test), generator=torch.Generator().manual_seed(seed))[: self.params.n_paths]]

    def perturbed(self, model) -> tuple:
        """(codes of the first ``n_paths`` test digits, ``geometry.perturbation_response`` of the
        first ``PERTURBED_DIMS`` dimensions at every magnitude, read by the judge)."""
        test = self.mnist[2][: self.params.n_paths]
        with torch.no_grad():
            codes = model.encode(test)[0]
        dims = range(min(PERTURBED_DIMS, codes.shape[1]))
        return codes, perturbation_response(
            model, codes, dims, self.params.magnitudes, self.judge.probabilities, DIGIT_LIKE.threshold
        )

    def ink_lost(self, model, codes: torch.Tensor, magnitude: float) -> torch.Tensor:
        """Per output [codes × dims], the share of its ink an output lost at ``magnitude`` (``geometry.ink_lost``)."""
        dims = range(min(PERTURBED_DIMS, codes.shape[1]))
        moved = perturbation_paths(model, codes, dims, [magnitude])[:, :, 0]
        return ink_lost(moved, decode(model, codes)[:, None])

    def __call__(self, runs: dict, final: bool) -> dict:
        """{claim id: {seed: value}} for the runs of one stage (the same measurement at every stage)."""
        out = {claim: {} for claim in CLAIMS}
        steps, large = self.params.interpolation_steps, self.params.magnitudes[-1]
        for s in self.params.seeds:
            mnist_model, celeba_model = runs["mnist", s].model, runs["celeba", s].model
            codes, response = self.perturbed(mnist_model)
            out["N1-small-perturbations-barely-change"][s] = response["rms_change"][0]
            out["N1-large-perturbations-degrade"][s] = lowest_digit_like(response, large)
            out["N1-large-perturbations-may-go-black"][s] = within_share(self.ink_lost(mnist_model, codes, large), 0.95)
            latent, fade = interpolation_paths(mnist_model, self.mnist[2], self.pairs(self.mnist[2], s), steps)
            out["N1-interpolation-smooth"][s] = paths_unevenness(latent)
            middle = steps // 2
            out["N1-interpolation-meaningful"][s] = self.read_ratio(latent[:, middle], fade[:, middle])
            faces, _ = interpolation_paths(celeba_model, self.celeba[2], self.pairs(self.celeba[2], s), steps)
            out["N1-celeba-interpolation-smooth"][s] = paths_unevenness(faces)
            if final:
                self.details[s] = {
                    "code_sd": float(codes.std(0).mean()),
                    "response": response,
                    "smooth_share": float((unevenness(latent) <= SMOOTH.threshold).float().mean()),
                    "crossfade_unevenness": paths_unevenness(fade),
                    "latent_read": float(self.judge.readable(latent[:, middle]).float().mean()),
                    "crossfade_read": float(self.judge.readable(fade[:, middle]).float().mean()),
                }
        return out

    def read_ratio(self, midpoints: torch.Tensor, crossfade: torch.Tensor) -> float:
        """``MEANINGFUL_MIDPOINTS``' measure: the share of ``midpoints`` the judge reads over the
        share of cross-fade midpoints it reads."""
        read = float(self.judge.readable(midpoints).float().mean())
        return read / max(float(self.judge.readable(crossfade).float().mean()), 1e-9)

    def controls(self, runs: dict, seed: int) -> dict:
        """Each claim's measure, for one seed, on real models or real data without and with the
        effect: another seed's AE and the AE left at its initialisation; real digits (and, as
        'degraded' outputs, real FashionMNIST garments); a decoder that can only return training
        images (its paths jump) and one at its initialisation (its paths are even by nature)."""
        p, steps = self.params, self.params.interpolation_steps
        other = p.seeds[(p.seeds.index(seed) + 1) % len(p.seeds)]
        model, config = runs["mnist", seed].model, runs["mnist", seed].config
        test, digits = self.mnist[2][: p.n_paths], self.digits(seed)
        codes, response = self.perturbed(model)
        with torch.no_grad():
            mine = decode(model, model.encode(test)[0])
            drawn = decode(model, model.encode(digits)[0])
            theirs = decode(runs["mnist", other].model, runs["mnist", other].model.encode(digits)[0])
            blank = decode(model, model.encode(torch.zeros_like(test[:1]))[0])
        rms = lambda a, b: float((a - b).flatten(1).pow(2).mean(1).sqrt().mean())  # noqa: E731
        at_init = initial_model(config)
        init_response = perturbation_response(at_init, at_init.encode(test)[0], range(PERTURBED_DIMS), p.magnitudes[:1])
        garments = self.garments(seed)
        pairs, celeba_pairs = self.pairs(self.mnist[2], seed), self.pairs(self.celeba[2], seed)
        fade = interpolation_paths(model, self.mnist[2], pairs, steps)[1]
        return {
            "N1-small-perturbations-barely-change": (
                (
                    rms(drawn, theirs) if other != seed else math.nan,
                    "test digits drawn for this seed, reconstructed by its AE and by the next seed's",
                ),
                (init_response["rms_change"][0], f"the AE at its initialisation, perturbed by +{p.magnitudes[0]:g}"),
            ),
            "N1-large-perturbations-degrade": (
                (digit_like(mine, mine, self.judge), "the AE's own reconstructions of the digits, unperturbed"),
                (digit_like(garments, mine, self.judge), "real FashionMNIST garments in place of the outputs"),
            ),
            "N1-large-perturbations-may-go-black": (
                (
                    within_share(self.ink_lost(model, codes, p.magnitudes[0]), 0.95),
                    f"the AE's outputs at +{p.magnitudes[0]:g}",
                ),
                (
                    within_share(ink_lost(blank.expand_as(mine), mine), 0.95),
                    "the AE's reconstruction of a blank image, against its reconstructions of the digits",
                ),
            ),
            "N1-interpolation-smooth": (
                (
                    paths_unevenness(
                        interpolation_paths(model, self.mnist[2], pairs, steps, self.nearest(runs, "mnist", seed))[0]
                    ),
                    "the same codes decoded to the nearest of 2,000 encoded training digits (it can only jump)",
                ),
                (
                    paths_unevenness(interpolation_paths(model, self.mnist[2], pairs, steps, at_init)[0]),
                    "the same codes decoded by the AE's decoder at its initialisation (even by nature)",
                ),
            ),
            "N1-interpolation-meaningful": (
                (self.read_ratio(_blur(digits), fade[:, steps // 2]), "blurred real test digits as midpoints"),
                (self.read_ratio(digits, fade[:, steps // 2]), "real test digits as midpoints"),
            ),
            "N1-celeba-interpolation-smooth": (
                (
                    paths_unevenness(
                        interpolation_paths(
                            runs["celeba", seed].model,
                            self.celeba[2],
                            celeba_pairs,
                            steps,
                            self.nearest(runs, "celeba", seed),
                        )[0]
                    ),
                    "the same codes decoded to the nearest encoded training face (it can only jump)",
                ),
                (
                    paths_unevenness(
                        interpolation_paths(
                            runs["celeba", seed].model,
                            self.celeba[2],
                            celeba_pairs,
                            steps,
                            initial_model(runs["celeba", seed].config),
                        )[0]
                    ),
                    "the same codes decoded by the CelebA AE's decoder at its initialisation (even by nature)",
                ),
            ),
        }

    def nearest(self, runs: dict, dataset: str, seed: int) -> NearestImageDecoder:
        """The control decoder that returns the training image whose code (this seed's AE) is nearest."""
        images = (self.mnist if dataset == "mnist" else self.celeba)[0][:NEAREST_POOL]
        with torch.no_grad():
            return NearestImageDecoder(runs[dataset, seed].model.encode(images)[0], images)

    def garments(self, seed: int) -> torch.Tensor:
        """``n_paths`` FashionMNIST test images drawn for seed ``seed``: real images that are not digits."""
        images = load_dataset("fashion_mnist").test_images
        chosen = torch.randperm(len(images), generator=torch.Generator().manual_seed(seed))[: self.params.n_paths]
        return images[chosen].to(self.mnist[2].device)


def _blur(images: torch.Tensor, sigma: float = 2.0) -> torch.Tensor:
    """Images [N, 1, H, W] blurred by a Gaussian of ``sigma`` pixels (the blur control)."""
    return gaussian_blur(images, kernel_size=9, sigma=sigma)


def claims(params, followed, measuring: Measuring, controls: dict, runs: dict) -> list:
    """The chapter's claims as measured (see ``CLAIMS``)."""
    first = measuring.details[params.seeds[0]]
    small, large = params.magnitudes[0], params.magnitudes[-1]
    words = {"small": small, "large": large, "small_sd": small / first["code_sd"], "large_sd": large / first["code_sd"]}
    mnist_runs = [runs["mnist", s] for s in params.seeds]
    celeba_runs = [runs["celeba", s] for s in params.seeds]
    seeds, d = params.seeds, measuring.details
    response = lambda s, key, i: d[s]["response"][key][i]  # noqa: E731
    measured = {
        "N1-small-perturbations-barely-change": f"RMS change at +{large:g}: "
        + ", ".join(f"{response(s, 'rms_change', -1):.3f}" for s in seeds),
        "N1-large-perturbations-degrade": f"judge confidence at +{small:g} → +{large:g}: "
        + "; ".join(f"{response(s, 'confidence', 0):.2f} → {response(s, 'confidence', -1):.2f}" for s in seeds),
        "N1-large-perturbations-may-go-black": f"mean intensity at +{small:g} → +{large:g}: "
        + "; ".join(f"{response(s, 'mean_intensity', 0):.3f} → {response(s, 'mean_intensity', -1):.3f}" for s in seeds),
        "N1-interpolation-smooth": "share of paths smooth: "
        + ", ".join(f"{d[s]['smooth_share']:.2f}" for s in seeds)
        + "; pixel cross-fades (even by construction): "
        + ", ".join(f"{d[s]['crossfade_unevenness']:.2f}" for s in seeds),
        "N1-interpolation-meaningful": "midpoints read, latent vs cross-fade: "
        + "; ".join(f"{d[s]['latent_read']:.2f} vs {d[s]['crossfade_read']:.2f}" for s in seeds),
    }
    out = []
    for spec in CLAIMS.values():
        celeba = spec.id.startswith("N1-celeba")
        out.append(
            spec.claim(
                followed,
                params.celeba_epochs if celeba else params.epochs,
                CELEBA_BUDGET if celeba else MNIST_BUDGET,
                words,
                controls=controls[spec.id],
                measured=measured.get(spec.id, ""),
                runs=celeba_runs if celeba else mnist_runs,
            )
        )
    return out
