"""The import graph of ``src/etm``: one-way layers, no cycles, nothing imports the package root.

Every ``import etm.x`` / ``from etm.x import y`` / ``from . import y`` is an
edge, wherever it appears: at module level, inside a function, under ``if
TYPE_CHECKING``. A function-level import still ties the two modules together,
so it counts as much as a top-level one. Importing ``etm.a.b`` first runs
``etm/a/__init__.py``, so it is an edge to ``etm.a`` as well (except to the
importer's own packages, which are already running, and to the root ``etm``).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = "etm"
SRC = Path(__file__).resolve().parents[1] / "src" / PACKAGE


def _module_name(path: Path) -> str:
    parts = [PACKAGE, *path.relative_to(SRC).with_suffix("").parts]
    return ".".join(parts[:-1]) if parts[-1] == "__init__" else ".".join(parts)


def _modules() -> dict[str, Path]:
    return {_module_name(p): p for p in sorted(SRC.rglob("*.py"))}


def _imports(name: str, path: Path, known: set[str]) -> set[str]:
    """The ``etm`` modules that ``name`` imports anywhere in its source (``etm`` itself for the package root)."""
    is_package = path.name == "__init__.py"
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: resolve against this module's package
                package = name.split(".") if is_package else name.split(".")[:-1]
                base = ".".join(package[: len(package) - node.level + 1])
                module = f"{base}.{node.module}" if node.module else base
            else:
                module = node.module or ""
            # `from etm import corpus` imports the submodule etm.corpus; `from etm import TopicModel`, the root
            targets = [f"{module}.{a.name}" if f"{module}.{a.name}" in known else module for a in node.names]
        else:
            continue
        for target in targets:
            if target == PACKAGE or target.startswith(PACKAGE + "."):
                # `import etm.a.b` needs etm.a.b; an unknown tail (an attribute) falls back to its module
                while target not in known and "." in target:
                    target = target.rsplit(".", 1)[0]
                if target != name:
                    found.add(target)
                found |= _packages_run_first(name, target, known)
    return found


def _packages_run_first(name: str, target: str, known: set[str]) -> set[str]:
    """The packages whose ``__init__`` importing ``target`` runs first: not the root, not ``name``'s own."""
    parts = target.split(".")
    own = {".".join(name.split(".")[:i]) for i in range(1, name.count(".") + 2)}
    parents = {".".join(parts[:i]) for i in range(2, len(parts))}
    return {p for p in parents if p in known and p not in own}


def import_graph() -> dict[str, set[str]]:
    """Module name -> the ``etm`` modules it imports (module- and function-level)."""
    modules = _modules()
    known = set(modules)
    return {name: _imports(name, path, known) for name, path in modules.items()}


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle as ``[a, b, ..., a]``, or None."""
    state: dict[str, int] = {}  # 1 = on the current path, 2 = done
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return stack[stack.index(nxt) :] + [nxt]
            if nxt not in state:
                cycle = visit(nxt)
                if cycle:
                    return cycle
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state:
            cycle = visit(node)
            if cycle:
                return cycle
    return None


def test_the_graph_sees_module_and_function_level_imports():
    graph = import_graph()
    assert "etm.corpus" in graph["etm"]  # etm/__init__.py, at module level
    assert "etm.corpus.readers" in graph["etm.corpus.shards"]  # inside prepare_sharded
    assert "etm.corpus.batching" in graph["etm.corpus.memory"]  # inside PreparedCorpus.batches
    assert "etm.corpus.formats" in graph["etm.corpus.shards"]  # inside open_corpus
    # etm.outputs imports etm.training.checkpoint, which first runs etm/training/__init__.py
    assert {"etm.training.checkpoint", "etm.training"} <= graph["etm.outputs"]
    # a module of a package does not "import" its own package (it is running already)
    assert "etm.corpus" not in graph["etm.corpus.shards"]


def test_importing_a_submodule_runs_its_packages_first():
    known = {"etm", "etm.a", "etm.a.b", "etm.a.b.c", "etm.d"}
    assert _packages_run_first("etm.d", "etm.a.b.c", known) == {"etm.a", "etm.a.b"}
    assert _packages_run_first("etm.a.b.c", "etm.a.x", known) == set()  # its own package
    assert _packages_run_first("etm.a.x", "etm.a.b.c", known) == {"etm.a.b"}


def test_the_cycle_finder_finds_a_cycle():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set(), "c": {"a", "b"}}) is None


def test_no_import_cycles():
    cycle = find_cycle(import_graph())
    if cycle:
        pytest.fail("import cycle: " + " -> ".join(cycle), pytrace=False)


def test_only_the_package_init_imports_the_package_root():
    offenders = sorted(name for name, deps in import_graph().items() if PACKAGE in deps and name != PACKAGE)
    assert not offenders, f"these modules import the package root `etm` (import from its submodules): {offenders}"


def test_the_version_module_imports_nothing_of_etm():
    assert import_graph()["etm._version"] == set()


#: The corpus modules, lowest first: each may import those before it, never one after it.
CORPUS_LAYERS = [
    "etm._textio",  # decoding input text (encoding errors named or counted), line streaming
    "etm._io",  # checked reads and atomic writes
    "etm.corpus.batching",  # training batches of an in-memory or sharded corpus
    "etm.corpus.memory",  # the in-memory corpus types (Corpus, PreparedCorpus) and their own directory format
    "etm.corpus.formats",  # prepared corpora in other projects' formats (the ETM authors', OCTIS)
    "etm.corpus.readers",  # raw documents -> corpora
    "etm.corpus.shards",  # sharded corpora on disk, streaming prepare, open_corpus
    "etm.corpus",  # the package: re-exports the public names of all of the above
]


def _reaches(graph: dict[str, set[str]], start: str, goal: str) -> bool:
    seen, todo = set(), [start]
    while todo:
        node = todo.pop()
        if node == goal:
            return True
        if node not in seen:
            seen.add(node)
            todo.extend(graph.get(node, ()))
    return False


def test_corpus_layers_import_downwards_only():
    graph = import_graph()
    upward = [
        f"{lower} -> ... -> {upper}"
        for i, lower in enumerate(CORPUS_LAYERS)
        for upper in CORPUS_LAYERS[i + 1 :]
        if _reaches(graph, lower, upper)
    ]
    assert not upward, f"lower corpus layers reach upper ones through their imports: {upward}"


#: The sub-packages and top modules, lowest first: data flows corpus -> training -> estimator -> cli.
PACKAGE_LAYERS = ["etm.corpus", "etm.training", "etm.estimator", "etm.cli"]


def test_packages_import_downwards_only():
    graph = import_graph()
    upward = [
        f"{lower} -> ... -> {upper}"
        for i, lower in enumerate(PACKAGE_LAYERS)
        for upper in PACKAGE_LAYERS[i + 1 :]
        if _reaches(graph, lower, upper)
    ]
    assert not upward, f"lower packages reach upper ones through their imports: {upward}"


#: The modules that define the corpus kinds; everything else reads corpora through ``etm.corpus.CorpusSource``.
CORPUS_KIND_MODULES = {"etm.corpus.memory", "etm.corpus.shards"}
CORPUS_KINDS = {"PreparedCorpus", "ShardedCorpus", "is_sharded_corpus"}


def _names_in(node: ast.AST) -> set[str]:
    return {n.id for n in ast.walk(node) if isinstance(n, ast.Name)} | {
        n.attr for n in ast.walk(node) if isinstance(n, ast.Attribute)
    }


def _corpus_kind_branches(path: Path) -> list[str]:
    """``isinstance(x, PreparedCorpus / ShardedCorpus)`` tests and ``is_sharded_corpus(...)`` calls in a module."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
        if not isinstance(node, ast.Call):
            continue
        called = _names_in(node.func)
        if "isinstance" in called and len(node.args) == 2:
            kinds = sorted(_names_in(node.args[1]) & CORPUS_KINDS)
        else:
            kinds = sorted(called & {"is_sharded_corpus"})
        found += [f"{path.name}:{node.lineno} {kind}" for kind in kinds]
    return found


def test_the_branch_finder_finds_corpus_kind_branches(tmp_path):
    sample = tmp_path / "sample.py"
    sample.write_text(
        "import etm.shards as s\n"
        "if isinstance(x, (s.ShardedCorpus, int)): pass\n"
        "if isinstance(x, PreparedCorpus): pass\n"
        "if s.is_sharded_corpus(p): pass\n"
        "if isinstance(x, CorpusSource): pass\n"
    )
    assert _corpus_kind_branches(sample) == [
        "sample.py:2 ShardedCorpus", "sample.py:3 PreparedCorpus", "sample.py:4 is_sharded_corpus"]


def test_only_the_corpus_modules_branch_on_the_corpus_kind():
    offenders = [
        hit
        for name, path in _modules().items()
        if name not in CORPUS_KIND_MODULES
        for hit in _corpus_kind_branches(path)
    ]
    assert not offenders, (
        "these modules test which kind of corpus they have; call the etm.corpus.CorpusSource methods instead "
        f"(open corpora with etm.corpus.open_corpus): {offenders}"
    )


# -- the command line ------------------------------------------------------------------------------------------
def test_every_cli_module_is_a_registered_command():
    """A command is a module ``etm.cli.<name>`` with ``add_parser`` and ``run``, named in ``etm.cli.COMMANDS``."""
    import importlib

    from etm.cli import COMMANDS

    modules = {p.stem for p in (SRC / "cli").glob("*.py") if not p.stem.startswith("_")}
    assert modules == set(COMMANDS), (
        f"command modules {sorted(modules - set(COMMANDS))} are missing from etm.cli.COMMANDS, or COMMANDS names "
        f"{sorted(set(COMMANDS) - modules)} without a module (helpers shared by commands go in a _module)")
    for name in COMMANDS:
        module = importlib.import_module(f"etm.cli.{name}")
        assert callable(getattr(module, "add_parser", None)) and callable(getattr(module, "run", None)), name


#: The library's private modules the command line may use: the version, and the package's atomic writes / checked reads.
CLI_PRIVATE_MODULES_ALLOWED = {"etm._version", "etm._io"}


def test_the_cli_calls_only_public_library_names():
    offenders = []
    for path in sorted((SRC / "cli").glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith(PACKAGE + "."):
                if node.module.startswith(PACKAGE + ".cli"):
                    continue
                private_module = any(part.startswith("_") for part in node.module.split("."))
                if private_module and node.module not in CLI_PRIVATE_MODULES_ALLOWED:
                    offenders.append(f"{path.name}:{node.lineno} {node.module}")
                offenders += [f"{path.name}:{node.lineno} {node.module}.{a.name}"
                              for a in node.names if a.name.startswith("_") and a.name != "__version__"]
    assert not offenders, f"the command line imports private library names (use the public API): {offenders}"
