"""``distill plan``: a preflight before a long job. Checks each key once, and estimates requests, days, tokens, cost.

Key check: one ``GET models/{model}`` per key and model (:func:`~tooldistill.distill.teacher.check_key`): it
tells a bad or leaked key and a model the key cannot use, and spends no generate quota.

Estimate: the jobs a run would work (pending label and relabel jobs, plus the label jobs ``distill run`` would
enqueue for queries without a label under the current prompt and catalogue), divided by the packing factor, are
the requests. The (project, model) buckets of the keys that passed the check serve them at their limits (the
same resolution as the key pool: configured, else reported by a 429, else the free-tier default): requests per
day is the sum of their RPDs, and within a day the sum of their RPMs paces the sending. Tokens per request come
from this workspace's own history when there is enough (the last 1,000 answered requests with that pack size),
else from the prompt's size at 4 characters a token; cost is tokens at list prices
(:mod:`~tooldistill.distill.pricing`), split over the models as their daily capacity splits the requests.
"""

from __future__ import annotations

import asyncio
import json
import math
from dataclasses import dataclass

from sqlite_utils import Database

from ..catalog import Catalog
from .clock import Clock
from .keys import ApiKey
from .outcomes import Outcome
from .pool import resolve_limits
from .pricing import cost_usd
from .prompt import TeacherPrompt
from .settings import DistillSettings

OUTPUT_TOKENS_PER_LABEL = 30
"""Output tokens of one label when there is no history: a function call with a few short arguments."""
CHARS_PER_TOKEN = 4


@dataclass
class KeyCheck:
    fingerprint: str
    env_var: str
    project: str
    model: str
    ok: bool
    outcome: str
    message: str | None


def check_keys(keys: list[ApiKey], models: list[str], *, settings: DistillSettings) -> list[KeyCheck]:
    """Check every (key, model) once, concurrently; spends no generate quota.

    Returns: one :class:`KeyCheck` per pair (``ok`` False with the classified outcome and message otherwise).
    """
    from .teacher import check_key, make_client

    async def run() -> list[KeyCheck]:
        clients = {k.fingerprint: make_client(k.reveal(), base_url=settings.base_url,
                                              api_version=settings.api_version,
                                              timeout_s=min(settings.timeout_s, 30)) for k in keys}
        try:
            pairs = [(k, m) for k in keys for m in models]
            results = await asyncio.gather(*(check_key(clients[k.fingerprint], m) for k, m in pairs))
        finally:
            for c in clients.values():
                await c.aio.aclose()
        return [KeyCheck(k.fingerprint, k.env_var, k.project, m, r.outcome == Outcome.OK, r.outcome.value,
                         None if r.outcome == Outcome.OK else (r.message or "")[:200])
                for (k, m), r in zip(pairs, results)]

    return asyncio.run(run())


def jobs_to_do(db: Database, *, prompt_version: str, catalog_hash: str) -> dict[str, int]:
    """The jobs a run would work: ``pending`` (label and relabel jobs already queued, leased included) and
    ``to_enqueue`` (queries with no valid label and no label job under this prompt version and catalogue)."""
    pending = db.execute("SELECT count(*) FROM jobs WHERE state IN ('pending', 'leased') AND purpose IN"
                         " ('label', 'relabel') AND (prompt_version IS NULL OR prompt_version = ?)",
                         [prompt_version]).fetchone()[0]
    to_enqueue = db.execute(
        "SELECT count(*) FROM queries q WHERE NOT EXISTS (SELECT 1 FROM labels l WHERE l.query_id = q.id"
        " AND l.purpose = 'label' AND l.valid = 1 AND l.prompt_version = :pv AND l.catalog_hash = :ch)"
        " AND NOT EXISTS (SELECT 1 FROM jobs j WHERE j.query_id = q.id AND j.purpose = 'label'"
        " AND j.prompt_version = :pv AND j.catalog_hash = :ch AND j.model IS NULL AND j.params IS NULL)",
        {"pv": prompt_version, "ch": catalog_hash}).fetchone()[0]
    return {"pending": pending, "to_enqueue": to_enqueue, "total": pending + to_enqueue}


def tokens_per_request(db: Database, prompt: TeacherPrompt, *, pack: int) -> dict:
    """(prompt, output) tokens of one request with ``pack`` queries: measured from history, else estimated."""
    rows = db.execute(
        "SELECT prompt_tokens, output_tokens FROM attempts WHERE outcome = 'ok' AND prompt_tokens IS NOT NULL"
        " AND coalesce(pack_size, 1) = ? ORDER BY id DESC LIMIT 1000", [pack]).fetchall()
    if len(rows) >= 20:
        return {"prompt": sum(r[0] for r in rows) / len(rows), "output": sum(r[1] or 0 for r in rows) / len(rows),
                "source": f"measured ({len(rows)} requests of this workspace)"}
    avg_query = db.execute("SELECT avg(length(text)) FROM queries").fetchone()[0] or 40
    if pack > 1:
        from .packing import pack_contents, pack_schema, pack_system_instruction

        envelope = len(pack_system_instruction(prompt)) + len(json.dumps(pack_schema(prompt)))
        body = len(pack_contents(["x" * int(avg_query)] * pack))
    else:
        envelope = len(prompt.system_instruction) + len(json.dumps(prompt.declarations))
        body = avg_query
    return {"prompt": (envelope + body) / CHARS_PER_TOKEN, "output": OUTPUT_TOKENS_PER_LABEL * pack,
            "source": "estimated from the prompt's size (4 characters a token)"}


def plan_job(db: Database, *, catalog: Catalog, keys: list[ApiKey], settings: DistillSettings,
             prompt: TeacherPrompt, clock: Clock, check: bool = True, pack: int | None = None) -> dict:
    """Check the keys and estimate what the queue's job needs (see the module doc).

    Args:
        check: check each key (one GET per key and model); False assumes every key works.
        pack: queries per request (default: ``settings.pack``).

    Returns: a JSON-able dict: ``keys`` (the checks), ``jobs``, ``pack``, ``buckets`` (limits per usable bucket),
    ``requests``, ``requests_per_day``, ``left_today``, ``days`` (quota days the job spans, counting today's
    rest), ``minutes_of_sending_per_day`` (at the buckets' RPM), ``finish_in_s`` (from now, waiting out daily
    resets), ``tokens`` (prompt, output, per request, source), ``cost_usd`` (with ``by_model``) and ``warnings``.
    """
    pack = pack or settings.pack
    checks = check_keys(keys, settings.models, settings=settings) if check else [
        KeyCheck(k.fingerprint, k.env_var, k.project, m, True, "unchecked", None) for k in keys for m in settings.models]
    usable = {(c.project, c.model) for c in checks if c.ok}
    reported = {(r["project"], r["model"]): r for r in db.query("SELECT * FROM buckets")}
    today = clock.day()
    buckets = []
    for project, model in sorted(usable):
        row = reported.get((project, model)) or {}
        (rpm, rpm_src), (rpd, rpd_src) = resolve_limits(settings, model, row.get("rpm_reported"),
                                                        row.get("rpd_reported"))
        used = (row.get("requests_today") or 0) if row.get("day") == today else 0
        exhausted = row.get("state") == "exhausted" and (row.get("until") or 0) > clock.now()
        buckets.append({"bucket": f"{project}:{model}", "project": project, "model": model, "rpm": rpm,
                        "rpm_source": rpm_src, "rpd": rpd, "rpd_source": rpd_src, "requests_today": used,
                        "left_today": 0 if exhausted else (max(0, rpd - used) if rpd else None)})
    jobs = jobs_to_do(db, prompt_version=prompt.version, catalog_hash=catalog.hash)
    requests = math.ceil(jobs["total"] / pack)
    tok = tokens_per_request(db, prompt, pack=pack)
    warnings = [f"key {c.fingerprint} ({c.env_var}) cannot use {c.model}: {c.outcome} {c.message or ''}".strip()
                for c in checks if not c.ok]
    out = {"keys": [c.__dict__ for c in checks], "jobs": jobs, "pack": pack, "buckets": buckets,
           "requests": requests, "tokens": {"per_request_prompt": round(tok["prompt"], 1),
                                            "per_request_output": round(tok["output"], 1), "source": tok["source"],
                                            "prompt": round(tok["prompt"] * requests),
                                            "output": round(tok["output"] * requests)},
           "warnings": warnings}
    out.update(_schedule(buckets, requests, clock))
    out.update(_cost(buckets, requests, tok, settings))
    if not buckets:
        warnings.append("no key can use any of the models: nothing can be labeled")
    return out


def _schedule(buckets: list[dict], requests: int, clock: Clock) -> dict:
    """Requests per day, what is left today, how many quota days and how long until the last request."""
    if not buckets:
        return {"requests_per_day": 0, "left_today": 0, "days": None, "finish_in_s": None,
                "minutes_of_sending_per_day": None}
    unlimited = any(not b["rpd"] for b in buckets)
    rpm = sum(b["rpm"] for b in buckets if b["rpm"])
    per_day = None if unlimited else sum(b["rpd"] for b in buckets)
    left = None if unlimited else sum(b["left_today"] for b in buckets)
    day_s = getattr(clock, "day_seconds", 86_400.0)
    now = clock.now()
    to_reset = clock.next_reset(now) - now
    paced = (lambda n: n / rpm * 60) if rpm and all(b["rpm"] for b in buckets) else (lambda n: 0.0)
    if per_day is None:
        return {"requests_per_day": None, "left_today": None, "days": max(1, math.ceil(paced(requests) / day_s)),
                "finish_in_s": paced(requests), "minutes_of_sending_per_day": None}
    if requests <= left:
        days, finish = 1, paced(requests)
    else:
        rest = requests - left
        full, last = divmod(rest, per_day)
        days = 1 + full + (1 if last else 0)
        finish = to_reset + (full - (0 if last else 1)) * day_s + paced(last or per_day)
    return {"requests_per_day": per_day, "left_today": left, "days": days, "finish_in_s": round(finish, 1),
            "minutes_of_sending_per_day": round(paced(per_day) / 60, 1)}


def _cost(buckets: list[dict], requests: int, tok: dict, settings: DistillSettings) -> dict:
    """Tokens at list prices, the requests split over models as their daily capacity (or RPM) splits them."""
    weight: dict[str, float] = {}
    for b in buckets:
        weight[b["model"]] = weight.get(b["model"], 0.0) + float(b["rpd"] or b["rpm"] or 1)
    total = sum(weight.values()) or 1.0
    by_model, usd, unknown = {}, 0.0, []
    for model, w in weight.items():
        n = requests * w / total
        c = cost_usd(model, n * tok["prompt"], n * tok["output"], prices=settings.prices)
        by_model[model] = {"requests": round(n), "usd": round(c, 4) if c is not None else None}
        if c is None:
            unknown.append(model)
        usd += c or 0.0
    return {"cost_usd": round(usd, 4), "cost_by_model": by_model, "models_without_price": unknown}


def plan_workspace(workspace, db: Database, *, check: bool = True, pack: int | None = None,
                   prompt_path: str | None = None, examples_from_gold: int | None = None, **overrides) -> dict:
    """:func:`plan_job` for a workspace: its settings (flags in ``overrides``), keys, catalogue and prompt."""
    from ..db import get_catalog
    from .clock import make_clock
    from .keys import keys_from_env
    from .prompt import load_prompt
    from .settings import load_settings

    settings = load_settings(workspace, **overrides)
    catalog = get_catalog(db)
    prompt, source = load_prompt(catalog, workspace=workspace, db=db, path=prompt_path,
                                 examples_from_gold=examples_from_gold)
    report = plan_job(db, catalog=catalog, keys=keys_from_env(workspace.env), settings=settings, prompt=prompt,
                      clock=make_clock(settings.day_seconds), check=check, pack=pack)
    report["prompt"] = {"version": prompt.version, "source": source}
    report["day"] = make_clock(settings.day_seconds).describe()
    return report
