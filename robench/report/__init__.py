"""Reports from the result store: tidy results, leaderboards, paired GAP-vs-GCP tables, figures, HTML.

Nothing here recomputes a model output: every number derives from the stored counts.
"""

from __future__ import annotations

from robench.report.render import to_markdown, write_reports
from robench.report.tables import LEADERBOARDS, leaderboard, load_results

__all__ = ["LEADERBOARDS", "leaderboard", "load_results", "to_markdown", "write_reports"]
