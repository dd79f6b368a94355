"""Profiles and notebook parameters (CONTRIBUTING.md: "Profiles").

Each chapter has three profiles, ``smoke`` (CI, seconds), ``quick`` (the default book on a
2-core CPU) and ``paper`` (the documents' own settings, for a GPU), written once as a base
setting (quick) with smoke and paper overrides (``CHAPTER_SETTINGS``). A notebook hands its
``parameters`` cell to ``parameters_from``: a knob given explicitly beats the profile, a bad
value fails at once naming the knob and what is allowed, and an unknown name fails naming the
closest knobs. ``KNOBS`` says what each knob allows.
"""

from __future__ import annotations

import ast
import difflib
import os
from dataclasses import dataclass, field

import torch

from .errors import ParameterError
from .losses import LIKELIHOODS
from .models import ACTIVATIONS
from .training import OPTIMIZERS


def _positive_int(value):
    return isinstance(value, int) and not isinstance(value, bool) and value > 0


def _positive_number(value):
    return isinstance(value, (int, float)) and not isinstance(value, bool) and value > 0


def _non_negative_int(value):
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _non_negative_number(value):
    return isinstance(value, (int, float)) and not isinstance(value, bool) and value >= 0


def _list_of(check):
    return lambda value: isinstance(value, (list, tuple)) and len(value) > 0 and all(map(check, value))


# Kinds of knob shared by many: (check, what is allowed).
POSITIVE_INT = (_positive_int, "a positive integer")
POSITIVE_NUMBER = (_positive_number, "a positive number")
NON_NEGATIVE_INT = (_non_negative_int, "a non-negative integer")
CHANNELS = (_list_of(_positive_int), "a non-empty list of positive integers (channels)")
POSITIVE_INTS = (_list_of(_positive_int), "a non-empty list of positive integers")
POSITIVE_NUMBERS = (_list_of(_positive_number), "a non-empty list of positive numbers")
SEEDS = (_list_of(_non_negative_int), "a non-empty list of non-negative integers")

# knob -> (check, what is allowed)
KNOBS = {
    "latent_dims": POSITIVE_INTS,
    "manifold_epochs": POSITIVE_INT,
    "epochs": POSITIVE_INT,
    "batch_size": POSITIVE_INT,
    "train_size": (_positive_int, "a positive integer (images; the whole set if larger)"),
    "test_size": (_positive_int, "a positive integer (images; the whole set if larger)"),
    "lr_candidates": POSITIVE_NUMBERS,
    "lr_search_epochs": POSITIVE_INT,
    "lr_search_size": POSITIVE_INT,
    "optimizer": (lambda v: v in OPTIMIZERS, "one of " + ", ".join(OPTIMIZERS)),
    "activation": (lambda v: v in ACTIVATIONS, "one of " + ", ".join(ACTIVATIONS)),
    "likelihood": (lambda v: v in LIKELIHOODS, "one of " + ", ".join(LIKELIHOODS)),
    "decoder_std": POSITIVE_NUMBER,
    "binarize": (lambda v: isinstance(v, bool), "True or False"),
    "init_std": POSITIVE_NUMBER,
    "iw_samples": POSITIVE_INT,
    "iw_test_size": POSITIVE_INT,
    "n_samples": POSITIVE_INT,
    "classifier_epochs": POSITIVE_INT,
    "seed": NON_NEGATIVE_INT,
    "seeds": SEEDS,
    "fd_samples": (lambda v: _positive_int(v) and v >= 10, "an integer of at least 10 (images per Fréchet distance)"),
    "latent_dim": POSITIVE_INT,
    "widths": (_list_of(_positive_int), "a non-empty list of positive integers (layer widths)"),
    "cnn_widths": CHANNELS,
    "lr": POSITIVE_NUMBER,
    "betas": POSITIVE_NUMBERS,
    "cv_batches": POSITIVE_INT,
    "cv_batch_size": (lambda v: _positive_int(v) and v >= 2, "an integer of at least 2"),
    "cv_draws": POSITIVE_INT,
    "ball_classes": (
        lambda v: _list_of(lambda c: _non_negative_int(c) and c < 10)(v) and len(v) == 2,
        "two class labels between 0 and 9",
    ),
    "balls_per_class": POSITIVE_INT,
    "ball_samples": POSITIVE_INT,
    "ball_epochs": POSITIVE_INT,
    "coverage_size": POSITIVE_INT,
    "n_paths": POSITIVE_INT,
    "celeba_latent_dim": POSITIVE_INT,
    "pull_weight": POSITIVE_NUMBER,
    "codebook_size": POSITIVE_INT,
    "codebook_epochs": POSITIVE_INT,
    "codebook_sizes": POSITIVE_INTS,
    "codebook_decay": (lambda v: _positive_number(v) and v < 1, "a number between 0 and 1"),
    "residual_width": POSITIVE_INT,
    "residual_blocks": POSITIVE_INT,
    "residual_codebook_size": POSITIVE_INT,
    "tsne_points": POSITIVE_INT,
    "perturbation": POSITIVE_NUMBER,
    "map_channels": POSITIVE_INT,
    "magnitudes": POSITIVE_NUMBERS,
    "interpolation_steps": (lambda v: _positive_int(v) and v >= 3, "an integer of at least 3"),
    "celeba_batch_size": POSITIVE_INT,
    "map_codebook_size": POSITIVE_INT,
    "celeba_epochs": POSITIVE_INT,
    "celeba_seeds": SEEDS,
    "celeba_widths": CHANNELS,
    "pool_size": (_positive_int, "a positive integer (images)"),
    "centre_recon_weight": (_non_negative_number, "a non-negative number (0 leaves the term out)"),
    "zero_weight": POSITIVE_NUMBER,
    "device": (lambda v: v in ("auto", "cpu", "cuda"), "one of auto, cpu, cuda"),
}


@dataclass(frozen=True)
class Settings:
    """A chapter's knobs: ``base`` is the ``quick`` profile (the default book); ``smoke`` and
    ``paper`` override some of it. The knobs named in ``shared`` take their value from
    ``SHARED`` by profile. ``main`` names the knobs the chapter's "Run this chapter" box shows."""

    base: dict
    smoke: dict = field(default_factory=dict)
    paper: dict = field(default_factory=dict)
    shared: tuple = ("seeds", "device")
    main: tuple = ("epochs", "seeds")

    def profile(self, name: str) -> dict:
        overrides = {"smoke": self.smoke, "quick": {}, "paper": self.paper}[name]
        return {**self.base, **{k: SHARED[name][k] for k in self.shared}, **overrides}

    def knobs(self) -> list:
        return [*self.base, *self.shared]


# Knobs every chapter takes from its profile: every claim is measured over ``seeds`` (at least 3
# in quick, 5 in paper), and every Fréchet distance of a profile uses the same ``fd_samples``.
SHARED = {
    "smoke": dict(seeds=[0], fd_samples=200, device="auto"),
    "quick": dict(seeds=[0, 1, 2], fd_samples=1000, device="auto"),
    "paper": dict(seeds=[0, 1, 2, 3, 4], fd_samples=10000, device="auto"),
}
PROFILE_NAMES = tuple(SHARED)

_P = dict(lr=1e-3, likelihood="mse")

CHAPTER_SETTINGS = {
    "N1": Settings(
        base=dict(
            _P,
            latent_dim=128,
            widths=[64, 64],
            epochs=10,
            batch_size=128,
            train_size=10000,
            celeba_latent_dim=786,
            cnn_widths=[16, 32, 64, 128],
            celeba_epochs=10,
            celeba_batch_size=32,
            magnitudes=[0.1, 0.5, 1.0, 2.0, 5.0, 10.0, 15.0],
            interpolation_steps=10,
            n_paths=64,
        ),
        smoke=dict(
            latent_dim=16,
            celeba_latent_dim=32,
            cnn_widths=[8, 16, 32, 64],
            epochs=1,
            celeba_epochs=1,
            train_size=1000,
            n_paths=8,
        ),
        paper=dict(epochs=20, cnn_widths=[32, 64, 128, 256], n_paths=256),
        shared=("seeds", "device"),
        main=("epochs", "celeba_epochs", "seeds", "train_size"),
    ),
    "N2": Settings(
        base=dict(
            _P,
            latent_dim=64,
            widths=[64, 64],
            epochs=10,
            batch_size=128,
            train_size=60000,
            magnitudes=[0.1, 0.5, 1.0, 2.0, 5.0, 10.0, 15.0, 20.0, 30.0, 50.0],
            interpolation_steps=10,
            n_paths=64,
        ),
        smoke=dict(epochs=1, train_size=1000, n_paths=8),
        paper=dict(epochs=20, n_paths=256),
        shared=("seeds", "fd_samples", "device"),
        main=("epochs", "seeds", "train_size"),
    ),
    "N3": Settings(
        base=dict(
            _P,
            latent_dim=16,
            widths=[512, 256],
            cnn_widths=[32, 64, 128],
            betas=[0.05, 0.1],
            epochs=10,
            batch_size=128,
            train_size=10000,
            cv_batches=16,
            cv_batch_size=128,
            cv_draws=100,
            ball_classes=[0, 1],
            balls_per_class=10,
            ball_samples=50,
        ),
        smoke=dict(
            widths=[64], cnn_widths=[8, 16, 32], epochs=2, train_size=1000, cv_batches=2, cv_draws=10, ball_samples=20
        ),
        paper=dict(epochs=20, train_size=60000, cv_draws=1000, ball_samples=200),
        main=("epochs", "seeds", "betas", "cv_draws"),
    ),
    "N4": Settings(
        base=dict(_P, latent_dim=64, cnn_widths=[16, 32, 64, 128], epochs=6, batch_size=64, train_size=100000),
        smoke=dict(latent_dim=16, cnn_widths=[8, 16, 32, 64], epochs=1, train_size=256),
        paper=dict(latent_dim=128, cnn_widths=[32, 64, 128, 256], epochs=10),
        shared=("seeds", "fd_samples", "device"),
        main=("epochs", "seeds", "latent_dim", "cnn_widths"),
    ),
    "N5": Settings(
        base=dict(
            _P,
            likelihood="bernoulli",
            latent_dim=16,
            widths=[512, 256],
            epochs=10,
            batch_size=128,
            train_size=20000,
            n_paths=16,
        ),
        smoke=dict(widths=[64], epochs=1, train_size=1000, n_paths=2),
        paper=dict(epochs=20, train_size=60000, n_paths=64),
        shared=("seeds", "fd_samples", "device"),
        main=("epochs", "seeds", "train_size"),
    ),
    "N6": Settings(
        base=dict(
            _P,
            likelihood="bernoulli",
            latent_dim=16,
            widths=[512, 256],
            epochs=10,
            celeba_latent_dim=32,
            cnn_widths=[16, 32, 64, 128],
            celeba_epochs=5,
            batch_size=128,
            train_size=10000,
            coverage_size=1000,
        ),
        smoke=dict(
            widths=[64],
            cnn_widths=[8, 16, 32, 64],
            celeba_latent_dim=16,
            epochs=2,
            celeba_epochs=2,
            train_size=1000,
            coverage_size=200,
        ),
        paper=dict(cnn_widths=[32, 64, 128, 256], epochs=20, celeba_epochs=10, train_size=60000),
        shared=("seeds", "device"),
        main=("epochs", "celeba_epochs", "seeds", "train_size"),
    ),
    "N7": Settings(
        base=dict(
            _P,
            latent_dim=16,
            widths=[512, 256],
            cnn_widths=[16, 32, 64, 128],
            pull_weight=0.1,
            epochs=5,
            codebook_size=20,
            codebook_epochs=20,
            batch_size=128,
            train_size=20000,
            n_paths=16,
        ),
        smoke=dict(
            latent_dim=8,
            widths=[64],
            cnn_widths=[8, 16, 32, 64],
            epochs=1,
            codebook_epochs=1,
            train_size=1000,
            n_paths=2,
        ),
        paper=dict(cnn_widths=[32, 64, 128, 256], train_size=100000, n_paths=64),
        shared=("seeds", "fd_samples", "device"),
        main=("epochs", "codebook_epochs", "seeds", "train_size"),
    ),
    "N8": Settings(
        base=dict(
            _P,
            latent_dim=32,
            cnn_widths=[32, 64],
            celeba_latent_dim=128,
            celeba_widths=[16, 32, 64, 128],
            epochs=10,
            celeba_epochs=5,
            batch_size=128,
            pool_size=64,
            pull_weight=1.0,
            centre_recon_weight=0.0,
            zero_weight=1.0,
            codebook_size=20,
            train_size=8000,
            coverage_size=1000,
        ),
        smoke=dict(
            latent_dim=8,
            cnn_widths=[8, 16],
            celeba_latent_dim=16,
            celeba_widths=[8, 16, 32, 64],
            epochs=2,
            celeba_epochs=1,
            train_size=512,
            coverage_size=128,
        ),
        paper=dict(celeba_widths=[32, 64, 128, 256], epochs=20, celeba_epochs=20, train_size=60000),
        shared=("seeds", "fd_samples", "device"),
        main=("epochs", "celeba_epochs", "seeds", "train_size"),
    ),
    "N9": Settings(
        base=dict(
            _P,
            latent_dim=16,
            widths=[512, 256],
            residual_width=512,
            residual_blocks=4,
            codebook_sizes=[20, 50],
            residual_codebook_size=500,
            codebook_decay=0.99,
            pull_weight=0.1,
            epochs=10,
            batch_size=128,
            train_size=10000,
            tsne_points=1000,
            perturbation=300.0,
        ),
        smoke=dict(
            latent_dim=8,
            widths=[64],
            residual_width=64,
            residual_blocks=2,
            residual_codebook_size=100,
            epochs=1,
            train_size=1000,
            tsne_points=300,
        ),
        paper=dict(epochs=20, train_size=60000, tsne_points=2000),
        shared=("seeds", "device"),
        main=("epochs", "seeds", "train_size"),
    ),
    "N10": Settings(
        base=dict(
            _P,
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
    ),
    "N11": Settings(
        base=dict(
            latent_dims=[3, 5, 10, 20, 200],
            manifold_epochs=30,
            epochs=10,
            batch_size=100,
            train_size=20000,
            test_size=10000,
            optimizer="adagrad",
            lr_candidates=[0.01, 0.02, 0.1],
            lr_search_epochs=2,
            lr_search_size=6000,
            activation="tanh",
            likelihood="bernoulli",
            decoder_std=0.1,
            init_std=0.01,
            iw_samples=500,
            iw_test_size=1000,
        ),
        smoke=dict(
            latent_dims=[3, 20],
            manifold_epochs=2,
            epochs=2,
            train_size=2000,
            test_size=500,
            lr_search_epochs=1,
            lr_search_size=1000,
            iw_samples=20,
            iw_test_size=100,
        ),
        paper=dict(
            manifold_epochs=1670,
            epochs=1670,
            train_size=60000,
            lr_search_size=60000,
            iw_samples=5000,
            iw_test_size=10000,
        ),
        shared=("seeds", "fd_samples", "device"),
        main=("epochs", "seeds", "latent_dims", "train_size"),
    ),
}


@dataclass
class Parameters:
    """Resolved parameters of one notebook run: ``values`` and which were given explicitly."""

    chapter: str
    profile: str
    values: dict
    explicit: set = field(default_factory=set)

    def __getattr__(self, name):
        try:
            return self.__dict__["values"][name]
        except KeyError:
            raise AttributeError(name) from None

    def as_dict(self) -> dict:
        return {"profile": self.profile, **self.values}

    def markdown(self) -> str:
        """A table of every parameter, its value, and whether it came from the profile."""
        rows = [f"| `{k}` | `{v}` | {'given' if k in self.explicit else 'profile'} |" for k, v in self.values.items()]
        return "\n".join([f"Profile **{self.profile}**.", "", "| parameter | value | from |", "|---|---|---|", *rows])


def pick_device(device: str) -> str:
    """``auto`` means CUDA when present, otherwise the CPU."""
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda" and not torch.cuda.is_available():
        raise ParameterError("device: 'cuda' was asked for but no CUDA device is present; use auto or cpu")
    return device


def settings_of(chapter: str) -> Settings:
    return CHAPTER_SETTINGS[chapter]


def _unknown(names, known, chapter: str) -> ParameterError:
    lines = []
    for name in sorted(names):
        close = difflib.get_close_matches(name, known, n=3)
        lines.append(f"{name}: not a parameter of {chapter}" + (f"; did you mean {', '.join(close)}?" if close else ""))
    return ParameterError("; ".join(lines) + f". Its parameters are profile, {', '.join(known)}")


def resolve(chapter: str, profile: str, **given) -> Parameters:
    """The chapter's ``profile`` overridden by every knob in ``given`` that is not None."""
    settings = settings_of(chapter)
    if profile not in PROFILE_NAMES:
        raise ParameterError(f"profile: {profile!r} is not one of {', '.join(PROFILE_NAMES)}")
    values = settings.profile(profile)
    unknown = set(given) - set(values)
    if unknown:
        raise _unknown(unknown, list(values), chapter)
    explicit = {k for k, v in given.items() if v is not None}
    values.update({k: given[k] for k in explicit})
    for name, value in values.items():
        check, allowed = KNOBS[name]
        if not check(value):
            raise ParameterError(f"{name}: {value!r} is not allowed; expected {allowed}")
    if "device" in values:
        values["device"] = pick_device(values["device"])
    return Parameters(chapter, profile, values, explicit)


INJECTED_MARK = "# Parameters"


def injected_names(history) -> set:
    """Names assigned by the last cell papermill injected (its source starts with
    ``# Parameters``) among the executed cells' sources ``history`` (IPython's ``In``)."""
    for source in reversed(list(history or [])):
        if isinstance(source, str) and source.startswith(INJECTED_MARK):
            tree = ast.parse(source)
            return {
                t.id
                for node in tree.body
                if isinstance(node, ast.Assign)
                for t in node.targets
                if isinstance(t, ast.Name)
            }
    return set()


def parameters_from(chapter: str, namespace: dict) -> Parameters:
    """Resolve a notebook's parameters cell: the profile (None: ``$GEOVAE_PROFILE``, else
    ``quick``) and every knob of ``chapter`` found in ``namespace`` (the notebook's globals).
    A name papermill injected that is not a knob (``-p epoch 3`` for ``epochs``) fails here,
    naming the closest knobs, since papermill itself only warns."""
    knobs = settings_of(chapter).knobs()
    unknown = injected_names(namespace.get("In")) - set(knobs) - {"profile"}
    if unknown:
        raise _unknown(unknown, knobs, chapter)
    profile = namespace.get("profile") or os.environ.get("GEOVAE_PROFILE", "quick")
    return resolve(chapter, profile, **{k: namespace.get(k) for k in knobs})
