"""One registry of strategies: everything else derives from it, and adding one is one function and one entry."""
from __future__ import annotations

import copy
import re
from pathlib import Path

import numpy as np
import yaml

from pipeline import plotting, strategies
from pipeline.params import parse_params
from pipeline.strategies import STRATEGIES, NoOptions, Need, QueryInputs, Strategy
from test_loop import POOL, TEST, FakeLearner, al_params
from pipeline.loop import run_loop

REPO = Path(__file__).resolve().parents[1]


def most_confident(inputs: QueryInputs) -> np.ndarray:
    """A deliberately odd strategy: the candidates the model is surest about."""
    return np.sort(np.argsort(-inputs.proba.max(axis=1), kind="stable")[:inputs.n_instances])


def test_adding_a_strategy_is_one_function_and_one_registry_entry(monkeypatch):
    monkeypatch.setitem(STRATEGIES, "most_confident",
                        Strategy(most_confident, frozenset({Need.PROBA}), NoOptions, "the surest candidates"))
    # params accept it (with its strategy_options entry, as for every strategy in the grid)
    raw = yaml.safe_load((REPO / "params.yaml").read_text())
    raw["al"]["strategies"].append("most_confident")
    raw["al"]["strategy_options"]["most_confident"] = {}
    assert "most_confident" in parse_params(raw).al.strategies
    # the stage offers it, the plots colour it, the loop runs it
    assert "most_confident" in strategies.names()
    assert re.fullmatch(r"#[0-9a-f]{6}", plotting.colour("most_confident"))
    fake = FakeLearner()
    state = run_loop(POOL, TEST, "most_confident", al_params("most_confident"), fake, seed=0)
    initial = np.array(sorted(state.labeled[:12]))
    candidates = np.setdiff1d(np.arange(len(POOL.x)), initial)
    surest = candidates[np.argsort(-fake.proba[candidates].max(axis=1), kind="stable")[:6]]
    assert sorted(state.labeled[12:18]) == sorted(surest.tolist())


def test_plot_colours_are_distinct_for_every_registered_strategy():
    colours = [plotting.colour(name) for name in STRATEGIES]
    assert len(set(colours)) == len(colours)
    assert plotting.colour("random") == plotting.BASELINE_COLOUR
    assert plotting.colour("uncertainty") == plotting.colour("least_confidence")


def test_readme_lists_every_registered_strategy_and_its_options():
    readme = (REPO / "README.md").read_text()
    table = readme.split("## Query strategies", 1)[1].split("\n## ", 1)[0]
    rows = {m.group(1) for m in re.finditer(r"^\| `(\w+)` \|", table, re.MULTILINE)}
    assert rows == set(STRATEGIES)
    for name, spec in STRATEGIES.items():
        for option in spec.options.model_fields:
            assert f"al.strategy_options.{name}.{option}" in readme, (name, option)
    adding = readme.split("## Adding a strategy", 1)[1].split("\n## ", 1)[0]
    assert "STRATEGIES" in adding and "pipeline/strategies.py" in adding and "strategy_options" in adding


def test_params_yaml_gives_every_registered_strategy_its_options_entry():
    raw = yaml.safe_load((REPO / "params.yaml").read_text())
    assert list(raw["al"]["strategy_options"]) == list(STRATEGIES)
    for name, values in raw["al"]["strategy_options"].items():
        assert STRATEGIES[name].options.model_validate(copy.deepcopy(values)) == STRATEGIES[name].options()
