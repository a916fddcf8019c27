"""The first screen a study's link opens in MLflow: its learning curves, one line per strategy.

MLflow 3 keeps a runs page's view (its chart cards, grouping and filter) in an experiment tag,
`mlflow.sharedViewState.<key>`, which `#/experiments/<id>?viewStateShareKey=<key>` opens (the
page's Share button writes such tags). The plot stage writes one per dataset and recipe: those cells,
grouped by strategy (the mean over seeds, with its min-max band), and first accuracy and macro-F1
against labelled images; MLflow lays out its own charts of the other metrics after them.
"""

from __future__ import annotations

import json

from mlflow.tracking import MlflowClient

from alstudy.paths import DEFAULT_RECIPE
from alstudy.tracking.metric_names import N_LABELED
from alstudy.tracking.outage import patiently

SHARED_VIEW_TAG = "mlflow.sharedViewState."
SECTION = "alstudy-learning-curves"
CURVES = {"accuracy": "Accuracy against labelled images", "f1_macro": "Macro-F1 against labelled images"}


def view_key(dataset: str, recipe: str = DEFAULT_RECIPE) -> str:
    suffix = dataset if recipe == DEFAULT_RECIPE else f"{dataset}-{recipe}"
    return f"alstudy-learning-curves-{suffix}"


def line_chart(metric: str, title: str) -> dict:
    """One line chart card: `metric` against the labelled count, grouped runs drawn as one line each."""
    return {
        "uuid": f"alstudy-{metric}",
        "type": "LINE",
        "metricSectionId": SECTION,
        "isGenerated": False,
        "deleted": False,
        "displayName": title,
        "runsCountToCompare": 100,
        "metricKey": metric,
        "selectedMetricKeys": [metric],
        "lineSmoothness": 0,
        "xAxisScaleType": "linear",
        "scaleType": "linear",
        "range": {},
        "xAxisKey": "metric",
        "selectedXAxisMetricKey": N_LABELED,
        "yAxisKey": "metric",
        "yAxisExpressions": [],
        "ignoreOutliers": False,
        "useGlobalXaxisKey": False,
        "useGlobalLineSmoothing": False,
    }


def view_state(dataset: str, recipe: str = DEFAULT_RECIPE) -> dict:
    """The runs page as the study's link opens it for `dataset` under `recipe` (each recipe's cells apart:
    grouped by strategy, another recipe's would be averaged in)."""
    return {
        "searchFilter": f"tags.kind = 'cell' AND tags.dataset = '{dataset}' AND tags.recipe = '{recipe}'",
        "compareRunsMode": "CHART",
        "compareRunSections": [
            {"uuid": SECTION, "name": "Learning curves", "display": True, "isReordered": False, "deleted": False}
        ],
        "compareRunCharts": [line_chart(metric, title) for metric, title in CURVES.items()],
        "isAccordionReordered": True,  # keep this section first: MLflow sorts its own sections by name
        "groupBy": {"aggregateFunction": "average", "groupByKeys": [{"mode": "tag", "groupByData": "strategy"}]},
        "useGroupedValuesInCharts": True,
        "runsHiddenMode": "SHOW_ALL",
        "hideEmptyCharts": True,
        "globalLineChartConfig": {"xAxisKey": "metric", "selectedXAxisMetricKey": N_LABELED, "lineSmoothness": 0},
    }


def write(experiment_id: str, dataset: str, recipe: str = DEFAULT_RECIPE) -> str:
    """Store the view of `dataset` under `recipe` in the experiment (an unchanged one is not rewritten),
    waiting out a store that is away as the study stages do; its key."""
    key, value = view_key(dataset, recipe), json.dumps(view_state(dataset, recipe), sort_keys=True)

    def once() -> None:
        client = MlflowClient()
        if client.get_experiment(experiment_id).tags.get(SHARED_VIEW_TAG + key) != value:
            client.set_experiment_tag(experiment_id, SHARED_VIEW_TAG + key, value)

    patiently(f"storing the {key} view", once)
    return key


def url(base: str, experiment_id: str, key: str) -> str:
    return f"{base}/#/experiments/{experiment_id}/runs?compareRunsMode=CHART&viewStateShareKey={key}"
