"""Optimisation-landscape probes of the GCP paper (Wang et al., CVPR 2020), LANDSCAPE.md.

- :mod:`~robench.landscape.probes`: loss-landscape / gradient-predictiveness bands and β_eff
  (activation space as the official code; weight space as Santurkar et al.);
- :mod:`~robench.landscape.curvature`: top Hessian eigenvalue and trace;
- :mod:`~robench.landscape.schedules`: LRnorm / LRfast / LRadju;
- :mod:`~robench.landscape.train`: GAP/GCP twins trained and probed (``robench landscape --train``,
  ``robench train``); :mod:`~robench.landscape.at_weights`: probes of given checkpoints;
- :mod:`~robench.landscape.report`: CSVs, figures, index.html, headline.
"""

from __future__ import annotations

from robench.landscape.curvature import hutchinson_trace, top_eigenvalue
from robench.landscape.probes import GRIDS, SPACES, Grid, ProbeResult, activation_probe, weight_probe
from robench.landscape.schedules import SCHEDULES, ScaledSchedule, Schedule
from robench.landscape.split import SPLITS, StemSplit

__all__ = [
    "GRIDS",
    "SCHEDULES",
    "SPACES",
    "SPLITS",
    "Grid",
    "ProbeResult",
    "ScaledSchedule",
    "Schedule",
    "StemSplit",
    "activation_probe",
    "hutchinson_trace",
    "top_eigenvalue",
    "weight_probe",
]
