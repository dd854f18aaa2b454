"""Write a landscape report folder: the CSV files, figures, a self-contained index.html and a headline."""

from __future__ import annotations

import json
import math
import os
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from robench.errors import InputError, MissingFileError
from robench.landscape.figures import write_figures
from robench.landscape.tables import Tables, matching, paired, summary, tables
from robench.landscape.train import ProtocolResult
from robench.report.html import render_html


def _fmt(v: float, digits: int = 3) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "–"
    return f"{v:.{digits}g}"


def headline(pairs: pd.DataFrame, match: pd.DataFrame) -> list[str]:
    """Markdown bullet lines: GAP vs GCP for the headline metrics (mean ± sd over seeds, paired 95 % interval)."""
    lines = []
    names = {
        "loss_band": "loss band width max_k ℓ_k − min_k ℓ_k (mean over probes)",
        "grad_diff_max": "gradient predictiveness max_k d_k (mean over probes)",
        "beta_eff": "β_eff (mean over probes)",
        "hessian_top": "top Hessian eigenvalue (mean over Hessian points)",
        "hessian_trace": "Hessian trace (mean over Hessian points)",
        "top1_lrnorm": "final test top-1 % with LRnorm",
        "top1_lrfast": "final test top-1 % with LRfast",
        "top1_lradju": "final test top-1 % with LRadju",
        "matching_epoch_lradju": "matching epoch with LRadju (first demo epoch ≥ GAP-LRnorm's final top-1)",
    }
    for _, r in pairs.iterrows():
        if r.metric not in names:
            continue
        def spread(m: float, s: float, many: bool = r.seeds > 1) -> str:
            return f"{_fmt(m)}" + (f" ± {_fmt(s, 2)}" if many else "")

        interval = f" [{_fmt(r.delta_lo)}, {_fmt(r.delta_hi)}]" if r.seeds > 1 else ""
        lines.append(f"- {names[r.metric]}: GAP {spread(r.gap_mean, r.gap_sd)}, GCP {spread(r.gcp_mean, r.gcp_sd)}; "
                     f"GCP − GAP {_fmt(r.delta)}{interval} ({r.seeds} seed{'s' if r.seeds != 1 else ''})")
    if not match.empty:
        never = match[(match.schedule == "lradju") & match.matching_epoch.isna()]
        for _, r in never.iterrows():
            lines.append(f"- seed {r.seed}: {r.pooling.upper()}-LRadju never reached GAP-LRnorm's final top-1 "
                         f"({r.target_top1:.2f} %; its own final {r.final_top1:.2f} %)")
    return lines


ROW_FILES = {"landscape": "landscape.csv", "probes": "probes.csv", "curvature": "curvature.csv",
             "convergence": "convergence.csv"}
META_FILE = "landscape.json"


def read_results(folders: Sequence[Path]) -> tuple[ProtocolResult, int | None, list[str]]:
    """Rows, epoch scale and notes of earlier report folders, concatenated (e.g. seeds or poolings run apart).

    Raises:
        MissingFileError: A folder without the report's CSV files.
        InputError: Folders written with different epoch scales, or repeating a model.
    """
    result, scales, notes = ProtocolResult(), set(), []
    for folder in folders:
        folder = Path(folder)
        if not (folder / ROW_FILES["landscape"]).is_file():
            raise MissingFileError(f"{folder} holds no landscape.csv; pass folders written by robench landscape/train.")
        for attr, name in ROW_FILES.items():
            frame = pd.read_csv(folder / name)
            getattr(result, attr).extend(frame.to_dict("records"))
        meta = json.loads((folder / META_FILE).read_text(encoding="utf-8")) if (folder / META_FILE).is_file() else {}
        scales.add(meta.get("scale"))
        notes += [n for n in meta.get("notes", []) if n not in notes]
    if len(scales) > 1:
        raise InputError(f"The folders were written with different epoch scales ({sorted(map(str, scales))}).")
    probed = [(r["model"], r["step"]) for r in result.probes]
    trained = [(r["model"], r["schedule"], r["epoch"]) for r in result.convergence]
    if len(set(probed)) < len(probed) or len(set(trained)) < len(trained):
        raise InputError("The folders repeat a model (same pooling and seed); pass each run once.")
    return result, scales.pop() if scales else None, notes


def write_report(result: ProtocolResult, out: Path, *, title: str, notes: Sequence[str] = (),
                 scale: int | None = None) -> list[Path]:
    """Write ``landscape.csv``, ``probes.csv``, ``curvature.csv``, ``convergence.csv``, ``matching.csv``,
    ``summary.csv``, ``paired.csv``, ``headline.md``, ``landscape.json`` (scale, notes), ``figures/*.png`` and
    ``index.html`` into ``out``."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise InputError(f"Report folder {out} is an existing file; choose a folder for --out.")
    out.mkdir(parents=True, exist_ok=True)
    t = tables(result, scale)
    match = matching(t.convergence, scale)
    summ = summary(t)
    pairs = paired(summ, match)
    lines = headline(pairs, match)
    written: list[Path] = []

    def emit(name: str, text: str) -> None:
        path, tmp = out / name, out / f".{name}.tmp"
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, path)
        written.append(path)

    for name, frame in (("landscape.csv", t.landscape), ("probes.csv", t.probes), ("curvature.csv", t.curvature),
                        ("convergence.csv", t.convergence), ("matching.csv", match), ("summary.csv", summ),
                        ("paired.csv", pairs)):
        emit(name, frame.to_csv(index=False, float_format="%.6g"))
    emit(META_FILE, json.dumps({"scale": scale, "notes": list(notes)}, indent=1) + "\n")
    emit("headline.md", f"# {title}\n\n" + "\n".join([*lines, "", *[f"> {n}" for n in notes]]) + "\n")
    figures = write_figures(t, out / "figures")
    written.extend(figures)
    boards = {"landscape_paired": pairs, "landscape_summary": summ, "landscape_matching": match}
    emit("index.html", render_html(boards, figures, title=title, intro=[*notes, *[ln[2:] for ln in lines]]))
    return written


__all__ = ["Tables", "headline", "read_results", "write_report"]
