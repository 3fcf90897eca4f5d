"""The package's modules import each other one way only: no import circles (imports inside
functions count too; and so do `if TYPE_CHECKING:` blocks, read only by type checkers, in a
second, stricter graph)."""

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "minitune"


def import_graph(type_checking: bool = False) -> dict[str, set[str]]:
    """module -> the minitune modules it imports, e.g. "minitune.interop.t5" -> {"minitune.config", ...}.

    `from minitune.layers import registry` counts as importing minitune.layers.registry (a
    module of that name exists). type_checking: also the imports under `if TYPE_CHECKING:`."""
    graph = {}
    for path in PACKAGE.rglob("*.py"):
        name = ".".join(path.relative_to(PACKAGE.parent).with_suffix("").parts)
        name = name.removesuffix(".__init__")
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            guarded = isinstance(node, ast.If) and getattr(node.test, "id", "") == "TYPE_CHECKING"
            if guarded and not type_checking:  # read only by type checkers: left out
                node.body = [ast.Pass()]
        imported = set()
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("minitune"):
                imported.add(node.module)
                imported |= {
                    f"{node.module}.{a.name}"
                    for a in node.names
                    if _is_module(f"{node.module}.{a.name}")
                }
            elif isinstance(node, ast.Import):
                imported |= {a.name for a in node.names if a.name.startswith("minitune")}
        graph[name] = imported - {name}
    return graph


def _is_module(name: str) -> bool:
    """Whether `name` (minitune.x.y) is a module or package of the source tree."""
    path = PACKAGE.parent.joinpath(*name.split("."))
    return path.with_suffix(".py").is_file() or (path / "__init__.py").is_file()


def find_circle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import circle, as a path a -> b -> ... -> a, or None (depth-first search)."""
    done: set[str] = set()

    def visit(module: str, path: list[str]) -> list[str] | None:
        if module in path:
            return [*path[path.index(module) :], module]
        if module in done or module not in graph:
            return None
        for other in sorted(graph[module]):
            if circle := visit(other, [*path, module]):
                return circle
        done.add(module)
        return None

    for module in sorted(graph):
        if circle := visit(module, []):
            return circle
    return None


def test_the_finder_finds_a_circle():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert find_circle(graph) == ["a", "b", "c", "a"]
    assert find_circle({"a": {"b"}, "b": set()}) is None


def test_no_import_circles_in_the_package():
    graph = import_graph()
    assert "minitune.run.checkpoint" in graph and "minitune.layers.attention" in graph
    assert find_circle(graph) is None, " -> ".join(find_circle(graph))


def test_no_import_circles_even_for_type_checkers():
    """Type hints import one way too: e.g. generate.py names no type of model.py (which imports
    it), and layers/base.py names no class of attention.py or positions.py (which import it)."""
    graph = import_graph(type_checking=True)
    assert "minitune.layers.base" in graph["minitune.layers.attention"]
    assert "minitune.layers.registry" in graph["minitune.layers.blocks"]  # a from-import
    assert find_circle(graph) is None, " -> ".join(find_circle(graph))


def test_no_formatter_skip_markers():
    """The repository is `ruff format`ted as a whole (.ci/run checks it): nothing opts out."""
    root = PACKAGE.parent
    marked = [
        str(path.relative_to(root))
        for folder in ("minitune", "tests", "tutorials", "benchmarks", "scripts")
        for path in (root / folder).rglob("*.py")
        if "fmt: " + "skip" in path.read_text(encoding="utf-8")
        or "fmt: " + "off" in path.read_text(encoding="utf-8")
    ]
    assert not marked, marked


def test_only_the_command_line_imports_the_command_line():
    """cli/ is parsing and dispatch: no library module imports it (`__main__.py` aside, which is
    the command), so what a long run needs lives in run/, not under the command line."""
    graph = import_graph(type_checking=True)
    importers = sorted(
        module
        for module, imported in graph.items()
        if not module.startswith("minitune.cli") and module != "minitune.__main__"
        if any(m == "minitune.cli" or m.startswith("minitune.cli.") for m in imported)
    )
    assert "minitune.cli.training" in graph["minitune.cli"]  # the graph sees cli's own imports
    assert importers == []


def test_the_top_of_the_package_is_the_teaching_core():
    """The files directly in minitune/ are the teaching core (docs/layout.md's first block);
    what serves it lives in a sub-package named for its job."""
    top = sorted(p.name for p in PACKAGE.glob("*.py"))
    core = ["config.py", "evaluate.py", "generate.py", "lora.py", "loss.py", "model.py"]
    core += ["optim.py", "tokenizer.py", "train.py"]
    assert top == sorted(["__init__.py", "__main__.py", *core])
    packages = sorted(p.parent.name for p in PACKAGE.glob("*/__init__.py"))
    assert packages == ["cli", "data", "interop", "kit", "layers", "run", "suite"]
