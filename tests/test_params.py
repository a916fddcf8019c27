"""params.yaml validation: every problem is one PipelineError line naming the dotted key."""

from __future__ import annotations

import copy

import pytest
import yaml
from pydantic import BaseModel

from alstudy.data.datasets import downloads_needed
from alstudy.errors import PipelineError
from alstudy.params import Params, StudyParams, load_params, parse_params
from helpers.repo import REPO_ROOT, machine_precision, read_params, write_params


@pytest.fixture(scope="module")
def repo_params() -> dict:
    return yaml.safe_load((REPO_ROOT / "params.yaml").read_text())


def with_change(raw: dict, section: str, key: str, value) -> dict:
    changed = copy.deepcopy(raw)
    changed[section][key] = value
    return changed


def test_repo_params_yaml_parses():
    params = load_params(REPO_ROOT / "params.yaml")
    assert isinstance(params, Params)
    assert params.data.datasets == ["fashion_mnist", "fashion_mnist_imbalanced", "cifar10"]
    assert params.al.strategies == ["random", "margin", "bald", "badge", "class_balanced"]
    assert params.al.seeds == [0, 1, 2, 3, 4] and params.al.log_models == "every"
    assert params.model.precision == machine_precision()  # auto: the best this CPU has
    assert params.al.options("bald").mc_passes == 20 and params.model.dropout == 0.25
    assert params.al.budget == params.al.initial_size + params.al.rounds * params.al.query_size
    assert params.download.sources["fashion_mnist"][0] == "/usr/share/datasets/fashion-mnist"
    assert params.download.checksums == {}
    variant = params.data.imbalanced["fashion_mnist_imbalanced"]
    assert variant.source == "fashion_mnist" and variant.ratio == 10 and variant.fractions is None
    assert params.data.downloads_needed() == ["cifar10", "fashion_mnist"]
    assert params.study.alpha == 0.05 and params.study.baseline == "random"
    assert params.study.metrics == ["accuracy", "f1_macro"] and params.study.power == 0.8


def test_an_imbalanced_variant_needs_its_sources_download():
    data = load_params(REPO_ROOT / "params.yaml").data
    assert data.model_copy(update={"datasets": ["fashion_mnist_imbalanced"]}).downloads_needed() == ["fashion_mnist"]
    assert data.model_copy(update={"datasets": ["cifar10"]}).downloads_needed() == ["cifar10"]
    assert downloads_needed(["cifar10", "parts"]) == ["cifar10"]


V = "fashion_mnist_imbalanced"  # the default study's variant, redeclared


@pytest.mark.parametrize(
    ("section", "key", "value", "dotted", "hint"),
    [
        ("al", "foo", 1, "al.foo", "unknown key"),
        ("al", "query_size", "ten", "al.query_size", "'ten'"),
        ("al", "query_size", 0, "al.query_size", "greater than or equal to 1"),
        ("al", "query_size", 2.5, "al.query_size", "integer"),
        ("data", "datasets", ["fashion_mnist", "mnist"], "data.datasets", "'mnist'"),
        ("al", "strategies", ["random", "qbc"], "al.strategies", "'qbc'"),
        ("al", "strategies", ["margin", "margin"], "al.strategies", "twice"),
        ("al", "strategies", ["uncertainty"], "al.strategies", "another name for least_confidence"),
        ("al", "strategy_options", {"bald": {"mc_passes": 1}}, "al.strategy_options", "bald.mc_passes"),
        ("al", "strategy_options", {"bald": {"passes": 5}}, "al.strategy_options", "bald.passes: unknown key"),
        ("al", "strategy_options", {"qbc": {}}, "al.strategy_options", "qbc: unknown strategy"),
        ("al", "strategy_options", {"random": {}}, "al.strategy_options", "no entry for margin"),
        ("model", "dropout", 1.0, "model.dropout", "less than 1"),
        ("al", "strategies", ["random", "random"], "al.strategies", "twice"),
        ("data", "imbalanced", {V: {"source": "mnist"}}, f"data.imbalanced: {V}.source", "unknown dataset 'mnist'"),
        (
            "data",
            "imbalanced",
            {V: {"source": "fashion_mnist", "ratio": 0.5}},
            f"{V}.ratio",
            "greater than or equal to 1",
        ),
        (
            "data",
            "imbalanced",
            {V: {"source": "cifar10", "fractions": [0.5] * 9}},
            f"{V}.fractions",
            "9 numbers for the 10",
        ),
        ("data", "imbalanced", {V: {"source": "cifar10", "fractions": [0.5] * 9 + [0.0]}}, f"{V}.fractions", "(0, 1]"),
        ("data", "imbalanced", {V: {"source": "cifar10", "imbalance_test": "yes"}}, f"{V}.imbalance_test", "boolean"),
        ("data", "imbalanced", {"cifar10": {"source": "fashion_mnist"}}, "data.imbalanced", "cifar10: clashes"),
        ("data", "imbalanced", {V: {"ratio": 10}}, f"data.imbalanced.{V}.source", "Field required"),
        ("download", "timeout_s", 0, "download.timeout_s", "greater than 0"),
        ("download", "checksums", {"a.gz": "crc32:00"}, "download.checksums", "sha256:<hex>"),
        ("base", "seed", -1, "base.seed", "greater than or equal to 0"),
        ("model", "filters", [32, 64], "model.filters", "at least 3"),
        ("study", "alpha", 0, "study.alpha", "greater than 0"),
        ("study", "baseline", "qbc", "study.baseline", "unknown strategy 'qbc'"),
        ("study", "metrics", ["accuracy", "accuracy"], "study.metrics", "twice"),
        ("study", "metrics", ["auc"], "study.metrics", "'f1_macro'"),
        ("study", "metrics", [], "study.metrics", "at least 1"),
        ("study", "max_seeds", 1, "study.max_seeds", "greater than or equal to 2"),
    ],
)
def test_bad_value_is_one_line_naming_the_key(repo_params, section, key, value, dotted, hint):
    with pytest.raises(PipelineError) as caught:
        parse_params(with_change(repo_params, section, key, value))
    message = str(caught.value)
    assert "\n" not in message
    assert message.startswith("params.yaml: ")
    assert dotted in message
    assert hint in message


def test_the_old_imbalance_section_says_where_it_went(repo_params):
    old = {**copy.deepcopy(repo_params), "imbalance": {"ratio": 10, "fractions": None, "imbalance_test": False}}
    with pytest.raises(
        PipelineError, match=r"^params.yaml: imbalance: moved to data.imbalanced.<name> .*source: fashion_mnist"
    ):
        parse_params(old)


def test_unknown_dataset_message_lists_the_allowed_names(repo_params):
    with pytest.raises(PipelineError, match=r"data\.datasets: unknown dataset 'mnist'; allowed: .*cifar10"):
        parse_params(with_change(repo_params, "data", "datasets", ["mnist"]))


def test_unknown_strategy_message_lists_the_allowed_names(repo_params):
    with pytest.raises(
        PipelineError,
        match=r"al\.strategies: unknown strategy 'qbc'; allowed: random, badge, bald, base, .*, margin$",
    ):
        parse_params(with_change(repo_params, "al", "strategies", ["qbc"]))


def test_bald_without_dropout_stops_at_start_in_one_line(repo_params):
    with pytest.raises(PipelineError) as caught:
        parse_params(with_change(repo_params, "model", "dropout", 0.0))
    assert str(caught.value) == (
        "params.yaml: al.strategies: bald needs MC dropout, but model.dropout is 0; "
        "set model.dropout (e.g. 0.25) or take bald out of al.strategies"
    )
    raw = with_change(with_change(repo_params, "model", "dropout", 0.0), "al", "strategies", ["margin"])
    assert parse_params(raw).model.dropout == 0.0


def test_run_settings_hold_only_the_strategies_own_options(repo_params):
    params = parse_params(repo_params)
    changed = copy.deepcopy(repo_params)
    changed["al"]["strategy_options"]["bald"]["mc_passes"] = 5
    other = parse_params(changed)
    assert params.run_settings(["margin"]) == other.run_settings(["margin"])
    assert params.run_settings(["bald"]) != other.run_settings(["bald"])
    assert other.run_settings(["bald"])["al"]["strategy_options"] == {
        "bald": {"mc_passes": 5, "batch": "top", "beta": 1.0}
    }


def test_unknown_download_source_dataset_is_rejected(repo_params):
    raw = copy.deepcopy(repo_params)
    raw["download"]["sources"]["mnist"] = ["/tmp"]
    with pytest.raises(PipelineError) as caught:
        parse_params(raw)
    assert "download.sources: mnist: not a downloaded dataset" in str(caught.value)
    assert "\n" not in str(caught.value)


def test_unknown_section_is_rejected(repo_params):
    raw = copy.deepcopy(repo_params)
    raw["trainer"] = {"epochs": 3}
    with pytest.raises(PipelineError, match=r"params\.yaml: trainer: unknown key"):
        parse_params(raw)


def test_pool_subsample_smaller_than_a_query_is_rejected(repo_params):
    raw = with_change(with_change(repo_params, "al", "query_size", 100), "al", "pool_subsample", 50)
    with pytest.raises(PipelineError, match=r"al: pool_subsample \(50\) must be 0 or >= query_size \(100\)"):
        parse_params(raw)


def test_several_problems_report_the_first_and_count_the_rest(repo_params):
    raw = with_change(repo_params, "al", "query_size", 0)
    raw["al"]["foo"] = 1
    with pytest.raises(PipelineError) as caught:
        parse_params(raw)
    assert "(and 1 more problem)" in str(caught.value)
    assert "\n" not in str(caught.value)


def test_load_params_reads_the_file_in_the_cwd(project):
    write_params(project, al={"query_size": 7, "foo": True})
    with pytest.raises(PipelineError) as caught:
        load_params()
    assert str(caught.value) == (
        "params.yaml: al.foo: unknown key; remove it or check its spelling against docs/reference/params.md"
    )

    raw = read_params(project)
    del raw["al"]["foo"]
    (project / "params.yaml").write_text(yaml.safe_dump(raw))
    assert load_params().al.query_size == 7


def test_missing_and_malformed_params_files(project):
    (project / "params.yaml").write_text("al: [unclosed\n")
    with pytest.raises(PipelineError, match=r"params\.yaml: not valid YAML at line \d+"):
        load_params()
    (project / "params.yaml").write_text("- just\n- a list\n")
    with pytest.raises(PipelineError, match="expected a mapping"):
        load_params()
    (project / "params.yaml").unlink()
    with pytest.raises(PipelineError, match="not found"):
        load_params()


def test_every_study_setting_has_its_meaning_on_the_field_and_a_row_in_the_reference():
    readme = (REPO_ROOT / "docs/reference/params.md").read_text()
    raw = yaml.safe_load((REPO_ROOT / "params.yaml").read_text())
    assert set(raw["study"]) == set(StudyParams.model_fields)
    for name, field in StudyParams.model_fields.items():
        assert field.description, name
        assert f"| `study.{name}` |" in readme, name


def test_the_reference_page_is_what_the_schema_writes():
    from alstudy.console.params_page import render

    assert (REPO_ROOT / "docs/reference/params.md").read_text() == render(), "run `alstudy params-page`"


def _fields(model, prefix=""):
    for name, field in model.model_fields.items():
        if field.annotation == dict[str, dict] and not prefix:  # named entries of no fixed keys (recipes)
            continue
        yield f"{prefix}{name}", field
        annotation = field.annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            yield from _fields(annotation, f"{prefix}{name}.")


def test_every_param_has_its_meaning_on_its_field():
    from alstudy.params import FolderParams, LabelProject, Params
    from alstudy.recipes import augmentations, networks
    from alstudy.strategies import STRATEGIES

    models = [Params, FolderParams, LabelProject, *(spec.options for spec in STRATEGIES.values())]
    models += [n.options for n in networks.NETWORKS.values()] + [
        a.options for a in augmentations.AUGMENTATIONS.values()
    ]
    missing = [
        f"{m.__name__}.{key}"
        for m in models
        for key, field in _fields(m)
        if not field.description
        and not (isinstance(field.annotation, type) and issubclass(field.annotation, BaseModel))
    ]
    assert not missing


def test_the_schemas_defaults_are_params_yamls():
    from alstudy.params import Params
    from alstudy.strategies import STRATEGIES

    raw = yaml.safe_load((REPO_ROOT / "params.yaml").read_text())
    differ = []
    for key, field in _fields(Params):
        section, _, name = key.partition(".")
        if not name or name not in raw.get(section, {}) or field.is_required():
            continue
        if key in ("data.folders", "al.strategy_options", "label.projects"):
            continue  # user-named entries: params.yaml lists examples or every strategy's, checked below
        default = field.get_default(call_default_factory=True)
        if isinstance(default, dict):  # named entries with defaults (data.imbalanced): as params.yaml writes them
            default = {k: v.model_dump() for k, v in default.items()}
        if isinstance(default, BaseModel):  # a block (study.sequential)
            default = default.model_dump()
        if (list(default) if isinstance(default, tuple) else default) != raw[section][name]:
            differ.append((key, default, raw[section][name]))
    for name, values in raw["al"]["strategy_options"].items():
        if values != STRATEGIES[name].options().model_dump():
            differ.append((f"al.strategy_options.{name}", STRATEGIES[name].options().model_dump(), values))
    assert not differ
