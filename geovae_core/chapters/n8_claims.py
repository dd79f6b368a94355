"""N8's claims and how each is measured, with its controls per seed (the chapter's settings, runs
and R Fig 3.3's steps are in ``n8``)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
from torchvision.transforms.functional import gaussian_blur

from ..codebook import nearest_codes
from ..criteria import COLLAPSED, FAR_WORSE, RECOGNISED, SMOOTH_PATHS, UNREADABLE, Criterion, compared
from ..data import experiment_split, load_dataset
from ..geometry import NearestImageDecoder, decode, distances, paths_unevenness
from ..judges import SampleQuality
from ..metrics import alike_pairs, excess_ratio, neighbour_rms, sample_diversity
from ..results import ClaimSpec
from ..training import initial_model
from .n8 import (
    BUDGET,
    CENTRE_AE,
    DATASETS,
    GROUPS,
    OWN,
    UNIT,
    ZERO_AE,
    annealing,
    averaged_centre,
    centre_paths,
    net_config,
    pixel_shuffled,
    worst,
)

MIX_MEASURE = (
    f"the least present of R's three kinds: min(2nd-highest judge probability / {RECOGNISED.threshold:g}, "
    f"{UNREADABLE.threshold:g} / 2nd-lowest judge probability, 1 / the most alike pair's ALIKE ratio)"
)
MIX_WHY = (
    "R names three kinds, each in the plural ('some learned similar features, some are scattered and largely "
    "meaningless, while others are clear numerical images'): two of a kind, not one accident."
)
A_MIX = Criterion(
    "a mix", MIX_MEASURE, ">=", 1.0,
    MIX_WHY + f" At least two vectors recognised (≥ {RECOGNISED.threshold:g}), two unreadable "
    f"(< {UNREADABLE.threshold:g}) and one alike pair exactly when every term reaches 1; unlike the counts the "
    "measure moves with the vectors.",
)  # fmt: skip
NOT_COLLAPSED = Criterion(
    "not collapsed", f"sample diversity (the measure of '{COLLAPSED.name}')", ">=", COLLAPSED.threshold,
    "The other side of the collapsed criterion: samples at least half as diverse as the data.",
)  # fmt: skip
SHRINK = "mean step over the last third of the epochs after the first / over the first third"
FALLS = Criterion(
    "falls", f"v's step shrink ({SHRINK})", "<", 1.0,
    "R Fig 3.3 reads 'a process of decreasing distance from high to low': v's late steps shorter than its early "
    "ones. The first step, from v's random start, is left out: it is long by construction.",
)  # fmt: skip
ANNEALS = compared(
    f"v's step shrink / the mean encoding's (shrink: {SHRINK})", "<=", 0.5,
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
FALLS_FROM_HIGH = "v's step per epoch falls over training, 'from high to low'"
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
        _spec("N8-centre-step-falls", "3.3", FALLS_FROM_HIGH + " (MNIST and FashionMNIST).", ANNEAL_SAYS, FALLS),
        _spec("N8-celeba-centre-step-falls", "3.3", FALLS_FROM_HIGH + " (CelebA).", ANNEAL_SAYS, FALLS),
        _spec("N8-centre-anneals", "3.3", SHRINKS + " (MNIST and FashionMNIST).", ANNEAL_SAYS, ANNEALS),
        _spec("N8-celeba-centre-anneals", "3.3", SHRINKS + " (CelebA).", ANNEAL_SAYS, ANNEALS),
        _spec("N8-twenty-vectors-a-mix", "3.5", MIX, MIX_SAYS, A_MIX),
        _spec("N8-mse-to-zero-collapses", "3.6", "The MSE-to-zero AE's samples collapse.", ZERO_SAYS, COLLAPSED),
        _spec("N8-centre-ae-does-not-collapse", "3.6", CENTRE, ZERO_SAYS, NOT_COLLAPSED),
        _spec("N8-mse-to-zero-far-worse", "3.6", FAR, FAR_SAYS, FAR_WORSE),
    )
}
SMOOTH_IDS = {"digits": "N8-perturbations-smooth", "celeba": "N8-celeba-perturbations-smooth"}
FALL_IDS = {"digits": "N8-centre-step-falls", "celeba": "N8-celeba-centre-step-falls"}
ANNEAL_IDS = {"digits": "N8-centre-anneals", "celeba": "N8-celeba-centre-anneals"}
NEAREST_POOL = 2000  # training images the nearest-image decoder (a control) may return, and the averaged centre draws


def most_alike(images: torch.Tensor, real: torch.Tensor, sample: int = 1000) -> float:
    """``criteria.ALIKE``'s ratio of the most alike pair of ``images``: their RMS distance over the
    median nearest-neighbour RMS distance among (the first ``sample``) real images."""
    d = distances(images.flatten(1), images.flatten(1)) / images[0].numel() ** 0.5
    return float(d.fill_diagonal_(math.inf).min() / neighbour_rms(real[:sample]).median())


def mix_margin(p: torch.Tensor, alike: float) -> float:
    """``A_MIX``' measure from the judge's probabilities ``p`` of the vectors and ``most_alike``."""
    p = p.double().sort().values
    return min(
        float(p[-2]) / RECOGNISED.threshold, UNREADABLE.threshold / max(float(p[1]), 1e-12), 1 / max(alike, 1e-12)
    )


@dataclass
class Measuring:
    """What the claims are measured on (the MNIST judge, each dataset's test images and first
    ``NEAREST_POOL`` training images) and the numbers of the whole budget (``details``, per seed)."""

    params: object
    judge: SampleQuality
    tests: dict
    pools: dict = field(default_factory=dict)
    details: dict = field(default_factory=dict)

    @classmethod
    def of(cls, params) -> Measuring:
        judge = SampleQuality("mnist", params.fd_samples, params.device, progress=False)
        splits = {d: experiment_split(net_config(params, d, 0)) for d in DATASETS}
        pools = {d: split[0][:NEAREST_POOL] for d, split in splits.items()}
        return cls(params, judge, {d: split[2] for d, split in splits.items()}, pools)

    def kinds(self, images: torch.Tensor) -> dict:
        """How many images the judge recognises and cannot read, how many pairs are alike, and the
        mix's ``margin`` (``A_MIX``' measure)."""
        p = self.judge.probabilities(images).max(dim=1).values
        return {
            "recognised": int((p >= RECOGNISED.threshold).sum()),
            "unreadable": int((p < UNREADABLE.threshold).sum()),
            "alike pairs": alike_pairs(images, self.tests["mnist"]),
            "margin": mix_margin(p, most_alike(images, self.tests["mnist"])),
        }

    @torch.no_grad()
    def samples(self, model, seed: int, own: bool = False) -> torch.Tensor:
        """``fd_samples`` draws of N(c, I) (with ``own``: N(c, diag(s²))) decoded by ``model``: c its
        centre v, or the mean test code for a model without one; s the spread of its test codes."""
        codes = model.encode(self.tests["mnist"])[0]
        c = model.codebook.codes[0].detach() if model.codebook is not None else codes.mean(0)
        draws = torch.randn(self.judge.n, len(c), generator=torch.Generator().manual_seed(1000 + seed))
        return decode(model, c + (codes.std(0) if own else 1.0) * draws.to(c.device))

    def sampled(self, runs: dict, seed: int, own: bool = True) -> dict:
        """{(model, sampling): {diversity, FD score}} of the cluster-centre AE and the MSE-to-zero AE
        sampled at R's unit scale, N(c, I), and (with ``own``) at their own spread, N(c, diag(s²))."""
        out = {}
        for name, key in ((CENTRE_AE, ("centres", "mnist", seed)), (ZERO_AE, ("zero", seed))):
            for sampling in (UNIT, OWN)[: 1 + own]:
                images = self.samples(runs[key].model, seed, sampling == OWN)
                out[name, sampling] = {"diversity": self.diversity(images), **self.judge.score(images)}
        return out

    def diversity(self, images: torch.Tensor) -> float:
        """``COLLAPSED``' measure: ``metrics.sample_diversity`` against the test digits."""
        return sample_diversity(images, self.tests["mnist"])

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
            smooth = {d: paths_unevenness(centre_paths(r.model)) for d, r in centres.items()}
            anneal = {d: annealing(r.history) for d, r in centres.items()}
            many = runs["many", s].model
            vectors = decode(many, many.codebook.codes.detach())
            mix, sampled = self.kinds(vectors), self.sampled(runs, s, own=final)  # the verdicts read N(c, I)
            for group, datasets in GROUPS.items():
                out[SMOOTH_IDS[group]][s] = worst((smooth[d] for d in datasets), highest=True)
                out[FALL_IDS[group]][s] = worst((anneal[d]["v"] for d in datasets), highest=True)
                out[ANNEAL_IDS[group]][s] = worst((anneal[d]["v_relative"] for d in datasets), highest=True)
            out["N8-twenty-vectors-a-mix"][s] = mix["margin"]
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

    def real_digits(self, seed: int, k: int) -> torch.Tensor:
        """``k`` MNIST test digits drawn for seed ``seed`` from those outside the judge's reference."""
        held_out = self.judge.data.test_images[self.judge.n :]
        chosen = torch.randperm(len(held_out), generator=torch.Generator().manual_seed(seed))[:k]
        return held_out[chosen].to(self.tests["mnist"].device)

    def garments(self, seed: int, k: int) -> torch.Tensor:
        """``k`` FashionMNIST test images drawn for seed ``seed``: real images that are not digits."""
        images = load_dataset("fashion_mnist").test_images
        chosen = torch.randperm(len(images), generator=torch.Generator().manual_seed(seed))[:k]
        return images[chosen].to(self.tests["mnist"].device)

    def controls(self, runs: dict, seed: int) -> dict:
        """Each claim's measure, for one seed, on real models or real data without and with the effect:
        the same centre's paths decoded by a decoder that can only return training images (they jump)
        and by the decoder at its initialisation (even by nature); the encoder's output bias (a learnt
        vector with no pull of its own) and a running mean of encodings (it anneals as 1/t); real test
        digits and garments drawn for the seed; the models at their initialisation (an untrained
        decoder barely varies with its code)."""
        out, p, generator = {}, self.params, torch.Generator().manual_seed(seed)
        jumps, even, averaged = {}, {}, {}
        for d in DATASETS:
            run = runs["centres", d, seed]
            with torch.no_grad():
                nearest = NearestImageDecoder(run.model.encode(self.pools[d])[0], self.pools[d])
            jumps[d] = paths_unevenness(centre_paths(run.model, nearest, torch.Generator().manual_seed(seed)))
            even[d] = paths_unevenness(centre_paths(run.model, initial_model(run.config)))
            averaged[d] = averaged_centre(run.model, self.pools[d], run.config.epochs, p.batch_size, generator)
        anneal = self.details[seed]["anneal"]
        averaging = f"a running mean of this seed's encodings of training images, {p.batch_size} more each epoch"
        bias = "the encoder's output bias: a learnt vector trained by the same Adam, with no pull of its own"
        for group, datasets in GROUPS.items():
            least = lambda values: worst((values[d] for d in datasets), highest=True)  # noqa: E731, B023
            out[SMOOTH_IDS[group]] = (
                (
                    least(jumps),
                    f"the same paths decoded to the nearest of {NEAREST_POOL:,} training images "
                    "(they jump; each frame spread over its stretch of the path)",
                ),
                (least(even), "the same paths decoded by the decoder at its initialisation (even by nature)"),
            )
            out[FALL_IDS[group]] = (
                (least({d: anneal[d]["bias"] for d in datasets}), bias),
                (least({d: averaged[d]["shrink"] for d in datasets}), averaging + " (its step falls as 1/t)"),
            )
            out[ANNEAL_IDS[group]] = (
                (least({d: anneal[d]["bias_relative"] for d in datasets}), bias + ", against the mean encoding"),
                (
                    least({d: averaged[d]["relative"] for d in datasets}),
                    averaging + ", against the steps between the batch means it averages (they do not drift)",
                ),
            )
        return {**out, **self.model_controls(runs, seed)}

    @torch.no_grad()
    def model_controls(self, runs: dict, seed: int) -> dict:
        """The controls of R Figs 3.5 and 3.6: real test digits and garments drawn for the seed, the
        next seed's cluster-centre AE sampled with this seed's draws (the same model: not far worse),
        and the seed's models at their initialisation (an untrained decoder barely varies with its code)."""
        size, seeds = self.params.codebook_size, self.params.seeds
        other = seeds[(seeds.index(seed) + 1) % len(seeds)]
        theirs = self.samples(runs["centres", "mnist", other].model, seed)
        real = self.real_digits(seed, self.judge.n)
        zero_at_init = self.samples(initial_model(runs["zero", seed].config), seed)
        centre_at_init = self.samples(initial_model(runs["centres", "mnist", seed].config), seed)
        many_at_init = initial_model(runs["many", seed].config)
        untrained = decode(many_at_init, many_at_init.codebook.codes.detach())
        third = size // 3
        mixed = torch.cat([real[: size - 2 * third], self.garments(seed, third), untrained[:third]])
        centre = self.details[seed]["sampled"][CENTRE_AE, UNIT]
        digits = f"{self.judge.n:,} real test digits drawn for this seed"
        return {
            "N8-twenty-vectors-a-mix": (
                (self.kinds(real[:size])["margin"], f"{size} real test digits drawn for this seed (one kind)"),
                (
                    self.kinds(mixed)["margin"],
                    f"{size - 2 * third} of them, {third} FashionMNIST garments and {third} vectors decoded by the "
                    "untrained decoder (alike)",
                ),
            ),
            "N8-mse-to-zero-collapses": (
                (self.diversity(real), digits),
                (self.diversity(zero_at_init), f"the {ZERO_AE} at its initialisation, sampled as above"),
            ),
            "N8-centre-ae-does-not-collapse": (
                (self.diversity(centre_at_init), f"the {CENTRE_AE} at its initialisation, sampled as above"),
                (self.diversity(real), digits),
            ),
            "N8-mse-to-zero-far-worse": (
                (
                    excess_ratio(self.judge.score(theirs), centre) if other != seed else math.nan,
                    f"the next seed's {CENTRE_AE}, sampled with this seed's draws, against this seed's",
                ),
                (
                    excess_ratio(self.judge.score(zero_at_init), centre),
                    f"the {ZERO_AE} at its initialisation, against the {CENTRE_AE}'s samples",
                ),
            ),
        }


def claims(params, followed, measuring: Measuring, controls: dict, runs: dict) -> list:
    """The chapter's claims as measured (see ``CLAIMS``)."""
    seeds, d = params.seeds, measuring.details

    def listed(value) -> str:
        return ", ".join(f"{value(s):.2f}" for s in seeds)

    def own(*names, of=lambda x: x["diversity"]) -> str:
        return f"at the latent's own spread, {OWN}: " + listed(lambda s: of(*[d[s]["sampled"][n, OWN] for n in names]))

    counts = "; ".join(
        f"seed {s}: " + ", ".join(f"{v} {k}" for k, v in d[s]["mix"].items() if k != "margin") for s in seeds
    )
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
        centres = [runs["centres", k, s] for k in datasets for s in seeds]
        behind[SMOOTH_IDS[group]] = behind[FALL_IDS[group]] = behind[ANNEAL_IDS[group]] = centres
        measured[SMOOTH_IDS[group]] = "; ".join(f"{k}: " + listed(lambda s, k=k: d[s]["smooth"][k]) for k in datasets)
        measured[FALL_IDS[group]] = "; ".join(
            f"{k}: the encoder bias's shrink " + listed(lambda s, k=k: d[s]["anneal"][k]["bias"]) for k in datasets
        )
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
