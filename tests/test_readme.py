"""README's results tables are generated from results/*.json (mtl.extras.studies.readme): a number in README cannot drift from the
notebook that produced it."""
from __future__ import annotations

import pytest

from mtl.extras.studies import readme


def test_every_results_block_of_the_readme_is_what_the_results_say():
    text = readme.README.read_text()
    names = [match["name"] for match in readme.BLOCK.finditer(text)]
    assert sorted(names) == sorted(readme.BLOCKS)  # every generator has its block, and no block is unknown
    stale = [match["name"] for match in readme.BLOCK.finditer(text)
             if match["body"] != readme.BLOCKS[match["name"]]()]
    assert not stale, f"README blocks {stale} differ from results/: run `python -m mtl.extras.studies.readme`"


def test_an_unknown_block_is_an_error_and_known_ones_are_regenerated():
    with pytest.raises(KeyError, match="has no generator"):
        readme.render("<!-- results: nope -->\nold\n<!-- /results -->")
    text = "intro\n<!-- results: transfer -->\nstale table\n<!-- /results -->\noutro"
    rendered = readme.render(text)
    assert "stale table" not in rendered and rendered.startswith("intro\n") and rendered.endswith("outro")
    assert readme.BLOCKS["transfer"]() in rendered
