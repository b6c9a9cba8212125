"""eval: route a split with any router, grade BFCL-style, score noise-aware with intervals, compare, report.

Public API (torch is imported only when an LLM student is loaded; numpy and sqlite-utils on import):

- :func:`run_eval` / :func:`score_run` / :func:`list_eval_runs` / :func:`leaderboard`: eval runs stored in the
  database, with reports under ``runs/<id>/``, and several of them side by side;
- :func:`score_files`: a predictions file against a gold file (routers built elsewhere);
- :func:`compare_runs` / :func:`compare_grades` / :func:`mcnemar`: paired comparison of two routers;
- :func:`parse_output`, :func:`grade`, :func:`compute_metrics`: the pieces, for library users;
- :class:`Router`, :class:`RouterSpec`, :func:`get_router`, :class:`KeywordRouter`, :class:`MajorityRouter`,
  :func:`make_baseline`: routers and baselines;
- :func:`label_views`, :func:`label_error_estimate`: the noise-aware view.
"""

from .baselines import BASELINES, KeywordRouter, MajorityRouter, make_baseline
from .compare import compare_grades, compare_runs, mcnemar
from .grade import ERROR_TYPES, Acceptable, Grade, acceptable_from_meta, grade, values_match
from .metrics import HEADLINE, RATE_NAMES, compute_metrics, format_rate, ratio_intervals
from .noise import VIEWS, label_error_estimate, label_views, wilson_interval
from .parse import Parsed, parse_output
from .routers import Router, RouterSpec, get_router, get_run
from .runner import leaderboard, list_eval_runs, run_eval, score_run
from .score import score_files

__all__ = [
    "BASELINES", "KeywordRouter", "MajorityRouter", "make_baseline",
    "compare_grades", "compare_runs", "mcnemar",
    "ERROR_TYPES", "Acceptable", "Grade", "acceptable_from_meta", "grade", "values_match",
    "HEADLINE", "RATE_NAMES", "compute_metrics", "format_rate", "ratio_intervals",
    "VIEWS", "label_error_estimate", "label_views", "wilson_interval",
    "Parsed", "parse_output",
    "Router", "RouterSpec", "get_router", "get_run",
    "leaderboard", "list_eval_runs", "run_eval", "score_run", "score_files",
]
