"""The repository's promises about itself: exact pins, conda and pip agree, CI runs the README's test command."""
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def requirement_lines() -> list[str]:
    lines = (ROOT / "requirements.txt").read_text().splitlines()
    return [line.strip() for line in lines if line.strip() and not line.lstrip().startswith("#")]


def test_every_requirement_is_pinned_exactly():
    for line in requirement_lines():
        assert re.fullmatch(r"[A-Za-z0-9_.\-\[\]]+==[0-9][A-Za-z0-9.+\-]*", line), f"not an exact pin: {line}"
    assert "torch==2.13.0" in requirement_lines()  # the CPU wheel on disk; an unpinned torch pulls CUDA builds


def test_environment_yml_has_the_same_pins():
    env = (ROOT / "environment.yml").read_text()
    pins = re.findall(r"^\s+- ([A-Za-z0-9_.\-]+==\S+)\s*$", env, flags=re.M)
    assert sorted(pins) == sorted(requirement_lines())


def test_ci_runs_the_readme_test_command():
    readme = (ROOT / "README.md").read_text()
    commands = re.findall(r"^```(?:bash|sh)\n(.*?)\n```", readme, flags=re.M | re.S)[0].splitlines()
    setup = [c.split("#")[0].strip() for c in commands if c.strip() and not c.startswith("#")]
    assert setup == ["make all", "make test"]  # the README opens with exactly the two commands
    ci = [line for line in (ROOT / ".ci/run").read_text().splitlines() if line and not line.startswith(("#", "set ", "cd "))]
    assert ci == ["make test"]


def test_figures_are_committed_for_every_notebook():
    for notebook in sorted((ROOT / "notebooks").glob("0*.ipynb")):
        prefix = notebook.name[:2]
        assert list((ROOT / "figures").glob(f"{prefix}_*.png")), f"no figure from {notebook.name}"
