"""params.yaml's named recipes: each the model keys it changes, checked at load, in one line when wrong."""

from __future__ import annotations

import re

import pytest
import yaml

from alstudy.errors import PipelineError
from alstudy.params import RECIPE_KEYS, parse_params
from helpers.repo import REPO_ROOT


@pytest.fixture
def raw() -> dict:
    return yaml.safe_load((REPO_ROOT / "params.yaml").read_text())


def test_the_repos_recipes_resolve_to_the_model_section_with_their_changes(raw):
    params = parse_params(raw)
    assert params.recipe("default") == params.model
    augmented = params.recipe("augmented")
    assert augmented.augmentation == {"shift": {"pixels": 2}, "flip": {}} and augmented.epochs > params.model.epochs
    assert augmented.model_copy(update={"augmentation": {}, "epochs": params.model.epochs}) == params.model
    assert params.recipe("resnet").network == "resnet" and params.recipe("pretrained").network == "pretrained"
    # The machine's settings are the model section's in every recipe.
    for name in params.recipes:
        recipe = params.recipe(name)
        assert (recipe.threads, recipe.backend, recipe.precision) == (
            params.model.threads,
            params.model.backend,
            params.model.precision,
        )


@pytest.mark.parametrize(
    "recipes, message",
    [
        ({"fast": {"threads": 2}}, "recipes: fast.threads: not a recipe key (a recipe sets how the learner trains:"),
        ({"Fast": {}}, "recipes: 'Fast': a recipe's name is lowercase letters, digits and _"),
        ({"fast": {"epochs": 0}}, "recipes: fast.epochs: Input should be greater than or equal to 1 (got 0)"),
        (
            {"fast": {"network": "vgg"}},
            "recipes: fast.network: unknown network 'vgg'; allowed: cnn, pretrained, resnet",
        ),
        ({"fast": {"augmentation": {"spin": {}}}}, "recipes: fast.augmentation: unknown augmentation 'spin'"),
        ({"default": {"epochs": 3}}, "recipes: default: is the model section as it is; write `default: {}`"),
        ({"fast": [1]}, "recipes: fast: expected the model keys the recipe changes"),
    ],
)
def test_a_wrong_recipe_stops_in_one_line(raw, recipes, message):
    raw["recipes"] = recipes
    with pytest.raises(PipelineError, match="^params.yaml: " + re.escape(message)) as error:
        parse_params(raw)
    assert "\n" not in str(error.value)


def test_an_unknown_recipe_name_stops_in_one_line(raw):
    with pytest.raises(PipelineError, match=r"^recipe 'tuned' is not in params.yaml's recipes \(default, "):
        parse_params(raw).recipe("tuned")


def test_recipe_keys_are_model_keys_and_leave_the_machine_out():
    from alstudy.params import ModelParams

    assert set(RECIPE_KEYS) < set(ModelParams.model_fields)
    assert not {"threads", "backend", "device", "precision", "predict_batch_size"} & set(RECIPE_KEYS)


def test_a_labelling_project_names_a_recipe_that_exists(raw):
    project = {"unlabelled": "data/u", "classes": ["a", "b"], "image_size": [32, 32], "recipe": "pretrained"}
    raw["label"]["projects"] = {"photos": project}
    assert parse_params(raw).label.projects["photos"].recipe == "pretrained"
    raw["label"]["projects"]["photos"]["recipe"] = "tuned"
    with pytest.raises(PipelineError, match=r"^params.yaml: label.projects.photos.recipe: tuned is not under recipes"):
        parse_params(raw)
