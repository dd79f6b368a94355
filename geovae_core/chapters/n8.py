"""N8 · A learnable cluster centre (R §3.1–3.2, Figs 3.1–3.3, 3.5, 3.6): the chapter's knobs per
profile, the runs it trains, its claims and how each is measured.

``base`` is the ``quick`` profile; ``smoke`` and ``paper`` override some of it (``profiles.Settings``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
from torch import nn
from torchvision.transforms.functional import gaussian_blur

from ..codebook import centre_step_hook, drift_hook, nearest_codes
from ..config import ExperimentConfig
from ..criteria import COLLAPSED, FAR_WORSE, RECOGNISED, SMOOTH, SMOOTH_PATHS, UNREADABLE, Criterion, compared
from ..data import experiment_split
from ..geometry import decode, distances, perturbation_paths, unevenness
from ..metrics import SampleQuality, alike_pairs, excess_ratio, sample_diversity
from ..plotting import diagram_arrow, diagram_box
from ..profiles import ADAM_SQUARED_ERROR, Settings
from ..results import ClaimSpec
from ..verdicts import Controls
from . import Chapter

# The quick profile's knobs (the book) in three groups: the networks, the runs, R's method.
NETS = dict(latent_dim=32, cnn_widths=[32, 64], celeba_latent_dim=128, celeba_widths=[16, 32, 64, 128])
RUNS = dict(epochs=16, celeba_epochs=8, batch_size=128, pool_size=64, train_size=8000, test_size=2000)
METHOD = dict(pull_weight=1.0, centre_recon_weight=0.0, zero_weight=1.0, codebook_size=20)
SMOKE = dict(latent_dim=8, cnn_widths=[8, 16], celeba_latent_dim=16, celeba_widths=[8, 16, 32, 64])
SETTINGS = Settings(
    base=dict(ADAM_SQUARED_ERROR, **NETS, **RUNS, **METHOD),
    smoke=dict(SMOKE, epochs=3, celeba_epochs=2, train_size=512, test_size=512),
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

MIX_MEASURE = "kinds present: ≥ 2 vectors recognised (p ≥ 0.9), ≥ 2 unreadable (p < 0.5), ≥ 1 alike pair"
MIX_WHY = (
    "R names three kinds, each in the plural ('some learned similar features, some are scattered and largely "
    "meaningless, while others are clear numerical images'): two of a kind, not one accident."
)
A_MIX = Criterion("a mix", MIX_MEASURE, ">=", 3.0, MIX_WHY)
NOT_COLLAPSED = Criterion(
    "not collapsed", f"sample diversity (the measure of '{COLLAPSED.name}')", ">=", COLLAPSED.threshold,
    "The other side of the collapsed criterion: samples at least half as diverse as the data.",
)  # fmt: skip
ANNEALS = compared(
    "v's step shrink / the mean encoding's (shrink: mean step over the last third of the epochs after the first "
    "/ over the first third)", "<=", 0.5,
    "Under Adam almost any learnt vector's step falls as its gradients do; v anneals of its own only if its step "
    "shrinks at least twice as much as the drift of the encodings it is matched with.",
)  # fmt: skip

SMOOTH_SAYS = "R §3.2: results on MNIST, CelebA and FashionMNIST, 'demonstrating a perfectly smooth transition'."
ANNEAL_SAYS = (
    "R §3.2: the distance of the learnable encoding from its previous state shows 'a process of decreasing distance "
    "from high to low, thus implicitly achieving annealing'."
)
MIX_SAYS = f"R §3.2: {MIX_WHY.split('(')[1].split(')')[0]}."
ZERO_SAYS = (
    "R §3.2: 'we added an MSE constraint to the intermediate latent vector, pushing it towards an all-zero vector. "
    "The results … indicate severe collapse. This highlights the importance of reparameterization and the dynamic "
    "matching mechanism in our new method'."
)
FAR_SAYS = "R §3.2: 'Simply constraining the MSE to a specific vector cannot achieve generative capability'."
PERTURBED = "Single-dimension perturbations from −3 to +3 around the learnt centre give smooth paths"
SHRINKS = "v's step per epoch shrinks over training, at least twice as much as the drift of the mean encoding"
MIX = "The {codebook_size} decoded vectors are a mix: some alike, some meaningless, some clear digits."
CENTRE = "The cluster-centre AE's samples do not collapse."
FAR = "The MSE-to-zero AE's samples are far further from the data than the cluster-centre AE's."


def _spec(claim: str, figure: str, statement: str, says: str, criterion: Criterion) -> ClaimSpec:
    return ClaimSpec(claim, f"R Fig {figure}", statement, says, criterion, "n8-fig" + figure.replace(".", ""))


CLAIMS = {
    c.id: c
    for c in (
        _spec("N8-perturbations-smooth", "3.2", PERTURBED + " on MNIST and FashionMNIST.", SMOOTH_SAYS, SMOOTH_PATHS),
        _spec("N8-celeba-perturbations-smooth", "3.2", PERTURBED + " on CelebA.", SMOOTH_SAYS, SMOOTH_PATHS),
        _spec("N8-centre-anneals", "3.3", SHRINKS + " (MNIST and FashionMNIST).", ANNEAL_SAYS, ANNEALS),
        _spec("N8-celeba-centre-anneals", "3.3", SHRINKS + " (CelebA).", ANNEAL_SAYS, ANNEALS),
        _spec("N8-twenty-vectors-a-mix", "3.5", MIX, MIX_SAYS, A_MIX),
        _spec("N8-mse-to-zero-collapses", "3.6", "The MSE-to-zero AE's samples collapse.", ZERO_SAYS, COLLAPSED),
        _spec("N8-centre-ae-does-not-collapse", "3.6", CENTRE, ZERO_SAYS, NOT_COLLAPSED),
        _spec("N8-mse-to-zero-far-worse", "3.6", FAR, FAR_SAYS, FAR_WORSE),
    )
}
SMOOTH_IDS = {"digits": "N8-perturbations-smooth", "celeba": "N8-celeba-perturbations-smooth"}
ANNEAL_IDS = {"digits": "N8-centre-anneals", "celeba": "N8-celeba-centre-anneals"}

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
    v's (``centre_step``), the mean encoding's and the encoder bias's; ``relative``, v's shrink
    over the mean encoding's (``ANNEALS``' measure), and the same of the bias and of the mean
    encoding's steps under a 1/t schedule (the controls)."""
    v = [row["centre_step"] for row in history][1:]
    drift, bias = steps_of(history, "mean_encoding"), steps_of(history, "encoder_bias")
    annealed = [step / epoch for epoch, step in enumerate(drift, start=2)]
    out = {"v": shrink(v), "encoding": shrink(drift), "bias": shrink(bias), "annealed": shrink(annealed)}
    return {**out, **{f"{k}_relative": out[k] / out["encoding"] for k in ("v", "bias", "annealed")}}


def smooth_share(paths: torch.Tensor) -> float:
    """``SMOOTH_PATHS``' measure: the share of paths [P, T, ...] each ``SMOOTH`` alone (unchanging ones left out)."""
    each = unevenness(paths)
    judged = each[~torch.isnan(each)]
    return float((judged <= SMOOTH.threshold).float().mean()) if len(judged) else math.nan


def centre_paths(model) -> torch.Tensor:
    """The decoded paths v + δ e_d, δ from −3 to +3, for every latent dimension d: [D, T, C, H, W]."""
    v = model.codebook.codes[:1].detach()
    return perturbation_paths(model, v, range(v.shape[1]), torch.linspace(-3, 3, PATH_STEPS))[0]


def worst(values, highest: bool = False) -> float:
    """The least favourable of per-dataset values (NaN when any is NaN)."""
    values = list(values)
    return math.nan if any(math.isnan(v) for v in values) else (max if highest else min)(values)


def kinds_present(counts: dict) -> float:
    """``A_MIX``' measure from the counts of ``Measuring.kinds``."""
    return float((counts["recognised"] >= 2) + (counts["unreadable"] >= 2) + (counts["alike pairs"] >= 1))


def pixel_shuffled(images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Each image [N, C, H, W] with its pixels in a random order of its own: its ink kept, its shape gone."""
    flat = images.flatten(1)
    return flat.gather(1, torch.argsort(torch.rand(flat.shape, generator=generator), dim=1)).view_as(images)


@dataclass
class Measuring:
    """What the claims are measured on (the MNIST judge, each dataset's test images) and the
    numbers of the whole budget's measurement (``details``, per seed)."""

    params: object
    judge: SampleQuality
    tests: dict
    details: dict = field(default_factory=dict)

    @classmethod
    def of(cls, params) -> Measuring:
        judge = SampleQuality("mnist", params.fd_samples, params.device, progress=False)
        return cls(params, judge, {d: experiment_split(net_config(params, d, 0))[2] for d in DATASETS})

    def kinds(self, images: torch.Tensor) -> dict:
        """How many images the judge recognises and cannot read, and how many pairs are alike."""
        p = self.judge.probabilities(images).max(dim=1).values
        recognised, unreadable = int((p >= RECOGNISED.threshold).sum()), int((p < UNREADABLE.threshold).sum())
        return {
            "recognised": recognised,
            "unreadable": unreadable,
            "alike pairs": alike_pairs(images, self.tests["mnist"]),
        }

    @torch.no_grad()
    def sampled(self, runs: dict, seed: int, own: bool = True) -> dict:
        """{(model, sampling): {diversity, FD score}} of ``fd_samples`` draws of N(c, I) and (with
        ``own``) of N(c, diag(s²)) decoded by the cluster-centre AE (c = v) and the MSE-to-zero AE
        (c = the mean test code), s the spread of the model's test codes."""
        out, real = {}, self.tests["mnist"]
        for name, key in ((CENTRE_AE, ("centres", "mnist", seed)), (ZERO_AE, ("zero", seed))):
            model = runs[key].model
            codes = model.encode(real)[0]
            c = model.codebook.codes[0].detach() if model.codebook is not None else codes.mean(0)
            draws = torch.randn(self.judge.n, len(c), generator=torch.Generator().manual_seed(1000 + seed))
            for sampling, scale in ((UNIT, torch.ones_like(c)), (OWN, codes.std(0)))[: 1 + own]:
                images = decode(model, c + scale * draws.to(c.device))
                out[name, sampling] = {"diversity": sample_diversity(images, real), **self.judge.score(images)}
        return out

    def readings(self) -> dict:
        """{images: (share the judge recognises, share it cannot read)} of real test digits, the same
        blurred (σ = 2) and pixel-shuffled, and their mean image: the mix's legs on real images."""
        real = self.judge.inputs(self.judge.n).cpu()
        shuffled = pixel_shuffled(real, torch.Generator().manual_seed(1))
        sets = {"clean test digits": real, "blurred, σ = 2": gaussian_blur(real, 9, 2.0), "pixel-shuffled": shuffled}
        out = {}
        for name, images in {**sets, "their mean image": real.mean(0, keepdim=True)}.items():
            p = self.judge.probabilities(images).max(dim=1).values
            out[name] = tuple(float(x.float().mean()) for x in (p >= RECOGNISED.threshold, p < UNREADABLE.threshold))
        return out

    def __call__(self, runs: dict, final: bool) -> dict:
        """{claim id: {seed: value}} for the runs of one stage (the same measurement at every stage)."""
        out = {claim: {} for claim in CLAIMS}
        for s in self.params.seeds:
            centres = {d: runs["centres", d, s] for d in DATASETS}
            smooth = {d: smooth_share(centre_paths(r.model)) for d, r in centres.items()}
            anneal = {d: annealing(r.history) for d, r in centres.items()}
            many = runs["many", s].model
            vectors = decode(many, many.codebook.codes.detach())
            mix, sampled = self.kinds(vectors), self.sampled(runs, s, own=final)  # the verdicts read N(c, I)
            for group, datasets in GROUPS.items():
                out[SMOOTH_IDS[group]][s] = worst(smooth[d] for d in datasets)
                out[ANNEAL_IDS[group]][s] = worst((anneal[d]["v_relative"] for d in datasets), highest=True)
            out["N8-twenty-vectors-a-mix"][s] = kinds_present(mix)
            out["N8-mse-to-zero-collapses"][s] = sampled[ZERO_AE, UNIT]["diversity"]
            out["N8-centre-ae-does-not-collapse"][s] = sampled[CENTRE_AE, UNIT]["diversity"]
            out["N8-mse-to-zero-far-worse"][s] = excess_ratio(sampled[ZERO_AE, UNIT], sampled[CENTRE_AE, UNIT])
            if final:
                with torch.no_grad():
                    assigned = nearest_codes(many.encode(self.tests["mnist"])[0], many.codebook.codes)
                shares = torch.bincount(assigned, minlength=len(vectors)).float() / len(assigned)
                vectors = (vectors, *self.judge.probabilities(vectors).max(dim=1), shares)
                self.details[s] = dict(smooth=smooth, anneal=anneal, mix=mix, vectors=vectors, sampled=sampled)
        return out

    def controls(self, runs: dict) -> dict:
        """Each criterion on an input where the effect is absent and one where it is present, from
        the first seed's models, their recorded steps and real test digits."""
        s, generator = self.params.seeds[0], torch.Generator().manual_seed(0)
        paths = {d: centre_paths(runs["centres", d, s].model) for d in DATASETS}
        order = {d: torch.argsort(torch.rand(p.shape[:2], generator=generator), dim=1) for d, p in paths.items()}
        shuffled = {d: p[torch.arange(len(p))[:, None], order[d]] for d, p in paths.items()}
        alpha = torch.linspace(0, 1, PATH_STEPS).view(1, -1, 1, 1, 1)
        fades = {d: (1 - alpha) * p[:, :1] + alpha * p[:, -1:] for d, p in paths.items()}
        anneal, out = self.details[s]["anneal"], self.image_controls(generator)
        for group, datasets in GROUPS.items():
            out[SMOOTH_IDS[group]] = Controls(
                (worst(smooth_share(shuffled[d]) for d in datasets), "the same paths' frames in a random order"),
                (worst(smooth_share(fades[d]) for d in datasets), "pixel cross-fades between each path's two ends"),
            )
            relative = lambda key: worst((anneal[d][key] for d in datasets), highest=True)  # noqa: E731, B023
            out[ANNEAL_IDS[group]] = Controls(
                (
                    relative("bias_relative"),
                    "the encoder's output bias, a learnt vector of v's size under the same Adam",
                ),
                (relative("annealed_relative"), "the mean encoding's steps under a 1/t schedule (each over its epoch)"),
            )
        return out

    def image_controls(self, generator: torch.Generator) -> dict:
        """The controls built from real test digits alone: the mix, diversity and Fréchet distance."""
        real, digits = self.judge.inputs(self.judge.n).cpu(), self.tests["mnist"].cpu()
        i, j = divmod(int(distances(real.flatten(1), real.flatten(1)).fill_diagonal_(math.inf).argmin()), len(real))
        clean = real[[i, j, *[k for k in range(len(real)) if k not in (i, j)][:18]]]
        mixed = torch.cat([clean[:11], pixel_shuffled(clean[11:], generator)])
        overlaid = {
            k: digits[torch.randint(len(digits), (self.judge.n, k), generator=generator)].mean(1) for k in (3, 6)
        }
        diversity = {k: sample_diversity(images, digits) for k, images in overlaid.items()}
        score = {sigma: self.judge.score(gaussian_blur(real, 9, sigma)) for sigma in (1.25, 1.5, 2.0)}
        three, six = "means of 3 random test digits", "means of 6 random test digits"
        return {
            "N8-twenty-vectors-a-mix": Controls(
                (kinds_present(self.kinds(clean)), "20 clean test digits, among them the test set's closest pair"),
                (kinds_present(self.kinds(mixed)), "the same 20 with 9 of them pixel-shuffled"),
            ),
            "N8-mse-to-zero-collapses": Controls((diversity[3], three), (diversity[6], six)),
            "N8-centre-ae-does-not-collapse": Controls((diversity[6], six), (diversity[3], three)),
            "N8-mse-to-zero-far-worse": Controls(
                (excess_ratio(score[1.5], score[1.25]), "test digits blurred at σ = 1.5 against σ = 1.25"),
                (excess_ratio(score[2.0], score[1.25]), "test digits blurred at σ = 2 against σ = 1.25"),
            ),
        }


def claims(params, followed, measuring: Measuring, controls: dict, runs: dict) -> list:
    """The chapter's claims as measured (see ``CLAIMS``)."""
    seeds, d = params.seeds, measuring.details

    def listed(value) -> str:
        return ", ".join(f"{value(s):.2f}" for s in seeds)

    def own(*names, of=lambda x: x["diversity"]) -> str:
        return f"at the latent's own spread, {OWN}: " + listed(lambda s: of(*[d[s]["sampled"][n, OWN] for n in names]))

    counts = "; ".join(f"seed {s}: " + ", ".join(f"{v} {k}" for k, v in d[s]["mix"].items()) for s in seeds)
    measured = {
        "N8-twenty-vectors-a-mix": counts,
        "N8-mse-to-zero-collapses": own(ZERO_AE),
        "N8-centre-ae-does-not-collapse": own(CENTRE_AE),
        "N8-mse-to-zero-far-worse": own(ZERO_AE, CENTRE_AE, of=excess_ratio) + " (FD excess ratio)",
    }
    behind = {
        "N8-twenty-vectors-a-mix": [runs["many", s] for s in seeds],
        "N8-mse-to-zero-collapses": [runs["zero", s] for s in seeds],
        "N8-centre-ae-does-not-collapse": [runs["centres", "mnist", s] for s in seeds],
    }
    behind["N8-mse-to-zero-far-worse"] = behind["N8-centre-ae-does-not-collapse"] + behind["N8-mse-to-zero-collapses"]
    for group, datasets in GROUPS.items():
        behind[SMOOTH_IDS[group]] = behind[ANNEAL_IDS[group]] = [runs["centres", k, s] for k in datasets for s in seeds]
        measured[SMOOTH_IDS[group]] = "; ".join(f"{k}: " + listed(lambda s, k=k: d[s]["smooth"][k]) for k in datasets)
        measured[ANNEAL_IDS[group]] = "; ".join(
            f"{k}: v's shrink {listed(lambda s, k=k: d[s]['anneal'][k]['v'])}, the mean encoding's "
            + listed(lambda s, k=k: d[s]["anneal"][k]["encoding"])
            for k in datasets
        )
    return [
        spec.claim(
            followed,
            params.celeba_epochs if "celeba" in spec.id else params.epochs,
            BUDGET,
            {"codebook_size": params.codebook_size},
            controls=controls[spec.id],
            measured=measured[spec.id],
            runs=behind[spec.id],
        )
        for spec in CLAIMS.values()
    ]


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
