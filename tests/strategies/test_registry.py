"""One registry of strategies: everything else derives from it, and adding one is adding one module."""

from __future__ import annotations

import copy
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import yaml

from alstudy import strategies
from alstudy.learning.loop import run_loop
from alstudy.params import parse_params
from alstudy.strategies import STRATEGIES
from alstudy.study import plotting
from helpers.fakes import POOL, TEST, FakeLearner, al_params

REPO = Path(__file__).resolve().parents[2]


MODULE = '''"""most_confident: the candidates the model is surest about (a deliberately odd strategy)."""
import numpy as np

from alstudy.strategies._base import Need, QueryInputs, register


@register(
    "most_confident",
    needs={Need.PROBA},
    summary="highest top-class probability",
    score=lambda proba, mc_proba: proba.max(axis=1),
)
def most_confident(inputs: QueryInputs) -> np.ndarray:
    return np.sort(np.argsort(-inputs.proba.max(axis=1), kind="stable")[:inputs.n_instances])
'''


def test_adding_a_strategy_is_one_module_found_on_disk(tmp_path):
    shutil.copytree(REPO / "alstudy", tmp_path / "alstudy", ignore=shutil.ignore_patterns("__pycache__"))
    (tmp_path / "alstudy/strategies/most_confident.py").write_text(MODULE)
    probe = (
        "from alstudy import strategies; from alstudy.study import plotting; "
        "from alstudy.labelling.project import score; import numpy as np; "
        "print('most_confident' in strategies.names(), strategies.names()[0], "
        "score('most_confident', np.array([[0.9, 0.1], [0.6, 0.4]]), None).tolist(), "
        "strategies.get('most_confident').needs, plotting.colour('most_confident'))"
    )
    done = subprocess.run([sys.executable, "-c", probe], cwd=tmp_path, capture_output=True, text=True, check=True)
    found, first, picked_scores = done.stdout.split(" ", 2)[:2] + [done.stdout.split("[")[1].split("]")[0]]
    assert found == "True" and first == "random"  # the baseline first, the new one among the rest
    assert picked_scores == "0.9, 0.6"  # the labelling page shows its own measure: nothing else was edited
    assert "PROBA" in done.stdout and re.fullmatch(r"#[0-9a-f]{6}", done.stdout.split()[-1])


def test_a_registered_strategy_is_validated_offered_and_run(monkeypatch):
    namespace: dict = {}
    monkeypatch.setattr(strategies._base, "STRATEGIES", dict(STRATEGIES))  # registering leaves the real one alone
    monkeypatch.setattr(strategies, "STRATEGIES", strategies._base.STRATEGIES)
    exec(compile(MODULE, "most_confident.py", "exec"), namespace)
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


def test_the_docs_list_every_registered_strategy_and_its_options():
    page = (REPO / "docs/user-guide/strategies.md").read_text()
    rows = {m.group(1) for m in re.finditer(r"^\| `(\w+)` \|", page, re.MULTILINE)}
    assert rows == set(STRATEGIES)
    for name, spec in STRATEGIES.items():
        for option in spec.options.model_fields:
            assert f"al.strategy_options.{name}.{option}" in page, (name, option)
    adding = (REPO / "docs/developer/adding-a-strategy.md").read_text()
    assert "@register(" in adding and "alstudy/strategies/<name>.py" in adding and "strategy_options" in adding


def test_params_yaml_gives_every_registered_strategy_its_options_entry():
    raw = yaml.safe_load((REPO / "params.yaml").read_text())
    assert set(raw["al"]["strategy_options"]) == set(STRATEGIES)  # in any order
    for name, values in raw["al"]["strategy_options"].items():
        assert STRATEGIES[name].options.model_validate(copy.deepcopy(values)) == STRATEGIES[name].options()


def test_the_labelling_page_shows_each_strategys_own_measure_from_the_registry():
    from alstudy.labelling.project import score

    proba = np.array([[0.7, 0.2, 0.1], [0.4, 0.35, 0.25]])
    mc = np.stack([proba, proba[:, ::-1]], axis=2)  # two passes that disagree
    assert np.allclose(score("least_confidence", proba, None), [0.3, 0.6])
    assert np.allclose(score("uncertainty", proba, None), [0.3, 0.6])  # the alias: the same measure
    assert np.allclose(score("margin", proba, None), [0.5, 0.05])
    assert np.allclose(score("entropy", proba, None), -(proba * np.log(proba)).sum(axis=1))
    assert score("bald", proba, mc)[1] > 0 and np.allclose(score("bald", proba, np.stack([proba] * 2, 2)), 0)
    assert score("bald", proba, None).tolist() == [1.0, 2.0]  # no passes drawn: the order of picking
    assert score("badge", proba, None, first=4).tolist() == [4.0, 5.0]  # builds a batch: the order
