"""Keys, settings and the key pool: parsing, pacing, the rested-longest slot, and every outcome's effect on state."""

import pickle
import random

import pytest

from tooldistill.config import load_workspace
from tooldistill.distill.backoff import Backoff
from tooldistill.distill.clock import FastClock
from tooldistill.distill.keys import keys_from_env, parse_keys
from tooldistill.distill.outcomes import Outcome, TeacherResult
from tooldistill.distill.pool import Pool
from tooldistill.distill.settings import DistillSettings, load_settings
from tooldistill.errors import ConfigError, NeedsKeyError

SECRET_A, SECRET_B, SECRET_C = "AIzaSy-secret-AAAA-1111", "AIzaSy-secret-BBBB-2222", "AIzaSy-secret-CCCC-3333"


class ManualClock(FastClock):
    """A fast clock whose time only moves when the test says so."""

    def __init__(self, day_seconds=1000.0, t=10_000.0):
        super().__init__(day_seconds)
        self.t = t

    def now(self):
        return self.t


def make_pool(db, keys=f"{SECRET_A}@p1,{SECRET_B}@p1,{SECRET_C}@p2", *, clock=None, models=("m",), **settings):
    settings = DistillSettings(models=list(models), **{"rpm": 0, "rpd": 0, **settings})
    return Pool(db, parse_keys(keys), models=list(models), settings=settings, clock=clock or ManualClock(),
                rng=random.Random(0))


def result(outcome, **kw):
    return TeacherResult(outcome=outcome, **kw)


# ---------------------------------------------------------------- keys and settings


def test_keys_parse_with_projects_and_never_show_the_secret():
    keys = parse_keys(f" {SECRET_A}@proj-1 , {SECRET_B},,{SECRET_A}@proj-1")
    assert [k.project for k in keys] == ["proj-1", f"key-{keys[1].fingerprint.replace('-', '')}"]
    assert [k.env_var for k in keys] == ["GEMINI_API_KEYS[0]", "GEMINI_API_KEYS[1]"]
    assert keys[0].reveal() == SECRET_A
    for text in (repr(keys), str(keys[0]), keys[0].fingerprint):
        assert SECRET_A not in text and "secret" not in text
    with pytest.raises(TypeError):
        pickle.dumps(keys[0])


@pytest.mark.parametrize("spec, says", [
    (f"{SECRET_A}@", "item 1: the project after '@' is empty"),
    (f"{SECRET_A},@proj", "item 2: the key is empty"),
    (f"{SECRET_A} x@p", "item 1: the key contains whitespace"),
])
def test_bad_key_lists_name_the_item_not_the_key(spec, says):
    with pytest.raises(ConfigError, match=says) as info:
        parse_keys(spec)
    assert SECRET_A not in str(info.value)


def test_keys_come_from_gemini_api_keys_or_a_single_key_variable():
    assert keys_from_env({"GEMINI_API_KEY": SECRET_C})[0].env_var == "GEMINI_API_KEY[0]"
    with pytest.raises(NeedsKeyError, match="GEMINI_API_KEYS=KEY"):
        keys_from_env({"GEMINI_API_KEYS": " , "})


def test_settings_precedence_defaults_toml_env_flags(tmp_path):
    (tmp_path / "tooldistill.toml").write_text('[distill]\nrpm = 7\nconcurrency = 2\nbase_url = "http://toml"\n'
                                               '[distill.limits."gemini-2.5-flash-lite"]\nrpd = 50\n')
    ws = load_workspace(tmp_path, environ={"GEMINI_BASE_URL": "http://env"})
    s = load_settings(ws, concurrency=9, rpd=None)
    assert (s.rpm, s.concurrency, s.base_url) == (7, 9, "http://env")
    assert s.limits_for("gemini-2.5-flash-lite") == (7, 50) and s.limits_for("gemini-2.5-flash") == (7, None)
    assert DistillSettings().models == ["gemini-2.5-flash", "gemini-2.5-flash-lite"]
    assert DistillSettings.default_limits("gemini-2.5-flash") == (5, 20)


def test_bad_settings_name_the_file_and_key(tmp_path):
    (tmp_path / "tooldistill.toml").write_text("[distill]\nconcurency = 2\n")
    with pytest.raises(ConfigError, match=r"tooldistill.toml \[distill\]: key 'concurency': Extra inputs"):
        load_settings(load_workspace(tmp_path, environ={}))
    with pytest.raises(ConfigError, match="lease_s .* must be longer than timeout_s"):
        load_settings(None, lease_s=30, timeout_s=60)


def test_backoff_grows_exponentially_with_bounded_jitter():
    b = Backoff(base_s=1, max_s=10, jitter=0.5)
    rng = random.Random(1)
    delays = [b.delay(n, rng) for n in range(1, 7)]
    for n, d in enumerate(delays, start=1):
        raw = min(10, 2 ** (n - 1))
        assert raw * 0.5 <= d <= raw
    assert b.delay(0) == 0


# ---------------------------------------------------------------- scheduling


def test_the_rested_longest_ready_slot_goes_first(db):
    clock = ManualClock()
    pool = make_pool(db, clock=clock)
    order = []
    for _ in range(6):
        slot, _ = pool.pick(clock.t, unpinned_work=True, pinned_work=set())
        assert pool.reserve(slot, clock.t)
        pool.record(slot, result(Outcome.OK), clock.t)
        order.append(slot.key.env_var)
        clock.t += 1
    assert order == ["GEMINI_API_KEYS[0]", "GEMINI_API_KEYS[1]", "GEMINI_API_KEYS[2]"] * 2


def test_pacing_spreads_rpm_over_the_minute_per_project_bucket(db):
    clock = ManualClock()
    pool = make_pool(db, f"{SECRET_A}@p1,{SECRET_B}@p1", clock=clock, rpm=6)
    slot, _ = pool.pick(clock.t, unpinned_work=True, pinned_work=set())
    pool.reserve(slot, clock.t)
    slot2, at = pool.pick(clock.t, unpinned_work=True, pinned_work=set())
    assert slot2 is None and at == pytest.approx(clock.t + 10)  # both keys share p1's 6 RPM
    sends = []
    while len(sends) < 12:
        slot, at = pool.pick(clock.t, unpinned_work=True, pinned_work=set())
        if slot is None:
            clock.t = at
            continue
        pool.reserve(slot, clock.t)
        sends.append(clock.t)
    for i in range(len(sends) - 6):
        assert sends[i + 6] - sends[i] >= 60  # never more than 6 in any minute


def test_daily_429_exhausts_the_project_bucket_until_reset_across_restarts(db):
    clock = ManualClock(day_seconds=1000, t=10_500)
    pool = make_pool(db, clock=clock)
    a = pool.slots[0]
    pool.reserve(a, clock.t)
    pool.record(a, result(Outcome.DAILY_QUOTA, status_code=429, quota_value=20), clock.t)
    assert a.bucket.state == "exhausted" and a.bucket.until == 11_000 and a.bucket.rpd == 20
    picked = {pool.pick(clock.t, unpinned_work=True, pinned_work=set())[0].key.project}
    assert picked == {"p2"}  # p1's other key shares the exhausted bucket
    restarted = make_pool(db, clock=clock)
    assert [s.bucket.state for s in restarted.slots] == ["exhausted", "exhausted", "ready"]
    assert restarted.slots[0].bucket.rpd == 20 and restarted.slots[0].bucket.rpd_source == "server"
    clock.t = 11_000
    restarted.refresh()
    assert restarted.slots[0].bucket.state == "ready" and restarted.slots[0].bucket.requests_today == 0


def test_nothing_ready_before_a_reset_reports_the_earliest_reset(db):
    clock = ManualClock(day_seconds=1000, t=10_100)
    pool = make_pool(db, f"{SECRET_A}@p1", clock=clock)
    pool.record(pool.slots[0], result(Outcome.DAILY_QUOTA, status_code=429), clock.t)
    assert pool.pick(clock.t, unpinned_work=True, pinned_work=set()) == (None, None)
    assert pool.blocked(unpinned_work=True, pinned_work=set()) == ("exhausted", 11_000)


def test_the_client_side_daily_count_is_shared_through_the_database(db):
    clock = ManualClock()
    one, two = make_pool(db, f"{SECRET_A}@p1", clock=clock, rpd=3), make_pool(db, f"{SECRET_A}@p1", clock=clock,
                                                                             rpd=3)
    assert one.reserve(one.slots[0], clock.t) and two.reserve(two.slots[0], clock.t)
    assert one.reserve(one.slots[0], clock.t)  # the third of three: allowed, then the bucket is exhausted
    assert one.slots[0].bucket.state == "exhausted"
    assert not two.reserve(two.slots[0], clock.t)  # the other process learns it before sending
    assert two.slots[0].bucket.state == "exhausted"


def test_minute_429_cools_the_bucket_and_lowers_rpm_to_the_reported_value(db):
    clock = ManualClock()
    pool = make_pool(db, f"{SECRET_A}@p1", clock=clock, rpm=100)
    slot = pool.slots[0]
    pool.record(slot, result(Outcome.MINUTE_QUOTA, status_code=429, retry_after_s=7.0, quota_value=5), clock.t)
    assert slot.bucket.state == "cooling" and 7.0 <= slot.bucket.until - clock.t <= 7.0 * 1.2
    assert (slot.bucket.rpm, slot.bucket.rpm_source) == (5, "server")
    assert pool.pick(clock.t, unpinned_work=True, pinned_work=set())[1] == slot.bucket.until


def test_bare_429_backs_off_exponentially_and_success_resets_it(db):
    clock = ManualClock()
    pool = make_pool(db, f"{SECRET_A}@p1", clock=clock, backoff_base_s=1, backoff_max_s=100)
    slot = pool.slots[0]
    waits = []
    for _ in range(4):
        pool.record(slot, result(Outcome.BARE_429, status_code=429), clock.t)
        waits.append(slot.bucket.until - clock.t)
        clock.t = slot.bucket.until
        pool.refresh()
    assert waits[0] <= 1 and waits[3] >= 4 and slot.bucket.backoff == 4
    pool.record(slot, result(Outcome.OK), clock.t)
    assert slot.bucket.backoff == 0


def test_transient_errors_cool_only_the_slot(db):
    clock = ManualClock()
    pool = make_pool(db, f"{SECRET_A}@p1,{SECRET_B}@p1", clock=clock)
    a, b = pool.slots
    pool.record(a, result(Outcome.TRANSIENT, status_code=503), clock.t)
    assert a.state == "cooling" and a.bucket.state == "ready"
    assert pool.pick(clock.t, unpinned_work=True, pinned_work=set())[0] is b


def test_a_bad_key_is_invalid_for_every_model_said_once_and_remembered_until_keys_change(db):
    clock = ManualClock()
    pool = make_pool(db, f"{SECRET_A}@p1,{SECRET_C}@p2", clock=clock, models=("m", "n"))
    bad = pool.slots[0]
    msg = pool.record(bad, result(Outcome.BAD_KEY, status_code=400, message="API key not valid."), clock.t)
    assert bad.key.fingerprint in msg and "GEMINI_API_KEYS[0]" in msg and SECRET_A not in msg
    assert pool.record(pool.slots[1], result(Outcome.BAD_KEY, status_code=400), clock.t) is None
    assert [s.state for s in pool.slots] == ["invalid", "invalid", "ready", "ready"]
    again = make_pool(db, f"{SECRET_A}@p1,{SECRET_C}@p2", clock=clock, models=("m", "n"))
    assert [s.state for s in again.slots] == ["invalid", "invalid", "ready", "ready"]
    changed = make_pool(db, f"{SECRET_A}@p1,{SECRET_B}@p3", clock=clock, models=("m", "n"))
    assert [s.state for s in changed.slots] == ["ready"] * 4
    only_bad = make_pool(db, f"{SECRET_A}@p1", clock=clock)
    only_bad.record(only_bad.slots[0], result(Outcome.BAD_KEY, status_code=403), clock.t)
    assert only_bad.pick(clock.t, unpinned_work=True, pinned_work=set()) == (None, None)
    assert only_bad.blocked(unpinned_work=True, pinned_work=set()) == ("invalid", None)


def test_pinned_models_get_slots_that_serve_only_their_jobs(db):
    clock = ManualClock()
    settings = DistillSettings(models=["m"], rpm=0, rpd=0)
    pool = Pool(db, parse_keys(f"{SECRET_A}@p1"), models=["m"], settings=settings, clock=clock, pinned_models=["pro"])
    pro = [s for s in pool.slots if s.model == "pro"][0]
    assert not pro.serves_unpinned
    assert pool.pick(clock.t, unpinned_work=False, pinned_work={"pro"})[0] is pro
    assert pool.pick(clock.t, unpinned_work=True, pinned_work=set())[0].model == "m"


def test_answers_the_server_does_not_count_are_refunded_from_the_daily_count(db):
    clock = ManualClock()
    pool = make_pool(db, f"{SECRET_A}@p1", clock=clock, rpd=1)
    slot = pool.slots[0]
    assert pool.reserve(slot, clock.t) and slot.bucket.state == "exhausted"  # the day's one request is out
    pool.record(slot, result(Outcome.TRANSIENT, status_code=503), clock.t)
    assert slot.bucket.state == "ready" and slot.bucket.requests_today == 0
    assert db.execute("SELECT requests_today, state FROM buckets").fetchone() == (0, "ready")
    assert pool.reserve(slot, clock.t)
    pool.record(slot, result(Outcome.OK), clock.t)
    assert slot.bucket.state == "exhausted" and slot.bucket.requests_today == 1


def test_a_daily_429_just_after_the_reset_is_skew_and_retried_soon(db):
    clock = ManualClock(day_seconds=1000, t=11_000.5)  # half a second into a new fake day
    pool = make_pool(db, f"{SECRET_A}@p1", clock=clock)
    pool.record(pool.slots[0], result(Outcome.DAILY_QUOTA, status_code=429), clock.t)
    bucket = pool.slots[0].bucket
    assert bucket.state == "exhausted" and bucket.until == pytest.approx(clock.t + 10)  # 1% of a day, not a day
    clock.t += 10
    pool.refresh()
    pool.record(pool.slots[0], result(Outcome.DAILY_QUOTA, status_code=429), clock.t)
    assert bucket.until == 12_000  # later in the day: really gone until the next reset


def test_a_late_send_keeps_the_pacing_schedule_and_idling_gives_no_burst(db):
    clock = ManualClock()
    pool = make_pool(db, f"{SECRET_A}@p1", clock=clock, rpm=60)
    t0 = clock.t
    slot, _ = pool.pick(t0, unpinned_work=True, pinned_work=set())
    pool.reserve(slot, t0)
    assert pool.pick(t0, unpinned_work=True, pinned_work=set()) == (None, pytest.approx(t0 + 1))
    clock.t = t0 + 1.3  # the event loop was busy: this send goes out 0.3 s after its slot
    slot, _ = pool.pick(clock.t, unpinned_work=True, pinned_work=set())
    pool.reserve(slot, clock.t)
    _, at = pool.pick(clock.t, unpinned_work=True, pinned_work=set())
    assert at == pytest.approx(t0 + 2)  # the next slot did not move back by the lateness
    clock.t = t0 + 30  # idle far longer than an interval: the schedule starts afresh, one send at a time
    slot, _ = pool.pick(clock.t, unpinned_work=True, pinned_work=set())
    pool.reserve(slot, clock.t)
    assert pool.pick(clock.t, unpinned_work=True, pinned_work=set()) == (None, pytest.approx(t0 + 31))


def test_a_busy_bucket_sends_its_full_rpm_but_never_more_in_any_window(db):
    clock = ManualClock()
    pool = make_pool(db, f"{SECRET_A}@p1,{SECRET_B}@p1", clock=clock, rpm=30)
    sends, lateness = [], 0.0
    while clock.t < ManualClock().t + 600:
        slot, at = pool.pick(clock.t, unpinned_work=True, pinned_work=set())
        if slot is None:
            lateness = (lateness + 0.37) % 0.9  # the loop wakes up to 0.9 s late, varying
            clock.t = at + lateness
            continue
        pool.reserve(slot, clock.t)
        pool.record(slot, result(Outcome.OK), clock.t)
        sends.append(clock.t)
    assert len(sends) >= 0.97 * 30 * 10  # ten minutes at 30 RPM, lateness absorbed
    for i in range(len(sends) - 30):
        assert sends[i + 30] - sends[i] > 60  # never 31 sends in a minute (a margin beyond it, even)
