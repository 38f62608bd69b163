"""The ``bench`` command line: argument parsing and dispatch.

Every subcommand names its handler as ``"module:function"``; the module is imported only when that
subcommand runs, so ``bench --help`` does not import torch or ITK. A handler takes the parsed
``argparse.Namespace`` and returns an exit status. :class:`~benchmark.core.errors.BenchError` is printed
as ``error: ...`` on stderr with exit status 2, never as a traceback.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys

from benchmark import __version__
from benchmark.core.errors import BenchError

PRESETS = ("quick", "paper")


def _dataset_args(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--dataset",
        required=True,
        metavar="NAME_OR_PATH",
        help="a manifest name from data_manifests/ (acdc, dce, demo-acdc, demo-dce), a path to "
        "a manifest .yaml, or a Learn2Reg task's PATH/TASK_dataset.json",
    )
    p.add_argument(
        "--root",
        metavar="DIR",
        help="data folder (overrides the manifest's root and its environment variable)",
    )


def _handler(p: argparse.ArgumentParser, target: str) -> None:
    p.set_defaults(handler=target)


def build_parser() -> argparse.ArgumentParser:
    """The parser of ``bench`` and all its subcommands (one function per command group)."""
    parser = argparse.ArgumentParser(
        prog="bench",
        description="MIRBench: benchmark unsupervised deep-learning image registration with "
        "mutual information (de Vos et al., SPIE Medical Imaging 2020).",
    )
    parser.add_argument("--version", action="version", version=f"mirbench {__version__}")
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more log output")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for add_commands in (
        _data_commands,
        _method_commands,
        _run_commands,
        _stats_commands,
        _reader_study_commands,
    ):
        add_commands(sub)
    return parser


def _data_commands(sub: argparse._SubParsersAction) -> None:
    """``bench data check``, ``bench data demo``."""
    data = sub.add_parser("data", help="check datasets and generate demo data")
    data_sub = data.add_subparsers(dest="data_command", metavar="SUBCOMMAND")
    check = data_sub.add_parser(
        "check", help="validate a dataset and print cases, pairs, folds, spacings, labels"
    )
    _dataset_args(check)
    check.add_argument(
        "--set", action="append", default=[], metavar="KEY=VALUE",
        help="a dataset option (a Learn2Reg task's split=val|test) or a training setting",
    )
    check.add_argument("--json", action="store_true", help="print the summary as JSON")
    _handler(check, "benchmark.data.commands:check")
    demo = data_sub.add_parser("demo", help="generate a deterministic demo dataset")
    demo.add_argument("name", help="demo-acdc or demo-dce")
    demo.add_argument("--out", required=True, metavar="DIR", help="output folder")
    demo.add_argument("--cases", type=int, default=None, help="number of cases (default: manifest)")
    demo.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    _handler(demo, "benchmark.data.commands:demo")


def _method_commands(sub: argparse._SubParsersAction) -> None:
    """``bench methods``, ``bench train``."""
    methods = sub.add_parser("methods", help="list registration methods and their availability")
    _handler(methods, "methods.commands:list_methods")

    # bench train
    train = sub.add_parser("train", help="train a learning method on one cross-validation fold")
    train.add_argument("--method", required=True, help="e.g. unet-nmi, poolnet-ncc")
    _dataset_args(train)
    train.add_argument("--fold", type=int, default=0, help="fold whose training pairs are used")
    train.add_argument("--preset", choices=PRESETS, default="quick")
    train.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a training setting, e.g. --set iterations=500 --set patch_size=64,64,8; "
        "or a dataset option (a Learn2Reg task's split=val|test)",
    )
    train.add_argument("--out", metavar="DIR", default=None, help="model folder")
    train.add_argument("--resume", action="store_true", help="resume from the last checkpoint")
    train.add_argument("--device", default=None, help="cpu, cuda, cuda:1 (default: cuda if any)")
    train.add_argument("--seed", type=int, default=0)
    _handler(train, "benchmark.runner.commands:train")


def _run_commands(sub: argparse._SubParsersAction) -> None:
    """``bench run``, ``bench export-fields``."""
    run = sub.add_parser("run", help="train, register and score methods on a dataset")
    run.add_argument(
        "--methods",
        default="all",
        help="all, or a comma-separated list; fields:NAME=DIR evaluates precomputed fields",
    )
    _dataset_args(run)
    run.add_argument("--out", metavar="DIR", default=None, help="run folder (default runs/NAME)")
    run.add_argument("--preset", choices=PRESETS, default="quick")
    run.add_argument("--folds", default=None, help="comma-separated folds (default: all)")
    run.add_argument(
        "--jobs", type=int, default=1,
        help="1: run in this process; N: a Dask LocalCluster of N worker processes",
    )
    run.add_argument(
        "--scheduler", metavar="ADDRESS", default=None,
        help="an existing Dask scheduler, tcp://HOST:8786 (default: $DASK_SCHEDULER_ADDRESS)",
    )
    run.add_argument(
        "--dry-run", action="store_true", help="print the tasks done and to do, and why; run none"
    )
    run.add_argument("--force", action="store_true", help="recompute finished results")
    run.add_argument(
        "--prune", action="store_true",
        help="drop from the run folder's tables the methods of earlier runs not in --methods "
        "(default: keep their rows)",
    )
    run.add_argument("--device", default=None, help="cpu, cuda (default: cuda if any)")
    run.add_argument("--seed", type=int, default=0)
    run.add_argument(
        "--seeds", default=None, help="comma-separated seeds, each a repeated run (default: --seed)"
    )
    run.add_argument(
        "--set", action="append", default=[], metavar="KEY=VALUE", help="a setting: KEY=VALUE (a training setting), METHOD.KEY=VALUE, or a dataset option "
        "(a Learn2Reg task's split=val|test)"
    )
    _handler(run, "benchmark.runner.commands:run")

    # bench export-fields
    export = sub.add_parser(
        "export-fields", help="write a run's displacement fields in another convention"
    )
    export.add_argument("run_dir", help="a run folder")
    export.add_argument(
        "--format",
        choices=("l2r",),
        default="l2r",
        help="l2r: Learn2Reg's disp_FIXED_MOVING.nii.gz, (I, J, K, 3) in voxels, fixed -> moving",
    )
    export.add_argument("--out", default=None, help="output folder (default RUN_DIR/export/l2r)")
    export.add_argument("--methods", default=None, help="comma-separated (default: all of the run)")
    export.add_argument(
        "--dtype",
        choices=("float64", "float32", "float16"),
        default="float64",
        help="stored dtype (float64: exact round trip)",
    )
    _handler(export, "benchmark.runner.export_fields:export_command")


def _stats_commands(sub: argparse._SubParsersAction) -> None:
    """``bench stats ranking|compare|rank|l2r``, ``bench report``."""
    stats = sub.add_parser("stats", help="statistics on rankings and results")
    stats_sub = stats.add_subparsers(dest="stats_command", metavar="SUBCOMMAND")
    ranking = stats_sub.add_parser(
        "ranking", help="contingency table, chi-square and pairwise tests of a blinded ranking"
    )
    ranking.add_argument("csv", help="rankings in long form: case, method, rank[, reader]")
    ranking.add_argument("--json", action="store_true", help="print one JSON object")
    _handler(ranking, "benchmark.stats.commands:ranking")
    compare = stats_sub.add_parser(
        "compare",
        help="paired Wilcoxon tests between methods per structure and metric, at the case level",
    )
    compare.add_argument("run_dir", help="a run folder (or a results.csv)")
    compare.add_argument("--json", action="store_true")
    _handler(compare, "benchmark.stats.commands:compare")
    rank = stats_sub.add_parser(
        "rank",
        help="rank methods per metric and overall (significance ranks, bootstrap stability, "
        "Friedman with post-hoc, DSC30)",
    )
    rank.add_argument("run_dir", help="a run folder (or a results.csv)")
    rank.add_argument("--json", action="store_true", help="print one JSON object")
    rank.add_argument("--bootstrap", type=int, default=200, help="bootstrap resamples (200)")
    rank.add_argument("--seed", type=int, default=0, help="bootstrap seed (0)")
    rank.add_argument("--alpha", type=float, default=0.05, help="significance level (0.05)")
    rank.add_argument(
        "--posthoc", default="nemenyi", help="post-hoc test after Friedman: nemenyi | conover"
    )
    _handler(rank, "benchmark.stats.commands:rank")
    l2r = stats_sub.add_parser(
        "l2r",
        help="scores in MIRBench's and Learn2Reg's conventions side by side, and Learn2Reg's "
        "ranking beside MIRBench's; writes RUN_DIR/l2r_scores.csv",
    )
    l2r.add_argument("run_dir", help="a run folder")
    l2r.add_argument("--json", action="store_true", help="print one JSON object")
    l2r.add_argument(
        "--masked", choices=("auto", "yes", "no"), default="auto",
        help="Learn2Reg's masked SDlogJ: auto = as its config for the task (else: when the "
        "pairs have masks)",
    )
    _handler(l2r, "benchmark.stats.commands:l2r")

    # bench report
    report = sub.add_parser("report", help="build a PDF report from a run folder")
    report.add_argument("run_dir")
    report.add_argument("--out", default=None, help="PDF path (default RUN_DIR/report/report.pdf)")
    report.add_argument("--rankings", default=None, help="rankings CSV of a reader study")
    report.add_argument("--cases", type=int, default=2, help="cases shown in figures 1/3")
    _handler(report, "reports.commands:report")


def _reader_study_commands(sub: argparse._SubParsersAction) -> None:
    """``bench reader-study create|serve|add-reader|rotate|revoke|export|analyze``."""
    rs = sub.add_parser("reader-study", help="blinded reader study web app")
    rs_sub = rs.add_subparsers(dest="rs_command", metavar="SUBCOMMAND")
    create = rs_sub.add_parser("create", help="prepare a blinded study from a run folder")
    create.add_argument("run_dir")
    create.add_argument("--methods", required=True, help="comma-separated methods to compare")
    group = create.add_mutually_exclusive_group()
    group.add_argument("--cases", type=int, default=None, help="number of cases")
    group.add_argument("--pairs", default=None, help="file listing case/pair keys, one a line")
    create.add_argument(
        "--seed",
        type=int,
        default=0,
        help="seed of the readers' case orders (labels are not seeded)",
    )
    create.add_argument("--out", required=True, metavar="STUDY_DIR")
    create.add_argument(
        "--cannot-judge", action="store_true", help="readers may answer 'cannot judge'"
    )
    create.add_argument("--comment", action="store_true", help="a free-text comment per case")
    create.add_argument(
        "--repeats", type=int, default=0, help="cases shown twice (intra-reader agreement)"
    )
    create.add_argument(
        "--shared-labels",
        action="store_true",
        help="one letter order per case for all readers (default: each reader their own)",
    )
    _handler(create, "benchmark.reader_study.commands:create")
    serve = rs_sub.add_parser("serve", help="serve the study to readers (waitress)")
    serve.add_argument("study_dir")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8000)
    serve.add_argument(
        "--public-url", default=None, help="URL readers use, e.g. https://study.example.org"
    )
    serve.add_argument("--threads", type=int, default=8)
    serve.add_argument(
        "--idle-minutes", type=float, default=120.0, help="sessions end after this inactivity"
    )
    serve.add_argument(
        "--trusted-proxy",
        default=None,
        metavar="ADDRESS",
        help="IP address of the reverse proxy whose X-Forwarded-For names the client (default: "
        "no X-Forwarded-* header is trusted)",
    )
    _handler(serve, "benchmark.reader_study.commands:serve")
    for name, help_text, target in (
        ("add-reader", "create a reader and print their one-time invitation link", "add_reader"),
        ("rotate", "replace a reader's invitation by a new link; ends sessions", "rotate"),
        ("revoke", "end a reader's sessions and invitation", "revoke"),
    ):
        cmd = rs_sub.add_parser(name, help=help_text)
        cmd.add_argument("study_dir")
        cmd.add_argument("name", metavar="READER")
        if target != "revoke":
            cmd.add_argument("--url", default=None, help="server URL for the link")
            cmd.add_argument("--valid-days", type=float, default=14.0, help="invitation lifetime")
        _handler(cmd, f"benchmark.reader_study.commands:{target}")
    unfinished = "also readers who have not finished, and every case they ranked"
    export = rs_sub.add_parser("export", help="write the rankings CSV (unblinds)")
    export.add_argument("study_dir")
    export.add_argument("--out", default=None, help="CSV path (default STUDY_DIR/rankings.csv)")
    export.add_argument("--include-unfinished", action="store_true", help=unfinished)
    _handler(export, "benchmark.reader_study.commands:export")
    analyze = rs_sub.add_parser("analyze", help="print the ranking statistics (unblinds)")
    analyze.add_argument("study_dir")
    analyze.add_argument("--json", action="store_true")
    analyze.add_argument("--include-unfinished", action="store_true", help=unfinished)
    _handler(analyze, "benchmark.reader_study.commands:analyze")


def _call(target: str, args: argparse.Namespace) -> int:
    module_name, func_name = target.split(":")
    module = importlib.import_module(module_name)
    return int(getattr(module, func_name)(args) or 0)


def main(argv: list[str] | None = None) -> int:
    # OpenMP threads that spin while waiting make PyTorch ~20x slower as soon as another process
    # competes for the cores (measured on 2 cores); sleeping waits cost little. Must be set before
    # torch is imported; an explicit setting of the user wins.
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    parser = build_parser()
    args = parser.parse_args(argv)
    # logs go to stderr: warnings by default, -v info, -vv debug (run logs add a file handler)
    stream = logging.StreamHandler(sys.stderr)
    stream.setLevel(logging.WARNING - 10 * min(args.verbose, 2))
    stream.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    logging.basicConfig(level=min(logging.INFO, stream.level), handlers=[stream])
    handler = getattr(args, "handler", None)
    if handler is None:
        # a group without a subcommand: show that group's help
        argv = sys.argv[1:] if argv is None else argv
        parser.parse_args([*[a for a in argv if not a.startswith("-")], "--help"])
        return 2
    try:
        return _call(handler, args)
    except BenchError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:  # the file system refused: name the file, no traceback
        where = f"{exc.filename}: " if exc.filename else ""
        print(f"error: {where}{exc.strerror or exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
