"""The MLflow UI as a person browses a tiny study, in headless Chromium: the study's parent run with its
cells folded under it, and the per-class curves in the chart view.

The store is built with the project's own tracking code on hand-made rounds (no training), as the
al and plot stages log them. Screenshots of what the browser saw go to MLFLOW_SHOTS (default
/tmp/mlflow-shots/): runs.png, chart.png, curves.png (the study's link: its learning curves).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from browser import Browser, chromium
from services import REPO, free_port

from alstudy.data.datasets import FASHION_MNIST
from alstudy.learning.loop import RoundResult
from alstudy.params import load_params
from alstudy.tracking import curves_view, metric_names, study_runs
from alstudy.tracking import runs as tracking

pytestmark = [pytest.mark.browser, pytest.mark.slow]

STRATEGIES, SEEDS, ROUNDS = ["random", "margin"], [0, 1], 3
SHOTS = Path(os.environ.get("MLFLOW_SHOTS", "/tmp/mlflow-shots"))


def hand_made_round(round_: int, strategy: str, seed: int) -> RoundResult:
    """A round's numbers, made up but shaped like real ones: scores that grow with the round."""
    n = len(FASHION_MNIST.class_names)
    score = 0.3 + 0.1 * round_ + 0.05 * STRATEGIES.index(strategy) + 0.01 * seed
    return RoundResult(
        round=round_,
        n_labeled=20 + 10 * round_,
        accuracy=score,
        balanced_accuracy=score,
        f1_macro=score - 0.02,
        f1_per_class=[score - 0.01 * c for c in range(n)],
        query_class_counts=[1] * n,
        epochs=3,
        train_seconds=1.0,
        score_seconds=0.1,
        eval_seconds=0.1,
    )


def log_tiny_study() -> str:
    """Two strategies x two seeds on Fashion-MNIST, logged as stages/al.py and stages/plot.py log them;
    returns the experiment id."""
    params = load_params(REPO / "params.yaml")
    params = params.model_copy(
        update={
            "data": params.data.model_copy(update={"datasets": ["fashion_mnist"]}),
            "al": params.al.model_copy(update={"strategies": STRATEGIES, "seeds": SEEDS, "rounds": ROUNDS}),
        }
    )
    experiment_id = tracking.setup(params.base)
    study_runs.describe_experiment(experiment_id, params)
    names = list(FASHION_MNIST.class_names)
    classes = metric_names.class_keys(names)
    for strategy in STRATEGIES:
        for seed in SEEDS:
            parent_id = study_runs.parent_run_id(experiment_id, "fashion_mnist", params)
            tags = {
                "dataset": "fashion_mnist",
                "strategy": strategy,
                "seed": str(seed),
                **study_runs.cell_tags(params, "fashion_mnist", parent_id),
                **metric_names.class_tags(names),
            }
            with tracking.start_or_resume_run(
                experiment_id,
                tracking.run_name("fashion_mnist", strategy, seed),
                None,
                tags,
                {"strategy": strategy, "seed": seed},
            ):
                for round_ in range(ROUNDS + 1):
                    tracking.log_round(hand_made_round(round_, strategy, seed), classes)
    study_runs.publish(
        experiment_id,
        "fashion_mnist",
        params,
        metrics={f"{s}.aubc_accuracy": 0.5 + 0.05 * i for i, s in enumerate(STRATEGIES)},
    )
    curves_view.write(experiment_id, "fashion_mnist")  # as the plot stage does, after publishing
    return experiment_id


@pytest.fixture(scope="module")
def ui(tmp_path_factory):
    """`mlflow ui` on 127.0.0.1 over the tiny study's sqlite store; yields (url, experiment id)."""
    chromium()  # skip before building anything where there is no browser
    project = tmp_path_factory.mktemp("study")
    store = f"sqlite:///{project / 'mlflow.db'}"
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MLFLOW_TRACKING_URI", store)
        patch.chdir(project)
        experiment_id = log_tiny_study()
    port = free_port()
    log = open(project / "ui.log", "w")
    # One worker and no job runner: the UI and its REST API are all the test needs.
    server = subprocess.Popen(
        [
            str(Path(sys.executable).parent / "mlflow"),
            "ui",
            "--backend-store-uri",
            store,
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--workers",
            "1",
        ],
        cwd=project,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
        env={**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"},
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 180
        while True:
            try:
                urllib.request.urlopen(
                    f"{url}/ajax-api/2.0/mlflow/experiments/get?experiment_id={experiment_id}", timeout=5
                )
                break
            except (urllib.error.URLError, OSError):
                if server.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"mlflow ui did not start:\n{(project / 'ui.log').read_text()[-3000:]}")
                time.sleep(1)
        yield url, experiment_id
    finally:
        os.killpg(server.pid, signal.SIGTERM)  # the CLI and its uvicorn worker
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait()
        log.close()


def row_names(browser: Browser) -> list[str]:
    """The run names in the runs table, top to bottom, as shown."""
    return browser.evaluate("""[...document.querySelectorAll('[role=row]')]
        .sort((a, b) => a.getBoundingClientRect().top - b.getBoundingClientRect().top)
        .map(row => row.querySelector('a[href*="/runs/"]')).filter(Boolean)
        .map(a => a.textContent.trim())""")


def unfold(browser: Browser, name: str) -> None:
    """Click the + beside a parent run's name in the runs table."""
    clicked = browser.evaluate(f"""(() => {{
        const link = [...document.querySelectorAll('a[href*="/runs/"]')]
            .find(a => a.textContent.trim() == {json.dumps(name)});
        const button = link && link.closest('[role=gridcell]').querySelector('button');
        if (!button) return false;
        button.click();
        return true; }})()""")
    assert clicked, f"no expander beside {name}: the run has no nested runs; rows: {row_names(browser)}"


CELLS = [tracking.run_name("fashion_mnist", s, seed) for s in STRATEGIES for seed in SEEDS]


def test_the_study_is_one_row_with_its_cells_nested_under_it(ui):
    url, experiment_id = ui
    with Browser() as browser:
        browser.open(f"{url}/#/experiments/{experiment_id}/runs")
        browser.wait_for_text("fashion_mnist-summary", timeout=180)
        browser.wait_for_text("Deep active learning on fashion_mnist")  # the experiment's description
        assert row_names(browser) == ["fashion_mnist-summary"]  # the cells folded under their study
        unfold(browser, "fashion_mnist-summary")
        browser.wait_for(f"document.body.innerText.includes({json.dumps(CELLS[-1])})", what="the unfolded cells")
        shown = row_names(browser)
        assert shown[0] == "fashion_mnist-summary" and sorted(shown[1:]) == sorted(CELLS), shown
        close_assistant(browser)
        browser.screenshot(SHOTS / "runs.png")


def test_the_chart_view_shows_each_cells_per_class_curve_by_class_name(ui):
    url, experiment_id = ui
    with Browser() as browser:
        browser.open(tracking.chart_view_url(experiment_id, url))
        browser.wait_for_text("fashion_mnist-summary", timeout=180)
        unfold(browser, "fashion_mnist-summary")
        chart = metric_names.metric_name(metric_names.F1, "ankle_boot")  # "Ankle boot"
        browser.wait_for_text(f"{CELLS[-1]} ({chart})", timeout=120)  # its curve's legend entry
        text = browser.text()
        for cell in CELLS:
            assert f"{cell} ({chart})" in text, cell
        assert "f1_class_9" not in text and "queried_class_0" not in text
        close_assistant(browser)
        browser.screenshot(SHOTS / "chart.png")
        # Charts group into sections by the part before '/': per class, timings, and the study's summary apart
        # from the cells' curves. A section draws its charts once it is scrolled into view.
        for title in ("queried/ankle_boot", "time/eval_seconds", "summary/margin.aubc_accuracy"):  # each the first
            assert scroll_to(browser, title.split("/")[0]), f"no chart section {title.split('/')[0]!r}"
            browser.wait_for_text(title)


def test_the_studys_link_opens_on_the_learning_curves_one_line_per_strategy(ui):
    url, experiment_id = ui
    with Browser() as browser:
        browser.open(curves_view.url(url, experiment_id, curves_view.view_key("fashion_mnist")))
        browser.wait_for_text("random (f1_macro)", timeout=180)  # the second chart's legend: both drawn
        # Both charts' x axis is the labelled count (axis titles are drawn after the legend).
        section = "document.body.innerText.split('Learning curves')[1].split('Model metrics')[0]"
        browser.wait_for(f"{section}.split('n_labeled').length - 1 == 2", what="n_labeled as both charts' x axis")
        text = browser.text()
        # The learning curves are the first section, accuracy then macro-F1; MLflow's own charts follow.
        sections = [line for line in text.splitlines() if line in ("Learning curves", "Model metrics", "f1")]
        assert sections[0] == "Learning curves" and "Model metrics" in sections, sections
        first = text.split("Learning curves", 1)[1].split("Model metrics", 1)[0]
        assert first.index("accuracy") < first.index("f1_macro"), first
        # One line per strategy, the seeds grouped (no legend entry per cell), the dataset's cells only.
        for strategy in STRATEGIES:
            assert f"{strategy} (accuracy)" in first and f"{strategy} (f1_macro)" in first
            assert f"Group: {strategy}" in text
        assert not any(cell in first for cell in CELLS)
        assert "tags.kind = 'cell' AND tags.dataset = 'fashion_mnist'" in browser.evaluate(
            "[...document.querySelectorAll('input')].map(i => i.value).join(' ')"
        )
        close_assistant(browser)
        browser.screenshot(SHOTS / "curves.png")


def close_assistant(browser: Browser) -> None:
    """Close MLflow's assistant panel, if it is open, so that the screenshot shows the runs."""
    browser.evaluate("""document.querySelector('[data-component-id="mlflow.assistant.chat_panel.close"]')?.click()""")
    time.sleep(1)


def scroll_to(browser: Browser, section: str) -> bool:
    """Scroll the chart view to the section of this name; False if there is none."""
    return browser.evaluate(f"""(() => {{
        const header = [...document.querySelectorAll('*')]
            .find(e => e.children.length == 0 && e.textContent.trim() == {json.dumps(section)});
        if (header) header.scrollIntoView();
        return Boolean(header); }})()""")
