"""The `alstudy` command: what a person types, one subcommand each (`alstudy --help` lists them).

DVC's stages stay in stages/ (`dvc repro` runs them); these are the commands around the pipeline.
Each subcommand is a module here with a `main(argv)`, imported only when run, so that
`alstudy label import` does not start TensorFlow. The benchmarks are not a command: they live in a
clone's benchmarks/ folder (`python -m benchmarks.bench_al`), outside the installed package.
"""

from __future__ import annotations

import importlib
import sys

from alstudy.runner import quiet_native_logs, run_stage

# name -> (module, one line of help)
COMMANDS = {
    "grid": ("alstudy.console.grid", "run the study's grid: every core here (default) or a Ray cluster (--ray)"),
    "label": ("alstudy.console.label", "label your images: `label next` for a batch, `label import FILE` for labels"),
    "export-images": ("alstudy.console.export_images", "write a prepared dataset out as PNG folders"),
    "tracking-server": ("alstudy.console.tracking_server", "start a shared MLflow tracking server (PostgreSQL)"),
    "tracking-db": ("alstudy.console.tracking_db", "set up PostgreSQL for it: a role, not a superuser; its database"),
    "ray-start": ("alstudy.console.ray_start", "start a Ray node for `grid --ray`: 127.0.0.1 only, or token auth"),
    "compare-studies": ("alstudy.console.compare_studies", "two studies of one protocol, paired by seed"),
    "results-page": ("alstudy.console.results_page", "copy the study report's tables into docs/results.md"),
    "params-page": ("alstudy.console.params_page", "write docs/reference/params.md from the params schema"),
    "simulate-person": ("alstudy.console.simulate_person", "fill a batch manifest with true labels (demo, tests)"),
}


def usage() -> str:
    width = max(map(len, COMMANDS))
    lines = ["usage: alstudy <command> [options]   (alstudy <command> --help for its options)", "", "commands:"]
    lines += [f"  {name:<{width}}  {text}" for name, (_, text) in COMMANDS.items()]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(usage())
        return 0
    name, rest = argv[0], argv[1:]
    if name not in COMMANDS:
        print(f"alstudy: unknown command {name!r}\n\n{usage()}", file=sys.stderr)
        return 2
    module = COMMANDS[name][0]
    sys.argv = [f"alstudy {name}", *rest]  # so that each command's --help names itself
    quiet_native_logs()  # before the command's module imports TensorFlow
    return int(run_stage(importlib.import_module(module).main, rest) or 0)


if __name__ == "__main__":
    sys.exit(main())
