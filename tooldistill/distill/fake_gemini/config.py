"""The fake server's configuration: keys and projects, models and their quotas, faults, noise, oracle."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from ...errors import ConfigError
from ..keys import fingerprint, parse_keys


def key_fingerprint(key: str) -> str:
    """The key's fingerprint, the same one the key pool shows (:func:`tooldistill.distill.keys.fingerprint`)."""
    return fingerprint(key)


def own_project(key: str) -> str:
    """The project of a key given without one: its own, named as the key pool names it."""
    return f"key-{fingerprint(key).replace('-', '')}"


class ModelSpec(BaseModel):
    """One model the fake serves, with its per-project quotas."""

    model_config = ConfigDict(extra="forbid")

    rpm: int | None = Field(default=None, ge=0, description="Requests per minute per project; None = unlimited.")
    rpd: int | None = Field(default=None, ge=0, description="Requests per day per project; 0 = not on this tier.")
    noise_rate: float = Field(default=0.0, ge=0, le=1, description="Share of queries answered with a wrong tool.")


class FaultRates(BaseModel):
    """Per-request probabilities of each injected fault (drawn once per request, in this order)."""

    model_config = ConfigDict(extra="forbid")

    bare_429: float = Field(default=0.0, ge=0, le=1, description="429 without QuotaFailure.")
    unavailable_503: float = Field(default=0.0, ge=0, le=1, description="503 'The model is overloaded'.")
    internal_500: float = Field(default=0.0, ge=0, le=1, description="500 'An internal error has occurred'.")
    bad_gateway_502: float = Field(default=0.0, ge=0, le=1, description="502 with an HTML body.")
    garbage_200: float = Field(default=0.0, ge=0, le=1, description="200 whose body is not JSON.")
    malformed: float = Field(default=0.0, ge=0, le=1, description="200 with finishReason MALFORMED_FUNCTION_CALL.")
    max_tokens: float = Field(default=0.0, ge=0, le=1, description="200 with finishReason MAX_TOKENS, no parts.")
    blocked: float = Field(default=0.0, ge=0, le=1, description="200 with promptFeedback.blockReason, no candidates.")
    text_answer: float = Field(default=0.0, ge=0, le=1, description="200 with a text part instead of a call.")
    unknown_tool: float = Field(default=0.0, ge=0, le=1, description="200 calling a function nobody declared.")
    bad_args: float = Field(default=0.0, ge=0, le=1, description="200 with arguments that fail the schema.")
    slow: float = Field(default=0.0, ge=0, le=1, description="Answer only after slow_s seconds.")

    @model_validator(mode="after")
    def _sum(self) -> "FaultRates":
        total = sum(v for k, v in self.model_dump().items() if k != "slow")
        if total > 1:
            raise ValueError(f"fault rates add up to {total:g} > 1")
        return self


class Limits(BaseModel):
    """A project's own limits for a model; a field left out keeps the model's."""

    model_config = ConfigDict(extra="forbid")

    rpm: int | None = Field(default=None, ge=0)
    rpd: int | None = Field(default=None, ge=0)


DEFAULT_MODELS = {"gemini-2.5-flash": ModelSpec(), "gemini-2.5-flash-lite": ModelSpec()}
BATCH_FATES = ("succeeded", "failed", "expired", "cancelled")


class BatchBehaviour(BaseModel):
    """How Batch Mode jobs move: PENDING -> RUNNING -> a final state, by polls and/or seconds on the clock."""

    model_config = ConfigDict(extra="forbid")

    pending_polls: int = Field(default=0, ge=0, description="GETs answered PENDING before the batch runs.")
    running_polls: int = Field(default=1, ge=0, description="GETs answered RUNNING before it ends.")
    pending_s: float = Field(default=0.0, ge=0, description="Seconds (server clock) it stays PENDING at least.")
    running_s: float = Field(default=0.0, ge=0, description="Seconds (server clock) it stays RUNNING at least.")
    line_error_rate: float = Field(default=0.0, ge=0, le=1,
                                   description="Share of lines of a succeeded batch answered with an error.")
    line_error_codes: list[int] = Field(default_factory=lambda: [500], description="HTTP codes a failed line "
                                        "carries, drawn uniformly (400, 429, 500, 503).")
    fates: dict[str, str] = Field(default_factory=dict, description="Final state by display name, or by creation "
                                  "number as '#N' (1-based): succeeded, failed, expired or cancelled.")
    inline_limit_bytes: int = Field(default=20 * 1024 * 1024, gt=0, description="Largest create body accepted "
                                    "(the API's inline limit is about 20 MB).")
    create_delay_s: float = Field(default=0.0, ge=0, description="Wait this long after creating a batch before "
                                  "answering (to kill a client between the two).")

    @model_validator(mode="after")
    def _fates_known(self) -> "BatchBehaviour":
        bad = {v for v in self.fates.values() if v not in BATCH_FATES}
        if bad:
            raise ValueError(f"unknown batch fate {sorted(bad)[0]!r}; use one of {', '.join(BATCH_FATES)}")
        if any(c not in (400, 429, 500, 503) for c in self.line_error_codes) or not self.line_error_codes:
            raise ValueError("line_error_codes must be a non-empty list of 400, 429, 500, 503")
        return self


class SynthesisBehaviour(BaseModel):
    """How the fake teacher writes queries for a synthesis request: fresh ones from a per-cell pool, with repeats."""

    model_config = ConfigDict(extra="forbid")

    pool_size: int = Field(default=60, ge=1, description="Fresh queries a cell can give; after that it only "
                           "repeats itself.")
    repeat_rate: float = Field(default=0.3, ge=0, le=1, description="Share of queries that repeat an earlier one.")
    cross_cell_rate: float = Field(default=0.2, ge=0, le=1,
                                   description="Share of repeats taken from another cell than the one asked.")
    exact_share: float = Field(default=0.5, ge=0, le=1, description="Repeats sent exactly as before.")
    surface_share: float = Field(default=0.25, ge=0, le=1,
                                 description="Repeats with only case, spacing or end punctuation changed.")
    # the rest of the repeats are near variants: a filler word added

    @model_validator(mode="after")
    def _shares(self) -> "SynthesisBehaviour":
        if self.exact_share + self.surface_share > 1:
            raise ValueError("exact_share + surface_share must be at most 1")
        return self


class FakeGeminiConfig(BaseModel):
    """Everything the fake Gemini server does, as data (loadable from YAML or JSON)."""

    model_config = ConfigDict(extra="forbid")

    # -- keys
    keys: dict[str, str | None] = Field(
        default_factory=dict, description="API key -> project; keys of one project share its quota buckets "
        "(None: the key is its own project).")
    leaked_keys: list[str] = Field(default_factory=list, description="Keys answered 403 'reported as leaked'.")
    open_keys: bool = Field(default=False, description="Accept any unlisted key, each its own project.")
    # -- models and quotas
    models: dict[str, ModelSpec] = Field(default_factory=lambda: dict(DEFAULT_MODELS))
    project_limits: dict[str, dict[str, Limits]] = Field(
        default_factory=dict, description="project -> model -> limits overriding the model's (e.g. one project "
        "with a smaller daily quota).")
    tier: str = Field(default="free", pattern="^(free|paid)$", description="Which quota ids the 429s name; on "
                      "the free tier Batch Mode is refused (except for paid_projects).")
    paid_projects: list[str] = Field(default_factory=list, description="Projects with billing on: they may use "
                                     "Batch Mode whatever the tier.")
    minute_seconds: float = Field(default=60.0, gt=0, description="Length of the RPM window.")
    retry_delay_s: float | None = Field(
        default=None, ge=0, description="RetryInfo delay on a per-minute 429; None: until the window frees a slot.")
    daily_retry_delay_s: float = Field(default=22.0, ge=0, description="RetryInfo delay on a daily 429 (the real "
                                       "API sends a short one; clients must not trust it).")
    day_seconds: float | None = Field(default=None, gt=0, description="A fake day's length; None: Pacific days.")
    epoch: float = Field(default=0.0, description="When fake day 0 starts (epoch seconds).")
    # -- faults and timing
    faults: FaultRates = Field(default_factory=FaultRates)
    latency_s: tuple[float, float] = Field(default=(0.0, 0.0), description="Uniform latency range of answers.")
    slow_s: float = Field(default=5.0, ge=0, description="Delay of a 'slow' answer.")
    seed: int = 0
    # -- batch mode and synthesis
    batch: BatchBehaviour = Field(default_factory=BatchBehaviour)
    synthesis: SynthesisBehaviour = Field(default_factory=SynthesisBehaviour)
    # -- answers
    oracle: Path | None = Field(default=None, description="JSONL of {query, calls} answering known queries.")
    oracle_db: Path | None = Field(default=None, description="A workspace database whose gold labels answer.")
    log_path: Path | None = Field(default=None, description="Append every request to this JSONL file.")
    log_bodies: bool = Field(default=False, description="Keep each request's JSON body in its log entry.")

    @model_validator(mode="after")
    def _check(self) -> "FakeGeminiConfig":
        lo, hi = self.latency_s
        if lo < 0 or hi < lo:
            raise ValueError(f"latency_s must be [min, max] with 0 <= min <= max, got {list(self.latency_s)}")
        if self.oracle is not None and self.oracle_db is not None:
            raise ValueError("give either oracle or oracle_db, not both")
        if not self.models:
            raise ValueError("models must name at least one model")
        return self

    def batch_allowed(self, project: str) -> bool:
        """Whether ``project`` may create Batch Mode jobs (a paid-tier feature)."""
        return self.tier == "paid" or project in self.paid_projects

    def project_of(self, key: str) -> str | None:
        """The project of ``key``, or None when the key is not accepted."""
        if key in self.keys:
            return self.keys[key] or own_project(key)
        return own_project(key) if self.open_keys else None

    def limits(self, project: str, model: str) -> tuple[int | None, int | None]:
        """(rpm, rpd) of the (project, model) bucket."""
        spec = self.models[model]
        rpm, rpd = spec.rpm, spec.rpd
        override = self.project_limits.get(project, {}).get(model)
        if override is not None:
            rpm = override.rpm if "rpm" in override.model_fields_set else rpm
            rpd = override.rpd if "rpd" in override.model_fields_set else rpd
        return rpm, rpd

    def public(self) -> dict:
        """The config as JSON with the keys replaced by their fingerprints (for /_control and logs)."""
        data = self.model_dump(mode="json")
        data["keys"] = {key_fingerprint(k): p for k, p in self.keys.items()}
        data["leaked_keys"] = [key_fingerprint(k) for k in self.leaked_keys]
        return data


def keys_from_spec(spec: str) -> dict[str, str]:
    """Parse ``KEY[@PROJECT],...`` (the GEMINI_API_KEYS format, as the key pool reads it) into ``{key: project}``.

    Raises: ConfigError naming the item at fault (never the key).
    """
    return {key.reveal(): key.project for key in parse_keys(spec)}


def load_fake_config(path: str | Path | None = None, **overrides: Any) -> FakeGeminiConfig:
    """Load a :class:`FakeGeminiConfig` from YAML/JSON (or defaults) and apply ``overrides`` (None ones skipped).

    Raises: ConfigError naming the file and the field at fault.
    """
    import yaml

    data: dict = {}
    source = str(path) if path is not None else "<fake-server options>"
    if path is not None:
        try:
            data = yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {}
        except OSError as exc:
            raise ConfigError(f"{path}: cannot read fake-server config: {exc.strerror}") from None
        except yaml.YAMLError as exc:
            raise ConfigError(f"{path}: not valid YAML/JSON: {getattr(exc, 'problem', exc)}") from None
        if not isinstance(data, dict):
            raise ConfigError(f"{path}: expected a mapping of settings, got {type(data).__name__}")
    data.update({k: v for k, v in overrides.items() if v is not None})
    try:
        return FakeGeminiConfig.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(f"{source}: {validation_message(exc)}") from None


def validation_message(exc: ValidationError) -> str:
    """One line for a config validation error: the field and what is wrong with it."""
    err = exc.errors()[0]
    loc = ".".join(str(x) for x in err.get("loc", ())) or "(top level)"
    return f"field {loc!r}: {err['msg'].removeprefix('Value error, ')}"


def merge_config(config: FakeGeminiConfig, changes: dict) -> FakeGeminiConfig:
    """Return ``config`` with ``changes`` applied (``faults`` and ``models`` merged key by key), validated."""
    data = config.model_dump(exclude_unset=True)  # unset stays unset: a project override keeps "not given"
    for name, value in changes.items():
        if name in ("faults", "batch", "synthesis") and isinstance(value, dict):
            data[name] = {**data.get(name, {}), **value}
        elif name == "models" and isinstance(value, dict):
            models = dict(data.get("models", config.model_dump()["models"]))
            for model, spec in value.items():
                models[model] = {**models.get(model, {}), **(spec or {})}
            data["models"] = models
        else:
            data[name] = value
    return FakeGeminiConfig.model_validate(json.loads(json.dumps(data, default=str)))
