"""What code a result depends on: the one way the book computes it, for the run cache's code
version and for the pages' fingerprints.

A piece of code depends on the modules of ``geovae_core`` it imports, directly or through each
other (its import closure), and on their syntax: comments, docstrings and layout do not count.
``from geovae_core.chapters import n1`` imports the module ``chapters.n1``; ``from geovae_core
import run``, a name that is no module, imports the package's ``__init__`` (and what that
imports). A package's ``__init__`` counts only where it is imported from: it re-exports names
and determines nothing else. Modules are named by their dotted path inside the package
(``cache``, ``chapters.n1``); ``__init__`` is the package's own, and a subpackage's goes by the
subpackage's name (``chapters``).
"""

from __future__ import annotations

import ast
import functools
import hashlib
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent
DOCSTRING_OWNERS = (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)


def module_file(name: str, package: Path = PACKAGE) -> Path | None:
    """The file of module ``name`` (see the module docstring), or None when there is none."""
    if name in ("", "__init__"):
        return package / "__init__.py"
    base = package.joinpath(*name.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def _module_or_package(base: str, name: str, package: Path) -> str | None:
    """What ``from <base> import <name>`` imports: the module ``base.name`` if there is one, else
    ``base`` itself (``__init__`` for the package); None outside the package's modules."""
    dotted = f"{base}.{name}" if base else name
    if module_file(dotted, package) is not None:
        return dotted
    return (base or "__init__") if module_file(base or "__init__", package) is not None else None


def imports(source: str, package: Path = PACKAGE, importer: str | None = None) -> set:
    """The modules of ``package`` that ``source`` imports. ``importer`` is the module the source
    is (for its relative imports); None for code outside the package (a notebook's cells)."""
    root, found = package.name, set()
    if importer is None:
        here = None
    elif importer == "__init__" or module_file(importer, package).name == "__init__.py":
        here = "" if importer == "__init__" else importer
    else:
        here = importer.rpartition(".")[0]
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            for alias in node.names:
                parts = alias.name.split(".")
                if parts[0] == root and module_file(".".join(parts[1:]) or "__init__", package) is not None:
                    found.add(".".join(parts[1:]) or "__init__")
        elif isinstance(node, ast.ImportFrom):
            parts = (node.module or "").split(".")
            if node.level == 0 and parts[0] == root:
                base = ".".join(parts[1:])
            elif node.level > 0 and here is not None:
                anchor = here.split(".") if here else []
                anchor = anchor[: len(anchor) - (node.level - 1)] if node.level > 1 else anchor
                base = ".".join([*anchor, *(p for p in parts if p)])
            else:
                continue
            found |= {_module_or_package(base, a.name, package) for a in node.names} - {None}
    return found


def closure(sources: list, package: Path = PACKAGE, modules: tuple = ()) -> set:
    """The modules that the code ``sources`` and the modules ``modules`` import, directly or
    through each other, ``modules`` included."""
    todo = set(modules).union(*(imports(s, package) for s in sources))
    found = set()
    while todo:
        name = todo.pop()
        found.add(name)
        todo |= _parsed(module_file(name, package))[0] - found
    return found


def syntax_dump(path: Path) -> str:
    """The syntax tree of a Python file without its docstrings, as text."""
    tree = ast.parse(path.read_text(), filename=path.name)
    for node in ast.walk(tree):
        if isinstance(node, DOCSTRING_OWNERS) and node.body and _is_docstring(node.body[0]):
            node.body = node.body[1:]
    return ast.dump(tree)


def _is_docstring(statement: ast.stmt) -> bool:
    return (
        isinstance(statement, ast.Expr)
        and isinstance(statement.value, ast.Constant)
        and isinstance(statement.value.value, str)
    )


def _parsed(path: Path) -> tuple:
    """(the modules it imports, the digest of its syntax) of a module file, read again only
    when the file changed."""
    stat = path.stat()
    return _parsed_version(path, stat.st_mtime_ns, stat.st_size)


@functools.lru_cache(maxsize=512)
def _parsed_version(path: Path, mtime_ns: int, size: int) -> tuple:
    package = PACKAGE if path.is_relative_to(PACKAGE) else _package_of(path)
    name = ".".join(path.relative_to(package).with_suffix("").parts)
    name = name.removesuffix(".__init__") if name != "__init__" else name
    return frozenset(imports(path.read_text(), package, name)), digest(syntax_dump(path))


def _package_of(path: Path) -> Path:
    """The top package folder of a module file (the highest folder with an ``__init__.py``)."""
    folder = path.parent
    while (folder.parent / "__init__.py").is_file():
        folder = folder.parent
    return folder


def digest(*parts) -> str:
    """16 hex digits of SHA-256 over ``parts`` (bytes, or anything as its text)."""
    hashed = hashlib.sha256()
    for part in parts:
        hashed.update(part if isinstance(part, bytes) else str(part).encode())
    return hashed.hexdigest()[:16]


def code_digest(modules, package: Path = PACKAGE) -> str:
    """A digest of the syntax, without docstrings, of ``modules`` (names as above)."""
    return digest(*(f"{name} {_parsed(module_file(name, package))[1]}\n" for name in sorted(modules)))
