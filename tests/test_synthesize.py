"""Teacher-written queries: coverage plans, synthesis through the fake Gemini server (real google-genai client,
real SQLite), duplicates caught on arrival and never stored, coverage report, CLI."""

from __future__ import annotations

import json
import re
import threading
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from tooldistill.catalog import NO_TOOL, parse_label
from tooldistill.curate.neardup import dedup_key, near_duplicate_pairs
from tooldistill.db import NewQuery, insert_queries, open_db
from tooldistill.distill.coverage import CATEGORIES, STYLES, coverage_report, get_cells, make_plan
from tooldistill.distill.fake_gemini import FakeGemini, FakeGeminiConfig, bodies
from tooldistill.distill.keys import parse_keys
from tooldistill.distill.settings import DistillSettings
from tooldistill.distill.synthesize import NearDupIndex, SynthesisSettings, read_queries, synthesize
from tooldistill.errors import InputError

KEY = "AIzaSyFAKE-synth-key-1"
FLASH = "gemini-2.5-flash"


def settings(server, **kw) -> DistillSettings:
    return DistillSettings(**{"base_url": server.base_url, "models": [FLASH], "rpm": 0, "rpd": 0, "concurrency": 3, **kw})


def server(**synthesis) -> FakeGemini:
    return FakeGemini(FakeGeminiConfig(keys={KEY: "p1"}, seed=7, synthesis=synthesis))


def synth_rows(db):
    return list(db.query("SELECT * FROM queries WHERE source LIKE 'synth:%' ORDER BY id"))


# ---------------------------------------------------------------- plans


def test_a_plan_has_a_cell_per_tool_category_and_style_and_spreads_the_total(db, catalog):
    cells = make_plan(db, catalog, total=1000)
    tools = len(catalog.names)
    assert len(cells) == tools * 4 * len(STYLES) + len(STYLES)  # no_tool cells have no tool to vary
    assert sum(c.target for c in cells) == 1000 and max(c.target for c in cells) - min(c.target for c in cells) <= 1
    assert {c.category for c in cells} == set(CATEGORIES) and {c.tool for c in cells if c.category == "no_tool"} == \
        {NO_TOOL}


def test_replanning_raises_targets_and_keeps_counts(db, catalog):
    make_plan(db, catalog, per_cell=2, categories=("single",), styles=("terse",))
    db.execute("UPDATE synth_cells SET accepted = 2, state = 'full'")
    cells = make_plan(db, catalog, per_cell=5, categories=("single",), styles=("terse",))
    assert {(c.target, c.accepted, c.state) for c in cells} == {(5, 2, "open")}
    cells = make_plan(db, catalog, per_cell=1, categories=("single",), styles=("terse",))
    assert {c.target for c in cells} == {5}  # targets never shrink


@pytest.mark.parametrize("kwargs, message", [
    ({"total": 10, "categories": ("smalltalk",)}, "unknown category 'smalltalk'"),
    ({"total": 10, "styles": ("shouty",)}, "unknown style 'shouty'"),
    ({"total": 10, "tools": ["teleport"]}, "tool 'teleport' is not in the catalogue"),
    ({}, "give the number of queries wanted"),
    ({"total": 10, "per_cell": 2}, "give the number of queries wanted"),
])
def test_bad_plans_name_the_field(db, catalog, kwargs, message):
    with pytest.raises(InputError) as exc:
        make_plan(db, catalog, **kwargs)
    assert message in str(exc.value) and exc.value.exit_code == 2


# ---------------------------------------------------------------- what arrives


def test_answers_are_read_leniently_and_invalid_items_counted():
    text = json.dumps({"queries": ["1. weather in Oslo", "- convert 3 km", "", "ab", "x" * 600, 7, "  hi   there "]})
    assert read_queries(text) == (["weather in Oslo", "convert 3 km", "hi there"], 4, None)
    assert read_queries("not json")[2].startswith("answer is not JSON")
    assert read_queries('{"items": []}')[2] == "answer has no 'queries' list"


def test_the_index_finds_exact_and_near_duplicates_of_stored_queries_and_of_new_ones():
    index = NearDupIndex(["What's the weather in Paris tomorrow morning?", "convert 10 miles to kilometers"],
                         [1, 2])
    probes = index.check(["whats the weather in paris tomorrow morning", "What's the weather in Paris tomorrow "
                          "morning, quickly?", "play some jazz music", "play some jazz music", "PLAY SOME JAZZ "
                          "MUSIC!!"])
    assert index.match(probes[0])[:2] == ("exact", 1)
    kind, qid, sim = index.match(probes[1])
    assert (kind, qid) == ("near", 1) and index.params.threshold <= sim < 1
    assert index.match(probes[2])[0] == "new"
    index.add(probes[2], 3)
    assert index.match(probes[3])[:2] == ("exact", 3) and index.match(probes[4])[:2] == ("exact", 3)
    empty = NearDupIndex([], [])
    assert [empty.match(p)[0] for p in empty.check(["hello there friend"])] == ["new"]


# ---------------------------------------------------------------- synthesis end to end


def test_synthesis_stores_only_new_queries_with_hints_and_counts_every_planted_repeat(db, catalog):
    make_plan(db, catalog, per_cell=12, tools=["weather", "calculator"], categories=("single", "no_tool"),
              styles=("terse", "chatty"))
    insert_queries(db, [NewQuery("weather in Oslo", "template", gold=parse_label(
        [{"tool": "weather", "args": {"location": "Oslo"}}]))])
    with server(pool_size=10, repeat_rate=0.35) as fake:
        # three requests in flight, so answers may be handled in another order than the teacher wrote them
        # (a repeat before its original): the count must not depend on it
        summary = synthesize(db, catalog=catalog, keys=parse_keys(f"{KEY}@p1"), settings=settings(fake),
                             synth=SynthesisSettings(per_request=5))
        planted = fake.synthesis_stats()
    rows = synth_rows(db)
    caught = summary.exact_dups + summary.near_dups
    assert summary.stopped == "done" and summary.pending == 0 and summary.paid == planted["requests"]
    assert summary.accepted == len(rows) == planted["fresh"] - (caught - planted["planted_repeats"])
    assert caught >= planted["planted_repeats"] > 10 and caught - planted["planted_repeats"] <= 2
    # nothing stored twice, exactly or nearly: curate's own batch search over everything agrees
    keys = [dedup_key(r["text"]) for r in db.query("SELECT text FROM queries")]
    assert len(set(keys)) == len(keys) and len(near_duplicate_pairs(keys).pairs) == 0
    # unlabeled, with the cell's intended tool as a hint apart from labels
    assert db.execute("SELECT count(*) FROM labels").fetchone()[0] == 0
    for r in rows:
        hint = json.loads(r["hint"])
        tool, category, style = r["template_id"].split(":", 1)[1].split("|")
        assert hint == {"tools": [] if tool == NO_TOOL else [tool], "category": category, "style": style,
                        "cell": r["template_id"]} and r["category"] == category and r["gold_calls"] is None
    # pools of 10 cannot fill targets of 12: the teacher repeats itself and the cells say so (a query repeated in
    # another cell counts on the cell whose answer was handled first, so a cell may hold 9 or 11 of them)
    cells = get_cells(db, "default")
    assert {c.state for c in cells} == {"saturated"} and all(c.accepted < c.target for c in cells)
    assert sum(c.accepted for c in cells) == len(rows)
    report = coverage_report(db)
    assert report["totals"]["accepted"] == len(rows) and report["totals"]["duplicates"] == caught
    assert report["totals"]["cells_saturated"] == 6 and report["repetitive_cells"][0]["dup_rate"] > 0.3
    top = report["repeated_queries"][0]
    assert top["times"] >= 2 and db.execute("SELECT text FROM queries WHERE id = ?", [top["query_id"]]).fetchone()[0] \
        == top["text"]


# ---------------------------------------------------------------- the order answers arrive in


class ScriptedTeacher:
    """A Gemini endpoint on 127.0.0.1 that answers each synthesis request from a script, when the test says.

    A request is named ``(style, round)`` (its ``Style:`` line and how many requests of that style came before).
    ``script`` gives the queries each one answers (an unscripted one gets a query of its own); ``hold`` keeps an
    answer back until every request it names has arrived. A next round is sent only after the answer before it
    was stored, so holding an answer until another cell's next round fixes the order in which answers are handled.
    """

    FILLER = ["tell me a joke about penguins", "how tall is the eiffel tower", "recommend a podcast on history",
              "what rhymes with orange", "name three famous painters"]

    def __init__(self, script: dict, hold: dict | None = None):
        self.script, self.hold = script, hold or {}
        self.rounds: Counter = Counter()
        self.arrived: dict[tuple[str, int], threading.Event] = {}
        self.in_order = True
        self.lock = threading.Lock()

    def _event(self, name):
        with self.lock:
            return self.arrived.setdefault(name, threading.Event())

    def answer(self, body: dict) -> list[str]:
        text = body["contents"][-1]["parts"][0]["text"]
        style = re.search(r"^Style: (\w+)", text, re.M).group(1)
        with self.lock:
            self.rounds[style] += 1
            name = (style, self.rounds[style])
        self._event(name).set()
        for other in self.hold.get(name, ()):
            self.in_order &= self._event(other).wait(10)
        return self.script.get(name) or [f"{self.FILLER[name[1] % len(self.FILLER)]} ({style})"]

    def __enter__(self) -> "ScriptedTeacher":
        teacher = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                reply = bodies.response(model=FLASH, response_id="r", parts=[
                    {"text": json.dumps({"queries": teacher.answer(body)})}])
                payload = json.dumps(reply).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, *args):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.base_url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


ORIGINAL = "hiya, sorry to bother you, weather for the misty spruce near rainbow pillow cheers"
BEFORE = "again, " + ORIGINAL  # a repeat the teacher wrote after the original, handled before it
AFTER = ORIGINAL + " today"  # a second repeat of the original, near it but not near BEFORE


def run_scripted(db, catalog, teacher, *, per_cell: int, stale_limit: int):
    make_plan(db, catalog, per_cell=per_cell, tools=["weather"], categories=("single",), styles=("terse", "chatty"))
    return synthesize(db, catalog=catalog, keys=parse_keys(f"{KEY}@p1"), settings=DistillSettings(
        base_url=teacher.base_url, models=[FLASH], rpm=0, rpd=0, concurrency=2),
                      synth=SynthesisSettings(per_request=1, stale_limit=stale_limit))


def test_the_three_texts_of_the_order_test_are_a_chain_not_a_cluster():
    index = NearDupIndex([ORIGINAL], [1])
    assert [index.match(p)[0] for p in index.check([BEFORE, AFTER])] == ["near", "near"]
    index = NearDupIndex([BEFORE], [1])
    assert index.match(index.check([AFTER])[0])[0] == "new"


def test_a_repeat_handled_before_its_original_does_not_let_a_second_repeat_through(db, catalog):
    # chatty round 1 writes the original; terse round 1 repeats it and is handled first (the chatty answer is
    # held until terse round 2 is asked, i.e. after terse round 1 was stored); chatty round 2 repeats it again
    teacher = ScriptedTeacher({("chatty", 1): [ORIGINAL], ("terse", 1): [BEFORE], ("chatty", 2): [AFTER],
                               ("terse", 2): ["weather for the sunny harbor near the old mill"]},
                              hold={("chatty", 1): [("terse", 2)]})
    with teacher:
        summary = run_scripted(db, catalog, teacher, per_cell=2, stale_limit=2)
    assert teacher.in_order
    stored = {r["text"]: r["id"] for r in synth_rows(db)}
    assert AFTER not in stored and set(stored) == {BEFORE, "weather for the sunny harbor near the old mill"}
    assert (summary.exact_dups, summary.near_dups, summary.accepted) == (0, 2, 2)
    # both repeats are linked to the query that was stored, the second one through the first
    links = db.execute("SELECT query_id, kind, count FROM synth_repeats").fetchall()
    assert links == [(stored[BEFORE], "near", 2)]
    assert {c.style: c.state for c in get_cells(db, "default")} == {"terse": "full", "chatty": "saturated"}


def test_two_answers_repeating_each_other_handled_together_store_one(db, catalog):
    # both answers are held until both requests arrived, then sent at once: each is checked against the other
    teacher = ScriptedTeacher({("chatty", 1): [ORIGINAL], ("terse", 1): [BEFORE]},
                              hold={("chatty", 1): [("terse", 1)], ("terse", 1): [("chatty", 1)]})
    with teacher:
        summary = run_scripted(db, catalog, teacher, per_cell=1, stale_limit=1)
    assert teacher.in_order
    stored = [r["text"] for r in synth_rows(db)]
    assert len(stored) == 1 and stored[0] in (ORIGINAL, BEFORE)
    assert (summary.accepted, summary.near_dups, summary.exact_dups) == (1, 1, 0)


def test_an_interrupted_plan_resumes_where_it_stopped_and_a_finished_one_sends_nothing(db, catalog):
    make_plan(db, catalog, per_cell=6, tools=["weather"], categories=("single",), styles=("terse", "typos"))
    keys = parse_keys(f"{KEY}@p1")
    with server(pool_size=50, repeat_rate=0.2) as fake:
        first = synthesize(db, catalog=catalog, keys=keys, settings=settings(fake), limit=1,
                           synth=SynthesisSettings(per_request=3))
        assert first.stopped == "limit" and first.pending == 2
        rest = synthesize(db, catalog=catalog, keys=keys, settings=settings(fake),
                          synth=SynthesisSettings(per_request=3))
        again = synthesize(db, catalog=catalog, keys=keys, settings=settings(fake),
                           synth=SynthesisSettings(per_request=3))
        sent = fake.stats()["requests"]
    assert rest.stopped == "done" and {c.state for c in get_cells(db, "default")} == {"full"}
    assert len(synth_rows(db)) == 12 and again.paid == 0 and again.enqueued == 0
    assert sent == first.paid + rest.paid
    jobs = dict(db.execute("SELECT state, count(*) FROM jobs WHERE purpose = 'synthesize' GROUP BY 1").fetchall())
    assert jobs == {"done": first.paid + rest.paid}


def test_an_unusable_answer_is_paid_counted_and_the_cell_asks_again(db, catalog):
    make_plan(db, catalog, per_cell=6, tools=["weather"], categories=("single",), styles=("terse",))
    with FakeGemini(FakeGeminiConfig(keys={KEY: "p1"}, seed=3, faults={"malformed": 0.5},
                                     synthesis={"repeat_rate": 0.0})) as fake:
        summary = synthesize(db, catalog=catalog, keys=parse_keys(f"{KEY}@p1"), settings=settings(fake),
                             synth=SynthesisSettings(per_request=2, stale_limit=10))
    assert summary.bad_answers >= 1 and summary.accepted == 6 and summary.paid == 3 + summary.bad_answers
    reasons = [r[0] for r in db.execute("SELECT last_error FROM jobs WHERE last_error IS NOT NULL")]
    assert len(reasons) == summary.bad_answers and all(r.startswith("answer is not JSON") for r in reasons)


# ---------------------------------------------------------------- CLI


@pytest.fixture
def ws(workspace, monkeypatch):
    (workspace / "tooldistill.toml").write_text('[distill]\nmodels = ["gemini-2.5-flash"]\nrpm = 0\nrpd = 0\n')
    monkeypatch.chdir(workspace)
    monkeypatch.setenv("GEMINI_API_KEYS", f"{KEY}@p1")
    return workspace


def test_cli_synthesize_then_coverage(ws, cli):
    with server(pool_size=20, repeat_rate=0.3) as fake:
        result = cli("distill", "synthesize", "--n", "16", "--tools", "weather,calculator", "--categories",
                     "single", "--styles", "terse,chatty", "--per-request", "4", "--base-url", fake.base_url,
                     "--json")
    assert result.exit_code == 0, result.stderr
    summary = json.loads(result.stdout)
    assert summary["accepted"] == 16 and summary["cells"] == {"open": 0, "full": 4, "saturated": 0}
    report = json.loads(cli("distill", "coverage", "--json").stdout)
    assert report["totals"]["accepted"] == 16 and report["totals"]["target"] == 16
    assert report["totals"]["duplicates"] == summary["exact_dups"] + summary["near_dups"]
    table = cli("distill", "coverage", "--cells")
    assert table.exit_code == 0 and "weather|single|terse" in table.stdout and "by category" in table.stdout
    db = open_db(ws / "tooldistill.db")
    assert db.execute("SELECT count(*) FROM queries WHERE source = 'synth:default'").fetchone()[0] == 16


def test_cli_bad_input_says_what_to_do(ws, cli):
    result = cli("distill", "synthesize")
    assert result.exit_code == 2
    assert "no synthesis plan 'default' yet; say how many queries to write" in result.stderr
    result = cli("distill", "synthesize", "--n", "5", "--styles", "shouty")
    assert result.exit_code == 2 and "unknown style 'shouty'" in result.stderr
    result = cli("distill", "coverage")
    assert result.exit_code == 2 and "no synthesis plan yet; start one with" in result.stderr


def test_plans_keep_to_their_own_jobs(db, catalog):
    make_plan(db, catalog, name="first", per_cell=2, tools=["weather"], categories=("single",), styles=("terse",))
    make_plan(db, catalog, name="second", per_cell=2, tools=["calculator"], categories=("single",),
              styles=("terse",))
    from tooldistill.distill.synthesize import enqueue_cells

    assert enqueue_cells(db, "first") == 1
    with server(pool_size=10, repeat_rate=0.0) as fake:
        done = synthesize(db, catalog=catalog, keys=parse_keys(f"{KEY}@p1"), settings=settings(fake), plan="second")
    assert done.accepted == 2 and done.pending == 0
    left = db.execute("SELECT state, available_at, json_extract(params, '$.plan') FROM jobs WHERE state != 'done'")
    assert left.fetchall() == [("pending", None, "first")]
    assert [r["template_id"] for r in synth_rows(db)] == ["second:calculator|single|terse"] * 2
