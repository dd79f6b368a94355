import pytest

from geovae_core.chapters import chapter, chapter_notebooks, n1
from geovae_core.errors import ParameterError
from geovae_core.profiles import KNOBS, PROFILE_NAMES, SHARED, injected_names, parameters_from, resolve

CHAPTER_IDS = list(chapter_notebooks())


def _resolve(profile, **given):
    return resolve("N1", n1.SETTINGS, profile, **given)


@pytest.mark.parametrize("chapter_id", CHAPTER_IDS)
def test_every_profile_sets_the_same_known_valid_knobs(chapter_id):
    settings = chapter(chapter_id).settings
    knobs = set(settings.knobs())
    assert set(settings.smoke) <= knobs and set(settings.paper) <= knobs and set(settings.main) <= knobs
    for name in PROFILE_NAMES:
        values = settings.profile(name)
        assert set(values) == knobs, name
        for knob, value in values.items():
            assert KNOBS[knob][0](value), (name, knob, value)


@pytest.mark.parametrize("chapter_id", CHAPTER_IDS)
def test_quick_measures_every_claim_over_at_least_three_seeds_and_paper_over_five(chapter_id):
    settings = chapter(chapter_id).settings
    if "seeds" in settings.knobs():
        assert len(settings.profile("quick")["seeds"]) >= 3 and len(settings.profile("paper")["seeds"]) >= 5


def test_shared_knobs_come_from_the_profile():
    assert _resolve("quick", device="cpu").seeds == SHARED["quick"]["seeds"]
    assert _resolve("paper", device="cpu").seeds == SHARED["paper"]["seeds"]


def test_an_explicit_knob_beats_the_profile_and_none_keeps_it():
    p = _resolve("quick", epochs=50, lr=None)
    assert p.epochs == 50 and p.lr == n1.SETTINGS.base["lr"]
    assert p.explicit == {"epochs"} and "| `epochs` | `50` | given |" in p.markdown()


def test_an_unknown_profile_names_the_allowed_ones():
    with pytest.raises(ParameterError, match=r"profile: 'fast' is not one of smoke, quick, long, paper"):
        _resolve("fast")


@pytest.mark.parametrize(
    "knob, value, message",
    [
        ("epochs", -1, r"epochs: -1 is not allowed; expected a positive integer"),
        ("epochs", 2.5, r"epochs: 2.5 is not allowed"),
        ("likelihood", "poisson", r"likelihood: 'poisson' is not allowed; expected one of bernoulli, gaussian"),
        ("seeds", [], r"seeds: \[\] is not allowed"),
    ],
)
def test_a_bad_value_names_the_knob_and_what_is_allowed(knob, value, message):
    with pytest.raises(ParameterError, match=message):
        _resolve("smoke", **{knob: value})


def test_an_unknown_knob_is_refused_with_the_closest_names():
    with pytest.raises(ParameterError, match="epoch: not a parameter of N1; did you mean epochs"):
        _resolve("smoke", epoch=3)


def test_device_auto_resolves_to_an_available_device():
    assert _resolve("smoke", device="auto").device in ("cpu", "cuda")


def _namespace(**knobs):
    """A notebook's globals after its parameters cell (every knob None) and papermill's cell."""
    names = {k: None for k in n1.SETTINGS.knobs()}
    injected = "# Parameters\n" + "".join(f"{k} = {v!r}\n" for k, v in knobs.items())
    return {**names, "profile": "smoke", **knobs, "In": ["", "import torch", injected, "P = ..."]}


def test_a_notebook_hands_its_parameters_cell_over_in_one_call():
    p = parameters_from("N1", n1.SETTINGS, _namespace(profile="smoke", epochs=3))
    assert p.profile == "smoke" and p.epochs == 3 and p.explicit == {"epochs"}


def test_a_misspelt_papermill_parameter_fails_naming_the_closest_knob():
    with pytest.raises(ParameterError, match="epoch: not a parameter of N1; did you mean epochs"):
        parameters_from("N1", n1.SETTINGS, _namespace(epoch=3))


def test_only_papermill_s_injected_cell_is_read_for_names():
    assert injected_names(["x = 1", "# Parameters\nepochs = 3\nseeds = [0, 1]\n", "y = 2"]) == {"epochs", "seeds"}
    assert injected_names(["x = 1"]) == set() and injected_names(None) == set()


def _parameters_cell_names(notebook):
    import ast

    import nbformat

    cell = next(c for c in nbformat.read(notebook, as_version=4).cells if "parameters" in c.metadata.get("tags", []))
    tree = ast.parse(cell.source).body
    plain = {t.id for node in tree if isinstance(node, ast.Assign) for t in node.targets}
    return plain | {node.target.id for node in tree if isinstance(node, ast.AnnAssign)}


@pytest.mark.parametrize("chapter_id", CHAPTER_IDS)
def test_a_chapter_s_parameters_cell_lists_exactly_its_knobs(chapter_id):
    from geovae_core.storage import REPO_ROOT

    notebook = REPO_ROOT / "notebooks" / f"{chapter(chapter_id).notebook}.ipynb"
    assert _parameters_cell_names(notebook) == {"profile", *chapter(chapter_id).settings.knobs()}


def test_long_is_quick_trained_longer_so_that_it_resumes_quick_s_runs():
    from geovae_core.profiles import LONG_FACTOR, LONG_KNOBS

    for chapter_id in CHAPTER_IDS:
        settings = chapter(chapter_id).settings
        quick, long = settings.profile("quick"), settings.profile("long")
        changed = {k for k in quick if quick[k] != long[k]}
        assert changed <= set(LONG_KNOBS) | set(settings.long), chapter_id
        assert all(long[k] == LONG_FACTOR * quick[k] for k in changed - set(settings.long)), chapter_id


@pytest.mark.parametrize("knob, text", [("seeds", "[0]"), ("seeds", "[0, 1]"), ("epochs", "50")])
def test_text_for_a_list_or_a_number_says_to_use_yaml_as_papermill_s_p_passes_text(knob, text):
    """``papermill ... -p seeds [0]`` gives the knob the text '[0]': the line says to use ``-y``."""
    expected = f'{knob}: {text!r} is a string (papermill\'s -p passes text); use -y "{knob}: {text}"'
    with pytest.raises(ParameterError) as error:
        parameters_from("N1", n1.SETTINGS, _namespace(**{knob: text}))
    assert str(error.value) == expected


def test_text_that_yaml_reads_as_text_is_refused_as_any_bad_value():
    with pytest.raises(ParameterError, match=r"^epochs: 'fifty' is not allowed; expected a positive integer$"):
        _resolve("smoke", epochs="fifty")
    with pytest.raises(ParameterError, match=r"^likelihood: '1' is not allowed; expected one of "):
        _resolve("smoke", likelihood="1")  # a knob that takes text: no advice on YAML
