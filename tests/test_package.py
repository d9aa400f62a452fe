"""The package's shape: one subpackage per task, imports only downwards and without cycles, extras never imported
by the core, the public API, and an install that is not editable."""
import ast
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import mtl

PACKAGE = Path(mtl.__file__).parent
# The core, lowest first: a module may import from its own layer or from a lower one. The loop validates with the
# scores, so evaluation (Task 5) sits below training (Task 4).
LAYERS = ["paths", "utils", "data", "encoder", "multitask", "finetuning", "evaluation", "training"]


def mtl_imports(path: Path) -> list[str]:
    """The mtl modules (or packages) that a file imports anywhere in its code, ``from mtl.x import y`` counted as
    ``mtl.x.y``; imports under ``if TYPE_CHECKING:`` (annotations only) are left out."""
    tree = ast.parse(path.read_text())
    skipped = {id(node) for branch in ast.walk(tree) if isinstance(branch, ast.If)
               and getattr(branch.test, "id", None) == "TYPE_CHECKING" for node in ast.walk(branch)}
    found = []
    for node in ast.walk(tree):
        if id(node) in skipped:
            continue
        if isinstance(node, ast.Import):
            found += [alias.name for alias in node.names if alias.name.startswith("mtl")]
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("mtl") and node.level == 0:
            found += [f"{node.module}.{alias.name}" for alias in node.names]
    return found


def layer(module: str) -> str:
    """'mtl.encoder.encoder.X' -> 'encoder'; extras -> 'extras'."""
    return module.split(".")[1] if module.count(".") else ""


CORE = sorted(p for p in PACKAGE.rglob("*.py") if "extras" not in p.relative_to(PACKAGE).parts
              and p.name != "__main__.py" and p.parent != PACKAGE or p.name in ("paths.py", "utils.py"))


def layer_violations(path: Path, own: str) -> list[str]:
    """The imports of ``path``, a module of the core layer ``own``, that reach an extra or a higher layer."""
    problems = []
    for module in mtl_imports(path):
        if layer(module) == "extras":
            problems.append(f"{path.name} imports the extra {module}")
        elif LAYERS.index(layer(module)) > LAYERS.index(own):
            problems.append(f"{path.name} ({own}) imports upwards: {module}")
    return problems


@pytest.mark.parametrize("path", CORE, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_the_core_imports_only_downwards_and_never_an_extra(path):
    assert layer_violations(path, path.relative_to(PACKAGE).parts[0].removesuffix(".py")) == []


def test_the_layer_check_catches_an_upward_import_and_an_extra(tmp_path):
    bad = tmp_path / "bad.py"
    bad.write_text("from mtl.encoder.encoder import SentenceEncoder\nfrom mtl.training.train import train\n"
                   "if TYPE_CHECKING:\n    from mtl.extras.cli import main\nimport mtl.extras.notebooks.plots\n")
    assert layer_violations(bad, "encoder") == ["bad.py (encoder) imports upwards: mtl.training.train.train",
                                                "bad.py imports the extra mtl.extras.notebooks.plots"]


def module_name(path: Path) -> str:
    return ".".join(path.relative_to(PACKAGE.parent).with_suffix("").parts).removesuffix(".__init__")


def import_graph() -> dict[str, set[str]]:
    """Module -> the package's modules it imports (``from mtl.x import y``: y if it is a module, else mtl.x)."""
    modules = {module_name(p) for p in PACKAGE.rglob("*.py")}
    return {module_name(p): {m if m in modules else m.rsplit(".", 1)[0] for m in mtl_imports(p)} - {module_name(p)}
            for p in PACKAGE.rglob("*.py") if p.name != "__init__.py"}


def cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle of ``graph`` as a path that returns to its start, or None (depth-first search)."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done

    def visit(node, path):
        state[node] = 1
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return path[path.index(nxt):] + [nxt]
            if state.get(nxt) is None and (found := visit(nxt, path + [nxt])):
                return found
        state[node] = 2
        return None

    return next((found for start in sorted(graph) if state.get(start) is None
                 and (found := visit(start, [start]))), None)


def test_the_cycle_finder_finds_a_cycle_and_accepts_a_layered_graph():
    assert cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert cycle({"a": {"b", "c"}, "b": {"c"}, "c": set()}) is None


def test_no_module_of_the_package_takes_part_in_an_import_cycle():
    graph = import_graph()
    assert "mtl.evaluation.predictions" in graph["mtl.training.train"]  # the graph sees module-level imports
    found = cycle(graph)
    assert found is None, "import cycle: " + " -> ".join(found)


def test_the_public_api_resolves_to_the_task_packages():
    assert mtl.SentenceEncoder.__module__ == "mtl.encoder.encoder"
    assert mtl.MultiTaskModel.__module__ == "mtl.multitask.model"
    assert mtl.train.__module__ == mtl.TrainConfig.__module__ == "mtl.training.train"
    for name in mtl.__all__:
        assert callable(getattr(mtl, name)), name
    with pytest.raises(AttributeError, match="public API"):
        mtl.not_a_name


def test_a_non_editable_install_imports_every_subpackage(tmp_path):
    source, target = tmp_path / "source", tmp_path / "site"  # built from a copy: the build leaves no files behind
    shutil.copytree(PACKAGE, source / "mtl", ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(PACKAGE.parent / name, source / name)
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation",
                    "--target", str(target), str(source)], check=True, capture_output=True)
    packages = sorted({".".join(p.relative_to(PACKAGE.parent).parent.parts) for p in PACKAGE.rglob("__init__.py")})
    code = ("import importlib, mtl; "
            f"[importlib.import_module(p) for p in {packages!r}]; "
            "print(mtl.__file__); print(mtl.build_model.__module__)")
    out = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env={"PYTHONPATH": str(target), "PATH": ""},
                         capture_output=True, text=True)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.splitlines()[0].startswith(str(target)) and "mtl.extras.studies" in packages
