"""The package's modules import one way (data -> encoder -> heads/model -> train -> evaluation -> studies): no
import cycle, counting imports inside functions too (only ``if TYPE_CHECKING:`` blocks, for annotations, are left
out)."""
import ast
from pathlib import Path

import mtl

PACKAGE = Path(mtl.__file__).parent


def imported_modules(path: Path) -> set[str]:
    """The ``mtl`` modules that a module imports anywhere in its code, except under ``if TYPE_CHECKING:``."""
    tree = ast.parse(path.read_text())
    skipped = {id(node) for branch in ast.walk(tree) if isinstance(branch, ast.If)
               and getattr(branch.test, "id", None) == "TYPE_CHECKING" for node in ast.walk(branch)}
    found = set()
    for node in ast.walk(tree):
        if id(node) in skipped:
            continue
        if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "mtl":
            if node.module == "mtl":  # from mtl import recipe, evaluation as ev
                found |= {alias.name for alias in node.names}
            else:
                found.add(node.module.split(".")[1])
        elif isinstance(node, ast.Import):
            found |= {alias.name.split(".")[1] for alias in node.names if alias.name.startswith("mtl.")}
    return found - {path.stem}


def import_graph() -> dict[str, set[str]]:
    return {path.stem: imported_modules(path) for path in sorted(PACKAGE.glob("*.py")) if path.stem != "__init__"}


def cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle of ``graph`` as a path that returns to its start, or None."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done

    def visit(node, path):
        state[node] = 1
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return path[path.index(nxt):] + [nxt] if nxt in path else [node, nxt]
            if state.get(nxt) is None:
                found = visit(nxt, path + [nxt])
                if found:
                    return found
        state[node] = 2
        return None

    for start in sorted(graph):
        if state.get(start) is None:
            found = visit(start, [start])
            if found:
                return found
    return None


def test_the_cycle_finder_finds_a_cycle_and_accepts_a_layered_graph():
    assert cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert cycle({"a": {"b", "c"}, "b": {"c"}, "c": set()}) is None


def test_no_module_of_the_package_takes_part_in_an_import_cycle():
    found = cycle(import_graph())
    assert found is None, "import cycle: " + " -> ".join(found)


def test_the_lower_layers_do_not_reach_up():
    graph = import_graph()
    assert not graph["metrics"] & {"model", "predictions", "train"}  # scores are computed, not run
    assert not graph["task_kinds"] & {"model", "metrics", "heads", "train"}
    assert not graph["evaluation"] & {"recipe", "train", "studies", "sharing"}
    assert not graph["data"] & {"encoder", "model", "tasks"}
