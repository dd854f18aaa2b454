"""The `robench` command line: thin wrappers that parse options and call one library function each."""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import click

from robench._progress import set_quiet
from robench.errors import DriftError, InputError, RobenchError

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
@click.option("--weights", type=click.Path(path_type=Path), default=None, metavar="FILE",
              help="Weights file for a --ckpt timm:NAME / tv:NAME[.WEIGHTS] / hf-hub:ORG/NAME model.")
def eval_cmd(ckpts, arch, pool, suite, data, limit, subset, out, batch_size, workers, device, seed, fresh, amp,
             baseline, on_bad_image, weights) -> None:
    """Evaluate models on a suite, resuming finished cells, and write the leaderboard."""
    from robench.evaluate import EvalConfig, run_eval
    from robench.report import write_reports

    cfg = EvalConfig(
        ckpts=tuple(ckpts), arch=arch, pool=pool, suite=suite, data=data, limit=limit, subset=subset,
        out=out, batch_size=batch_size, workers=workers, device=device, seed=seed, fresh=fresh, amp=amp,
        on_bad_image=on_bad_image, weights=weights,
    )
    summary = run_eval(cfg)
    written = write_reports(summary.store, out, baseline=baseline)
    # The leaderboard just written (resampling the intervals again for the terminal would double the cost).
    click.echo((Path(out) / "leaderboard.md").read_text(encoding="utf-8"))
    click.echo(f"{summary.computed} cells computed, {summary.reused} reused. Wrote "
               + ", ".join(str(p) for p in [summary.store, *written]), err=True)


@cli.command("leaderboard")
@click.option("--store", type=click.Path(path_type=Path), required=True, help="A results.sqlite file.")
@click.option("--out", type=click.Path(path_type=Path), default=None,
              help="Folder for leaderboard.md/csv, results.csv, paired tables, figures, index.html (default: print).")
@click.option("--kind", default="overall", show_default=True,
              help="Table to print: overall, paired, paired_corruptions, groups, corruptions, severities, "
              "perturbations, attacks, published, reliability, effective_robustness, paired_effective_robustness, "
              "cells.")
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
    from robench.models.sources import SOURCES

    lines = ["Zoo (model cards):"]
    lines += [f"  {c.name:<28} {c.arch:<20} {c.pooling}" for c in list_cards()]
    lines.append("Architectures (--arch, with --pool " + "|".join(POOLINGS.names()) + "):")
    lines += [f"  {a}" for a in ARCHS.names()]
    lines.append("Model sources (--ckpt PREFIX:NAME, weights from the library's cache or --weights FILE):")
    lines += [f"  {s.example:<32} {s.description}" for _, s in SOURCES.items()]
    return lines


def _describe_model(ckpt: str, weights: Path | None) -> list[str]:
    """What `--ckpt X` resolves to, without downloading anything."""
    from robench.models import resolve_model

    m = resolve_model(ckpt, download=False, weights=weights)
    pre = m.preprocessing
    lines = [f"{m.name}: {m.arch}, pooling {m.pooling}, {m.num_classes} classes",
             f"  weights        {m.path} ({m.format}, sha256 {m.sha256[:16]}…)"]
    if pre is not None:
        lines += [f"  preprocessing  {pre.describe()}",
                  f"  native size    {pre.input_size} px; resize {pre.resize or '-'}, crop {pre.crop or '-'}, "
                  f"interpolation {pre.interpolation}" + (f", crop_pct {pre.crop_pct:g}" if pre.crop_pct else "")]
    return lines


def _list_suites() -> list[str]:
    from robench.suites import list_suites

    return [f"{s.name:<20} {s.description}" for s in list_suites()]


def _list_corruptions() -> list[str]:
    from robench.corruptions import CORRUPTIONS
    from robench.corruptions.catalog import RELEASED_CORRUPTIONS

    return [f"{n:<20} {c.family.value:<8} {'test' if c.test else 'extra'}" for n, c in CORRUPTIONS.items()] + [
        f"{n:<26} released only: {c.dataset}" for n, c in RELEASED_CORRUPTIONS.items()]


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
@click.option("--ckpt", default=None, metavar="MODEL",
              help="With `models`: show what this zoo name, file or timm:/tv:/hf-hub: model resolves to.")
@click.option("--weights", type=click.Path(path_type=Path), default=None, metavar="FILE",
              help="Weights file for a timm:/tv:/hf-hub: --ckpt.")
def list_cmd(what: str, ckpt: str | None, weights: Path | None) -> None:
    """List models, suites, corruptions or datasets (`list models --ckpt X`: one model's preprocessing)."""
    if ckpt is not None and what != "models":
        raise InputError("--ckpt goes with `robench list models`.")
    for line in _describe_model(ckpt, weights) if ckpt is not None else LISTINGS[what]():
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



def _grid(name: str | None, eta_min: float | None, eta_max: float | None, points: int | None):
    """The step grid from --grid (a ``GRIDS`` name) and the explicit overrides, or ``None`` for the default."""
    from robench.landscape.probes import GRIDS, Grid

    if name is None and eta_min is None and eta_max is None and points is None:
        return None
    base = GRIDS.get(name or "demo")
    return Grid(base.start if eta_min is None else eta_min, base.stop if eta_max is None else eta_max,
                base.points if points is None else points, base.description)


@cli.command("landscape")
@click.option("--ckpt", "ckpts", multiple=True, metavar="PATH_OR_ZOO_NAME",
              help="Probe these models at their weights (default: demo-gap and demo-gcp).")
@click.option("--train", "train_mode", is_flag=True,
              help="Train GAP/GCP demo twins and probe them while they train (the paper's protocol).")
@click.option("--preset", default="quick", show_default=True, help="--train preset: quick or paper.")
@click.option("--data", type=click.Path(path_type=Path), default=None,
              help="Training images: Fashion-MNIST IDX folder (demo) or an ImageFolder root (ImageNet models).")
@click.option("--limit", type=int, default=None, help="Checkpoints: images probed in total (default: one batch).")
@click.option("--batch-size", type=int, default=None, help="Probe minibatch (default 128; --train: the preset's).")
@click.option("--space", type=click.Choice(["activation", "weights"]), default="activation", show_default=True,
              help="activation: stem output along +g (GCP code); weights: all weights along −G (Santurkar et al.).")
@click.option("--grid", default=None, help="Step grid: demo, resnet18, resnet18-v1, mobilenet_v2, santurkar.")
@click.option("--eta-min", type=float, default=None, help="Override the grid's first step.")
@click.option("--eta-max", type=float, default=None, help="Override the grid's last step.")
@click.option("--points", type=int, default=None, help="Override the grid's number of steps (50).")
@click.option("--no-curvature", is_flag=True, help="Skip the Hessian eigenvalue/trace probes.")
@click.option("--seed", "seeds", type=int, multiple=True, help="Seed(s) (default 0); --train pairs GAP/GCP by seed.")
@click.option("--schedule", "schedules", multiple=True, help="--train: schedules (default: the preset's).")
@click.option("--arch", default=None, help="Architecture of a checkpoint file without a card.")
@click.option("--pool", "pools", type=click.Choice(["gap", "gcp"]), multiple=True,
              help="Pooling of a checkpoint file; with --train the twins to train (default: both).")
@click.option("--from", "sources", multiple=True, type=click.Path(path_type=Path),
              help="Combine earlier output folders (e.g. seeds run apart) into one report; computes nothing.")
@click.option("--device", default="cpu", show_default=True)
@click.option("--out", type=click.Path(path_type=Path), default=Path("robench-landscape"), show_default=True)
def landscape_cmd(ckpts, train_mode, preset, data, limit, batch_size, space, grid, eta_min, eta_max, points,
                  no_curvature, seeds, schedules, arch, pools, sources, device, out) -> None:
    """Loss-landscape, gradient-predictiveness, β_eff and Hessian probes of GAP/GCP models (LANDSCAPE.md)."""
    from robench.errors import InputError
    from robench.landscape.report import read_results, write_report

    steps = _grid(grid, eta_min, eta_max, points)
    if sources:
        if train_mode or ckpts:
            raise InputError("--from combines finished folders; drop --train/--ckpt.")
        result, scale, notes = read_results(sources)
    elif train_mode:
        from robench.landscape.train import PRESET_NOTES, PRESETS, load_fashion_mnist, run_protocol, with_overrides

        if ckpts or limit is not None or arch:
            raise InputError("--train trains its own demo twins; drop --ckpt/--limit/--arch.")
        from robench.landscape.probes import GRIDS, SPACES

        if steps is None and space != PRESETS.get(preset).space:
            steps = GRIDS.get(SPACES.get(space).grid)
        cfg = with_overrides(PRESETS.get(preset), batch_size=batch_size, space=space, grid=steps,
                             schedules=tuple(schedules) or None, curvature_every=0 if no_curvature else None)
        result = run_protocol(cfg, load_fashion_mnist(data, cfg.eval_images), seeds=tuple(seeds) or (0,),
                              pools=tuple(pools) or ("gap", "gcp"))
        notes = [f"robench landscape --train --preset {preset}: {PRESET_NOTES[preset]}."]
        scale = cfg.epoch_scale
    else:
        from robench.landscape.at_weights import AtWeightsConfig, probe_checkpoints

        if len(seeds) > 1 or schedules or len(pools) > 1:
            raise InputError("--schedule and several --seed or --pool values need --train.")
        cfg = AtWeightsConfig(ckpts=tuple(ckpts) or ("demo-gap", "demo-gcp"), data=data, limit=limit,
                              batch_size=batch_size or 128, space=space, grid=steps, curvature=not no_curvature,
                              seed=seeds[0] if seeds else 0, arch=arch, pool=pools[0] if pools else None,
                              device=device)
        result = probe_checkpoints(cfg)
        notes = [f"Probes at given weights on {cfg.limit or cfg.batch_size} training images in minibatches of "
                 f"{cfg.batch_size} (BN in train mode: a probe is defined per minibatch)."]
        scale = None
    written = write_report(result, out, title="robench landscape", notes=notes, scale=scale)
    click.echo((out / "headline.md").read_text(encoding="utf-8"))
    click.echo(f"Wrote {len(written)} files to {out}", err=True)


@cli.command("train")
@click.option("--pool", "pools", type=click.Choice(["gap", "gcp"]), multiple=True,
              help="Pooling(s) to train (default: both, as twins).")
@click.option("--schedule", "schedules", multiple=True, help="lrnorm, lrfast, lradju (default: all three).")
@click.option("--seed", "seeds", type=int, multiple=True, help="Seed(s) (default 0).")
@click.option("--data", type=click.Path(path_type=Path), default=None,
              help="Folder with the Fashion-MNIST IDX files (default: Debian's dataset-fashion-mnist).")
@click.option("--steps-per-epoch", type=int, default=None, help="Steps of one demo epoch (default 10).")
@click.option("--epoch-scale", type=int, default=None, help="Paper epochs per demo epoch (default 5).")
@click.option("--max-epochs", type=int, default=None, help="Stop every run after this many demo epochs.")
@click.option("--batch-size", type=int, default=None, help="Minibatch (default 128).")
@click.option("--save-weights", is_flag=True, help="Also write each run's final weights (safetensors).")
@click.option("--out", type=click.Path(path_type=Path), default=Path("robench-train"), show_default=True)
def train_cmd(pools, schedules, seeds, data, steps_per_epoch, epoch_scale, max_epochs, batch_size, save_weights,
              out) -> None:
    """Train GAP/GCP demo twins under the paper's schedules; report top-1 per epoch and the matching epoch."""
    from robench.landscape.report import write_report
    from robench.landscape.train import PRESETS, load_fashion_mnist, run_protocol, save_weights_to, with_overrides

    cfg = with_overrides(PRESETS.get("quick"), schedules=tuple(schedules) or None, steps_per_epoch=steps_per_epoch,
                         epoch_scale=epoch_scale, max_epochs=max_epochs, batch_size=batch_size)
    result = run_protocol(cfg, load_fashion_mnist(data, cfg.eval_images), seeds=tuple(seeds) or (0,),
                          pools=tuple(pools) or ("gap", "gcp"), probes=False, desc="train")
    notes = [f"robench train: batch {cfg.batch_size}, demo epoch = {cfg.steps_per_epoch} steps = {cfg.epoch_scale} "
             "paper epochs; SGD momentum 0.9, weight decay 1e-4; top-1 on the shipped 2,000-image test subset."]
    written = write_report(result, out, title="robench train", notes=notes, scale=cfg.epoch_scale)
    if save_weights:
        written += save_weights_to(result, out)
    click.echo((out / "headline.md").read_text(encoding="utf-8"))
    click.echo(f"Wrote {len(written)} files to {out}", err=True)

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
