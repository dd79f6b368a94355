"""The chapters are listed once, in the table of contents; each has its module of settings
beside it, and its notebook imports that module (so that its page follows its settings)."""

import ast
import re

import nbformat
import pytest
import yaml

from geovae_core import ParameterError, dependencies
from geovae_core.chapters import TOC, chapter, chapter_notebooks
from geovae_core.pages import chapters

IDS = list(chapter_notebooks())


def test_the_table_of_contents_is_the_one_list_of_chapters():
    toc = yaml.safe_load(TOC.read_text())
    listed = [e["file"] for part in toc["parts"] for e in part["chapters"] if e["file"].startswith("executed/N")]
    assert [f"executed/{stem}" for stem in chapter_notebooks().values()] == listed
    assert [n.stem for n in chapters()] == list(chapter_notebooks().values())
    modules = sorted(p.stem for p in (dependencies.PACKAGE / "chapters").glob("n*.py") if p.stem[1:].isdigit())
    assert modules == sorted(i.lower() for i in IDS)  # no module without a page, no page without a module


@pytest.mark.parametrize("chapter_id", IDS)
def test_a_chapter_s_module_names_its_page_and_its_notebook_imports_it(chapter_id):
    found = chapter(chapter_id)
    assert found.id == chapter_id and found.notebook.startswith(f"{chapter_id}-")
    notebook = nbformat.read(dependencies.PACKAGE.parent / "notebooks" / f"{found.notebook}.ipynb", as_version=4)
    title = notebook.cells[0].source.splitlines()[0]
    assert title == f"# {found.heading}"
    sources = [c.source for c in notebook.cells if c.cell_type == "code"]
    assert f"chapters.{chapter_id.lower()}" in dependencies.closure(sources)
    assert any(re.search(rf"ChapterPage\({chapter_id.lower()}\.CHAPTER\)", s) for s in sources)


def test_an_unknown_chapter_id_names_the_known_ones():
    assert chapter("n3") is chapter("N3")
    with pytest.raises(ParameterError, match=r"chapter 'N99' is not one of N1, N2, .*N11"):
        chapter("N99")


def test_a_chapter_s_settings_are_a_small_block_of_their_own():
    for path in (dependencies.PACKAGE / "chapters").glob("n*.py"):
        if not path.stem[1:].isdigit():  # a chapter's second module (n11_claims)
            continue
        tree = ast.parse(path.read_text())
        targets = [t for node in tree.body if isinstance(node, ast.Assign) for t in node.targets]
        assigned = {name.id for t in targets for name in ast.walk(t) if isinstance(name, ast.Name)}
        assert {"SETTINGS", "CHAPTER"} <= assigned, path.name
