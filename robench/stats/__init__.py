"""Statistics for comparing classifiers on the same images (see ``STATISTICS.md``).

* :mod:`robench.stats.binomial` — Wilson interval of one error rate.
* :mod:`robench.stats.bootstrap` — seeded, counter-based image bootstrap of per-cell rates and aggregates.
* :mod:`robench.stats.paired` — paired bootstrap deltas, McNemar exact / mid-p, Holm, Cohen's κ.
* :mod:`robench.stats.seeds` — mean ± sd across training seeds and the paired-by-seed t interval.
"""

from __future__ import annotations

from robench.stats.binomial import wilson
from robench.stats.bootstrap import Bootstrap, Interval, bca_interval, percentile_interval
from robench.stats.paired import bootstrap_p, cohen_kappa, holm, mcnemar
from robench.stats.seeds import SeedSummary, paired_t, seed_summary

__all__ = ["Bootstrap", "Interval", "SeedSummary", "bca_interval", "bootstrap_p", "cohen_kappa", "holm", "mcnemar",
           "paired_t", "percentile_interval", "seed_summary", "wilson"]
