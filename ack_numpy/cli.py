"""The command line: `python -m ack_numpy <command> ...`.

A thin layer: each command parses its arguments, calls the library, and turns the
library's errors (bad data, bad checkpoints, bad arguments) into one clear line on
stderr and a non-zero exit code instead of a traceback.
"""
from __future__ import annotations

import argparse
import sys
from dataclasses import fields
from pathlib import Path

from .checkpoint import CheckpointError
from .assets import TRAINED_ADAPTIVE_LENET
from .files import file_in_the_way, quote_path
from .progress import silence_stdout
from .runtime import use_blas_threads


# ----------------------------------------------------------------------------- argument types
def _integer(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a whole number, got {text!r}") from None


def _number(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a number, got {text!r}") from None


def _positive_number(text: str) -> float:
    value = _number(text)
    if not (value > 0 and value != float("inf")):
        raise argparse.ArgumentTypeError(f"must be a positive number, got {text}")
    return value


def positive_int(text: str) -> int:
    value = _integer(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text}")
    return value


# ----------------------------------------------------------------------------- commands
def cmd_train(args: argparse.Namespace) -> int:
    from .runtime import keep_freed_memory
    from .train import SettingError, TrainConfig, resume, run_folder, train

    keep_freed_memory()  # a process that trains: about 2x faster first epochs, same numbers (runtime.py)

    if args.visualize:  # matplotlib is loaded only when figures are asked for
        from .viz.run_figures import draw_run, new_run_recorder, resumed_run_recorder

    if args.download:
        from .data import find_or_download_mnist

        args.data_dir = str(find_or_download_mnist(args.data_dir))
    given = {f.name: getattr(args, f.name) for f in fields(TrainConfig)
             if getattr(args, f.name, None) is not None}
    try:
        if args.resume:
            # A resumed run keeps its own settings; say so rather than silently ignore new ones.
            refused = [_option(name) for name in given if name not in ("data_dir", "epochs")]
            refused += ["--overwrite"] if args.overwrite else []
            if refused:
                raise ValueError(f"--resume continues {quote_path(args.resume)} with the settings it was started "
                                 f"with; leave out {', '.join(refused)} (only --data-dir and --epochs may be given)")
            out = str(run_folder(args.resume))
            recorder = resumed_run_recorder(out, args.data_dir) if args.visualize else None
            resume(args.resume, data_dir=args.data_dir, epochs=args.epochs, on_epoch_end=recorder)
        else:
            config = TrainConfig(**given)
            recorder = new_run_recorder(config, args.data_dir) if args.visualize else None
            train(config, overwrite=args.overwrite, on_epoch_end=recorder)
            out = config.out
    except SettingError as err:
        if err.name not in given:
            raise  # a setting saved in a checkpoint, or one the data rules out: one error line
        args.parser.error(f"argument {_option(err.name)}: {err.rule}, got {err.value!r}")
    if args.visualize:
        print("figures: " + ", ".join(str(p) for p in draw_run(out, args.data_dir)))
    return 0


def _option(name: str) -> str:
    return "--" + name.replace("_", "-")


def add_train_settings(parser: argparse.ArgumentParser) -> None:
    """One option per TrainConfig setting, with its help and default taken from TrainConfig.
    The options only convert text to numbers; TrainConfig.validate checks the values."""
    from .train import TrainConfig

    convert = {"int": _integer, "float": _number, "str": str}
    for f in fields(TrainConfig):
        if "help" not in f.metadata:
            continue  # model_options: Python only
        meta = f.metadata
        default = meta.get("default_text", f.default)
        parser.add_argument(_option(f.name), type=convert[f.type.replace(" | None", "")], choices=meta.get("choices"),
                            metavar=meta.get("metavar"), help=f"{meta['help']} (default {default})")


def cmd_evaluate(args: argparse.Namespace) -> int:
    from .checkpoint import load_model
    from .data import load_mnist
    from .train import evaluate

    model, meta = load_model(args.checkpoint)
    images, labels = load_mnist("test", args.data_dir, limit=args.limit_test)
    loss, accuracy = evaluate(model, images, labels)
    epochs, batches = meta.get("epoch", "?"), meta.get("batch")
    trained = f"{epochs} epoch{'' if epochs == 1 else 's'}" + (
        f" and {batches} batch{'' if batches == 1 else 'es'}" if batches else "")
    print(f"model {meta['model']} ({model.num_parameters():,} parameters), trained {trained}")
    print(f"test accuracy {accuracy:.4f} ({round(accuracy * len(labels))}/{len(labels)}), test loss {loss:.4f}")
    return 0


def cmd_download(args: argparse.Namespace) -> int:
    from .data import download_mnist

    path = download_mnist(args.dest)
    print(f"MNIST is ready in {path}")
    return 0


def cmd_visualize(args: argparse.Namespace) -> int:
    import shlex

    from .viz import write_curves, write_figures

    if args.checkpoint is None and not args.runs:
        raise ValueError("visualize needs --checkpoint (kernel figures), --runs (training curves), or both")
    if args.runs:
        from .viz.curves import read_run

        for run in args.runs:  # check every run folder before any figure is written
            read_run(run)
    written = []
    if args.checkpoint is not None:
        written += write_figures(args.checkpoint, args.out, data_dir=args.data_dir, index=args.index,
                                 digit=args.digit, layer=args.layer, channel=args.channel,
                                 location=None if args.location is None else tuple(args.location))
    if args.runs:
        written.append(write_curves(args.runs, args.out))
    for path in written:
        print(f"wrote {path}")
    again = ["python", "-m", "ack_numpy", "visualize"]
    if args.checkpoint is not None:
        again += ["--checkpoint", args.checkpoint]
        again += ["--digit", str(args.digit)] if args.digit is not None else ["--index", str(args.index or 0)]
        again += ["--layer", str(args.layer), "--channel", str(args.channel)]
        again += [] if args.location is None else ["--location", *map(str, args.location)]
    again += [] if not args.runs else ["--runs", *args.runs]
    again += [] if args.data_dir is None else ["--data-dir", args.data_dir]
    print("to write them again: " + shlex.join(again + ["--out", args.out]))
    return 0


def cmd_explore(args: argparse.Namespace) -> int:
    """explore: the interactive window, or (with --save / --gif) its picture and the sweep animation."""
    import os

    import matplotlib

    if args.save is None and args.gif is None:
        if sys.platform.startswith("linux") and not os.environ.get("DISPLAY") and not os.environ.get("WAYLAND_DISPLAY"):
            raise ValueError("explore needs a screen (no DISPLAY is set); use --save FILE.png or --gif FILE.gif")
        if matplotlib.get_backend().lower() in ("agg", "pdf", "ps", "svg", "cairo", "template"):
            raise ValueError(f"explore needs an interactive matplotlib backend (MPLBACKEND is "
                             f"{matplotlib.get_backend()}); use --save FILE.png or --gif FILE.gif")
    else:
        matplotlib.use("Agg")  # files only: never open a window
    from .viz.explorer import explore

    explore(args.checkpoint, args.data_dir, index=args.index, digit=args.digit, layer=args.layer,
            channel=args.channel, location=None if args.location is None else tuple(args.location),
            scale=args.scale, save=args.save, gif=args.gif, every=args.every)
    return 0


def cmd_reproduce(args: argparse.Namespace) -> int:
    from .lab.reproduce import reproduce
    from .lab.runner import RunnerStopped

    if args.report_only and args.print_commands:
        raise ValueError("give either --report-only or --print-commands, not both")
    try:
        if args.command == "reproduce":
            reproduce(args.out, seeds=args.seeds, lenet_seeds=args.lenet_seeds, epochs=args.epochs, jobs=args.jobs,
                      data_dir=args.data_dir, limit_train=args.limit_train, limit_test=args.limit_test,
                      report_only=args.report_only, print_commands=args.print_commands)
        else:
            from .lab import study

            check_study_options(args)
            common = dict(jobs=args.jobs, data_dir=args.data_dir, limit_train=args.limit_train,
                          limit_test=args.limit_test, report_only=args.report_only,
                          print_commands=args.print_commands)
            if args.which == "lr-selection":
                from .lab.lrselect import lr_selection

                lr_selection(args.out, **common)
            elif args.which == "ledger":
                from .lab.ledger import write_ledger

                write_ledger(args.out)
            elif args.which == "compute":
                from .lab.compute import compute

                compute(args.out, report_only=args.report_only)
            elif args.which == "ablation":
                from .lab.ablation import ablation

                ablation(args.out, **options_given(selection=args.selection, seeds=args.seeds, reuse=args.reuse),
                         **common)
            elif args.which == "time-to-accuracy":
                from .lab.time_to_accuracy import time_to_accuracy

                time_to_accuracy(args.out, **options_given(selection=args.selection, seeds=args.seeds), **common)
            elif args.which == "convergence":
                study.convergence(args.out, **options_given(seeds=args.seeds, max_epochs=args.max_epochs, lr=args.lr),
                                  **common)
            else:
                study.budget(args.out, **options_given(seeds=args.seeds, epochs=args.epochs, reuse=args.reuse), **common)
    except RunnerStopped as stop:
        print(f"stopped by {stop}: every training was asked to save and has stopped; "
              f"the same command resumes", file=sys.stderr)
        return 128 + stop.signum
    return 0


# Which study takes which of `study`'s own options; the others are refused, never ignored.
TRAINING_STUDIES = ("lr-selection", "ablation", "time-to-accuracy", "convergence", "budget")  # they train runs
STUDY_OPTIONS = {"seeds": TRAINING_STUDIES, "jobs": TRAINING_STUDIES, "data_dir": TRAINING_STUDIES,
                 "limit_train": TRAINING_STUDIES, "limit_test": TRAINING_STUDIES, "print_commands": TRAINING_STUDIES,
                 "report_only": TRAINING_STUDIES + ("compute",),
                 "epochs": ("budget",), "reuse": ("ablation", "budget"), "selection": ("ablation", "time-to-accuracy"),
                 "max_epochs": ("convergence",), "lr": ("convergence",)}
STUDY_DEFAULTS = {"jobs": 1, "report_only": False, "print_commands": False}


def options_given(**options) -> dict:
    """The options the user gave: the others are left to the study's own defaults (its signature)."""
    return {name: value for name, value in options.items() if value is not None}


def check_study_options(args: argparse.Namespace) -> None:
    """`study NAME`: an option given to a study that does not take it is refused, naming it."""
    given = [name for name, studies in STUDY_OPTIONS.items()
             if getattr(args, name) not in (None, STUDY_DEFAULTS.get(name)) and args.which not in studies]
    if given:
        names = ", ".join(_option(name) for name in given)
        raise ValueError(f"study {args.which} does not take {names}; see python -m ack_numpy study --help")


def cmd_bench(args: argparse.Namespace) -> int:
    from .lab.bench import main as bench_main

    return bench_main(quick=args.quick, tiny=args.tiny, json_path=args.json, threads=args.threads)


def add_kernel_view_arguments(p: argparse.ArgumentParser, location_help: str) -> None:
    """The options that choose what `visualize` and `explore` look at: image, layer, channel, location."""
    p.add_argument("--data-dir", help="folder with the MNIST files (else $ACK_MNIST_DIR, else data/mnist in a source checkout, else ~/.local/share/ack_numpy/mnist, else ./data/mnist)")
    p.add_argument("--index", type=int, help="test-set index of the image (default 0)")
    p.add_argument("--digit", type=int, help="the first test image of this digit instead of --index")
    p.add_argument("--layer", type=int, default=0, help="which adaptive layer, counted among adaptive layers (default 0)")
    p.add_argument("--channel", type=int, default=0, help="output channel of that layer (default 0)")
    p.add_argument("--location", type=int, nargs=2, metavar=("ROW", "COL"), help=f"{location_help} (default the centre)")


DEFAULT_PROGRAM = "python -m ack_numpy"  # as the docs and the library's hints write it


def program_name(argv0: str) -> str:
    """How the program was started, for the usage line and the hints: `python -m ack_numpy`
    or `ack-numpy`."""
    name = Path(argv0).name
    return DEFAULT_PROGRAM if name in ("__main__.py", "") else name


MAX_THREADS = 256  # far beyond any CPU this runs on; more only makes threads wait for each other


def thread_count(text: str) -> int:
    value = positive_int(text)
    if value > MAX_THREADS:
        raise argparse.ArgumentTypeError(f"must be at most {MAX_THREADS}, got {text}")
    return value


def add_threads_argument(p: argparse.ArgumentParser) -> None:
    p.add_argument("--threads", type=thread_count, metavar="N",
                   help="BLAS threads for the matrix products (default 1, steady on a shared machine; "
                        "or $OPENBLAS_NUM_THREADS if set; ack_numpy/runtime.py has the measurements)")


def build_parser(prog: str = DEFAULT_PROGRAM) -> argparse.ArgumentParser:
    from . import __version__

    parser = argparse.ArgumentParser(
        prog=prog, description="Adaptive Convolutional Kernels in NumPy: train, evaluate and look at the kernels.")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="command", required=True)

    from .train import RESUME_NOTES

    p = sub.add_parser("train", help="train a model on MNIST", epilog=RESUME_NOTES,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    add_train_settings(p)
    p.add_argument("--resume", metavar="DIR", help="continue the run saved in DIR (its own settings are used)")
    p.add_argument("--overwrite", action="store_true", help="start again even if --out holds a checkpoint")
    p.add_argument("--visualize", action="store_true",
                   help="afterwards, draw the training curves and (for adaptive models) the kernels into OUT/figures; "
                        "adaptive models also get their kernels recorded after every epoch (kernel_evolution.npz "
                        "and .png there; --resume continues the record)")
    p.add_argument("--download", action="store_true",
                   help="if MNIST is not found (and no --data-dir / $ACK_MNIST_DIR is given), download it to data/mnist in a source checkout, else ~/.local/share/ack_numpy/mnist")
    add_threads_argument(p)
    p.set_defaults(func=cmd_train, parser=p)

    p = sub.add_parser("evaluate", help="test accuracy and parameter count of a checkpoint")
    p.add_argument("--checkpoint", required=True, help="a checkpoint.npz written by train")
    p.add_argument("--data-dir", help="folder with the MNIST files")
    p.add_argument("--limit-test", type=positive_int, help="use only the first N test images")
    add_threads_argument(p)
    p.set_defaults(func=cmd_evaluate)

    p = sub.add_parser("download", help="download MNIST and verify it (needs internet)")
    p.add_argument("--dest", "--data-dir", dest="dest", metavar="DIR",
                   help="target folder (default $ACK_MNIST_DIR if set, else data/mnist in a source checkout, "
                        "else ~/.local/share/ack_numpy/mnist, or $XDG_DATA_HOME/ack_numpy/mnist)")
    p.set_defaults(func=cmd_download)

    p = sub.add_parser("visualize", help="draw the dynamic kernels of a checkpoint, and training curves of runs")
    p.add_argument("--checkpoint", help="a checkpoint.npz of a model with adaptive layers (e.g. adaptive-lenet)")
    add_kernel_view_arguments(p, location_help="output location for digits.png and the kernel field")
    p.add_argument("--runs", nargs="+", metavar="DIR", help="run folders (with metrics.csv) to draw in curves.png")
    p.add_argument("--out", required=True, help="folder for the PNGs: kernel_field, q_filters, digits, "
                   "adaptation, feature_maps (with --checkpoint) and curves (with --runs)")
    add_threads_argument(p)
    p.set_defaults(func=cmd_visualize)

    p = sub.add_parser("explore", help="a window that recomputes the kernels as you point and draw (or --save / --gif)")
    p.add_argument("--checkpoint", default=str(TRAINED_ADAPTIVE_LENET),
                   help="a checkpoint of a model with adaptive layers (default the trained adaptive-lenet "
                        "that comes with the package, ack_numpy/assets/adaptive-lenet.npz)")
    add_kernel_view_arguments(p, location_help="output location shown first; if the centre's patch is blank, the nearest inked one")
    p.add_argument("--save", metavar="FILE.png", help="write the window as a picture instead of opening it")
    p.add_argument("--gif", metavar="FILE.gif", help="write the kernel sweeping over the image (see --every)")
    p.add_argument("--every", type=positive_int, default=2, metavar="N",
                   help="--gif visits every Nth row and column (default 2; 3 makes a GIF about half the size)")
    p.add_argument("--scale", type=_positive_number, metavar="LIM",
                   help="draw the bottom row (patch, w, Q p, k, k * p) on the fixed colour scale -LIM..LIM, "
                        "so that pictures of different locations or images compare (default: fitted to each)")
    add_threads_argument(p)
    p.set_defaults(func=cmd_explore)

    p = sub.add_parser("reproduce", help="train lenet, adaptive-lenet, plain-small and plain-width8 on every seed; "
                       "judge the paper's claims and the ablations")
    p.add_argument("--seeds", type=positive_int, default=10, help="seeds 0..N-1 of the small models (default 10)")
    p.add_argument("--lenet-seeds", type=positive_int, default=10, help="seeds 0..N-1 of lenet (default 10)")
    p.add_argument("--epochs", type=positive_int, default=10, help="epochs per run (default 10)")
    study_parser = sub.add_parser("study", help="lr-selection (each model's learning rate, on held-out images), "
                                  "ablation (equal budget and quadratic controls, 10 seeds), "
                                  "compute (parameters, multiply-adds, activations, time, memory), "
                                  "ledger (the README's claims table, --out README.md), "
                                  "time-to-accuracy (images, seconds and multiply-adds to 98.5%%, 99%% and 99.8%% "
                                  "of the model's plateau, held-out; each model at its own rate, cosine fitted to "
                                  "budgets of 1-8 epochs, 10 seeds), "
                                  "convergence (constant learning rate, epochs to 99%%) or "
                                  "budget (adaptive vs plain at five sizes)")
    study_parser.add_argument("which", choices=["lr-selection", "ablation", "compute", "time-to-accuracy",
                                                "convergence", "budget", "ledger"])
    study_parser.add_argument("--seeds", type=positive_int,
                              help="seeds 0..N-1 (default 3; ablation and time-to-accuracy 10)")
    study_parser.add_argument("--epochs", type=positive_int, help="budget: epochs per run (default 10)")
    study_parser.add_argument("--reuse", metavar="DIR", help="budget, ablation: take the runs of the same settings "
                              "from this reproduction folder, e.g. data/reproduction")
    study_parser.add_argument("--selection", metavar="DIR",
                              help="ablation, time-to-accuracy: the lr-selection folder whose results.json holds "
                                   "each model's "
                                   "learning rate (default data/lr-selection)")
    study_parser.add_argument("--max-epochs", type=positive_int,
                              help="convergence: stop a run that has not reached 99%% after N epochs (default 15)")
    study_parser.add_argument("--lr", type=_positive_number,
                              help="convergence: the constant learning rate of every model (default 1e-3)")
    for p in (p, study_parser):
        p.add_argument("--jobs", type=positive_int, default=1, help="runs in parallel, one BLAS thread each (default 1)")
        p.add_argument("--out", required=True, help="output folder (runs/, results.md, results.json, a PNG)")
        p.add_argument("--data-dir", help="folder with the MNIST files")
        p.add_argument("--limit-train", type=positive_int, help="quick check: first N training images only")
        p.add_argument("--limit-test", type=positive_int, help="quick check: first N test images only")
        p.add_argument("--report-only", action="store_true",
                       help="train nothing; write the report from the finished runs (the others are listed as missing)")
        p.add_argument("--print-commands", action="store_true",
                       help="train nothing; print one independent command per unfinished run known to be needed, for "
                            "a job array (then collect the report with --report-only; lr-selection: print again "
                            "once its grid has finished, for the steps beyond an edge)")
        p.set_defaults(func=cmd_reproduce)

    p = sub.add_parser("bench", help="time the layers and training steps against this machine's matmul rate")
    p.add_argument("--quick", action="store_true", help="fewer repeats: seconds instead of up to two minutes")
    p.add_argument("--json", metavar="FILE", help="also write every figure to FILE as JSON")
    p.add_argument("--threads", type=thread_count,
                   help="rerun with OPENBLAS_NUM_THREADS=N (steadier on a machine shared with other jobs)")
    p.add_argument("--tiny", action="store_true", help=argparse.SUPPRESS)  # tiny shapes, for the tests
    p.set_defaults(func=cmd_bench)
    return parser


def main(argv: list[str] | None = None) -> int:
    from .data import DataFormatError
    from .train import TrainingInterrupted

    parser = build_parser(program_name(sys.argv[0]))
    args = parser.parse_args(argv)
    if args.command != "bench":  # bench times both settings itself
        use_blas_threads(getattr(args, "threads", None))  # one BLAS thread unless asked: runtime.py says why
    try:
        return args.func(args)
    except TrainingInterrupted as stopped:
        return stopped.exit_code  # the training loop has already saved and said how to resume
    except KeyboardInterrupt:
        print("interrupted (Ctrl-C)", file=sys.stderr)
        return 130
    except BrokenPipeError:  # the reader of our output went away (`| head`): nothing to say to it
        silence_stdout()
        return 141  # the shell's code for a process ended by SIGPIPE
    except MemoryError as err:  # under a ulimit, or a batch too large for the machine
        hint = {"train": "a smaller --batch-size needs less", "evaluate": "--limit-test needs less"}.get(
            args.command, "close other programs, or give this one more memory")
        print(f"error: out of memory: {str(err) or 'an allocation failed'} ({hint})", file=sys.stderr)
        return 1
    except OSError as err:  # a path we could not read or write: say which, in plain words
        print(f"error: {describe_os_error(err)} (check the paths given with --out, --dest, "
              f"--json, --save, --gif, --data-dir, --runs or --checkpoint)", file=sys.stderr)
        return 1
    except (DataFormatError, CheckpointError, ValueError, RuntimeError) as err:
        # The library's hints name `python -m ack_numpy ...`; say it as the reader started us.
        print(f"error: {err}".replace(DEFAULT_PROGRAM + " ", parser.prog + " "), file=sys.stderr)
        return 1


def describe_os_error(err: OSError) -> str:
    """'PATH: reason'. A file where a folder was wanted (--out, --dest, figures) reads the
    same in every command, whether mkdir said "File exists" or "Not a directory"."""
    if isinstance(err, (FileExistsError, NotADirectoryError)) and err.filename:
        in_the_way = file_in_the_way(err.filename)
        if in_the_way is not None:
            return f"{quote_path(in_the_way)}: is a file, not a folder"
    where = f"{quote_path(err.filename)}: " if err.filename else ""
    return f"{where}{err.strerror or err}"


if __name__ == "__main__":
    sys.exit(main())
