"""The fake Gemini server: a real HTTP server on 127.0.0.1 speaking the generateContent REST protocol.

Every request gets a number; ``random.Random(f"{seed}:{n}")`` draws its fault and latency, so a run is
reproducible for a given request order. Quotas are checked before the fault draw (see :mod:`.state`). Every
request is logged (key fingerprint, never the key) with the outcome the client should classify it as. Routes
are a table (:data:`_ROUTES`), so later endpoints (batches) are a row and a method each.
"""

from __future__ import annotations

import errno
import json
import logging
import random
import re
import socket
import threading
import time
from collections import Counter, defaultdict
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Callable
from urllib.parse import parse_qs, urlsplit

from pydantic import ValidationError

from ...catalog import NO_TOOL
from ...textnorm import normalize_text
from ..clock import Clock, make_clock
from ..outcomes import Outcome
from . import bodies
from .config import FakeGeminiConfig, key_fingerprint, merge_config, validation_message
from .oracle import Answer, Oracle
from .protocol import BadRequest, GenerateRequest, parse_generate_request
from . import batches as batch_mode
from .state import (
    ANSWER_FAULTS, JSON_TYPE, LINE_FAULTS, SERVER_FAULTS, Reply, State, StructuredHook, default_structured_answer,
    load_oracle,
)
from .synthesis import is_synthesis_request

log = logging.getLogger(__name__)

# ---------------------------------------------------------------- routing

_ROUTES: list[tuple[str, re.Pattern, str]] = [
    ("POST", re.compile(r"^(?:/.*)?/(?P<version>v1|v1beta)/models/(?P<model>[^/:]+):generateContent$"),
     "generate_content"),
    ("GET", re.compile(r"^(?:/.*)?/(?P<version>v1|v1beta)/models/(?P<model>[^/:]+)$"), "get_model"),
    ("GET", re.compile(r"^(?:/.*)?/(?P<version>v1|v1beta)/models$"), "list_models"),
    ("POST", re.compile(r"^(?:/.*)?/(?P<version>v1|v1beta)/models/(?P<model>[^/:]+):batchGenerateContent$"),
     "batch_create"),
    ("GET", re.compile(r"^(?:/.*)?/(?P<version>v1|v1beta)/batches/(?P<batch>[^/:]+)$"), "batch_get"),
    ("POST", re.compile(r"^(?:/.*)?/(?P<version>v1|v1beta)/batches/(?P<batch>[^/:]+):cancel$"), "batch_cancel"),
    ("DELETE", re.compile(r"^(?:/.*)?/(?P<version>v1|v1beta)/batches/(?P<batch>[^/:]+)$"), "batch_delete"),
    ("GET", re.compile(r"^(?:/.*)?/(?P<version>v1|v1beta)/batches$"), "batch_list"),
    ("GET", re.compile(r"^/_stats$"), "stats"),
    ("GET", re.compile(r"^/_log$"), "get_log"),
    ("POST", re.compile(r"^/_control$"), "control"),
]
"""(method, path pattern, handler method of :class:`_Handler`); later endpoints (batches) add rows here."""


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "FakeGemini/1"
    server: "_Server"

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - http.server's signature
        pass  # the request log is ours; http.server's lines would go to stderr

    def setup(self) -> None:
        super().setup()
        # one reply is one write; without NODELAY, Nagle plus the client's delayed ACK add ~40 ms per request
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.server.track(self.connection, True)

    def finish(self) -> None:
        self.server.track(self.connection, False)
        super().finish()

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_POST(self) -> None:
        self._dispatch("POST")

    def do_DELETE(self) -> None:
        self._dispatch("DELETE")

    def _dispatch(self, method: str) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        self.raw_body = self.rfile.read(length) if length else b""
        url = urlsplit(self.path)
        self.url_path, self.params = url.path, parse_qs(url.query)
        for verb, pattern, name in _ROUTES:
            match = pattern.match(self.url_path)
            if match and verb == method:
                reply = getattr(self, name)(**match.groupdict())
                break
        else:
            reply = Reply(404, bodies.route_not_found_404(self.url_path), outcome=Outcome.BAD_REQUEST)
        self._send(reply)

    def _send(self, reply: Reply) -> None:
        payload = reply.payload()
        self.send_response(reply.status)
        self.send_header("Content-Type", reply.content_type)
        self.send_header("Content-Length", str(len(payload)))
        self._headers_buffer.append(b"\r\n" + payload)  # headers and body in one send
        self.flush_headers()

    # ------------------------------------------------------------ API routes

    @property
    def state(self) -> State:
        return self.server.state

    def _key(self) -> str | None:
        key = self.headers.get("x-goog-api-key") or (self.params.get("key") or [None])[0]
        return key.strip() if key else None

    def _authorise(self, entry: dict) -> tuple[str | None, Reply | None]:
        """(project, None) for an accepted key, else (None, the 400/403 reply)."""
        cfg, key = self.state.config, self._key()
        if not key:
            return None, Reply(403, bodies.NO_KEY_403, outcome=Outcome.BAD_KEY, fault="no_key")
        entry["key"] = key_fingerprint(key)
        if key in cfg.leaked_keys:
            return None, Reply(403, bodies.LEAKED_403, outcome=Outcome.BAD_KEY, fault="leaked_key")
        project = cfg.project_of(key)
        if project is None:
            return None, Reply(400, bodies.API_KEY_INVALID_400, outcome=Outcome.BAD_KEY, fault="invalid_key")
        entry["project"] = project
        return project, None

    def _entry(self, n: int, model: str | None) -> dict:
        now = self.state.clock.now()
        return {"n": n, "t": round(now, 6), "method": self.command, "path": self.url_path, "key": None,
                "project": None, "model": model, "status": None, "outcome": None, "fault": None, "query": None,
                "noised": False, "known": None, "quota_day": self.state.clock.day(now), "latency_ms": 0.0}

    def _finish(self, entry: dict, reply: Reply, start: float) -> Reply:
        entry.update(status=reply.status, outcome=str(reply.outcome), fault=reply.fault,
                     latency_ms=round((time.perf_counter() - start) * 1000, 3))
        self.state.record(entry)
        return reply

    def generate_content(self, version: str, model: str) -> Reply:
        start, st = time.perf_counter(), self.state
        n = st.next_number()
        rng = random.Random(f"{st.config.seed}:{n}")
        entry = self._entry(n, model)
        project, reply = self._authorise(entry)
        if reply is None and model not in st.config.models:
            reply = Reply(404, bodies.model_not_found_404(model, version), outcome=Outcome.BAD_REQUEST,
                          fault="unknown_model")
        request = None
        if reply is None:
            try:
                request = parse_generate_request(json.loads(self.raw_body or b"null"))
            except (ValueError, BadRequest):  # JSONDecodeError is a ValueError
                reply = Reply(400, bodies.INVALID_ARGUMENT_400, outcome=Outcome.BAD_REQUEST, fault="invalid_request")
        if reply is None:
            entry["query"] = normalize_text(request.last_user_text)
            if st.config.log_bodies:
                entry["body"] = request.body
            reply = self._answer(rng, project, model, request, entry)
        return self._finish(entry, reply, start)

    def _answer(self, rng: random.Random, project: str, model: str, request: GenerateRequest, entry: dict) -> Reply:
        st, cfg = self.state, self.state.config
        fault = _draw_fault(rng, cfg.faults.model_dump())
        latency = rng.uniform(*cfg.latency_s) + (cfg.slow_s if rng.random() < cfg.faults.slow else 0.0)
        with st.lock:
            now = st.clock.now()
            entry["quota_day"] = st.clock.day(now)
            reply = st.quota_reply(project, model, now)
            if reply is None and fault in SERVER_FAULTS:
                status, body, outcome = SERVER_FAULTS[fault]
                ctype = "text/html; charset=UTF-8" if isinstance(body, str) else JSON_TYPE
                reply = Reply(status, body, outcome=outcome, fault=fault, content_type=ctype)
            if reply is None:
                st.admit(project, model, now)
        if reply is not None:
            return reply
        if latency > 0:
            time.sleep(latency)
        answer = st.answer_for(model, request)(request.last_user_text)
        entry.update(noised=answer.noised, known=answer.known)
        if not answer.known:
            log.info("fake gemini: unknown query %r answered no_tool(unknown)", entry["query"])
        return self._success(rng, model, request, answer, fault)

    def _success(self, rng: random.Random, model: str, request: GenerateRequest, answer: Answer,
                 fault: str | None) -> Reply:
        rid = "%016x" % rng.getrandbits(64)
        sig = bodies.thought_signature(rid)
        prompt_tokens = bodies.estimate_tokens(request.body)
        common = dict(model=model, response_id=rid, prompt_tokens=prompt_tokens)
        if fault == "garbage_200":
            return Reply(200, "<!doctype html><p>upstream said something odd", outcome=Outcome.TRANSIENT,
                         fault=fault, content_type="text/html; charset=UTF-8")
        if fault in ("malformed", "max_tokens"):
            finish = "MALFORMED_FUNCTION_CALL" if fault == "malformed" else "MAX_TOKENS"
            return Reply(200, bodies.response(parts=None, finish=finish, output_tokens=0, **common),
                         outcome=Outcome.REJECTED, fault=fault)
        if fault == "blocked":
            body = bodies.response(parts=None, finish=None, prompt_feedback={"blockReason": "PROHIBITED_CONTENT"},
                                   **common)
            return Reply(200, body, outcome=Outcome.REJECTED, fault=fault)
        names = request.callable_names
        if request.response_schema is not None:
            if is_synthesis_request(request):
                value = self.state.synthesis.answer(request)
            else:
                value = self.state.structured(request, self.state.answer_for(model, request))
                value = _corrupt_packed(value, fault)
            parts = [{"text": json.dumps(value, ensure_ascii=False)}]
            return Reply(200, bodies.response(parts=parts, **common), outcome=Outcome.OK, fault=fault)
        if fault == "text_answer" or not names:
            text = "I would call: " + json.dumps([{"name": n, "args": a} for n, a in answer.parts()])
            outcome = Outcome.REJECTED if names else Outcome.OK
            return Reply(200, bodies.response(parts=[{"text": text}], **common), outcome=outcome, fault=fault)
        calls = _fit_to_declared(answer.parts(), names)
        if fault == "unknown_tool":
            calls = [(calls[0][0] + "_v2", calls[0][1])] + calls[1:]
        elif fault == "bad_args":
            target = next((c for c in calls if c[0] != NO_TOOL), None) or (next(
                (n for n in names if n != NO_TOOL), calls[0][0]), {})
            calls = [(target[0], {"unexpected_argument": 12345})]
        parts = [bodies.call_part(name, args, sig) for name, args in calls]
        outcome = Outcome.REJECTED if fault in ("unknown_tool", "bad_args") else Outcome.OK
        return Reply(200, bodies.response(parts=parts, **common), outcome=outcome, fault=fault)

    def get_model(self, version: str, model: str) -> Reply:
        start = time.perf_counter()
        entry = self._entry(self.state.next_number(), model)
        _, reply = self._authorise(entry)
        if reply is None:
            reply = Reply(200, bodies.model_info(model), outcome=Outcome.OK) if model in self.state.config.models \
                else Reply(404, bodies.model_not_found_404(model, version), outcome=Outcome.BAD_REQUEST,
                           fault="unknown_model")
        return self._finish(entry, reply, start)

    def list_models(self, version: str) -> Reply:
        start = time.perf_counter()
        entry = self._entry(self.state.next_number(), None)
        _, reply = self._authorise(entry)
        if reply is None:
            reply = Reply(200, {"models": [bodies.model_info(m) for m in self.state.config.models]},
                          outcome=Outcome.OK)
        return self._finish(entry, reply, start)

    # ------------------------------------------------------------ batch mode (notes/gemini-api.md 1.7)

    def _batch_entry(self, model: str | None) -> tuple[float, dict, str | None, Reply | None]:
        start = time.perf_counter()
        entry = self._entry(self.state.next_number(), model)
        project, reply = self._authorise(entry)
        return start, entry, project, reply

    def batch_create(self, version: str, model: str) -> Reply:
        start, entry, project, reply = self._batch_entry(model)
        st, cfg = self.state, self.state.config
        if reply is None and model not in cfg.models:
            reply = Reply(404, bodies.model_not_found_404(model, version), outcome=Outcome.BAD_REQUEST,
                          fault="unknown_model")
        if reply is None and not cfg.batch_allowed(project):
            reply = Reply(429, bodies.batch_not_on_tier_429(model=model, retry_delay_s=cfg.daily_retry_delay_s),
                          outcome=Outcome.DAILY_QUOTA, fault="batch_not_on_tier")
        if reply is None:  # the same server faults as generateContent, drawn per request, before anything is made
            rng = random.Random(f"{cfg.seed}:{entry['n']}")
            fault = _draw_fault(rng, {k: v for k, v in cfg.faults.model_dump().items() if k in SERVER_FAULTS})
            if fault is not None:
                status, body, outcome = SERVER_FAULTS[fault]
                ctype = "text/html; charset=UTF-8" if isinstance(body, str) else JSON_TYPE
                reply = Reply(status, body, outcome=outcome, fault=fault, content_type=ctype)
        if reply is None and len(self.raw_body) > cfg.batch.inline_limit_bytes:
            reply = Reply(400, bodies.payload_too_large_400(len(self.raw_body), cfg.batch.inline_limit_bytes),
                          outcome=Outcome.BAD_REQUEST, fault="payload_too_large")
        if reply is None:
            try:
                display, requests = _read_batch_body(json.loads(self.raw_body or b"null"))
            except (ValueError, BadRequest):
                reply = Reply(400, bodies.INVALID_ARGUMENT_400, outcome=Outcome.BAD_REQUEST, fault="invalid_request")
        if reply is None:
            with st.lock:
                batch = st.batches.create(model=model, project=project, display_name=display, requests=requests,
                                          now=st.clock.now(), behaviour=cfg.batch, seed=cfg.seed,
                                          body_bytes=len(self.raw_body))
                body = batch_mode.operation(batch)
            entry.update(batch=batch.name, display_name=display, lines=len(requests))
            if cfg.batch.create_delay_s:
                time.sleep(cfg.batch.create_delay_s)  # created, not yet answered: the window a kill can hit
            reply = Reply(200, body, outcome=Outcome.OK)
        return self._finish(entry, reply, start)

    def _batch_reply(self, version: str, batch: str, action: Callable[[batch_mode.FakeBatch], dict]) -> Reply:
        start, entry, project, reply = self._batch_entry(None)
        name = f"batches/{batch}"
        entry["batch"] = name
        if reply is None:
            with self.state.lock:
                found = self.state.batches.find(name, project)
                body = action(found) if found is not None else None
            reply = Reply(200, body, outcome=Outcome.OK) if found is not None else \
                Reply(404, bodies.batch_not_found_404(name), outcome=Outcome.BAD_REQUEST, fault="unknown_batch")
        return self._finish(entry, reply, start)

    def batch_get(self, version: str, batch: str) -> Reply:
        st = self.state

        def poll(found: batch_mode.FakeBatch) -> dict:
            batch_mode.advance(found, st.clock.now(), st.config.batch, self._answer_line, st.config.seed)
            return batch_mode.operation(found)

        return self._batch_reply(version, batch, poll)

    def batch_cancel(self, version: str, batch: str) -> Reply:
        st = self.state

        def cancel(found: batch_mode.FakeBatch) -> dict:
            if not found.done:
                batch_mode.finish(found, "cancelled", st.clock.now(), st.config.batch, self._answer_line,
                                  st.config.seed)
            return {}

        return self._batch_reply(version, batch, cancel)

    def batch_delete(self, version: str, batch: str) -> Reply:
        def delete(found: batch_mode.FakeBatch) -> dict:
            found.deleted = True
            return {}

        return self._batch_reply(version, batch, delete)

    def batch_list(self, version: str) -> Reply:
        start, entry, project, reply = self._batch_entry(None)
        if reply is None:
            try:
                size = int((self.params.get("pageSize") or ["50"])[0])
                offset = batch_mode.read_page_token((self.params.get("pageToken") or [None])[0])
                if size < 1 or offset < 0:
                    raise ValueError("pageSize must be positive")
            except (ValueError, UnicodeDecodeError):
                reply = Reply(400, bodies.INVALID_ARGUMENT_400, outcome=Outcome.BAD_REQUEST, fault="invalid_request")
            else:
                size = min(size, 1000)
                with self.state.lock:
                    listing = self.state.batches.listing(project)
                    ops = [batch_mode.operation(b, with_output=False) for b in listing[offset:offset + size]]
                body: dict = {"operations": ops}
                if offset + size < len(listing):
                    body["nextPageToken"] = batch_mode.page_token(offset + size)
                reply = Reply(200, body, outcome=Outcome.OK)
        return self._finish(entry, reply, start)

    def _answer_line(self, rng: random.Random, model: str, request: GenerateRequest) -> dict:
        """One line of a batch: the same answer (oracle, noise, answer faults) as generateContent gives."""
        rates = {k: v for k, v in self.state.config.faults.model_dump().items() if k in LINE_FAULTS}
        fault = _draw_fault(rng, rates)
        answer = self.state.answer_for(model, request)(request.last_user_text)
        return self._success(rng, model, request, answer, fault).body

    # ------------------------------------------------------------ test routes

    def stats(self) -> Reply:
        return Reply(200, self.server.owner.stats(), outcome=Outcome.OK)

    def get_log(self) -> Reply:
        return Reply(200, {"log": self.server.owner.log}, outcome=Outcome.OK)

    def control(self) -> Reply:
        try:
            changes = json.loads(self.raw_body or b"{}")
            if not isinstance(changes, dict):
                raise ValueError("expected a JSON object")
            self.server.owner.control(changes)
        except ValidationError as exc:
            return Reply(400, bodies.error_body(400, "INVALID_ARGUMENT", validation_message(exc)),
                         outcome=Outcome.BAD_REQUEST)
        except (ValueError, KeyError, TypeError) as exc:
            return Reply(400, bodies.error_body(400, "INVALID_ARGUMENT", f"bad control body: {exc}"),
                         outcome=Outcome.BAD_REQUEST)
        return Reply(200, {"config": self.state.config.public()}, outcome=Outcome.OK)


def _read_batch_body(body: Any) -> tuple[str, list[tuple[GenerateRequest, dict | None]]]:
    """(display name, [(request, metadata)]) of a batchGenerateContent body; BadRequest where the API says 400."""
    from .protocol import pick

    batch = pick(body, "batch")
    if not isinstance(batch, dict):
        raise BadRequest("body has no batch")
    source = pick(batch, "inputConfig") or {}
    if pick(source, "fileName"):
        raise BadRequest("file input is not served by the fake (inline requests only)")
    lines = pick(pick(source, "requests") or {}, "requests")
    if not isinstance(lines, list) or not lines:
        raise BadRequest("inputConfig.requests.requests must be a non-empty list")
    out = []
    for line in lines:
        if not isinstance(line, dict):
            raise BadRequest("a batch line is not an object")
        metadata = line.get("metadata")
        out.append((parse_generate_request(line.get("request")), metadata if isinstance(metadata, dict) else None))
    return str(pick(batch, "displayName") or ""), out


def _draw_fault(rng: random.Random, rates: dict) -> str | None:
    r, acc = rng.random(), 0.0
    for name in (*SERVER_FAULTS, *ANSWER_FAULTS):
        acc += rates.get(name, 0.0)
        if r < acc:
            return name
    return None


def _corrupt_packed(value: Any, fault: str | None) -> Any:
    """A packed answer with an answer fault lands on its first item only (the rest of the pack stays good)."""
    items = value.get("answers") if isinstance(value, dict) else None
    if fault not in ("unknown_tool", "bad_args") or not items or not items[0].get("calls"):
        return value
    first = dict(items[0])
    call = dict(first["calls"][0])
    if fault == "unknown_tool":
        call["name"] = str(call.get("name")) + "_v2"
    else:
        call["args"] = {"unexpected_argument": 12345}
    first["calls"] = [call, *first["calls"][1:]]
    return {**value, "answers": [first, *items[1:]]}


def _fit_to_declared(calls: list[tuple[str, dict]], names: list[str]) -> list[tuple[str, dict]]:
    """Keep the calls the request lets the model make; a model in mode ANY must call something."""
    kept = [c for c in calls if c[0] in names]
    if kept:
        return kept
    if NO_TOOL in names:
        return [(NO_TOOL, {"reason": "the known answer is not among the declared functions"})]
    return [(names[0], {})]


_GONE_ERRNOS = {errno.EPIPE, errno.ECONNRESET, errno.ECONNABORTED, errno.ENOTCONN, errno.EBADF}
"""OSErrors that mean the client went away (a reset socket can also fail setsockopt or shutdown)."""


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128  # the default 5 drops SYNs when a runner opens many connections at once

    def __init__(self, address: tuple[str, int], state: State, owner: "FakeGemini"):
        self.state, self.owner = state, owner
        self._connections: set[socket.socket] = set()
        self._conn_lock = threading.Lock()
        super().__init__(address, _Handler)

    def handle_error(self, request: Any, client_address: Any) -> None:
        import sys

        exc = sys.exc_info()[1]
        if isinstance(exc, ConnectionError) or (isinstance(exc, OSError) and exc.errno in _GONE_ERRNOS):
            return  # a client killed mid-request (the kill tests do it on purpose): nothing to report
        super().handle_error(request, client_address)

    def track(self, conn: socket.socket, open_: bool) -> None:
        with self._conn_lock:
            (self._connections.add if open_ else self._connections.discard)(conn)

    def drop_connections(self) -> None:
        """Close kept-alive client connections, so their handler threads end with the server."""
        with self._conn_lock:
            conns = list(self._connections)
        for conn in conns:
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


class FakeGemini:
    """The fake Gemini server; ``with FakeGemini(config) as server:`` serves on ``server.base_url``.

    Args:
        config: what it does (defaults: both 2.5 flash models, no quotas, no faults, no oracle, no keys).
        port: 0 for an ephemeral port.
        clock: shared with the runner under test (default from ``config.day_seconds`` / ``config.epoch``).
        oracle: answers (default: from ``config.oracle`` / ``config.oracle_db``).
        structured_answer: the hook answering structured-output requests.
    """

    def __init__(self, config: FakeGeminiConfig | None = None, *, port: int = 0, clock: Clock | None = None,
                 oracle: Oracle | None = None, structured_answer: StructuredHook | None = None):
        self._state = State(config or FakeGeminiConfig(), clock, oracle, structured_answer)
        self._port = port
        self._httpd: _Server | None = None
        self._thread: threading.Thread | None = None

    # ------------------------------------------------------------ lifecycle

    def start(self) -> "FakeGemini":
        """Bind 127.0.0.1 and serve in a background thread; returns self."""
        self._httpd = _Server(("127.0.0.1", self._port), self._state, self)
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05},
                                        name="fake-gemini", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving, drop open connections, close the log file."""
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.drop_connections()
            self._httpd.server_close()
            self._httpd = None
        self._state.close()

    def __enter__(self) -> "FakeGemini":
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    # ------------------------------------------------------------ introspection

    @property
    def port(self) -> int:
        if self._httpd is None:
            raise RuntimeError("the fake server is not running; use start() or 'with FakeGemini(...)'")
        return self._httpd.server_address[1]

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def config(self) -> FakeGeminiConfig:
        return self._state.config

    @property
    def clock(self) -> Clock:
        return self._state.clock

    @property
    def oracle(self) -> Oracle:
        return self._state.oracle

    @property
    def log(self) -> list[dict]:
        """A copy of the request log, in order of completion: one dict per request with ``n`` (arrival number),
        ``t`` (arrival time on the server's clock), ``method``, ``path``, ``key`` (fingerprint, never the key),
        ``project``, ``model``, ``status``, ``outcome`` (the Outcome value the client should see), ``fault``,
        ``query`` (normalised), ``noised``, ``known`` (the oracle knew the query), ``quota_day``, ``latency_ms``
        (and ``body`` with ``log_bodies``)."""
        with self._state.lock:
            return [dict(e) for e in self._state.log]

    def stats(self) -> dict:
        """Requests counted by key fingerprint, bucket (``project/model``), outcome, status and fault."""
        entries = self.log
        by_key: dict[str, Counter] = defaultdict(Counter)
        by_bucket: dict[str, Counter] = defaultdict(Counter)
        for e in entries:
            if e["path"].startswith("/_"):
                continue
            by_key[e["key"] or "<none>"][e["outcome"]] += 1
            if e["project"]:
                by_bucket[f"{e['project']}/{e['model']}"][e["outcome"]] += 1
        with self._state.lock:
            day = self._state.clock.day()
            usage = {f"{p}/{m}": self._state.day_count((p, m), day) for p, m in self._state.day_counts}
        return {
            "requests": len(entries), "paid": sum(e["status"] == 200 and e["model"] is not None
                                                  and e["path"].endswith(":generateContent") for e in entries),
            "by_outcome": dict(Counter(e["outcome"] for e in entries)),
            "by_status": {str(k): v for k, v in Counter(e["status"] for e in entries).items()},
            "by_fault": dict(Counter(e["fault"] for e in entries if e["fault"])),
            "by_key": {k: dict(v) for k, v in by_key.items()},
            "by_bucket": {k: dict(v) for k, v in by_bucket.items()},
            "noised": sum(bool(e["noised"]) for e in entries),
            "batch_creates": sum(e["path"].endswith(":batchGenerateContent") and e["status"] == 200 for e in entries),
            "unknown_queries": sum(e["known"] is False for e in entries),
            "day": day, "day_usage": usage,
        }

    # ------------------------------------------------------------ control

    def set(self, **changes: Any) -> FakeGeminiConfig:
        """Change the config while serving (``faults`` and ``models`` merge key by key); returns the new config.

        Raises: pydantic.ValidationError for an invalid change (nothing is changed then).
        """
        new = merge_config(self._state.config, changes)
        with self._state.lock:
            old, self._state.config = self._state.config, new
            if (new.oracle, new.oracle_db) != (old.oracle, old.oracle_db):
                self._state.oracle = load_oracle(new)
            if new.log_path != old.log_path:
                self._state._open_log()
            if (new.day_seconds, new.epoch) != (old.day_seconds, old.epoch):
                self._state.clock = make_clock(new.day_seconds, new.epoch)
            self._state.synthesis.behaviour = new.synthesis
        return new

    def batches(self) -> list[dict]:
        """Every batch created, oldest first: name, display name, project, model, state (``BATCH_STATE_*``),
        lines, line errors, polls, deleted, create body size."""
        with self._state.lock:
            return [{"name": b.name, "display_name": b.display_name, "project": b.project, "model": b.model,
                     "state": b.state, "lines": len(b.requests), "line_errors": b.line_errors, "polls": b.polls,
                     "deleted": b.deleted, "body_bytes": b.body_bytes}
                    for b in self._state.batches.batches.values()]

    def end_batch(self, name_or_display: str, fate: str) -> None:
        """End a live batch now in ``fate`` (succeeded, failed, expired, cancelled), as if the service did.

        Raises: KeyError when no live batch has that name or display name.
        """
        st = self._state
        with st.lock:
            found = [b for b in st.batches.batches.values() if name_or_display in (b.name, b.display_name)
                     and not b.done]
            if not found:
                raise KeyError(name_or_display)
            for b in found:
                batch_mode.finish(b, fate, st.clock.now(), st.config.batch, _LineAnswerer(self), st.config.seed)

    def synthesis_stats(self) -> dict:
        """What the synthesis oracle sent: ``fresh``, ``exact``, ``surface`` and ``near`` repeats, requests."""
        return self._state.synthesis.stats()

    def exhaust(self, project: str, model: str) -> None:
        """Use up the daily quota of (project, model) for the current day."""
        self._state.exhaust(project, model)

    def reset_quotas(self) -> None:
        """Forget all quota usage (RPM windows, day counts, forced exhaustion)."""
        self._state.reset_quotas()

    def reload_oracle(self) -> int:
        """Read ``config.oracle`` / ``config.oracle_db`` again (queries added since start); returns its size."""
        oracle = load_oracle(self._state.config)
        with self._state.lock:
            self._state.oracle = oracle
        return len(oracle)

    def set_structured_answer(self, hook: StructuredHook | None) -> None:
        self._state.structured = hook or default_structured_answer

    def control(self, changes: dict) -> None:
        """Apply a ``/_control`` body: ``exhaust`` ({project, model} or a list), ``reset_quotas``,
        ``reload_oracle`` and config fields (as :meth:`set`)."""
        changes = dict(changes)
        exhaust = changes.pop("exhaust", None)
        reset = changes.pop("reset_quotas", False)
        reload = changes.pop("reload_oracle", False)
        if changes:
            self.set(**changes)
        if reload:
            self.reload_oracle()
        if reset:
            self.reset_quotas()
        for item in [exhaust] if isinstance(exhaust, dict) else (exhaust or []):
            self.exhaust(item["project"], item["model"])


class _LineAnswerer:
    """Answers batch lines outside a request (:meth:`FakeGemini.end_batch`), as a handler would."""

    def __init__(self, owner: FakeGemini):
        self.state = owner._state

    def __call__(self, rng: random.Random, model: str, request: GenerateRequest) -> dict:
        return _Handler._answer_line(self, rng, model, request)

    _success = _Handler._success


def serve(config: FakeGeminiConfig, port: int = 0, port_file: str | Path | None = None, *,
          on_ready: Callable[[str], None] | None = None) -> None:
    """Serve until interrupted (Ctrl-C or SIGTERM returns); for the CLI and other processes' tests.

    Side effects: writes the port to ``port_file`` (atomically, once listening) and calls ``on_ready(base_url)``.
    """
    import signal

    def stop(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, stop) if threading.current_thread() is threading.main_thread() else None
    server = FakeGemini(config, port=port).start()
    try:
        if port_file is not None:
            tmp = Path(str(port_file) + ".tmp")
            tmp.write_text(str(server.port), encoding="utf-8")
            tmp.replace(port_file)
        if on_ready is not None:
            on_ready(server.base_url)
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
