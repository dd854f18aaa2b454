"""`robench eval` as a library function: plan cells, skip finished ones, evaluate, store, report."""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import platform
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Protocol

import torch
from torch import nn
from torch.utils.data import Dataset

import robench
from robench._dist import DistContext
from robench._progress import progress
from robench.attacks.cascade import cascade_order, cascaded, previous_cell
from robench.data.batches import iter_batches
from robench.data.selection import Selection, dataset_selection
from robench.data.sources import open_dataset
from robench.errors import InputError
from robench.kinds import CELL_KINDS, Batch, Counts, add_counts, scoring_of
from robench.models.inference import for_inference
from robench.outcomes import concat
from robench.resolution import at_model_resolution, protocol_record
from robench.store import CellKey, CellRecord, ModelRecord, Store, exclusive
from robench.suites import Item, Suite, load_suite

log = logging.getLogger(__name__)

DEMO_MODELS = ("demo-gap", "demo-gcp")
STORE_NAME = "results.sqlite"


AMP_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


class Autocast(nn.Module):
    """Runs the wrapped model under autocast (the GCP square root keeps itself in float32)."""

    def __init__(self, module: nn.Module, device_type: str, dtype: torch.dtype) -> None:
        super().__init__()
        self.module, self.device_type, self.dtype = module, device_type, dtype

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        with torch.autocast(self.device_type, dtype=self.dtype):
            return self.module(x)


class ModelLike(Protocol):
    """What the evaluator needs of a loaded model (``robench.models.ResolvedModel`` fits)."""

    name: str
    arch: str
    pooling: str
    num_classes: int
    sha256: str
    module: nn.Module


@dataclass(frozen=True)
class EvalConfig:
    """Options of one `robench eval` run (see ``robench eval --help``)."""

    ckpts: tuple[str, ...] = ()
    """Empty: the suite's ``models``, else :data:`DEMO_MODELS`."""
    arch: str | None = None
    pool: str | None = None
    suite: str = "demo"
    data: Path | None = None
    limit: int | None = None
    subset: Path | None = None
    out: Path = Path("robench-out")
    batch_size: int = 256
    workers: int = 0
    device: str = "cpu"
    seed: int | None = None
    fresh: bool = False
    amp: str | None = None
    on_bad_image: str = "error"
    weights: Path | None = None
    """Weights file of a ``timm:``/``tv:``/``hf-hub:`` model (one ``--ckpt`` only)."""


@dataclass
class EvalSummary:
    store: Path
    reused: int = 0
    computed: int = 0
    stale: int = 0
    written: list[Path] = field(default_factory=list)


def _card_dict(model: ModelLike) -> dict[str, Any]:
    """The model card as plain data for the store (``{}`` for a bare checkpoint)."""
    card = getattr(model, "card", None)
    return {} if card is None else card.to_dict()


def suite_definition(suite: Suite) -> dict[str, Any]:
    """What reports need to know about a suite, recorded in the store."""
    base = suite.baseline
    return {
        "param_set": suite.param_set,
        "items": [[i.kind, i.name, list(i.levels)] for i in suite.items],
        "test_corruptions": suite.test_corruptions(),
        "test_perturbations": suite.test_perturbations(),
        "attacks": {i.name: {"eps": i.settings["eps_text"], "norm": i.settings["norm"],
                             "settings": i.settings["attack"]} for i in suite.items if i.kind == "attack"},
        "attack_cascade": any(cascaded(i) for i in suite.items),
        "baseline": None if base is None else {
            "name": base.name, "clean_error": base.clean_error, "errors": {k: list(v) for k, v in base.errors.items()},
        },
    }


def cell_config(
    model: ModelLike, suite: Suite, item: Item, level: int, fingerprint: str, n: int, cfg: EvalConfig,
    selection: str | None = None,
) -> str:
    """Hash of everything that determines a cell's counts; a stored cell is reused only on a match.

    ``selection`` identifies the images when they are not the whole dataset (:meth:`Selection.key`);
    it is left out for the whole dataset, so such cells stored by earlier versions stay valid.
    """
    parts = {
        "robench": robench.__version__,
        "ckpt": model.sha256,
        "data": fingerprint,
        "n": n,
        "kind": item.kind,
        "item": item.name,
        "level": level,
        "settings": dict(item.settings),
        "inputs": CELL_KINDS.get(item.kind).inputs(item, level, suite),
        "amp": cfg.amp,
        "on_bad_image": cfg.on_bad_image,
    }
    if selection is not None:
        parts["selection"] = selection
    if suite.protocol.resolution != "official":  # official cells keep the hashes of earlier versions
        parts["protocol"] = protocol_record(suite)
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:20]


def _provenance(cfg: EvalConfig, model: ModelLike, suite: Suite, fingerprint: str, world: int) -> dict[str, Any]:
    return {
        "processes": world,
        "robench": robench.__version__,
        "torch": torch.__version__,
        "python": platform.python_version(),
        "device": str(cfg.device),
        "seed": suite.seed,
        "amp": cfg.amp,
        "ckpt_sha256": model.sha256,
        "dataset": fingerprint,
        "scoring": scoring_of(suite).name,
        "time": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "protocol": protocol_record(suite),
        **({"preprocessing": pre.to_dict()} if (pre := getattr(model, "preprocessing", None)) is not None else {}),
    }


def load_models(cfg: EvalConfig) -> list[ModelLike]:
    from robench.models import resolve_model

    if cfg.weights is not None and len(cfg.ckpts) != 1:
        raise InputError("--weights goes with exactly one --ckpt (a timm:, tv: or hf-hub: model).")
    models = [resolve_model(c, cfg.arch, cfg.pool, device=cfg.device, weights=cfg.weights) for c in cfg.ckpts]
    names = [m.name for m in models]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise InputError(f"Two checkpoints are both named {', '.join(dupes)}; rename one of the files.")
    return models


def run_eval(cfg: EvalConfig, *, models: Sequence[ModelLike] | None = None) -> EvalSummary:
    """Evaluate ``cfg.ckpts`` (or ``models``) on ``cfg.suite``, resuming from the store in ``cfg.out``.

    Raises:
        RobenchError: any user-caused problem (paths, names, checkpoints, NaN logits);
            cells finished before the error stay in the store.
    """
    if cfg.batch_size < 1:
        raise InputError(f"--batch-size must be at least 1, got {cfg.batch_size}.")
    if cfg.workers < 0:
        raise InputError(f"--workers must be 0 (load in this process) or more, got {cfg.workers}.")
    if cfg.amp is not None and cfg.amp not in AMP_DTYPES:
        raise InputError(f"--amp {cfg.amp!r} is not supported; use one of {', '.join(AMP_DTYPES)} or leave it out.")
    suite = load_suite(cfg.suite)
    if not cfg.ckpts:
        cfg = replace(cfg, ckpts=suite.models or DEMO_MODELS)
    if cfg.seed is not None:
        suite = _with_seed(suite, cfg.seed)
    device, ctx = _device(cfg.device)
    store_path = Path(cfg.out) / STORE_NAME
    summary = EvalSummary(store=store_path)
    with contextlib.ExitStack() as stack:
        if ctx.is_main:  # take the writer lock first: a second run fails before any work
            stack.enter_context(exclusive(store_path))
        if models is None and suite.protocol.resolution == "model":
            models = load_models(cfg)  # their preprocessing prepares the images
        if models is not None:
            suite = at_model_resolution(suite, models)
        ds = open_dataset(suite.dataset, cfg.data, suite.protocol, on_bad=cfg.on_bad_image)
        selection = dataset_selection(ds, limit=cfg.limit if cfg.limit is not None else suite.limit,
                                      subset=cfg.subset if cfg.subset is not None else suite.subset)
        n = selection.size
        fingerprint = ds.fingerprint
        if models is None:
            models = load_models(cfg)
        nets = _placed(models, device, cfg.amp, len(ds.classes))
        store = None
        if ctx.is_main:
            store = stack.enter_context(Store(store_path))
            store.put_suite(suite.name, suite_definition(suite))
            store.put_dataset(fingerprint, getattr(ds, "paths", None) or [str(i) for i in range(len(ds))])
            for m in models:
                store.put_model(ModelRecord(m.name, m.arch, m.pooling, m.num_classes, m.sha256, _card_dict(m)))
                if cfg.fresh:
                    store.delete_model_suite(m.name, suite.name)
            plan = _plan(store, models, suite, fingerprint, selection, summary, cfg)
            log.info(
                "%s: %d cells finished earlier and reused, %d to compute%s%s",
                suite.name, summary.reused, sum(len(p[2]) for p in plan),
                f" ({summary.stale} stale: other data, seed, checkpoint, settings or robench revision)"
                if summary.stale else "",
                f" on {ctx.world} processes" if ctx.world > 1 else "",
            )
        # Ranks agree on the plan by position: (item index, level, model indices), and on the survivors of
        # stored cells that cascaded cells of the plan continue from.
        plan_ids, survivors = ctx.broadcast(
            ([(suite.items.index(i), lv, [models.index(m) for m in ms]) for i, lv, ms in plan],
             _stored_survivors(store, plan, suite)) if ctx.is_main else None
        )
        shards = {i: ctx.shard(selection.indices(item_size(suite.items[i], n))) for i, _, _ in plan_ids}
        n_images = sum(len(shards[i]) for i, _, _ in plan_ids)
        with progress(total=n_images, desc=f"eval {suite.name}", unit="img", disable=not ctx.is_main) as bar:
            for item_id, level, model_ids in plan_ids:
                item, pending = suite.items[item_id], [models[i] for i in model_ids]
                item_n = item_size(item, n)
                bar.set_postfix_str(f"{item.name} {level}" if item.kind != "clean" else "clean")
                before = _robust_before(survivors, pending, suite, item, level)
                totals = _run_cell(ds, shards[item_id], [nets[m.name] for m in pending], item, level, suite,
                                   cfg, device, bar, before)
                totals = ctx.reduce(totals, lambda a, b: [add_counts(x, y) if y else x for x, y in zip(a, b)])
                if any(t is None for t in totals):
                    raise InputError(f"No readable images for {item.name} {level}; check --data.")
                if cascaded(item):
                    survivors.update({(m.name, item.name, level): frozenset(t["robust_idx"])
                                      for m, t in zip(pending, totals)})
                if store is not None:
                    store.put_cells(
                        CellRecord(
                            CellKey(m.name, suite.name, item.kind, item.name, level),
                            cell_config(m, suite, item, level, fingerprint, item_n, cfg, selection.key(item_n)),
                            item_n - t["skipped"], counts, _provenance(cfg, m, suite, fingerprint, ctx.world),
                            per_image,
                        )
                        for m, t in zip(pending, totals)
                        for counts, per_image in [split_outcomes(t)]
                    )
                summary.computed += len(pending)
        if store is not None:
            _log_missing_outcomes(store, models, suite)
        ctx.barrier()
    return summary


def _log_missing_outcomes(store: Store, models: Sequence[ModelLike], suite: Suite) -> None:
    """One line when reused cells (from a schema-1 store) lack the per-image outcomes intervals need."""
    missing = sum(len(store.cells_without_outcomes(m.name, suite.name)) for m in models)
    if missing:
        log.info(
            "%s: %d stored cells have no per-image outcomes (computed by an older robench); their point "
            "estimates are kept but intervals, paired tests and `robench export` skip them; rerun with --fresh "
            "to recompute them", suite.name, missing,
        )
    uncalibrated = sum(len(store.cells_without_calibration(m.name, suite.name)) for m in models)
    if uncalibrated:
        log.info("%s: %d stored cells have no calibration terms (computed before store schema 3); their ECE / "
                 "NLL / Brier stay blank; rerun with --fresh to compute them", suite.name, uncalibrated)


def split_outcomes(totals: Counts) -> tuple[Counts, dict[str, Any] | None]:
    """A cell's summed counts without, and its per-image outcomes joined and sorted by dataset index."""
    counts = {k: v for k, v in totals.items() if k != "outcomes"}
    parts = totals.get("outcomes")
    return counts, (concat(parts) if parts else None)


def _stored_survivors(
    store: Store, plan: Sequence[tuple[Item, int, list[ModelLike]]], suite: Suite
) -> dict[tuple[str, str, int], frozenset[int]]:
    """Robust images of the stored (reused) cells that cascaded cells of ``plan`` continue from."""
    planned = {(m.name, i.name, lv) for i, lv, ms in plan for m in ms}
    out: dict[tuple[str, str, int], frozenset[int]] = {}
    for item, level, pending in plan:
        prev = previous_cell(suite.items, item, level)
        if prev is None:
            continue
        for m in pending:
            key = (m.name, prev[0].name, prev[1])
            if key in planned or key in out:
                continue
            o = store.outcomes(m.name, suite.name).get(("attack", *key[1:]))
            if o is None:
                raise InputError(
                    f"The stored cell {key[1]} level {key[2]} of {m.name} on {suite.name} has no per-image outcomes, "
                    "which the attack cascade continues from; rerun with --fresh."
                )
            out[key] = frozenset(o["index"][o["robust"]].tolist())
    return out


def _robust_before(
    survivors: dict[tuple[str, str, int], frozenset[int]], pending: Sequence[ModelLike], suite: Suite, item: Item,
    level: int,
) -> list[frozenset[int] | None] | None:
    """Per pending model, the images still robust before a cascaded cell (``None``: attack all)."""
    prev = previous_cell(suite.items, item, level)
    if prev is None:
        return None
    return [survivors[(m.name, prev[0].name, prev[1])] for m in pending]


def _run_cell(
    ds: Dataset, indices: list[int], nets: list[nn.Module], item: Item, level: int, suite: Suite,
    cfg: EvalConfig, device: torch.device, bar: Any, robust_before: list[frozenset[int] | None] | None = None,
) -> list[Counts | None]:
    """This process's summed counts of one (item, level) for each model (``None`` for an empty shard).

    A released dataset (a source with ``cell_view``) supplies each cell's already-transformed images;
    ``robust_before`` (cascaded attack cells): per model, the images earlier cells left robust.
    """
    kind = CELL_KINDS.get(item.kind)
    view = getattr(ds, "cell_view", None)
    source = ds if view is None else view(item, level)
    totals: list[Counts | None] = [None] * len(nets)
    skipped = 0
    for x, y, chunk, bad in iter_batches(source, indices, cfg.batch_size, cfg.workers, device.type == "cuda"):
        skipped += bad
        bar.update(len(chunk) + bad)
        if not chunk:
            continue
        x = x.to(device, non_blocking=True).float().div_(255.0)
        batch = Batch(x, y.to(device), chunk, released=view is not None, robust_before=robust_before)
        counts = kind.evaluate(nets, batch, item, level, suite)
        totals = [add_counts(t, c) for t, c in zip(totals, counts)]
    return [None if t is None else {**t, "skipped": skipped} for t in totals]


def _device(name: str) -> tuple[torch.device, DistContext]:
    """The evaluation device (each torchrun rank takes its LOCAL_RANK GPU) and the process group."""
    try:
        device = torch.device(name)
        torch.empty(0, device=device)
    except (RuntimeError, AssertionError) as e:
        raise InputError(f"Device {name!r} is not usable here ({e}); use --device cpu.") from None
    ctx = DistContext.from_env(device)
    if ctx.world > 1 and device.type == "cuda" and device.index is None:
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
    return device, ctx


def _placed(
    models: Sequence[ModelLike], device: torch.device, amp: str | None, data_classes: int
) -> dict[str, nn.Module]:
    """Each model's inference form on ``device`` (:func:`~robench.models.inference.for_inference`:
    BN folded and channels-last on the CPU, channels-last on GPUs), optionally under autocast."""
    nets: dict[str, nn.Module] = {}
    for m in models:
        if m.num_classes < data_classes:
            raise InputError(
                f"Model {m.name} has {m.num_classes} classes but the data has {data_classes}; "
                "pick a matching checkpoint or --data."
            )
        net = for_inference(m.module, device, rewrite=not getattr(m, "source", ""))  # library models: plain
        nets[m.name] = net if amp is None else Autocast(net, device.type, AMP_DTYPES[amp]).eval()
        nets[m.name].robench_name = f"model {m.name}"  # named in errors such as NaN logits
    return nets


def item_size(item: Item, n: int) -> int:
    """Images evaluated for ``item``: the run's ``n``, or fewer where the suite caps the item.

    The item's images are the first ``item_size`` of the run's balanced order (a subset of the run's).
    """
    cap = item.settings.get("limit")
    return n if cap is None else min(n, int(cap))


def _plan(store: Store, models: Sequence[ModelLike], suite: Suite, fingerprint: str, selection: Selection,
          summary: EvalSummary, cfg: EvalConfig) -> list[tuple[Item, int, list[ModelLike]]]:
    """Cells still to compute, grouped by (item, level) so all models share one transformed batch."""
    done = {m.name: store.configs(m.name, suite.name) for m in models}
    plan = []
    for item, level in _cell_order(suite):
        pending = []
        for m in models:
            stored = done[m.name].get(CellKey(m.name, suite.name, item.kind, item.name, level))
            item_n = item_size(item, selection.size)
            config = cell_config(m, suite, item, level, fingerprint, item_n, cfg, selection.key(item_n))
            if stored == config:
                summary.reused += 1
                continue
            summary.stale += stored is not None
            pending.append(m)
        if pending:
            plan.append((item, level, pending))
    return plan


def _cell_order(suite: Suite) -> list[tuple[Item, int]]:
    """Every (item, level) of the suite in evaluation order: suite order, except that the cascaded
    attack cells run in cascade order (eps ascending, then attack order) where the first of them stands."""
    order: list[tuple[Item, int]] = []
    for item in suite.items:
        if not cascaded(item):
            order.extend((item, level) for level in item.levels)
        elif not any(cascaded(i) for i, _ in order):
            order.extend(cascade_order(suite.items))
    return order


def _with_seed(suite: Suite, seed: int) -> Suite:
    return replace(suite, seed=seed)
