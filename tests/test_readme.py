"""README.md and docs/ as a reader meets them: every number generated from the records (mtl.extras.studies.readme),
the Python example runs and prints what its comments say, every relative link resolves, and the pages stay short."""
from __future__ import annotations

import re
import subprocess
import sys

import pytest

from mtl.extras.studies import readme
from mtl.paths import PROJ_ROOT

PAGES = [readme.README, *sorted((PROJ_ROOT / "docs").glob("*.md"))]  # the analysis plan too: its links must resolve
LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)\)")


def test_every_results_block_is_what_the_records_say():
    found = {path: [match for match in readme.BLOCK.finditer(path.read_text())] for path in readme.documents()}
    names = [match["name"] for matches in found.values() for match in matches]
    assert sorted(names) == sorted(readme.BLOCKS)  # every generator has one block, and no block is unknown
    stale = [f"{path.relative_to(PROJ_ROOT)}: {match['name']}" for path, matches in found.items() for match in matches
             if match["body"] != readme.BLOCKS[match["name"]]()]
    assert not stale, f"Blocks {stale} differ from the records: run `python -m mtl.extras.studies.readme`"


def test_an_unknown_block_is_an_error_and_known_ones_are_regenerated():
    with pytest.raises(KeyError, match="has no generator"):
        readme.render("<!-- results: nope -->\nold\n<!-- /results -->")
    text = "intro\n<!-- results: full-scale-cost -->\nstale table\n<!-- /results -->\noutro"
    rendered = readme.render(text)
    assert "stale table" not in rendered and rendered.startswith("intro\n") and rendered.endswith("outro")
    assert readme.BLOCKS["full-scale-cost"]() in rendered
    assert readme.PLAN not in readme.documents()  # the binding plan is never rewritten


def test_the_readme_python_example_runs_and_prints_what_its_comments_say():
    blocks = re.findall(r"^```python\n(.*?)^```", readme.README.read_text(), flags=re.M | re.S)
    assert len(blocks) == 1, "README has one Python example"
    code = blocks[0]
    assert "from mtl import" in code  # the public API, as a user would import it
    # a print's comment starts with what it prints, up to the first colon
    expected = [line.split("#", 1)[1].split(":")[0].strip() for line in code.splitlines() if line.startswith("print(")]
    assert expected
    out = subprocess.run([sys.executable, "-c", code], cwd=PROJ_ROOT, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    assert out.stdout.splitlines() == expected


@pytest.mark.parametrize("page", PAGES, ids=lambda path: path.name)
def test_every_relative_link_resolves_to_a_file(page):
    targets = [target.split("#")[0] for target in LINK.findall(page.read_text())
               if not target.startswith(("http://", "https://", "mailto:", "#"))]
    missing = [target for target in targets if not (page.parent / target).exists()]
    assert not missing, f"{page.name} links to missing files: {missing}"


def words(path) -> int:
    """Words as a reader meets them: whitespace-separated, tables, code and collapsed <details> included."""
    return len(path.read_text().split())


def test_the_readme_is_one_page_and_with_docs_stays_short():
    pages = [path for path in readme.documents()]  # README and docs/ but the analysis plan
    assert words(readme.README) <= 1500
    assert sum(map(words, pages)) <= 3500


def test_no_dates_or_commit_hashes_in_the_readme_or_docs():
    for path in readme.documents():  # provenance lives in results/
        text = path.read_text()
        assert not re.search(r"\b20\d\d-\d\d-\d\d\b", text), path.name
        hashes = [h for h in re.findall(r"\b[0-9a-f]{7,40}\b", text) if re.search(r"\d", h) and re.search("[a-f]", h)]
        assert not hashes, f"{path.name}: {hashes}"
