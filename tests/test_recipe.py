import json

import pandas as pd

from mtl.extras.notebooks import recipe


def test_final_model_is_retrained_when_the_recipe_changed(tiny_model, tmp_path, monkeypatch):
    monkeypatch.setattr(recipe, "FINAL_MODEL_DIR", tmp_path / "final")
    monkeypatch.setattr(recipe, "TASKS", tuple(tiny_model.tasks))
    trained = []

    def fake_train_recipe(seed=0):
        trained.append(seed)
        return tiny_model, pd.DataFrame()
    monkeypatch.setattr(recipe, "train_recipe", fake_train_recipe)

    recipe.final_model()  # nothing saved yet: trains and saves, with the recipe
    assert trained == [0] and json.loads((tmp_path / "final" / "recipe.json").read_text())["seed"] == 0
    loaded = recipe.final_model()  # same recipe: loaded, not retrained
    assert trained == [0] and list(loaded.tasks) == list(tiny_model.tasks)
    monkeypatch.setattr(recipe, "TRAIN_LIMIT", recipe.TRAIN_LIMIT + 1)  # the recipe changed: the saved model is stale
    recipe.final_model()
    assert trained == [0, 0]
