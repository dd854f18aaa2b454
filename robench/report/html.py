"""One self-contained static HTML page: sortable tables and embedded figures, no network access."""

from __future__ import annotations

import base64
import html
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from robench.report.display import readable
from robench.report.render import LEGEND

TITLES = {
    "overall": "Leaderboard",
    "paired": "GAP vs GCP (delta = GCP − GAP; [95 % interval], p, verdict)",
    "paired_corruptions": "GAP vs GCP per corruption cell (McNemar mid-p, Holm, Cohen's κ)",
    "groups": "Seed groups (mean ± sd over seeds)",
    "published": "Measured vs published (difference = measured − published)",
    "corruptions": "Per corruption",
    "severities": "Per severity (top-1 error %; ECE %, NLL, Brier)",
    "effective_robustness": "Effective robustness (accuracy above the logit-space line, points)",
    "paired_effective_robustness": "GAP vs GCP effective robustness (ER delta = GCP − GAP, points)",
    "perturbations": "Per perturbation (FP %, T5D)",
    "attacks": "Per attack (robust accuracy %)",
    "landscape_paired": "Optimisation landscape: GAP vs GCP (delta = GCP − GAP, paired by seed)",
    "landscape_summary": "Optimisation landscape per model (means over probe steps)",
    "landscape_matching": "Matching epoch (first epoch reaching GAP-LRnorm's final top-1)",
}

_CSS = """
body{font-family:system-ui,sans-serif;margin:2em;color:#222;max-width:1200px}
table{border-collapse:collapse;margin:1em 0;font-size:13px}
th,td{border:1px solid #ccc;padding:3px 8px;text-align:right}
th{background:#f0f0f0;cursor:pointer;user-select:none}
td:first-child,th:first-child{text-align:left}
th.asc::after{content:" \\25B2"} th.desc::after{content:" \\25BC"}
img{max-width:100%;border:1px solid #eee;margin:0.5em 0}
.legend{font-size:12px;color:#555}
.scroll{overflow-x:auto}
"""

# Click a header to sort by that column (numbers numerically, text alphabetically); click again to reverse.
_JS = """
function sortTable(th){
  const table=th.closest('table'), idx=[...th.parentNode.children].indexOf(th);
  const asc=!th.classList.contains('asc');
  table.querySelectorAll('th').forEach(h=>h.classList.remove('asc','desc'));
  th.classList.add(asc?'asc':'desc');
  const body=table.tBodies[0], rows=[...body.rows];
  const key=r=>{const t=r.cells[idx].dataset.v??r.cells[idx].textContent;const n=parseFloat(t);return isNaN(n)?t:n;};
  const cmp=(x,y)=>(typeof x==='number'&&typeof y==='number')?x-y:String(x).localeCompare(String(y));
  rows.sort((a,b)=>asc?cmp(key(a),key(b)):cmp(key(b),key(a)));
  rows.forEach(r=>body.appendChild(r));
}
document.querySelectorAll('th').forEach(th=>th.addEventListener('click',()=>sortTable(th)));
"""


def _cell(value: object, key: object = None) -> str:
    """One ``<td>``; numbers (or the number behind a text such as ``29.74 [29.1, 30.4]``) sort by ``data-v``."""
    key = value if key is None else key
    if isinstance(key, float):
        sort = "" if pd.isna(key) else repr(key)
        text = ("" if pd.isna(value) else f"{value:.2f}") if isinstance(value, float) else str(value)
        return f"<td data-v='{sort}'>{html.escape(text)}</td>"
    return f"<td>{html.escape(str(value))}</td>"


def table_html(board: pd.DataFrame, table_id: str, keys: pd.DataFrame | None = None) -> str:
    """A sortable table of ``board``; ``keys`` (the numeric board behind a readable one) gives the sort values."""
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in board.columns)
    raw = {c: list(keys[c]) for c in board.columns if keys is not None and c in keys.columns}
    rows = "".join(
        "<tr>" + "".join(_cell(v, float(raw[c][i]) if c in raw and _is_number(raw[c][i]) else None)
                         for c, v in zip(board.columns, row)) + "</tr>"
        for i, row in enumerate(board.itertuples(index=False)))
    table = f"<table id='{table_id}'><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>"
    return f"<div class='scroll'>{table}</div>"


def _is_number(value: object) -> bool:
    return isinstance(value, int | float | np.integer | np.floating) and not isinstance(value, bool)


def render_html(
    boards: Mapping[str, pd.DataFrame], figures: Sequence[Path], *, title: str = "robench", note: str = "",
    intro: Sequence[str] = (),
) -> str:
    """The page: ``intro`` paragraphs, each non-empty board as a sortable table, then the figures as embedded PNGs.

    ``note`` (how the bracketed intervals were computed) is printed under the leaderboard's legend.
    """
    parts = [f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>",
             f"<style>{_CSS}</style></head><body><h1>{html.escape(title)}</h1>"]
    parts += [f"<p class='legend'>{html.escape(line)}</p>" for line in intro]
    for kind, board in boards.items():
        if board.empty:
            continue
        parts.append(f"<h2>{html.escape(TITLES.get(kind, kind))}</h2>{table_html(readable(board), kind, board)}")
        legend = [f"<li>{html.escape(c)}: {html.escape(LEGEND[c])}</li>" for c in board.columns if c in LEGEND]
        if note and kind == "overall":
            legend.append(f"<li>{html.escape(note)}</li>")
        if legend and kind == "overall":
            parts.append(f"<ul class='legend'>{''.join(legend)}</ul>")
    if figures:
        parts.append("<h2>Figures</h2>")
    for png in figures:
        data = base64.b64encode(Path(png).read_bytes()).decode()
        parts.append(f"<figure><img id='fig-{png.stem}' alt='{png.stem}' src='data:image/png;base64,{data}'>"
                     f"<figcaption>{html.escape(png.stem.replace('_', ' '))}</figcaption></figure>")
    parts.append(f"<script>{_JS}</script></body></html>\n")
    return "".join(parts)
