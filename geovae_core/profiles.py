"""Profiles and notebook parameters (CONTRIBUTING.md: "Profiles").

Each chapter has three profiles, ``smoke`` (CI, seconds), ``quick`` (the default book on a
2-core CPU) and ``paper`` (the documents' own settings, for a GPU), written once in the
chapter's module as a base setting (quick) with smoke and paper overrides (``Settings``). A
notebook hands its ``parameters`` cell to ``parameters_from``: a knob given explicitly beats
the profile, a bad value fails at once naming the knob and what is allowed, and an unknown name
fails naming the closest knobs. ``KNOBS`` says what each knob allows.
"""

from __future__ import annotations

import ast
import difflib
import os
from dataclasses import dataclass, field

import torch
import yaml

from .errors import ParameterError
from .losses import LIKELIHOODS
from .models import ACTIVATIONS
from .optimizers import OPTIMIZERS


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
    "cifar_train_size": (_positive_int, "a positive integer (CIFAR-10 images; the whole set if larger)"),
    "lr_candidates": POSITIVE_NUMBERS,
    "lr_search_epochs": POSITIVE_INT,
    "lr_search_size": POSITIVE_INT,
    "optimizer": (lambda v: v in OPTIMIZERS, "one of " + ", ".join(OPTIMIZERS)),
    "activation": (lambda v: v in ACTIVATIONS, "one of " + ", ".join(ACTIVATIONS)),
    "likelihood": (lambda v: v in LIKELIHOODS, "one of " + ", ".join(LIKELIHOODS)),
    "decoder_std": POSITIVE_NUMBER,
    "binarize": (lambda v: isinstance(v, bool), "True or False"),
    "init_std": POSITIVE_NUMBER,
    "output_bias_at_mean": (lambda v: isinstance(v, bool), "True or False"),
    "adagrad_accumulator": (_non_negative_number, "a non-negative number"),
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
    ``paper`` override some of it. ``long`` is ``quick`` trained ``LONG_FACTOR`` times longer
    (its ``LONG_KNOBS``; ``long`` may override more): every other knob stays quick's, so a long
    build resumes quick's runs from the cache. The knobs named in ``shared`` take their value
    from ``SHARED`` by profile. ``main`` names the knobs the chapter's "Run this chapter" box shows."""

    base: dict
    smoke: dict = field(default_factory=dict)
    paper: dict = field(default_factory=dict)
    shared: tuple = ("seeds", "device")
    main: tuple = ("epochs", "seeds")
    long: dict = field(default_factory=dict)

    def profile(self, name: str) -> dict:
        longer = {k: v * LONG_FACTOR for k, v in self.base.items() if k in LONG_KNOBS}
        overrides = {"smoke": self.smoke, "quick": {}, "long": {**longer, **self.long}, "paper": self.paper}[name]
        return {**self.base, **{k: SHARED[name][k] for k in self.shared}, **overrides}

    def knobs(self) -> list:
        return [*self.base, *self.shared]


# Knobs every chapter takes from its profile: every claim is measured over ``seeds`` (at least 3
# in quick, 5 in paper), and every Fréchet distance of a profile uses the same ``fd_samples``.
SHARED = {
    "smoke": dict(seeds=[0, 1], fd_samples=200, device="auto"),
    "quick": dict(seeds=[0, 1, 2], fd_samples=1000, device="auto"),
    "long": dict(seeds=[0, 1, 2], fd_samples=1000, device="auto"),
    "paper": dict(seeds=[0, 1, 2, 3, 4], fd_samples=10000, device="auto"),
}
# long: quick's runs trained on (the cache resumes them), for a CPU overnight.
LONG_FACTOR = 4
LONG_KNOBS = ("epochs", "celeba_epochs", "codebook_epochs", "manifold_epochs", "ball_epochs")
PROFILE_NAMES = tuple(SHARED)

# The training P and R give most of their models: Adam, step size 1e-3, a squared-error reconstruction.
ADAM_SQUARED_ERROR = dict(lr=1e-3, likelihood="mse")


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


def _unknown(names, known, chapter: str) -> ParameterError:
    lines = []
    for name in sorted(names):
        close = difflib.get_close_matches(name, known, n=3)
        lines.append(f"{name}: not a parameter of {chapter}" + (f"; did you mean {', '.join(close)}?" if close else ""))
    return ParameterError("; ".join(lines) + f". Its parameters are profile, {', '.join(known)}")


def _not_allowed(name: str, value, allowed: str, default) -> ParameterError:
    """The line for a value that fails its knob's check. Text given to a knob that takes a list, a
    number or True/False, and that YAML reads as one, came from papermill's ``-p``, which passes
    ``[0]`` or ``true`` as text: the line says to give it with ``-y``, which reads YAML."""
    if isinstance(value, str) and not isinstance(default, str):
        try:
            typed = yaml.safe_load(value)
        except yaml.YAMLError:
            typed = value
        if not isinstance(typed, str | None):
            return ParameterError(
                f'{name}: {value!r} is a string (papermill\'s -p passes text); use -y "{name}: {value}"'
            )
    return ParameterError(f"{name}: {value!r} is not allowed; expected {allowed}")


def resolve(chapter: str, settings: Settings, profile: str, **given) -> Parameters:
    """The ``profile`` of a chapter's ``settings`` overridden by every knob in ``given`` that is not None."""
    if profile not in PROFILE_NAMES:
        raise ParameterError(f"profile: {profile!r} is not one of {', '.join(PROFILE_NAMES)}")
    defaults = settings.profile(profile)
    unknown = set(given) - set(defaults)
    if unknown:
        raise _unknown(unknown, list(defaults), chapter)
    explicit = {k for k, v in given.items() if v is not None}
    values = {**defaults, **{k: given[k] for k in explicit}}
    for name, value in values.items():
        check, allowed = KNOBS[name]
        if not check(value):
            raise _not_allowed(name, value, allowed, defaults[name])
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


def parameters_from(chapter: str, settings: Settings, namespace: dict) -> Parameters:
    """Resolve a notebook's parameters cell: the profile (None: ``$GEOVAE_PROFILE``, else
    ``quick``) and every knob of ``chapter`` found in ``namespace`` (the notebook's globals).
    A name papermill injected that is not a knob (``-p epoch 3`` for ``epochs``) fails here,
    naming the closest knobs, since papermill itself only warns."""
    knobs = settings.knobs()
    unknown = injected_names(namespace.get("In")) - set(knobs) - {"profile"}
    if unknown:
        raise _unknown(unknown, knobs, chapter)
    profile = namespace.get("profile") or os.environ.get("GEOVAE_PROFILE", "quick")
    return resolve(chapter, settings, profile, **{k: namespace.get(k) for k in knobs})


PROFILE_KNOB = "profile: str = None  # smoke | quick | long | paper (None: $GEOVAE_PROFILE, else quick)"


def _type_name(value) -> str:
    """The annotation papermill shows for a knob whose quick value is ``value``."""
    if isinstance(value, list | tuple):
        kinds = {_type_name(v) for v in value}
        return f"list[{kinds.pop()}]" if len(kinds) == 1 else "list"
    return type(value).__name__


# The formatter would wrap a long knob's value in brackets and part it from its comment, which
# papermill reads as the knob's help; papermill skips these comment lines.
FORMAT_OFF, FORMAT_ON = "# fmt: off", "# fmt: on"


def annotated_parameters(settings: Settings, source: str) -> str:
    """A chapter's parameters cell with each knob typed and its comment ending in its ``quick``
    and ``paper`` values (``papermill --help-notebook`` shows type, values and meaning); the
    comment's own words, which give the documents' values, are kept."""
    quick, paper = settings.profile("quick"), settings.profile("paper")
    lines = [FORMAT_OFF]
    for line in source.splitlines():
        if line in (FORMAT_OFF, FORMAT_ON):
            continue
        name = line.split("=")[0].split(":")[0].strip()
        if name == "profile":
            lines.append(PROFILE_KNOB)
            continue
        if name not in quick:
            lines.append(line)
            continue
        words = line.partition("#")[2].split(" [quick")[0].strip()
        values = f"quick {quick[name]!r}" + (f", paper {paper[name]!r}" if paper[name] != quick[name] else "")
        lines.append(f"{name}: {_type_name(quick[name])} = None  # {words} [{values}]")
    return "\n".join([*lines, FORMAT_ON])
