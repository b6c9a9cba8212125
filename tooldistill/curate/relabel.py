"""Relabel: turn audit flags into relabel jobs in the distill queue (a stronger model and/or several votes).

``distill run`` answers them like any job and stores each answer as a label with purpose ``relabel``; then
:func:`tooldistill.curate.adjudicate.adjudicate` settles each query from the votes. Jobs go through the queue in
``db`` (``enqueue``), never through distill's internals. Vote ``i`` is a job with ``params={"vote": i}``: the
queue keeps one job per (query, model, params), so running the same relabel twice adds nothing, and the teacher
cache keys on the params, so every vote is a fresh answer.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from sqlite_utils import Database

from ..db.queue import enqueue
from ..errors import InputError
from .audit.store import get_flags, get_run, set_flag_status

RELABEL_FROM = ("open", "needs_review")


@dataclass
class RelabelReport:
    """What was queued: the flags chosen, the jobs added, and those already queued or answered."""

    run_id: int
    flags: int
    jobs_added: int
    jobs_existing: int
    model: str | None
    votes: int
    query_ids: list[int] = field(default_factory=list)

    def to_dict(self) -> dict:
        return {"run_id": self.run_id, "flags": self.flags, "jobs_added": self.jobs_added,
                "jobs_existing": self.jobs_existing, "model": self.model, "votes": self.votes,
                "query_ids": self.query_ids}


def enqueue_relabels(db: Database, *, top: int | None = None, min_score: float | None = None,
                     run_id: int | None = None, model: str | None = None, votes: int = 1) -> RelabelReport:
    """Queue relabel jobs for the best-ranked undecided flags of an audit run (the latest by default).

    Args:
        top: the first ``top`` undecided flags by rank. min_score: flags scoring at least this. At least one of
            the two is required; with both, the first ``top`` of those above ``min_score``.
        model: pin the jobs to this teacher model (e.g. a stronger one); None lets any configured model answer.
        votes: answers wanted per query (``params={"vote": i}`` for ``i`` in ``range(votes)``).

    Returns: the report. Side effects: jobs in the queue; the chosen flags move to status ``relabel``.

    Raises: InputError when neither ``top`` nor ``min_score`` is given or a number is out of range.
    """
    if top is None and min_score is None:
        raise InputError("choose the flags to relabel with --top N or --min-score S")
    if top is not None and top < 1:
        raise InputError(f"--top must be at least 1, got {top}")
    if min_score is not None and not 0 <= min_score <= 1:
        raise InputError(f"--min-score must be between 0 and 1, got {min_score}")
    if votes < 1:
        raise InputError(f"--votes must be at least 1, got {votes}")
    run = get_run(db, run_id)
    flags = get_flags(db, run["id"], statuses=RELABEL_FROM, min_score=min_score)
    decided = {q for (q,) in db.execute(
        "SELECT DISTINCT query_id FROM reviews WHERE decision != 'skip' AND created_at >= ?", [run["created_at"]])}
    flags = [f for f in flags if f.query_id not in decided][:top]
    qids = [f.query_id for f in flags]
    added = 0
    with db.atomic():
        for vote in range(votes):
            added += enqueue(db, qids, purpose="relabel", model=model, params={"vote": vote})
        set_flag_status(db, [f.id for f in flags], "relabel")
    return RelabelReport(run["id"], len(flags), added, len(qids) * votes - added, model, votes, qids)
