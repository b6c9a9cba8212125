"""distill: the teacher, the durable job queue, the quota-aware key pool and the runner.

Library use::

    from tooldistill.db import open_db, get_catalog
    from tooldistill.distill import DistillSettings, parse_keys, run_distill

    db = open_db("tooldistill.db")
    summary = run_distill(db, catalog=get_catalog(db), keys=parse_keys("KEY1@proj-a,KEY2@proj-b"),
                          settings=DistillSettings(concurrency=8))

Long jobs: ``settings.pack`` (K queries per request), :func:`plan_job` (key check and estimate),
:func:`retry`, :func:`enqueue_votes`, :func:`load_prompt` (the workspace's prompt file and its versions).

The queue itself (enqueue, claim, complete, ...) is :mod:`tooldistill.db.queue`, so other stages can add jobs
(e.g. relabel votes) without importing this package's internals.
"""

from .backoff import Backoff
from .cache import cache_key, get_cached
from .clock import Clock, FastClock, make_clock
from .keys import ApiKey, fingerprint, keys_from_env, parse_keys
from .outcomes import Outcome, TeacherResult, Usage, classify_error, classify_exception
from .packing import PackedResult, ask_packed
from .plan import plan_job, plan_workspace
from .pool import Pool
from .pricing import cost_usd
from .prompt import TeacherPrompt, build_prompt, get_prompt_version, load_prompt
from .retry import RetryReport, retry
from .runner import GeminiTeacher, Runner, RunSummary, Teacher, enqueue_votes, run_distill, run_workspace
from .settings import DistillSettings, load_settings
from .status import distill_status
from .teacher import ask_teacher, make_client

__all__ = [
    "ApiKey", "Backoff", "Clock", "DistillSettings", "FastClock", "GeminiTeacher", "Outcome", "PackedResult", "Pool",
    "RetryReport", "Runner", "RunSummary", "Teacher", "TeacherPrompt", "TeacherResult", "Usage", "ask_packed",
    "ask_teacher", "build_prompt", "cache_key", "classify_error", "classify_exception", "cost_usd", "distill_status",
    "enqueue_votes", "fingerprint", "get_cached", "get_prompt_version", "keys_from_env", "load_prompt",
    "load_settings", "make_client",
    "make_clock", "parse_keys", "plan_job", "plan_workspace", "retry", "run_distill", "run_workspace",
]
