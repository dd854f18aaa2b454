"""The `robench` command line: thin wrappers that parse options and call one library function each."""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import click

from robench._progress import set_quiet
from robench.errors import DriftError, RobenchError

log = logging.getLogger("robench")


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="robench")
@click.option("-q", "--quiet", is_flag=True, help="No progress bars or info messages.")
def cli(quiet: bool) -> None:
    """robench: robustness benchmark for image classifiers (ImageNet-C/P, adversarial), GAP vs GCP."""
    set_quiet(quiet)
    logging.basicConfig(level=logging.WARNING if quiet else logging.INFO, format="%(message)s", force=True)


@cli.command("eval")
@click.option("--ckpt", "ckpts", multiple=True, metavar="PATH_OR_ZOO_NAME",
              help="Checkpoint file or zoo name; repeat for several models. "
              "Default: the suite's `models`, else demo-gap and demo-gcp.")
@click.option("--arch", default=None, help="Architecture when the checkpoint has no card (see `robench list models`).")
@click.option("--pool", type=click.Choice(["gap", "gcp"]), default=None, help="Pooling head for --arch.")
@click.option("--suite", default="demo", show_default=True, help="Built-in suite name or a suite .toml file.")
@click.option("--data", type=click.Path(path_type=Path), default=None,
              help="Dataset root (overrides the suite's default data).")
@click.option("--limit", type=int, default=None,
              help="Evaluate a class-balanced subset of N images (round robin over classes; README: Subsets).")
@click.option("--subset", type=click.Path(path_type=Path), default=None, metavar="FILE",
              help="Evaluate only the images listed in FILE (relative paths <class>/<file>, one per line).")
@click.option("--out", type=click.Path(path_type=Path), default=Path("robench-out"), show_default=True,
              help="Output folder: results.sqlite store, leaderboard.md/csv, results.csv.")
@click.option("--batch-size", type=int, default=256, show_default=True)
@click.option("--workers", type=int, default=0, show_default=True, help="DataLoader worker processes.")
@click.option("--device", default="cpu", show_default=True, help="cpu, cuda, cuda:1, …")
@click.option("--seed", type=int, default=None, help="Seed of the random corruptions (default: the suite's).")
@click.option("--fresh", is_flag=True, help="Recompute cells already in the store.")
@click.option("--amp", type=click.Choice(["bf16", "fp16"]), default=None,
              help="Mixed precision for the forward pass (recorded in provenance; GCP square root stays fp32).")
@click.option("--baseline", default=None, metavar="MODEL",
              help="Stored model whose FP/T5D normalise mFR/mT5D (e.g. torchvision AlexNet run on the same suite).")
@click.option("--on-bad-image", type=click.Choice(["error", "skip"]), default="error", show_default=True,
              help="An unreadable image stops the run, or is skipped and counted (column `skipped`).")
def eval_cmd(ckpts, arch, pool, suite, data, limit, subset, out, batch_size, workers, device, seed, fresh, amp,
             baseline, on_bad_image) -> None:
    """Evaluate models on a suite, resuming finished cells, and write the leaderboard."""
    from robench.evaluate import EvalConfig, run_eval
    from robench.report import leaderboard, to_markdown, write_reports

    cfg = EvalConfig(
        ckpts=tuple(ckpts), arch=arch, pool=pool, suite=suite, data=data, limit=limit, subset=subset,
        out=out, batch_size=batch_size, workers=workers, device=device, seed=seed, fresh=fresh, amp=amp,
        on_bad_image=on_bad_image,
    )
    summary = run_eval(cfg)
    written = write_reports(summary.store, out, baseline=baseline)
    click.echo(to_markdown(leaderboard(summary.store, baseline=baseline), title=f"robench eval — {suite}"))
    click.echo(f"{summary.computed} cells computed, {summary.reused} reused. Wrote "
               + ", ".join(str(p) for p in [summary.store, *written]), err=True)


@cli.command("leaderboard")
@click.option("--store", type=click.Path(path_type=Path), required=True, help="A results.sqlite file.")
@click.option("--out", type=click.Path(path_type=Path), default=None,
              help="Folder for leaderboard.md/csv, results.csv, paired tables, figures, index.html (default: print).")
@click.option("--kind", default="overall", show_default=True,
              help="Table to print: overall, paired, paired_corruptions, groups, corruptions, severities, "
              "perturbations, attacks, published, cells.")
@click.option("--baseline", default=None, metavar="MODEL", help="Stored model that normalises mFR/mT5D.")
@click.option("--replicates", type=int, default=2000, show_default=True, help="Bootstrap replicates of the intervals.")
@click.option("--interval-seed", type=int, default=0, show_default=True, help="Seed of the bootstrap resampling.")
def leaderboard_cmd(store: Path, out: Path | None, kind: str, baseline: str | None, replicates: int,
                    interval_seed: int) -> None:
    """Re-render leaderboards from a store without computing anything."""
    from robench.report import leaderboard, to_markdown, write_reports
    from robench.stats import Bootstrap

    boot = Bootstrap(replicates, interval_seed)
    click.echo(to_markdown(leaderboard(store, kind, baseline=baseline, bootstrap=boot), title=f"robench {kind}",
                           bootstrap=boot))
    if out is not None:
        for p in write_reports(store, out, baseline=baseline, bootstrap=boot):
            click.echo(f"wrote {p}", err=True)


@cli.command("export")
@click.option("--store", type=click.Path(path_type=Path), required=True, help="A results.sqlite file.")
@click.option("--out", type=click.Path(path_type=Path), default=Path("per_image.csv"), show_default=True,
              help="CSV file: one row per image of every clean and corruption cell.")
def export_cmd(store: Path, out: Path) -> None:
    """Export per-image outcomes (label, prediction, correctness, confidence) of a store as CSV."""
    from robench.export import write_per_image

    path, rows = write_per_image(store, out)
    click.echo(f"wrote {rows} rows to {path}", err=True)


@cli.command("corrupt")
@click.option("--data", type=click.Path(path_type=Path), required=True, help="ImageFolder root: DIR/<class>/<images>.")
@click.option("--out", type=click.Path(path_type=Path), required=True,
              help="Output root: OUT/<corruption>/<severity>/<class>/<file>.")
@click.option("--corruption", "corruptions", multiple=True, help="Corruption(s) to write (default: the 15 test ones).")
@click.option("--severity", "severities", type=int, multiple=True, help="Severity (repeatable; default 1..5).")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--no-jpeg", is_flag=True, help="Write lossless PNG instead of the official JPEG q85.")
@click.option("--workers", type=int, default=0, show_default=True, help="DataLoader processes decoding images.")
@click.option("--batch-size", type=int, default=32, show_default=True)
@click.option("--param-set", type=click.Choice(["imagenet", "tinyimagenet", "cifar"]), default="imagenet",
              show_default=True)
@click.option("--resize", type=int, default=256, show_default=True, help="Short side before cropping (0: none).")
@click.option("--crop", type=int, default=224, show_default=True, help="Centre crop (0: none).")
def corrupt_cmd(data, out, corruptions, severities, seed, no_jpeg, workers, batch_size, param_set, resize, crop):
    """Write a corrupted copy of an image folder in the ImageNet-C layout (resumable)."""
    from robench.materialize import CorruptConfig, materialize

    counts = materialize(CorruptConfig(
        data=data, out=out, corruptions=tuple(corruptions), severities=tuple(severities) or (1, 2, 3, 4, 5),
        seed=seed, jpeg=not no_jpeg, workers=workers, batch_size=batch_size, param_set=param_set,
        resize=resize, crop=crop,
    ))
    click.echo(f"{counts['written']} images written, {counts['skipped']} already present, in {out}", err=True)


@cli.command("nightly")
@click.option("--out", type=click.Path(path_type=Path), default=Path("reports/nightly"), show_default=True)
@click.option("--reference", type=click.Path(path_type=Path), default=None,
              help="Published leaderboard to compare with (default: OUT/reference.csv).")
@click.option("--tolerance", type=float, default=0.5, show_default=True, help="Allowed drift, percentage points.")
@click.option("--ckpt", "models", multiple=True, help="Demo-scale models (default: demo-gap, demo-gcp).")
@click.option("--imagenet", type=click.Path(path_type=Path), default=None,
              help="ImageNet val ImageFolder: also run nightly-imagenet on --imagenet-ckpt models.")
@click.option("--imagenet-ckpt", "imagenet_models", multiple=True, help="Zoo models for the ImageNet subset.")
@click.option("--update-reference", is_flag=True, help="Publish tonight's leaderboard as the new reference.")
@click.option("--device", default="cpu", show_default=True)
def nightly_cmd(out, reference, tolerance, models, imagenet, imagenet_models, update_reference, device) -> None:
    """Regression subset on every available model; exit 1 when a metric drifts from the reference."""
    from robench.evaluate import DEMO_MODELS
    from robench.nightly import NightlyConfig, run_nightly
    from robench.report import to_markdown

    result = run_nightly(NightlyConfig(
        out=out, reference=reference, tolerance=tolerance, models=tuple(models) or DEMO_MODELS,
        imagenet=imagenet, imagenet_models=tuple(imagenet_models), update_reference=update_reference, device=device,
    ))
    click.echo(to_markdown(result.board, title="robench nightly"))
    if result.skipped:
        click.echo(f"skipped (weights not available): {', '.join(result.skipped)}", err=True)
    if result.drifts:
        click.echo("\n".join(result.drifts), err=True)
        raise DriftError(f"{len(result.drifts)} metric(s) drifted beyond {tolerance} points; see above.")
    click.echo("nightly: no drift", err=True)


def _list_models() -> list[str]:
    from robench.models import ARCHS, POOLINGS, list_cards

    lines = ["Zoo (model cards):"]
    lines += [f"  {c.name:<28} {c.arch:<20} {c.pooling}" for c in list_cards()]
    lines.append("Architectures (--arch, with --pool " + "|".join(POOLINGS.names()) + "):")
    lines += [f"  {a}" for a in ARCHS.names()]
    return lines


def _list_suites() -> list[str]:
    from robench.suites import list_suites

    return [f"{s.name:<20} {s.description}" for s in list_suites()]


def _list_corruptions() -> list[str]:
    from robench.corruptions import CORRUPTIONS

    return [f"{n:<20} {c.family.value:<8} {'test' if c.test else 'extra'}" for n, c in CORRUPTIONS.items()]


def _list_datasets() -> list[str]:
    from robench.data.sources import DATASETS

    return [f"{n:<22} {s.description}" for n, s in DATASETS.items()]


LISTINGS = {
    "models": _list_models,
    "suites": _list_suites,
    "corruptions": _list_corruptions,
    "datasets": _list_datasets,
}


@cli.command("list")
@click.argument("what", type=click.Choice(list(LISTINGS)))
def list_cmd(what: str) -> None:
    """List models, suites, corruptions or datasets."""
    for line in LISTINGS[what]():
        click.echo(line)


@cli.command("train-demo")
@click.option("--pool", type=click.Choice(["gap", "gcp"]), required=True)
@click.option("--data", type=click.Path(path_type=Path), default=None,
              help="Folder with the Fashion-MNIST IDX files (default: Debian's dataset-fashion-mnist).")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--out", type=click.Path(path_type=Path), default=None, help="Output folder (default: the zoo).")
def train_demo_cmd(pool: str, data: Path | None, seed: int, out: Path | None) -> None:
    """Reproduce a demo model from Fashion-MNIST (demo-gap / demo-gcp; other seeds as demo-<pool>-s<seed>)."""
    from robench.models.train_demo import train_demo

    result = train_demo(pool, data=data, seed=seed, out_dir=out)
    click.echo(result)


def main(argv: list[str] | None = None) -> int:
    """Entry point: user errors become one line on stderr and exit code 2."""
    try:
        cli.main(args=argv, prog_name="robench", standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("robench: interrupted; finished cells are kept in the store.", err=True)
        return 130
    except click.ClickException as e:
        e.show()
        return e.exit_code
    except DriftError as e:
        click.echo(f"robench: {e}", err=True)
        return 1
    except RobenchError as e:
        click.echo(f"robench: error: {_one_line(str(e))}", err=True)
        return 2
    except KeyboardInterrupt:
        click.echo("robench: interrupted; finished cells are kept in the store.", err=True)
        return 130
    except OSError as e:  # disk full, read-only or vanished output while writing files
        where = e.filename or "a file"
        click.echo(f"robench: error: cannot write {where} ({e.strerror or e}); free disk space or choose a writable "
                   "--out. Finished cells are kept in the store.", err=True)
        return 2
    return 0


def _one_line(message: str) -> str:
    """An error raised in a DataLoader worker arrives with the worker's traceback; keep its last line."""
    if "Original Traceback" in message:
        return message.strip().splitlines()[-1].split(": ", 1)[-1]
    return message


def run() -> None:
    """Console-script entry point."""
    sys.exit(main())
