"""The report's verdicts claim only what the paired tests support; the curve-level verdicts come first."""

import pytest

from alstudy.study.report import DatasetResults, curve_verdict, render
from alstudy.study.report_detail import verdict
from alstudy.study.verdicts import pairs, study_verdicts

ALPHA = 0.05


def versus(mean, low, high, p, wins=0, losses=0):
    return {"final_mean": mean, "final_ci": [low, high], "final_p_value": p, "wins": wins, "losses": losses}


def test_detail_verdicts_follow_the_final_round_test():
    assert "beats random" in verdict("margin", versus(0.02, 0.01, 0.03, 0.01, wins=7), 10, "accuracy", ALPHA)
    assert "worse than random" in verdict("entropy", versus(-0.02, -0.03, -0.01, 0.02), 10, "f1_macro", ALPHA)
    within = verdict("bald", versus(0.015, -0.01, 0.04, 0.2, wins=2), 10, "accuracy", ALPHA)
    assert "no significant difference" in within and "within the noise" in within and "beats" not in within
    assert "better in 2 and worse in 0 of 10" in within
    assert "no significant difference" in verdict("x", versus(0.0, 0.0, 0.0, None), 10, "accuracy", ALPHA)
    # the level is the study's: p = 0.02 is not significant at alpha = 0.01
    assert "no significant difference" in verdict("m", versus(0.02, 0.01, 0.03, 0.02), 10, "accuracy", 0.01)


def row(acc, n_labeled=400, needs=None, ratio=None):
    out = {
        "final_accuracy": acc,
        "final_accuracy_ci95": 0.01,
        "final_f1_macro": acc,
        "final_f1_macro_ci95": 0.01,
        "final_balanced_accuracy": acc,
        "aubc_accuracy": acc - 0.1,
        "n_labeled": n_labeled,
    }
    if needs is not None or ratio is not None:
        out.update(labels_random_needs=needs, labels_saved_ratio=ratio)
    return out


STRATEGIES = ["random", "margin", "coreset"]


def aubcs(seeds, gaps):
    """Per-seed AUBC of each strategy: random's plus a per-seed gap (hand-made, so the answer is known)."""
    random = [0.80 + 0.01 * s for s in range(len(seeds))]
    return {"random": random, **{name: [r + g for r, g in zip(random, gap)] for name, gap in gaps.items()}}


# margin: mean +2.8 points, SD 0.6 (the numbers: t = 8.08, p = 0.015 with 3 seeds);
# coreset: within the noise; identical to random on f1 for a "no difference" case.
GAPS = {"margin": [0.022, 0.028, 0.034], "coreset": [-0.02, 0.015, -0.01]}


def with_verdicts(datasets, alpha=ALPHA):
    """The datasets with their curve-level verdicts, Holm-corrected over all of them as the verdicts stage does."""
    found = study_verdicts(
        {
            d.name: {
                "accuracy": aubcs(d.statistics["seeds"], GAPS),
                "f1_macro": aubcs(d.statistics["seeds"], {"margin": GAPS["margin"], "coreset": [0.0] * 3}),
            }
            for d in datasets
            if len(d.statistics["seeds"]) > 1
        },
        pairs(STRATEGIES, "random"),
        alpha,
    )
    return [
        DatasetResults(d.name, d.summary, d.statistics, d.figures, [v for v in found if v.dataset == d.name])
        for d in datasets
    ]


def dataset(name, seeds=(0, 1, 2), margin_p=0.01):
    summary = {
        "random": row(0.80),
        "margin": row(0.83, needs=None, ratio=None),
        "coreset": row(0.79, needs=350.0, ratio=0.875),
    }
    summary["margin"].update(labels_random_needs=None, labels_saved_ratio=None)
    stats = {"query_rounds": 3, "seeds": list(seeds), "strategies": STRATEGIES}
    if len(seeds) > 1:
        vs = {"margin": versus(0.03, 0.02, 0.04, margin_p, wins=3), "coreset": versus(-0.01, -0.03, 0.01, 0.3)}
        stats.update(accuracy={"versus_random": vs}, f1_macro={"versus_random": vs})
    else:
        stats["note"] = "1 seed: no statistical test is possible; set at least 2 seeds in al.seeds"
    return DatasetResults(name, summary, stats, ["accuracy.png", "penalty_accuracy.png"])


def test_the_report_names_every_dataset_strategy_and_figure():
    text = render(
        with_verdicts([dataset("fashion_mnist"), dataset("parts", margin_p=0.2)]),
        ["datasets: fashion_mnist, parts"],
        alpha=ALPHA,
    )
    for name in ("fashion_mnist", "parts", "`random`", "`margin`", "`coreset`"):
        assert name in text
    assert "## Across datasets" in text and "## fashion_mnist" in text and "## parts" in text
    assert "![fashion_mnist: Pairwise penalty matrix (accuracy)](plots/fashion_mnist/penalty_accuracy.png)" in text
    assert "more than the budget (400)" in text and "350 (0.88x)" in text
    assert "+3.0 (+2.0 to +4.0) *" in text  # significant on fashion_mnist
    assert "Significantly more accurate than random at the final budget: `margin`" in text
    # On `parts` margin's final gap is not significant: the report must not call it better.
    parts = text.split("## parts", 1)[1]
    assert "No strategy is significantly more accurate than random" in parts and "beats random" not in parts
    # the per-round and final-round tests are labelled as the detail they are
    assert text.count("(detail: per-round tests, uncorrected)") == 2
    assert "## Across datasets (detail: final round, uncorrected)" in text


def test_the_headline_table_of_curve_level_verdicts_comes_first():
    text = render(
        with_verdicts([dataset("fashion_mnist"), dataset("parts")]), ["datasets: fashion_mnist, parts"], alpha=ALPHA
    )
    headings = [line for line in text.splitlines() if line.startswith("## ")]
    assert headings[0] == "## Verdicts: whole learning curves, Holm-corrected"
    tables = [line for line in text.splitlines() if line.startswith("| ")]
    assert tables[0] == (
        "| dataset | comparison | metric | AUBC difference, points (95% CI) | p | Holm p | equivalence Holm p | "
        "verdict | same verdict on a rerun |"
    )
    against = text.split("### Against `random`", 1)[1].split("### Between strategies", 1)[0]
    # 2 datasets x 2 metrics x 3 pairs = 12 comparisons, 24 hypotheses, at most 12 of them true
    assert "The 24 p-values (12 comparisons x 2" in text and "at most 12 of them can be true" in text
    assert "alpha / 12 = 0.0042" in text
    assert "| fashion_mnist | `margin` − `random` | accuracy | +2.8 (+1.3 to +4.3) | 0.015 | 0.18 | 1.0 |" in against
    identical = (
        "| parts | `coreset` − `random` | macro-F1 | +0.0 (+0.0 to +0.0) | – | 1.0 | < 0.001 | **equivalent** | 100% |"
    )
    assert identical in against
    assert "In all: 0 better, 0 worse, 2 equivalent, 10 undecided" in text
    assert "not significant" not in text.split("## Configuration", 1)[0]  # never a verdict
    between = text.split("### Between strategies", 1)[1].split("## Configuration", 1)[0]
    assert "| fashion_mnist | `margin` − `coreset` | accuracy |" in between
    assert text.index("## Verdicts") < text.index("## Configuration") < text.index("## Statistics used")
    assert "Holm's (1979)" in text and "m = 12 in this study" in text and "scipy.stats.nct" in text
    assert "Shaffer's (1986)" in text and "Schuirmann 1987" in text and "Shao and Chow 2002" in text


def test_an_undecided_verdict_names_the_seeds_that_would_decide_it():
    [alone] = with_verdicts([dataset("fashion_mnist")])
    margin = {(v.a, v.b, v.metric): v for v in alone.verdicts}
    # Alone (2 metrics x 3 pairs = 6 comparisons; no equivalence in sight, so Shaffer's multiplier is 6, as
    # plain Holm's over the comparisons): margin's p = 0.015 x 6 = 0.09: undecided.
    v = margin[("margin", "random", "accuracy")]
    assert v.p_value == pytest.approx(0.01496, abs=1e-5) and v.decision == "undecided"
    assert v.p_holm == pytest.approx(6 * v.p_value)
    line = curve_verdict(v)
    assert line.startswith(
        "`margin` vs `random` (accuracy): +2.8 AUBC points (95% CI +1.3 to +4.3), difference Holm-adjusted "
        "p = 0.090, equivalence (within ±0.5) Holm-adjusted p = 1.0: **undecided**"
    )
    assert f"about {v.seeds_needed} seeds would likely decide it (better, if the effect is the observed one)" in line
    assert "(power 0.8; 3 seeds now)" in line
    assert v.seeds_needed == 4  # d = 2.8 / 0.6 = 4.67 at alpha / 6: 3 seeds give power 0.42, 4 give 0.91
    coreset = curve_verdict(margin[("coreset", "random", "accuracy")])
    assert "**undecided**" in coreset and "more than 100 seeds would be needed to decide it" in coreset
    same = margin[("coreset", "random", "f1_macro")]
    assert same.decision == "equivalent" and same.replication == 1.0
    assert "**equivalent** (within ±0.5 points); a rerun with 3 new seeds would give it 100% of the time" in (
        curve_verdict(same)
    )
    text = render([alone], [], alpha=ALPHA)
    assert f"- fashion_mnist, {line}." in text


def test_a_curve_level_verdict_says_better_only_after_correction():
    # The same margin gap at alpha = 0.1: 0.015 x 6 = 0.09 < 0.1, so it is significant after Holm.
    [loose] = with_verdicts([dataset("fashion_mnist")], alpha=0.1)
    v = next(v for v in loose.verdicts if (v.a, v.b, v.metric) == ("margin", "random", "accuracy"))
    assert v.decision == "better" and v.seeds_needed is None
    # ... but at a p just under its level with 3 seeds, a rerun would repeat it about two times in three.
    assert v.fragile and 0.5 < v.replication < 0.8
    assert "Holm-adjusted p = 0.090, equivalence (within ±0.5) Holm-adjusted p = 1.0: **`margin` better than " in (
        curve_verdict(v)
    )
    assert curve_verdict(v).endswith(
        f"; **fragile**: a rerun with 3 new seeds would give it {v.replication:.0%} of the time"
    )


def test_one_seed_gives_a_note_instead_of_a_test():
    text = render(with_verdicts([dataset("fashion_mnist", seeds=(0,))]), [], alpha=ALPHA)
    assert "no statistical test is possible" in text and "beats random" not in text
    assert "No curve-level test is possible" in text and "than `random`**" not in text


def test_the_results_page_is_regenerated_from_the_report(tmp_path, monkeypatch):
    from alstudy.console import results_page

    monkeypatch.chdir(tmp_path)
    for name in ("accuracy.png", "penalty_accuracy.png"):
        (tmp_path / "plots" / "fashion_mnist").mkdir(parents=True, exist_ok=True)
        (tmp_path / "plots" / "fashion_mnist" / name).write_bytes(b"\x89PNG fake")
    (tmp_path / "report").mkdir()
    text = render(
        with_verdicts([dataset("fashion_mnist")]), ["datasets: fashion_mnist"], figure_root="../plots", alpha=ALPHA
    )
    (tmp_path / "report" / "study.md").write_text(text)
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs/results.md").write_text(
        "# Results\n\nOur reading.\n\n<!-- results:start -->\nold\n<!-- results:end -->\n\n## Next\n"
    )
    results_page.main(["--note", "2 cores."])
    readme = (tmp_path / "docs/results.md").read_text()
    assert "old" not in readme and "Our reading." in readme and readme.endswith("## Next\n")
    assert "### Across datasets" in readme and "### fashion_mnist" in readme and "2 cores." in readme
    # the headline comes first there too, its sub-headings demoted with the rest
    assert readme.index("### Verdicts") < readme.index("### Configuration") < readme.index("### Across datasets")
    assert "#### Against `random`" in readme and "about 4 seeds would likely decide it" in readme
    assert "](results/fashion_mnist-accuracy.png)" in readme  # relative to the page: renders in a clone and on the site
    assert "penalty_accuracy" not in readme  # not one of the page's figures
    assert (tmp_path / "docs" / "results" / "fashion_mnist-accuracy.png").read_bytes() == b"\x89PNG fake"
    assert "_Generated from `report/study.md` by `alstudy results-page`; 2 cores._" in readme

    # A study run in another clone: the page names its report as the study does, not this machine's path.
    results_page.main(["--report", str(tmp_path / "report" / "study.md"), "--note", "elsewhere."])
    readme = (tmp_path / "docs/results.md").read_text()
    assert "_Generated from `report/study.md` by `alstudy results-page`; elsewhere._" in readme
    assert str(tmp_path) not in readme


def test_the_detail_follows_the_study_baseline_and_metrics():
    d = dataset("fashion_mnist")
    vs = {"random": versus(-0.03, -0.04, -0.02, 0.01, losses=3), "coreset": versus(-0.04, -0.05, -0.03, 0.01)}
    stats = {
        **{k: v for k, v in d.statistics.items() if k not in ("accuracy", "f1_macro")},
        "balanced_accuracy": {"versus_margin": vs},
    }
    text = render([DatasetResults(d.name, d.summary, stats, d.figures)], [], alpha=ALPHA, baseline="margin")
    assert "rounds better / worse than margin (balanced accuracy)" in text and "not in the grid" not in text
    assert "`random` (balanced accuracy): worse than margin at the final budget" in text
    assert "final balanced accuracy − margin (95% CI)" in text
    assert "No strategy is significantly better in balanced accuracy than margin" in text


def test_the_report_names_the_metrics_as_the_mlflow_runs_log_them():
    from alstudy.learning.loop import RoundResult
    from alstudy.tracking import metric_names
    from alstudy.tracking import runs as tracking

    text = render(with_verdicts([dataset("fashion_mnist")]), [], alpha=ALPHA, experiment="deep-active-learning")
    section = text[text.index("## In MLflow") :]
    assert "`deep-active-learning`" in section and "`fashion_mnist-summary`" not in section  # a pattern, not a run
    result = RoundResult(
        round=1,
        n_labeled=20,
        accuracy=0.5,
        balanced_accuracy=0.5,
        f1_macro=0.5,
        f1_per_class=[0.5],
        query_class_counts=[1],
        epochs=1,
        train_seconds=1.0,
        score_seconds=0.0,
        eval_seconds=0.0,
    )
    logged = tracking.round_metrics(result, ["<class>"])  # every name a cell logs per round
    for key in logged:
        assert f"`{key}`" in section, key
    assert f"`{metric_names.metric_name(metric_names.SUMMARY, 'margin.aubc_accuracy')}`" in section
    assert f"`{metric_names.CLASS_KEYS_TAG}`" in section
    assert "## In MLflow" not in render(with_verdicts([dataset("fashion_mnist")]), [], alpha=ALPHA)


def test_the_report_says_where_the_stopping_criterion_would_have_stopped():
    results = with_verdicts([dataset("fashion_mnist")])
    summary = results[0].summary
    first, second = list(summary)[:2]
    for row in (summary[first], summary[second]):
        row.update(n_seeds=3, n_labeled=2200)
    summary[first].update(stop_runs=2, stop_n_labeled=1500.0, stop_accuracy=0.8123, stop_final_accuracy=0.8456)
    summary[second].update(stop_runs=0)
    text = render(results, [], alpha=ALPHA, stopping=(0.99, 3))
    section = text.split("## When to stop labelling")[1].split("\n## ")[0]
    assert "Cohen's kappa >= 0.99 for 3 rounds in a row" in section
    assert f"| fashion_mnist | {first} | 2 of 3 | 1,500 | 0.8123 | 0.8456 at 2,200 |" in section
    assert f"| fashion_mnist | {second} | 0 of 3 | not within 2,200 labels | | |" in section
    # Without the criterion's numbers (an older summary) there is no such section.
    assert "When to stop" not in render(with_verdicts([dataset("fashion_mnist")]), [], alpha=ALPHA, stopping=(0.99, 3))


def test_a_sequential_study_says_how_many_seeds_it_ran_and_what_stayed_open():
    datasets = [dataset("fashion_mnist")]
    looked = study_verdicts(
        {"fashion_mnist": {"accuracy": aubcs([0, 1, 2], GAPS)}}, pairs(STRATEGIES, "random"), ALPHA, sequential=(3, 9)
    )
    text = render(
        [DatasetResults(d.name, d.summary, d.statistics, d.figures, looked) for d in datasets], [], alpha=ALPHA
    )
    undecided = sum(v.decision == "undecided" for v in looked)
    assert undecided and "looked after 3 seeds (1 look)" in text
    assert f"{undecided} comparisons still undecided at 3 of at most 9 seeds: `alstudy grid` adds the next" in text
    assert "O'Brien-Fleming alpha spending over 9 planned seeds" in text
    fixed = render(with_verdicts(datasets), [], alpha=ALPHA)
    assert "looked after" not in fixed


def test_cells_on_more_than_one_compute_setup_are_said_before_the_configuration():
    alike, mixed = dataset("fashion_mnist"), dataset("parts")
    alike.statistics["compute"] = {"tensorflow, cpu, float32, 1 thread": 15}
    mixed.statistics["compute"] = {"tensorflow, cpu, float32, 1 thread": 10, "jax, gpu, bfloat16, 1 thread": 5}
    one_setup = render(with_verdicts([alike]), ["datasets: fashion_mnist"], alpha=ALPHA)
    assert "- compute: every cell on tensorflow, cpu, float32, 1 thread" in one_setup
    assert "Mixed setups" not in one_setup
    text = render(with_verdicts([alike, mixed]), ["datasets: fashion_mnist, parts"], alpha=ALPHA)
    setups = "2 setups: jax, gpu, bfloat16, 1 thread (5 cells), tensorflow, cpu, float32, 1 thread (25 cells)"
    assert f"**Mixed setups**: the cells ran on {setups}." in text
    assert text.index("**Mixed setups**") < text.index("## Configuration") < text.index(f"- compute: {setups}")


def test_the_recipe_section_says_which_verdicts_survive_each_recipe_from_one_holm_family(tmp_path):
    from alstudy.study.verdicts import under_default, with_recipe_effects

    seeds = [0, 1, 2, 3, 4]
    random = [0.80, 0.81, 0.79, 0.80, 0.82]
    # margin: clearly better under the default recipe; under `augmented` the lead is gone, while the
    # recipe itself lifts random by about 3 points on every seed.
    unit_aubcs = {
        "fmnist": {"accuracy": {"random": random, "margin": [r + g for r, g in zip(random, GAPS["margin"] * 2)]}},
        "fmnist~augmented": {
            "accuracy": {
                "random": [r + 0.03 + e for r, e in zip(random, [0.001, -0.002, 0.0, 0.002, -0.001])],
                "margin": [r + 0.03 + e for r, e in zip(random, [0.004, -0.006, 0.001, -0.002, 0.003])],
            }
        },
    }
    aubcs, comparisons = with_recipe_effects(unit_aubcs, pairs(["random", "margin"], "random"), "random")
    assert comparisons["fmnist"] == [("margin", "random")]
    assert comparisons["fmnist~augmented"] == [("random", under_default("random")), ("margin", "random")]
    assert aubcs["fmnist~augmented"]["accuracy"][under_default("random")] == random
    found = study_verdicts(aubcs, comparisons, ALPHA)
    assert found[0].family.size == 3  # every unit's comparisons and the recipe's own, corrected together
    shown = [dataset(unit, seeds) for unit in aubcs]
    results = [
        DatasetResults(d.name, d.summary, d.statistics, d.figures, [v for v in found if v.dataset == d.name])
        for d in shown
    ]
    for unit in aubcs:  # the units' own figures, as the plot stages leave them
        (tmp_path / "plots" / unit).mkdir(parents=True)
        for name in ("accuracy.png", "per_class_f1.png"):
            (tmp_path / "plots" / unit / name).write_bytes(b"\x89PNG fake")
    text = render(results, [], alpha=ALPHA, recipe_figures=tmp_path / "report/figures", figure_root="../plots")
    # The recipe's own comparison is in the family, not in the verdict tables: counted apart, so the counts add up.
    assert "In all, of the 2 comparisons between strategies: " in text
    assert "Of the 1 of what each recipe buys (Recipes, below): 1 better, 0 worse, 0 equivalent, 0 undecided." in text
    section = text[text.index("## Recipes") : text.index("## Configuration")]
    assert "| the recipe itself (`random`) | reference | +3.0 (" in section and "**better** |" in section
    assert (
        "- `margin` against `random`: better under the default recipe; it is **not confirmed** under "
        "`augmented` (undecided there: not shown, and not shown gone)." in section
    )
    assert "![fmnist: recipe and strategy gains, accuracy](figures/fmnist-recipes-accuracy.png)" in section
    assert (tmp_path / "report/figures/fmnist-recipes-accuracy.png").read_bytes().startswith(b"\x89PNG")
    # A study of the default recipe alone has no such section.
    assert "## Recipes" not in render(results[:1], [], alpha=ALPHA)

    # The docs page made from this report keeps the gains figure, under its own name, beside the page.
    from alstudy.console import results_page

    (tmp_path / "report/study.md").write_text(text)
    page = tmp_path / "docs/results-recipes.md"
    page.parent.mkdir()
    page.write_text("# Recipes\n\n<!-- results:start -->\n<!-- results:end -->\n")
    results_page.main(
        ["--report", str(tmp_path / "report/study.md"), "--page", str(page)]
        + ["--figures", str(tmp_path / "docs/results/recipe-study")]
    )
    shown = page.read_text()
    assert "](results/recipe-study/fmnist-recipes-accuracy.png)" in shown
    assert "](results/recipe-study/fmnist~augmented-accuracy.png)" in shown
    assert (tmp_path / "docs/results/recipe-study/fmnist-recipes-accuracy.png").read_bytes().startswith(b"\x89PNG")


def test_only_another_decided_verdict_says_a_verdict_did_not_survive_a_recipe():
    """Undecided under a recipe is not evidence that a gain is gone: the sentence says unconfirmed there;
    worse or equivalent (the gain shown gone) is what 'does not survive' means."""
    from alstudy.study.report_recipes import survival

    said = survival("margin", "random", {"default": "better", "augmented": "better", "resnet": "undecided"})
    assert said == (
        "`margin` against `random`: better under the default recipe; it is **not confirmed** under `resnet` "
        "(undecided there: not shown, and not shown gone); it holds under `augmented`"
    )
    said = survival("margin", "random", {"default": "better", "augmented": "equivalent", "resnet": "worse"})
    assert said == (
        "`margin` against `random`: better under the default recipe; it **does not survive** "
        "`augmented` (equivalent there), `resnet` (worse there)"
    )
    said = survival("badge", "random", {"default": "better", "augmented": "better"})
    assert said.endswith("the verdict **survives** every recipe (`augmented`)")
    said = survival("bald", "random", {"default": "undecided", "augmented": "better"})
    assert said.endswith("undecided under the default recipe, so no verdict to carry over; better under `augmented`")
