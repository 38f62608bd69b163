"""Statistics on results: blinded-ranking tests (:mod:`~benchmark.stats.ranking`) and paired
method comparisons on metrics (:mod:`~benchmark.stats.comparisons`); ``bench stats`` handlers in
:mod:`~benchmark.stats.commands`.
"""

from benchmark.stats.comparisons import compare_methods, nmi_vs_ncc, summarize_metrics
from benchmark.stats.ranking import (
    RankingStats,
    analyze_rankings,
    kendall_w,
    read_rankings,
    validate_rankings,
)

__all__ = [
    "RankingStats",
    "analyze_rankings",
    "compare_methods",
    "kendall_w",
    "nmi_vs_ncc",
    "read_rankings",
    "summarize_metrics",
    "validate_rankings",
]
