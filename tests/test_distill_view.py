"""How a run looks: plain lines every --log-every seconds off a terminal, the live panel's content, the summary."""

import re

from rich.console import Console

from tooldistill.commands import distill_view
from tooldistill.commands.distill_view import RunDisplay, human_duration, panel, plain_line
from tooldistill.progress import ProgressEvent

from test_distill_ops import serve, ws  # noqa: F401  (the same workspace and fake server)


def event(done, *, kind="progress", total=100, rate=60.0, eta=120.0):
    buckets = [{"bucket": "p1:gemini-2.5-flash", "state": "ready", "until": None, "requests_today": 7,
                "left_today": 13, "rpm": 5, "rpd": 20, "slots": 2, "invalid_slots": 0},
               {"bucket": "p2:gemini-2.5-flash", "state": "exhausted", "until": 2e9, "requests_today": 20,
                "left_today": 0, "rpm": 5, "rpd": 20, "slots": 1, "invalid_slots": 0}]
    info = {"kind": kind, "labels": done - 1 if done else 0, "rejected": 1 if done else 0, "failed": 0, "dead": 0,
            "pending": total - done, "cache_hits": 0, "in_flight": 2, "requests": {"ok": done},
            "buckets": buckets, "elapsed_s": 30.0, "labels_per_min": rate, "eta_s": eta, "prompt_tokens": 1234,
            "output_tokens": 56, "cost_usd": 0.0125, "packed_requests": 3, "unpacked": 1, "pack": 8}
    return ProgressEvent(task="distill", done=done, total=total, message="", info=info)


def test_off_a_terminal_a_line_comes_every_log_every_seconds_and_at_the_end(monkeypatch, capsys):
    now = [1000.0]
    monkeypatch.setattr(distill_view.time, "monotonic", lambda: now[0])
    display = RunDisplay(quiet=False, log_every=15, tty=False)
    for second in range(61):  # the runner reports several times a second; one event a second here
        now[0] = 1000.0 + second
        display(event(second))
    display(event(61, kind="done"))
    lines = capsys.readouterr().err.strip().splitlines()
    assert [int(re.search(r"distill: (\d+)/", line).group(1)) for line in lines] == [0, 15, 30, 45, 60, 61]
    assert "60.0/min, ETA 2m00s" in lines[1] and "13 left today" in lines[1]
    assert "tokens 1,234+56 ($0.0125)" in lines[1] and "p2:gemini-2.5-flash=exhausted" in lines[1]


def test_the_live_panel_shows_totals_rate_eta_buckets_tokens_and_cost():
    console = Console(record=True, width=120)
    console.print(panel(event(40)))
    text = console.export_text()
    for part in ("40/100 done", "labels 39", "rejected 1", "pending 60", "60.0 labels/min", "ETA 2m00s",
                 "pack 8 (3 packed, 1 asked alone)", "tokens 1,234 in + 56 out", "est. cost $0.0125",
                 "sent today", "left today"):
        assert part in text, part
    row = next(line for line in text.splitlines() if "p2:gemini-2.5-flash" in line)
    assert "exhausted" in row and " 20 " in row and " 0 " in row


def test_durations_read_like_a_person_writes_them():
    assert [human_duration(s) for s in (None, 9, 250, 3 * 3600 + 300, 2 * 86400 + 4 * 3600)] == [
        "-", "9s", "4m10s", "3h05m", "2d04h"]


def test_a_run_off_a_terminal_logs_its_first_and_last_line_and_a_summary(ws, cli, monkeypatch):  # noqa: F811
    with serve(ws) as server:
        monkeypatch.setenv("GEMINI_BASE_URL", server.base_url)
        result = cli("distill", "run", "--log-every", "3600")
    assert result.exit_code == 0
    lines = [line for line in result.stderr.splitlines() if " distill: " in line]
    assert len(lines) == 2 and "0/12 done" in lines[0] and "12/12 done (12 labels" in lines[1]
    assert "labels per paid request" in result.stdout and "est. cost (list prices)" in result.stdout
    assert plain_line(event(5)).count("\n") == 0
