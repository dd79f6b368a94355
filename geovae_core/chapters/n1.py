"""N1 · Autoencoders can generate (P Fig 1, App. A.2–A.3; R §2.1): the chapter's knobs per
profile, the runs it trains, its claims and how each is measured.

``base`` is the ``quick`` profile; ``smoke`` and ``paper`` override some of it (``profiles.Settings``).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torchvision.transforms.functional import gaussian_blur

from ..config import ExperimentConfig
from ..criteria import BARELY_CHANGES, GOES_DARK, MEANINGFUL_MIDPOINTS, SMOOTH, SMOOTH_PATHS
from ..data import experiment_split
from ..geometry import decode, interpolation_paths, jump_paths, perturbation_response, unevenness
from ..metrics import SampleQuality
from ..profiles import ADAM_SQUARED_ERROR, Settings
from ..results import ClaimSpec
from ..verdicts import Controls
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
            "N1-large-perturbations-go-black",
            "P Fig 10; R Fig 2.1",
            "At +{large:g} ({large_sd:.2g} code standard deviations) the output degrades toward black.",
            "P App. A.3: 'under large perturbations, the generated images degrade and may even collapse into "
            "merely pure black'.",
            GOES_DARK,
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
    the MNIST judge, and the numbers of the whole budget's measurement (``details``)."""

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
        n = min(self.params.n_paths, len(images))
        return torch.randint(len(images), (n, 2), generator=torch.Generator().manual_seed(seed))

    def perturbed(self, model) -> tuple:
        """(codes of ``n_paths`` test digits, ``geometry.perturbation_response`` at every magnitude)."""
        test = self.mnist[2][: self.params.n_paths]
        with torch.no_grad():
            codes = model.encode(test)[0]
        dims = range(min(8, codes.shape[1]))
        return codes, perturbation_response(model, codes, dims, self.params.magnitudes)

    def __call__(self, runs: dict, final: bool) -> dict:
        """{claim id: {seed: value}} for the runs of one stage (the same measurement at every stage)."""
        out = {claim: {} for claim in CLAIMS}
        steps = self.params.interpolation_steps
        for s in self.params.seeds:
            mnist_model, celeba_model = runs["mnist", s].model, runs["celeba", s].model
            codes, response = self.perturbed(mnist_model)
            out["N1-small-perturbations-barely-change"][s] = response["rms_change"][0]
            out["N1-large-perturbations-go-black"][s] = response["mean_intensity"][-1] / response["mean_intensity"][0]
            latent, fade = interpolation_paths(mnist_model, self.mnist[2], self.pairs(self.mnist[2], s), steps)
            out["N1-interpolation-smooth"][s] = smooth_share(latent)
            middle = steps // 2
            out["N1-interpolation-meaningful"][s] = self.read_ratio(latent[:, middle], fade[:, middle])
            faces, _ = interpolation_paths(celeba_model, self.celeba[2], self.pairs(self.celeba[2], s), steps)
            out["N1-celeba-interpolation-smooth"][s] = smooth_share(faces)
            if final:
                self.details[s] = {
                    "code_sd": float(codes.std(0).mean()),
                    "response": response,
                    "crossfade_smooth": smooth_share(fade),
                    "latent_read": float(self.judge.readable(latent[:, middle]).float().mean()),
                    "crossfade_read": float(self.judge.readable(fade[:, middle]).float().mean()),
                }
        return out

    def read_ratio(self, midpoints: torch.Tensor, crossfade: torch.Tensor) -> float:
        """``MEANINGFUL_MIDPOINTS``' measure: the share of ``midpoints`` the judge reads over the
        share of cross-fade midpoints it reads."""
        read = float(self.judge.readable(midpoints).float().mean())
        return read / max(float(self.judge.readable(crossfade).float().mean()), 1e-9)

    def controls(self, runs: dict) -> dict:
        """Each criterion on an input where the effect is absent and one where it is present,
        with the first seed's AEs and the test images."""
        s = self.params.seeds[0]
        model, test, steps = (
            runs["mnist", s].model,
            self.mnist[2][: self.params.n_paths],
            self.params.interpolation_steps,
        )
        recon = decode(model, model.encode(test)[0])
        noise = torch.Generator().manual_seed(0)
        rms = lambda a, b: float((a - b).flatten(1).pow(2).mean(1).sqrt().mean())  # noqa: E731
        latent, fade = interpolation_paths(model, self.mnist[2], self.pairs(self.mnist[2], s), steps)
        faces = interpolation_paths(runs["celeba", s].model, self.celeba[2], self.pairs(self.celeba[2], s), steps)[1]
        blurred = _blur(test)
        smooth = Controls(
            (smooth_share(jump_paths(fade)), "paths that jump from one image to the other half-way"),
            (smooth_share(fade), "pixel cross-fades, evenly blended"),
        )
        return {
            "N1-small-perturbations-barely-change": Controls(
                (rms(recon, torch.roll(recon, 1, dims=-1)), "the reconstructions moved by one pixel"),
                (
                    rms(recon, (recon + 0.01 * torch.randn(recon.shape, generator=noise)).clamp(0, 1)),
                    "the reconstructions with pixel noise of standard deviation 0.01",
                ),
            ),
            "N1-large-perturbations-go-black": Controls(
                (float(recon.mean() / recon.mean()), "the unperturbed outputs themselves"),
                (float((0.4 * recon).mean() / recon.mean()), "the unperturbed outputs with 60% of their ink taken"),
            ),
            "N1-interpolation-smooth": smooth,
            "N1-interpolation-meaningful": Controls(
                (self.read_ratio(blurred, fade[:, steps // 2]), "blurred real test digits as midpoints"),
                (self.read_ratio(test, fade[:, steps // 2]), "real test digits as midpoints"),
            ),
            "N1-celeba-interpolation-smooth": Controls(
                (smooth_share(jump_paths(faces)), "face paths that jump half-way"),
                (smooth_share(faces), "pixel cross-fades between the faces"),
            ),
        }


def smooth_share(paths: torch.Tensor) -> float:
    """``SMOOTH_PATHS``' measure: the share of paths [P, T, ...] each ``SMOOTH`` on its own (a path
    that does not change at all has no transition to judge and is left out)."""
    each = unevenness(paths)
    judged = each[~torch.isnan(each)]
    return float((judged <= SMOOTH.threshold).float().mean()) if len(judged) else float("nan")


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
    measured = {
        "N1-small-perturbations-barely-change": f"RMS change at +{large:g}: "
        + ", ".join(f"{d[s]['response']['rms_change'][-1]:.3f}" for s in seeds),
        "N1-large-perturbations-go-black": f"mean intensity at +{small:g} → +{large:g}: "
        + "; ".join(
            f"{d[s]['response']['mean_intensity'][0]:.3f} → {d[s]['response']['mean_intensity'][-1]:.3f}" for s in seeds
        ),
        "N1-interpolation-smooth": "pixel cross-fades: " + ", ".join(f"{d[s]['crossfade_smooth']:.2f}" for s in seeds),
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
