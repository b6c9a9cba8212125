"""The key pool: slots (key x model) and the (project, model) buckets they share, persisted.

Gemini quotas are per project and per model, so limits, pacing and quota state live on the bucket that every slot
of one project and model shares; a slot (one key, one model) only carries what is the key's own: ``invalid`` (a
bad or leaked key, for all its models) and ``cooling`` after transient errors. A bucket is ``ready``, ``cooling``
until a time (per-minute 429, bare 429) or ``exhausted`` until the next daily reset (a per-day 429, or the
client-side daily count reaching the limit). Everything is written to the ``slots``/``buckets`` tables as it
changes, so a restart neither hits a bucket known to be exhausted in this quota day nor a key known to be
invalid (until the key set changes). Sends are counted in the database too, so two processes on one database
share each bucket's daily count and see each other's exhaustion before sending.

Pacing: per bucket, requests spread evenly over the minute (one every 60/RPM seconds, a burst of one) on a
schedule that absorbs lateness: a send made a little after its slot (the event loop was busy) does not push the
following slots back, so a bucket kept busy sends at its full rate instead of drifting below it. A sliding window
(60 s plus a small margin for the server's own clock and queueing) caps every minute at RPM sends from this
process. The scheduler picks, among the slots that may send now, the one that has rested longest.
"""

from __future__ import annotations

import logging
import random
import time
from collections import deque
from dataclasses import dataclass, field

from sqlite_utils import Database

from ..db import get_setting, now_iso, set_setting
from ..db.queue import immediate
from .backoff import Backoff, jittered
from .clock import Clock
from .keys import ApiKey, key_set_id
from .outcomes import Outcome, TeacherResult
from .settings import DistillSettings

log = logging.getLogger(__name__)

READY, COOLING, EXHAUSTED, INVALID = "ready", "cooling", "exhausted", "invalid"
WINDOW_S = 60.0
WINDOW_MARGIN_S = 0.25
"""The sliding window is this much longer than a minute: the server counts a request when it reads it, a little
after we sent it, and one counted a hair early would be a per-minute 429."""
CLIENT_LIMIT = "daily limit of"
"""How the reason of a bucket exhausted by the client's own daily count starts."""
RESET_SKEW_S = 600.0
"""A daily 429 this soon after our idea of the reset is clock skew, not a new day's exhaustion: retry sooner."""
KEY_SET_SETTING = "distill_key_set"
FIRST_TRANSIENT_PAUSE_S = 0.25
"""How long a slot rests after the first transient error of a streak (later ones back off exponentially)."""


def resolve_limits(settings: DistillSettings, model: str, reported_rpm: int | None = None,
                   reported_rpd: int | None = None) -> tuple[tuple[int, str], tuple[int, str]]:
    """A bucket's ``((rpm, source), (rpd, source))``: the lower of the configured limit and the one a 429 reported,
    else the free-tier default; ``source`` is ``config``, ``server`` or ``default`` (0 = no client-side limit)."""
    explicit_rpm, explicit_rpd = settings.limits_for(model)
    default_rpm, default_rpd = settings.default_limits(model)

    def pick(explicit, reported, default):
        # Never exceed what the user asked, nor what the server said it allows (0 = no client-side limit).
        if reported and (explicit is None or explicit == 0 or reported < explicit):
            return reported, "server"
        if explicit is not None:
            return explicit, "config"
        return default, "default"

    return pick(explicit_rpm, reported_rpm, default_rpm), pick(explicit_rpd, reported_rpd, default_rpd)


@dataclass(eq=False)
class Bucket:
    """The quota of one (project, model): limits, pacing and state."""

    id: str
    project: str
    model: str
    rpm: int
    rpd: int
    rpm_source: str
    rpd_source: str
    state: str = READY
    until: float = 0.0
    reason: str | None = None
    day: str = ""
    requests_today: int = 0
    backoff: int = 0
    rpm_reported: int | None = None
    rpd_reported: int | None = None
    sent: deque = field(default_factory=deque)
    last_sent: float = 0.0
    next_slot: float = 0.0
    """When the pacing schedule allows the next send (0: at once)."""

    @property
    def interval(self) -> float:
        return WINDOW_S / self.rpm if self.rpm else 0.0

    def next_send_at(self, now: float) -> float:
        """The earliest time this bucket may send (``now`` if it may send at once)."""
        t = now
        if self.state in (COOLING, EXHAUSTED):
            t = max(t, self.until)
        if self.rpm:
            while self.sent and self.sent[0] <= now - WINDOW_S - WINDOW_MARGIN_S:
                self.sent.popleft()
            t = max(t, self.next_slot)
            if len(self.sent) >= self.rpm:
                t = max(t, self.sent[-self.rpm] + WINDOW_S + WINDOW_MARGIN_S)
        return t

    def count_send(self, now: float) -> None:
        """Advance the pacing schedule by one send at ``now``.

        A send up to half an interval behind its slot keeps the schedule (the next slot is one interval after
        this one's, not after ``now``), so a busy bucket does not lose the loop's lateness on every send; a send
        after a longer idle time starts the schedule afresh (no burst after idling).
        """
        self.sent.append(now)
        self.last_sent = now
        if not self.rpm:
            return
        if self.next_slot and 0 <= now - self.next_slot <= self.interval / 2:
            self.next_slot += self.interval
        else:
            self.next_slot = max(now, self.next_slot) + self.interval


@dataclass(eq=False)
class Slot:
    """One key used with one model."""

    id: str
    key: ApiKey
    model: str
    bucket: Bucket
    serves_unpinned: bool
    state: str = READY
    until: float = 0.0
    reason: str | None = None
    last_used_at: float = 0.0
    backoff: int = 0
    requests: int = 0
    in_flight: int = 0

    def usable(self) -> bool:
        return self.state != INVALID and self.bucket.state != EXHAUSTED

    def ready_at(self, now: float) -> float:
        t = self.bucket.next_send_at(now)
        return max(t, self.until) if self.state == COOLING else t


class Pool:
    """The slots of a run, their buckets, and every quota decision.

    Args:
        db: the workspace database (slot and bucket rows are read and written through).
        keys: the API keys.
        models: the teacher models that answer unpinned (label) jobs.
        settings: limits and backoff settings.
        clock: decides the quota day and when it resets.
        pinned_models: further models that only serve jobs pinned to them (e.g. relabel with a stronger teacher).
    """

    def __init__(self, db: Database, keys: list[ApiKey], *, models: list[str], settings: DistillSettings,
                 clock: Clock, pinned_models: list[str] = (), rng: random.Random | None = None):
        self.db, self.settings, self.clock = db, settings, clock
        self.rng = rng or random.Random()
        self.backoff = Backoff(settings.backoff_base_s, settings.backoff_max_s)
        self.buckets: dict[str, Bucket] = {}
        self.slots: list[Slot] = []
        now = clock.now()
        self._forget_invalid_if_keys_changed(keys)
        all_models = list(dict.fromkeys([*models, *pinned_models]))
        for key in keys:
            for model in all_models:
                bucket = self._load_bucket(key.project, model, now)
                self.slots.append(self._load_slot(key, model, bucket, model in models, now))
        self.refresh(now)

    # ------------------------------------------------------------ loading

    def _forget_invalid_if_keys_changed(self, keys: list[ApiKey]) -> None:
        ident = key_set_id(keys)
        if get_setting(self.db, KEY_SET_SETTING) != ident:
            with immediate(self.db):  # new keys: forget verdicts on keys and limits the old ones were told
                self.db.execute("UPDATE slots SET state = 'ready', reason = NULL WHERE state = 'invalid'")
                self.db.execute("UPDATE buckets SET rpm_reported = NULL, rpd_reported = NULL")
                set_setting(self.db, KEY_SET_SETTING, ident)

    def _limits(self, model: str, reported_rpm: int | None, reported_rpd: int | None):
        return resolve_limits(self.settings, model, reported_rpm, reported_rpd)

    def _load_bucket(self, project: str, model: str, now: float) -> Bucket:
        bid = f"{project}:{model}"
        if bid in self.buckets:
            return self.buckets[bid]
        # INSERT OR IGNORE, then read: another process may be creating the same row at this moment.
        self.db.execute("INSERT OR IGNORE INTO buckets (id, project, model, state, until, day, requests_today,"
                        " backoff, updated_at) VALUES (?, ?, ?, 'ready', 0, ?, 0, 0, ?)",
                        [bid, project, model, self.clock.day(now), now])
        row = self.db.execute(
            "SELECT state, until, reason, day, requests_today, backoff, rpm_reported, rpd_reported FROM buckets"
            " WHERE id = ?", [bid]).fetchone()
        state, until, reason, day, today, backoff, rep_rpm, rep_rpd = row
        (rpm, rpm_src), (rpd, rpd_src) = self._limits(model, rep_rpm, rep_rpd)
        bucket = Bucket(bid, project, model, rpm, rpd, rpm_src, rpd_src, state or READY, until or 0.0, reason,
                        day or "", today or 0, backoff or 0, rep_rpm, rep_rpd)
        sent = self.db.execute("SELECT sent_at FROM attempts WHERE project = ? AND model = ? AND sent_at > ?"
                               " ORDER BY sent_at", [project, model, now - WINDOW_S]).fetchall()
        bucket.sent.extend(r[0] for r in sent)
        bucket.last_sent = bucket.sent[-1] if bucket.sent else 0.0
        bucket.next_slot = bucket.last_sent + bucket.interval if bucket.last_sent else 0.0
        self.buckets[bid] = bucket
        self.db.execute("UPDATE buckets SET rpm = ?, rpd = ? WHERE id = ?", [rpm, rpd, bid])
        return bucket

    def _load_slot(self, key: ApiKey, model: str, bucket: Bucket, unpinned: bool, now: float) -> Slot:
        sid = f"{key.fingerprint}:{model}"
        self.db.execute("INSERT OR IGNORE INTO slots (id, fingerprint, env_var, project, model, state, until,"
                        " requests, backoff, created_at) VALUES (?, ?, ?, ?, ?, 'ready', 0, 0, 0, ?)",
                        [sid, key.fingerprint, key.env_var, key.project, model, now_iso()])
        # the key may have moved to another project or another position in the list
        self.db.execute("UPDATE slots SET env_var = ?, project = ? WHERE id = ?", [key.env_var, key.project, sid])
        row = self.db.execute("SELECT state, until, reason, last_used_at, backoff, requests FROM slots WHERE id = ?",
                              [sid]).fetchone()
        state, until, reason, last_used, backoff, requests = row
        return Slot(sid, key, model, bucket, unpinned, state or READY, until or 0.0, reason, last_used or 0.0,
                    backoff or 0, requests or 0)

    # ------------------------------------------------------------ persisting

    def _save_bucket(self, b: Bucket) -> None:
        # Never downgrade an exhaustion another process wrote, unless this write is itself the exhaustion.
        guard = "" if b.state == EXHAUSTED else " AND NOT (state = 'exhausted' AND until > ?)"
        params = [b.state, b.until, b.reason, b.rpm, b.rpd, b.backoff, b.rpm_reported, b.rpd_reported,
                  time.time(), b.id]
        self.db.execute(
            "UPDATE buckets SET state = ?, until = ?, reason = ?, rpm = ?, rpd = ?, backoff = ?, rpm_reported = ?,"
            f" rpd_reported = ?, updated_at = ? WHERE id = ?{guard}", params + ([self.clock.now()] if guard else []))

    def _save_slot(self, s: Slot) -> None:
        self.db.execute("UPDATE slots SET state = ?, until = ?, reason = ?, last_used_at = ?, backoff = ?,"
                        " requests = ? WHERE id = ?",
                        [s.state, s.until, s.reason, s.last_used_at, s.backoff, s.requests, s.id])

    # ------------------------------------------------------------ time

    def refresh(self, now: float | None = None) -> None:
        """Let cooling and exhausted states whose time has come return to ready; start new quota days."""
        now = self.clock.now() if now is None else now
        today = self.clock.day(now)
        for b in self.buckets.values():
            changed = False
            if b.state in (COOLING, EXHAUSTED) and b.until <= now:
                b.state, b.reason, changed = READY, None, True
            if b.day != today:
                b.day, b.requests_today, changed = today, 0, True
            if changed:
                self._save_bucket(b)
        for s in self.slots:
            if s.state == COOLING and s.until <= now:
                s.state, s.reason = READY, None
                self._save_slot(s)

    def sync(self, now: float | None = None) -> None:
        """Re-read bucket states from the database, to see exhaustion written by another process."""
        now = self.clock.now() if now is None else now
        for bid, state, until, reason in self.db.execute("SELECT id, state, until, reason FROM buckets"):
            b = self.buckets.get(bid)
            if b is not None and state == EXHAUSTED and (until or 0) > now and b.state != EXHAUSTED:
                b.state, b.until, b.reason = EXHAUSTED, until, reason

    # ------------------------------------------------------------ scheduling

    def pick(self, now: float, *, unpinned_work: bool, pinned_work: set[str]) -> tuple[Slot | None, float | None]:
        """Choose the slot to send next.

        Returns: ``(slot, None)`` when one may send now (the rested-longest of those); ``(None, t)`` when the
        first one may send at ``t``; ``(None, None)`` when no slot that has work can send before a reset (every
        one exhausted or invalid: see :meth:`blocked`).
        """
        cands = [s for s in self.slots if s.usable() and ((s.serves_unpinned and unpinned_work)
                                                           or s.model in pinned_work)]
        if not cands:
            return None, None
        timed = [(s.ready_at(now), s) for s in cands]
        ready = [s for t, s in timed if t <= now]
        if ready:
            return min(ready, key=lambda s: (s.last_used_at, s.in_flight, s.id)), None
        return None, min(t for t, _ in timed)

    def blocked(self, *, unpinned_work: bool, pinned_work: set[str]) -> tuple[str, float | None]:
        """Why nothing can send: ``("exhausted", reset_time)`` or ``("invalid", None)`` when every key is bad."""
        relevant = [s for s in self.slots if (s.serves_unpinned and unpinned_work) or s.model in pinned_work]
        exhausted = [s.bucket.until for s in relevant if s.state != INVALID and s.bucket.state == EXHAUSTED]
        if exhausted:
            return "exhausted", min(exhausted)
        return "invalid", None

    def reserve(self, slot: Slot, now: float) -> bool:
        """Count one send on the slot's bucket (in the database, shared with other processes).

        Returns: False, and the bucket marked exhausted, when its daily limit is already used up or another
        process found it exhausted; the caller must not send then.
        """
        b, day = slot.bucket, self.clock.day(now)
        with immediate(self.db):
            row = self.db.conn.execute(
                "UPDATE buckets SET requests_today = CASE WHEN day = :day THEN requests_today + 1 ELSE 1 END,"
                " day = :day, last_request_at = :now WHERE id = :id AND NOT (state = 'exhausted' AND until > :now)"
                " AND (:rpd = 0 OR day != :day OR requests_today < :rpd) RETURNING requests_today",
                {"day": day, "now": now, "id": b.id, "rpd": b.rpd}).fetchone()
            if row is None:
                state, until, reason = self.db.conn.execute(
                    "SELECT state, until, reason FROM buckets WHERE id = ?", [b.id]).fetchone()
                if state == EXHAUSTED and (until or 0) > now:
                    b.state, b.until, b.reason = EXHAUSTED, until, reason
                else:
                    self._exhaust(b, now, f"{CLIENT_LIMIT} {b.rpd} requests reached ({b.rpd_source})")
                return False
        b.requests_today, b.day = row[0], day
        b.count_send(now)
        slot.last_used_at, slot.requests, slot.in_flight = now, slot.requests + 1, slot.in_flight + 1
        self._save_slot(slot)
        if b.rpd and b.requests_today >= b.rpd:
            self._exhaust(b, now, f"{CLIENT_LIMIT} {b.rpd} requests reached ({b.rpd_source})")
        return True

    def unreserve(self, slot: Slot) -> None:
        """Undo the in-flight mark of a send that never happened (abandoned before the request left)."""
        slot.in_flight = max(0, slot.in_flight - 1)

    def _refund(self, b: Bucket) -> None:
        """Take back a send from the daily count: the server answered without counting it (429s, key errors,
        server errors), so the free tier's few requests a day are not lost to them."""
        self.db.execute("UPDATE buckets SET requests_today = max(0, requests_today - 1) WHERE id = ? AND day = ?",
                        [b.id, b.day])
        b.requests_today = max(0, b.requests_today - 1)
        if b.state == EXHAUSTED and (b.reason or "").startswith(CLIENT_LIMIT) and b.requests_today < b.rpd:
            b.state, b.until, b.reason = READY, 0.0, None
            self.db.execute("UPDATE buckets SET state = 'ready', until = 0, reason = NULL WHERE id = ?"
                            " AND state = 'exhausted' AND reason LIKE ?", [b.id, CLIENT_LIMIT + "%"])

    # ------------------------------------------------------------ outcomes

    def _exhaust(self, b: Bucket, now: float, reason: str, *, until: float | None = None) -> None:
        b.state, b.until, b.reason = EXHAUSTED, until or self.clock.next_reset(now), reason
        self._save_bucket(b)
        log.warning("bucket %s exhausted until %s: %s", b.id, _fmt(b.until), reason)

    def _cool_bucket(self, b: Bucket, now: float, seconds: float, reason: str) -> None:
        if b.state == EXHAUSTED:
            return
        b.state, b.until, b.reason = COOLING, max(b.until if b.state == COOLING else 0.0, now + seconds), reason
        self._save_bucket(b)

    def record(self, slot: Slot, result: TeacherResult, now: float | None = None) -> str | None:
        """Apply what a response says about the slot and its bucket (ARCHITECTURE section 5's table).

        Returns: a message to show the user loudly (a key found invalid, said once per key), else ``None``.
        """
        now = self.clock.now() if now is None else now
        slot.in_flight = max(0, slot.in_flight - 1)
        b, out = slot.bucket, result.outcome
        if out not in (Outcome.OK, Outcome.REJECTED, Outcome.BAD_REQUEST):
            self._refund(b)
        if out in (Outcome.OK, Outcome.REJECTED, Outcome.BAD_REQUEST):
            if b.backoff:
                b.backoff = 0
                self._save_bucket(b)
            if slot.backoff:
                slot.backoff = 0
                self._save_slot(slot)
        elif out == Outcome.DAILY_QUOTA:
            if result.quota_value:
                b.rpd_reported = result.quota_value
                b.rpd, b.rpd_source = self._limits(b.model, b.rpm_reported, b.rpd_reported)[1]
            if b.state != EXHAUSTED or b.until <= now or (b.reason or "").startswith(CLIENT_LIMIT):
                skew = min(RESET_SKEW_S, getattr(self.clock, "day_seconds", 86_400.0) / 100)
                just_reset = self.clock.day(now - skew) != self.clock.day(now)
                self._exhaust(b, now, f"daily quota answered 429 (limit {result.quota_value or '?'})",
                              until=now + skew if just_reset else None)
        elif out == Outcome.MINUTE_QUOTA:
            if result.quota_value:
                b.rpm_reported = result.quota_value
                b.rpm, b.rpm_source = self._limits(b.model, b.rpm_reported, b.rpd_reported)[0]
            wait = max(result.retry_after_s or 0.0, self.settings.minute_floor_s)
            self._cool_bucket(b, now, jittered(wait, rng=self.rng), "per-minute quota (429)")
        elif out == Outcome.BARE_429:
            b.backoff += 1
            wait = max(result.retry_after_s or 0.0, self.backoff.delay(b.backoff, self.rng))
            self._cool_bucket(b, now, wait, f"429 without quota details (#{b.backoff} in a row)")
            log.warning("bucket %s: 429 without quota details (#%d in a row); cooling %.1fs", b.id, b.backoff, wait)
        elif out == Outcome.TRANSIENT:
            slot.backoff += 1
            # A lone 503 is noise at a few percent of requests: a full backoff after each would idle a busy
            # one-key bucket most of the time. Pause briefly; back off exponentially from the second in a row.
            wait = min(FIRST_TRANSIENT_PAUSE_S, self.backoff.base_s) if slot.backoff == 1 else \
                self.backoff.delay(slot.backoff - 1, self.rng)
            slot.state, slot.until = COOLING, now + wait
            slot.reason = f"{result.status_code or 'transport'} error (#{slot.backoff} in a row)"
            self._save_slot(slot)
        elif out == Outcome.BAD_KEY:
            return self.invalidate(slot.key, f"{result.status_code or ''} {result.message or 'key rejected'}".strip())
        return None

    def invalidate(self, key: ApiKey, reason: str) -> str | None:
        """Mark every slot of ``key`` invalid; returns the loud message the first time only."""
        first = any(s.state != INVALID for s in self.slots if s.key == key)
        for s in self.slots:
            if s.key == key:
                s.state, s.reason = INVALID, reason[:200]
                self._save_slot(s)
        if not first:
            return None
        msg = (f"API key {key.fingerprint} ({key.env_var}, project {key.project}) was rejected: {reason[:200]}; "
               "it is skipped for this run. Replace it in GEMINI_API_KEYS.")
        log.info(msg)  # the runner's progress event says it loudly; once is enough
        return msg

    # ------------------------------------------------------------ reporting

    def snapshot(self, now: float | None = None) -> list[dict]:
        """Per-bucket state for progress displays: state, until, limits, today's count, slots ready/invalid."""
        now = self.clock.now() if now is None else now
        out = []
        for b in self.buckets.values():
            slots = [s for s in self.slots if s.bucket is b]
            state = b.state if b.state == READY or b.until > now else READY
            out.append({
                "bucket": b.id, "project": b.project, "model": b.model, "state": state,
                "until": b.until if state != READY else None, "reason": b.reason if state != READY else None,
                "rpm": b.rpm, "rpd": b.rpd, "requests_today": b.requests_today,
                "left_today": max(0, b.rpd - b.requests_today) if b.rpd else None,
                "slots": len(slots), "invalid_slots": sum(s.state == INVALID for s in slots),
            })
        return out


def _fmt(t: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(t))
