"""The report's verdicts claim only what the paired tests support."""
from pipeline.report import DatasetResults, render, verdict


def versus(mean, low, high, p, wins=0, losses=0):
    return {"final_mean": mean, "final_ci": [low, high], "final_p_value": p, "wins": wins, "losses": losses}


def test_verdicts_follow_the_final_round_test():
    assert "**beats random**" in verdict("margin", versus(0.02, 0.01, 0.03, 0.01, wins=7), 10, "accuracy")
    assert "**worse than random**" in verdict("entropy", versus(-0.02, -0.03, -0.01, 0.02), 10, "f1_macro")
    within = verdict("bald", versus(0.015, -0.01, 0.04, 0.2, wins=2), 10, "accuracy")
    assert "no significant difference" in within and "within the noise" in within and "beats" not in within
    assert "better in 2 and worse in 0 of 10" in within
    assert "no significant difference" in verdict("x", versus(0.0, 0.0, 0.0, None), 10, "accuracy")


def row(acc, n_labeled=400, needs=None, ratio=None):
    out = {"final_accuracy": acc, "final_accuracy_ci95": 0.01, "final_f1_macro": acc, "final_f1_macro_ci95": 0.01,
           "final_balanced_accuracy": acc, "aubc_accuracy": acc - 0.1, "n_labeled": n_labeled}
    if needs is not None or ratio is not None:
        out.update(labels_random_needs=needs, labels_saved_ratio=ratio)
    return out


def dataset(name, seeds=(0, 1, 2), margin_p=0.01):
    summary = {"random": row(0.80), "margin": row(0.83, needs=None, ratio=None),
               "coreset": row(0.79, needs=350.0, ratio=0.875)}
    summary["margin"].update(labels_random_needs=None, labels_saved_ratio=None)
    stats = {"query_rounds": 3, "seeds": list(seeds)}
    if len(seeds) > 1:
        vs = {"margin": versus(0.03, 0.02, 0.04, margin_p, wins=3), "coreset": versus(-0.01, -0.03, 0.01, 0.3)}
        stats.update(accuracy={"versus_random": vs}, f1_macro={"versus_random": vs})
    else:
        stats["note"] = "1 seed: no statistical test is possible; set at least 2 seeds in al.seeds"
    return DatasetResults(name, summary, stats, ["accuracy.png", "penalty_accuracy.png"])


def test_the_report_names_every_dataset_strategy_and_figure():
    text = render([dataset("fashion_mnist"), dataset("parts", margin_p=0.2)], ["datasets: fashion_mnist, parts"])
    for name in ("fashion_mnist", "parts", "`random`", "`margin`", "`coreset`"):
        assert name in text
    assert "## Across datasets" in text and "## fashion_mnist" in text and "## parts" in text
    assert "![fashion_mnist: Pairwise penalty matrix (accuracy)](plots/fashion_mnist/penalty_accuracy.png)" in text
    assert "more than the budget (400)" in text and "350 (0.88x)" in text
    assert "+3.0 (+2.0 to +4.0) *" in text                 # significant on fashion_mnist
    assert "Significantly more accurate than random at the final budget: `margin`" in text
    # On `parts` margin's final gap is not significant: the report must not call it better.
    parts = text.split("## parts", 1)[1]
    assert "No strategy is significantly more accurate than random" in parts and "**beats random**" not in parts


def test_one_seed_gives_a_note_instead_of_a_test():
    text = render([dataset("fashion_mnist", seeds=(0,))], [])
    assert "no statistical test is possible" in text and "beats random" not in text


def test_readme_results_are_regenerated_from_the_report(tmp_path, monkeypatch):
    from scripts import readme_results

    monkeypatch.chdir(tmp_path)
    for name in ("accuracy.png", "penalty_accuracy.png"):
        (tmp_path / "plots" / "fashion_mnist").mkdir(parents=True, exist_ok=True)
        (tmp_path / "plots" / "fashion_mnist" / name).write_bytes(b"\x89PNG fake")
    (tmp_path / "report").mkdir()
    text = render([dataset("fashion_mnist")], ["datasets: fashion_mnist"], figure_root="../plots")
    (tmp_path / "report" / "study.md").write_text(text)
    (tmp_path / "README.md").write_text("# Tool\n\n## Results\n\nOur reading.\n\n<!-- results:start -->\nold\n"
                                        "<!-- results:end -->\n\n## Next\n")
    readme_results.main(["--note", "2 cores."])
    readme = (tmp_path / "README.md").read_text()
    assert "old" not in readme and "Our reading." in readme and readme.endswith("## Next\n")
    assert "### Across datasets" in readme and "### fashion_mnist" in readme and "2 cores." in readme
    assert "(docs/results/fashion_mnist-accuracy.png)" in readme
    assert "penalty_accuracy" not in readme  # not one of the README's figures
    assert (tmp_path / "docs" / "results" / "fashion_mnist-accuracy.png").read_bytes() == b"\x89PNG fake"
