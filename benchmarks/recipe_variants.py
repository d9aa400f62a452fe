"""How notebook 04's learning rates and class weighting were chosen: four variants of the recipe, validation only.

Each variant is ``mtl.extras.notebooks.recipe`` (seed 0, same data, same 4 x 75 steps) with one change of ``TrainConfig``; the table
prints, per variant, the validation scores of the epoch the run keeps (best mean of the tasks' main scores) and its
training time. The test split is not touched. Validation scores each task on its own set (topic on the headlines,
as the test measures it). The table is recorded, with its provenance, in ``results/recipe_variants.json``.

Usage: ``python benchmarks/recipe_variants.py`` (about 10 minutes on two CPU cores).
"""
from __future__ import annotations

import time

import pandas as pd

from mtl.extras.notebooks import recipe
from mtl.extras.notebooks.results import NotebookResults, provenance
from mtl.utils import quiet_libraries

VARIANTS = {  # overrides of recipe.CONFIG
    "lr 1e-4 / 2e-3, unweighted": dict(encoder_lr=1e-4, head_lr=2e-3, class_weighting="none"),
    "lr 1e-4 / 2e-3, balanced": dict(encoder_lr=1e-4, head_lr=2e-3, class_weighting="balanced"),
    "lr 2e-4 / 5e-3, unweighted": dict(encoder_lr=2e-4, head_lr=5e-3, class_weighting="none"),
    "lr 2e-4 / 5e-3, balanced": dict(encoder_lr=2e-4, head_lr=5e-3, class_weighting="balanced"),
}
COLUMNS = ["val/topic/accuracy", "val/sentiment/macro_f1", "val/ner/entity_f1", "val/main"]


def main() -> None:
    quiet_libraries()
    results = NotebookResults("recipe_variants", about=provenance("python benchmarks/recipe_variants.py"))
    rows = {}
    for name, overrides in VARIANTS.items():
        started = time.perf_counter()
        _, history = recipe.train_recipe(seed=0, **overrides)
        kept = history.loc[history["val/main"].idxmax()]
        rows[name] = {**kept[COLUMNS].to_dict(), "kept epoch": int(kept.epoch),
                      "seconds": time.perf_counter() - started}
        print(name, {k: round(v, 3) for k, v in rows[name].items()}, flush=True)
        results.record_frame("variants", pd.DataFrame({name: rows[name]}).T.drop(columns="seconds"))
        results.record(f"variants/{name}/seconds", rows[name]["seconds"], tolerance=None)
    results.finish()
    print(pd.DataFrame(rows).T.round(3).to_string())


if __name__ == "__main__":
    main()
