"""The teacher as a baseline router, through distill's public API.

Two ways, both with the Router protocol:

- stored (``--teacher``): the teacher's answers already in the database (the latest valid teacher label of each
  query, by normalised text), so it costs no quota. Against the split's labels (which came from the teacher) it
  scores near 100% by construction; against the corrected and verified labels it measures the teacher itself.
- live (``--teacher --teacher-model MODEL``): asks a Gemini model now, with the workspace's keys and settings
  (``GEMINI_API_KEYS``, ``GEMINI_BASE_URL``, ``[distill]``), e.g. a stronger model than the one that labeled.
  It asks with the prompt the workspace's labeling uses (``prompt.yaml`` and its gold examples, exactly as
  ``distill run`` builds it), or with ``--teacher-prompt``: a prompt file or a recorded prompt version. The
  eval run's config records the version (``router_metadata.prompt_version``) and where it came from.
  Transient errors and per-minute 429s are retried after their delay; a key whose day is spent or that is
  invalid is dropped for the next one; when none is left the run stops with QuotaExhausted / NeedsKeyError.
  A rejected answer (not a valid label) is a wrong answer, stored with its reason.
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import Any, Sequence

from sqlite_utils import Database

from ..catalog import Catalog
from ..db import teacher_labels
from ..errors import InputError, NeedsKeyError, QuotaExhausted, ToolDistillError
from ..textnorm import text_hash

log = logging.getLogger(__name__)


class StoredTeacherRouter:
    """Replays the teacher's stored labels (no API calls); a query it never labeled gets an empty output."""

    name = "teacher:stored"

    def __init__(self, db: Database, catalog: Catalog):
        self.catalog = catalog
        labels = teacher_labels(db)
        by_hash = {h: qid for qid, h in db.execute("SELECT id, norm_hash FROM queries")}
        self._labels = {h: labels[qid].to_json() for h, qid in by_hash.items() if labels.get(qid) is not None}
        self.metadata = {"prompt_versions": _stored_prompt_versions(db)}
        """The prompt versions behind the replayed answers (``{version: queries}``), recorded with the eval run."""

    def route(self, texts: Sequence[str]) -> list[str]:
        return [self._labels.get(text_hash(t), "") for t in texts]


def _stored_prompt_versions(db: Database) -> dict[str, int]:
    """How many queries' latest valid label (the one replayed) each prompt version made (``none``: imported)."""
    rows = db.execute("SELECT coalesce(prompt_version, 'none'), count(*) FROM labels WHERE id IN (SELECT max(id) "
                      "FROM labels WHERE valid = 1 AND purpose = 'label' GROUP BY query_id) GROUP BY 1 ORDER BY 2 DESC")
    return dict(rows.fetchall())


def _require_keys(keys: list) -> list:
    if not keys:
        raise NeedsKeyError("no Gemini API key: set GEMINI_API_KEYS in the environment or .env")
    return keys


class LiveTeacherRouter:
    """Asks a Gemini model for each query now (concurrently, within the workspace's keys)."""

    def __init__(self, catalog: Catalog, *, keys: list, model: str, prompt=None, prompt_source: str = "default",
                 base_url: str | None = None, api_version: str = "v1beta", timeout_s: float = 60.0,
                 concurrency: int = 4, temperature: float = 0.0, max_retries: int = 4, max_wait_s: float = 60.0):
        """``prompt``: a :class:`tooldistill.distill.TeacherPrompt` (default: the built-in one for ``catalog``);
        ``prompt_source`` says where it came from (recorded with the eval run)."""
        _require_keys(keys)
        if prompt is None:
            from ..distill import build_prompt

            prompt = build_prompt(catalog)
        self.catalog, self.keys, self.model, self.prompt = catalog, list(keys), model, prompt
        self.name = f"teacher:{model}"
        self.metadata = {"teacher_model": model, "prompt_version": prompt.version, "prompt_source": prompt_source}
        """Recorded in the eval run's config (``router_metadata``): which prompt the teacher was asked with."""
        self.base_url, self.api_version, self.timeout_s = base_url, api_version, timeout_s
        self.concurrency, self.temperature = concurrency, temperature
        self.max_retries, self.max_wait_s = max_retries, max_wait_s

    def route(self, texts: Sequence[str]) -> list[str]:
        """One raw output per text: the label JSON, or ``rejected: <reason>`` for an answer that is no label."""
        return asyncio.run(self._route(list(texts)))

    async def _route(self, texts: list[str]) -> list[str]:
        from ..distill import make_client

        prompt = self.prompt
        clients = {k.fingerprint: make_client(k.reveal(), base_url=self.base_url, api_version=self.api_version,
                                              timeout_s=self.timeout_s) for k in self.keys}
        live = list(clients)  # fingerprints of keys still usable, in order
        gate = asyncio.Semaphore(self.concurrency)
        try:
            return list(await asyncio.gather(*(self._ask(t, prompt, clients, live, gate) for t in texts)))
        finally:
            for client in clients.values():
                await client.aio.aclose()

    async def _ask(self, text: str, prompt: Any, clients: dict, live: list[str], gate: asyncio.Semaphore) -> str:
        from ..distill import Outcome, ask_teacher

        failures = 0
        while True:
            if not live:
                raise QuotaExhausted(f"every Gemini key is exhausted or invalid for {self.model}; run the teacher "
                                     "baseline again after the daily reset (midnight Pacific time)")
            key = live[0]
            async with gate:
                result = await ask_teacher(clients[key], model=self.model, prompt=prompt, catalog=self.catalog,
                                           query=text, temperature=self.temperature)
            if result.outcome == Outcome.OK:
                return result.label.to_json()
            if result.outcome == Outcome.REJECTED:
                return f"rejected: {result.reject_reason}"
            if result.outcome in (Outcome.DAILY_QUOTA, Outcome.BAD_KEY):
                if key in live:
                    live.remove(key)
                    log.warning("teacher baseline: key %s dropped (%s)", key, result.outcome.value)
                if result.outcome == Outcome.BAD_KEY and not live:
                    raise NeedsKeyError(f"no valid Gemini key left ({result.message}); check GEMINI_API_KEYS")
                continue
            if result.outcome == Outcome.BAD_REQUEST:
                raise ToolDistillError(f"the teacher refused the request: {result.message}")
            failures += 1
            if failures > self.max_retries:
                raise ToolDistillError(f"the teacher kept failing ({result.outcome.value}: {result.message}); "
                                       "try again later")
            await asyncio.sleep(min(self.max_wait_s, result.retry_after_s or 2.0 ** failures))


def make_teacher_router(db: Database | None, catalog: Catalog, *, model: str | None = None, workspace=None,
                        prompt: str | None = None):
    """The teacher baseline: stored answers when ``model`` is None, else a live ``model`` with the workspace's keys.

    Args:
        db: the workspace database (stored answers; the prompt's gold examples and recorded versions).
        catalog: the catalogue of the split being evaluated.
        model: a Gemini model to ask now; None replays the stored answers.
        workspace: a :class:`tooldistill.config.Workspace` (default: the one around the current folder).
        prompt: for a live teacher, a prompt file or a recorded prompt version (see ``distill prompt versions``);
            default: the workspace's active prompt, as ``distill run`` builds it (:func:`resolve_teacher_prompt`).

    Raises: NeedsKeyError when a live teacher has no key; ToolDistillError when stored answers have no database;
    InputError for ``prompt`` with stored answers, or a prompt that is neither a file nor a recorded version.
    """
    if model is None:
        if prompt is not None:
            raise InputError("--teacher-prompt goes with --teacher-model: stored answers keep the prompts they were "
                             "made with (the eval run records which)", field="teacher_prompt")
        if db is None:
            raise ToolDistillError("the stored teacher baseline reads the workspace database (--db)")
        return StoredTeacherRouter(db, catalog)
    from ..config import load_workspace
    from ..distill import keys_from_env, load_settings

    workspace = workspace or load_workspace()
    settings = load_settings(workspace)
    keys = _require_keys(keys_from_env(workspace.env))  # before the prompt: resolving it records its version
    chosen, source = resolve_teacher_prompt(db, catalog, workspace=workspace, prompt=prompt)
    return LiveTeacherRouter(catalog, keys=keys, model=model, prompt=chosen, prompt_source=source,
                             base_url=settings.base_url, api_version=settings.api_version,
                             timeout_s=settings.timeout_s, concurrency=settings.concurrency,
                             temperature=settings.temperature)


def resolve_teacher_prompt(db: Database | None, catalog: Catalog, *, workspace=None, prompt: str | None = None):
    """The prompt a live teacher baseline asks with, and where it came from: ``(TeacherPrompt, source)``.

    Args:
        db: the workspace database (gold examples; recorded versions); the version used is recorded there too,
            as ``distill run`` records it.
        catalog: the catalogue the answers are checked against; a recorded version must have been made for it.
        workspace: whose ``prompt.yaml`` (or ``[distill] prompt``) is the active prompt.
        prompt: None for the active prompt; an existing file for that prompt file; else a recorded version.

    Raises: InputError for a bad prompt file, an unknown version, or a version made for another catalogue.
    """
    from ..distill import get_prompt_version, load_prompt

    if prompt is None or Path(prompt).is_file():
        return load_prompt(catalog, workspace=workspace, db=db, path=prompt)
    if db is None:
        raise InputError(f"{prompt!r} is not a file, and recorded prompt versions need the workspace database",
                         field="teacher_prompt")
    chosen = get_prompt_version(db, prompt)
    if chosen.declarations != catalog.to_gemini_declarations(include_no_tool=True):
        raise InputError(f"prompt version {prompt} declares other tools than catalogue '{catalog.name}' "
                         f"({catalog.hash}) of the split; pick a version made for it (tooldistill distill prompt "
                         "versions)", field="teacher_prompt")
    return chosen, f"recorded version {prompt}"
