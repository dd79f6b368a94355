"""The one way the book computes what code a result depends on (the import closure), and the
shape of the package it reads: no import circle, no module too long to read at once."""

import ast

from geovae_core import dependencies
from geovae_core.dependencies import PACKAGE, closure, imports, module_file


def _modules() -> list:
    names = []
    for path in sorted(PACKAGE.rglob("*.py")):
        name = ".".join(path.relative_to(PACKAGE).with_suffix("").parts).removesuffix(".__init__")
        names.append(name or "__init__")
    return names


def _graph() -> dict:
    """Every module's imports of the package, those inside functions included."""
    return {m: imports(module_file(m).read_text(), PACKAGE, m) - {m} for m in _modules()}


def test_imports_name_modules_by_their_dotted_path_and_follow_relative_imports():
    assert imports("from geovae_core.chapters import n1") == {"chapters.n1"}
    assert imports("from geovae_core.chapters import chapter") == {"chapters"}
    assert imports("from geovae_core import ExperimentConfig") == {"__init__"}
    assert imports("import geovae_core.cache as cache\nimport torch") == {"cache"}
    assert imports("from ..profiles import Settings\nfrom . import Chapter", importer="chapters.n1") == {
        "profiles",
        "chapters",
    }
    assert imports("from .n2 import CHAPTER", importer="chapters") == {"chapters.n2"}
    assert imports("def f():\n    from .cache import run", importer="metrics") == {"cache"}  # inside functions too


def test_the_closure_follows_imports_through_each_other():
    found = closure(["from geovae_core.training import train"])
    assert {"training", "models", "codebook", "geometry", "storage"} <= found
    assert "cache" not in found and "runner" not in found


def test_the_package_has_no_import_circle():
    graph, state, circles = _graph(), {}, []

    def visit(module, path):
        state[module] = "open"
        for other in sorted(graph[module] - {"__init__"}):  # __init__ only re-exports
            if state.get(other) == "open":
                circles.append(path[path.index(other) :] + [other])
            elif other not in state:
                visit(other, [*path, other])
        state[module] = "done"

    for module in graph:
        if module not in state:
            visit(module, [module])
    assert circles == []


def test_no_module_imports_the_package_inside_a_function():
    for module in _modules():
        tree = ast.parse(module_file(module).read_text())
        top = {id(node) for node in tree.body}
        inner = [
            node
            for node in ast.walk(tree)
            if isinstance(node, (ast.Import, ast.ImportFrom)) and id(node) not in top
            if imports(ast.unparse(node), PACKAGE, module)
        ]
        assert inner == [], (module, [ast.unparse(node) for node in inner])


def test_digests_ignore_docstrings_comments_and_layout(tmp_path):
    a, b = tmp_path / "a.py", tmp_path / "b.py"
    a.write_text('"""Doc."""\n\ndef f(x):\n    """Doc."""\n    return x + 1\n')
    b.write_text("def f( x ):  # a comment\n    return x+1\n")
    assert dependencies.syntax_dump(a) == dependencies.syntax_dump(b)
    b.write_text("def f(x):\n    return x + 2\n")
    assert dependencies.syntax_dump(a) != dependencies.syntax_dump(b)


def test_the_pure_measures_stand_below_the_cache_and_the_judges_above_it():
    measures = closure(["from geovae_core.metrics import frechet_distance"])
    assert not {"cache", "judges", "data", "training"} & measures, measures
    assert {"cache", "metrics"} <= closure(["from geovae_core.judges import SampleQuality"])
