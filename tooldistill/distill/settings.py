"""The ``[distill]`` table of ``tooldistill.toml``: teacher models, quota limits, concurrency, timeouts.

Precedence: these defaults < the TOML table < ``GEMINI_BASE_URL`` (environment or ``.env``) < CLI flags.

Limits per (project, model) bucket: the lower of an explicit ``rpm``/``rpd`` (flag or TOML, for every model, or
per model under ``[distill.limits."MODEL"]``) and the limit a 429 reported (``quotaValue``, remembered in the
database until the key set changes); with neither, the free-tier defaults below (notes/gemini-api.md section 3,
early 2026). An explicit ``0`` means no client-side limit (the server's 429s still stop the bucket).
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from ..errors import ConfigError

DEFAULT_MODELS = ("gemini-2.5-flash", "gemini-2.5-flash-lite")
FREE_TIER: dict[str, tuple[int, int]] = {
    "gemini-2.5-flash": (5, 20),
    "gemini-2.5-flash-lite": (10, 20),
}
"""(RPM, RPD) per model on the free tier since December 2025; free-tier numbers change without notice."""
UNKNOWN_MODEL_LIMITS = (5, 20)


class ModelLimits(BaseModel):
    """Per-model overrides under ``[distill.limits."MODEL"]``."""

    model_config = ConfigDict(extra="forbid")

    rpm: int | None = Field(default=None, ge=0, description="Requests per minute per project (0: no limit).")
    rpd: int | None = Field(default=None, ge=0, description="Requests per day per project (0: no limit).")


class ModelPrice(BaseModel):
    """A list price under ``[distill.prices."MODEL"]``, overriding :data:`~tooldistill.distill.pricing.PRICES_USD_PER_M`."""

    model_config = ConfigDict(extra="forbid")

    input: float = Field(ge=0, description="USD per million input (prompt) tokens.")
    output: float = Field(ge=0, description="USD per million output tokens (thinking included).")


class DistillSettings(BaseModel):
    """How ``distill run`` talks to the teacher."""

    model_config = ConfigDict(extra="forbid")

    # teacher
    models: list[str] = Field(default_factory=lambda: list(DEFAULT_MODELS),
                              description="Teacher models; any ready slot of any of them may answer a label job.")
    base_url: str | None = Field(default=None, description="A proxy, gateway or stand-in server for the Gemini API.")
    api_version: str = Field(default="v1beta", description="The API version in request paths.")
    timeout_s: float = Field(default=60.0, gt=0, description="Per-request timeout in seconds.")
    temperature: float = Field(default=0.0, ge=0, le=2, description="Sampling temperature for label jobs.")
    # quota
    rpm: int | None = Field(default=None, ge=0, description="Requests per minute per (project, model), all models.")
    rpd: int | None = Field(default=None, ge=0, description="Requests per day per (project, model), all models.")
    limits: dict[str, ModelLimits] = Field(default_factory=dict, description="Per-model rpm/rpd overrides.")
    prices: dict[str, ModelPrice] = Field(default_factory=dict, description="Per-model list prices overriding the "
                                          "built-in table (USD per million tokens).")
    day_seconds: float | None = Field(default=None, gt=0,
                                      description="Length of a quota day (tests and demos); default: real days.")
    # queue and scheduling
    concurrency: int = Field(default=32, ge=1, le=256, description="Most requests in flight at once, over all "
                             "slots (a cap: each bucket's pacing decides how many it sends).")
    pack: int = Field(default=1, ge=1, le=50, description="Queries per request (structured output); answers "
                      "that come back missing or invalid are asked again one by one.")
    prompt: str | None = Field(default=None, description="The prompt file (instructions, few-shot examples), "
                               "relative to the workspace; default: prompt.yaml there when it exists.")
    batch: dict[str, Any] = Field(default_factory=dict, description="[distill.batch]: Batch Mode settings "
                                  "(tooldistill.distill.batch.BatchSettings).")
    synthesize: dict[str, Any] = Field(default_factory=dict, description="[distill.synthesize]: synthesis settings "
                                       "(tooldistill.distill.synthesize.SynthesisSettings).")
    lease_s: float = Field(default=300.0, gt=0, description="How long a claimed job stays leased.")
    max_attempts: int = Field(default=5, ge=1, description="Counted attempts before a job is dead.")
    grace_s: float = Field(default=20.0, ge=0, description="On Ctrl-C, how long in-flight requests may finish.")
    backoff_base_s: float = Field(default=2.0, gt=0, description="First backoff after a transient error or bare 429.")
    backoff_max_s: float = Field(default=120.0, gt=0, description="Longest backoff.")
    minute_floor_s: float = Field(default=1.0, ge=0, description="Shortest cooling after a per-minute 429.")

    @field_validator("models")
    @classmethod
    def _models_ok(cls, v: list[str]) -> list[str]:
        v = [m.strip() for m in v if m.strip()]
        if not v:
            raise ValueError("at least one teacher model is needed")
        return list(dict.fromkeys(v))

    @model_validator(mode="after")
    def _lease_outlives_request(self) -> "DistillSettings":
        if self.lease_s <= self.timeout_s:
            raise ValueError(f"lease_s ({self.lease_s:g}) must be longer than timeout_s ({self.timeout_s:g}), "
                             "or a slow answer would lose its lease")
        return self

    @model_validator(mode="after")
    def _sub_tables(self) -> "DistillSettings":
        # validated here so a typo in [distill.batch] fails when the settings load, naming the table and key
        for name, build in (("batch", self.batch_settings), ("synthesize", self.synthesis_settings)):
            try:
                build()
            except ValidationError as exc:
                err = exc.errors()[0]
                key = ".".join(str(x) for x in err["loc"])
                raise ValueError(f"[distill.{name}] key {key!r}: {err['msg']}") from None
        return self

    def batch_settings(self, **overrides: Any):
        """``[distill.batch]`` as :class:`~tooldistill.distill.batch.BatchSettings` (``None`` overrides skipped)."""
        from .batch import BatchSettings

        return BatchSettings.model_validate({**self.batch, **{k: v for k, v in overrides.items() if v is not None}})

    def synthesis_settings(self, **overrides: Any):
        """``[distill.synthesize]`` as :class:`~tooldistill.distill.synthesize.SynthesisSettings`."""
        from .synthesize import SynthesisSettings

        return SynthesisSettings.model_validate({**self.synthesize,
                                                 **{k: v for k, v in overrides.items() if v is not None}})

    def limits_for(self, model: str) -> tuple[int | None, int | None]:
        """The explicit (flag or TOML) RPM and RPD for ``model``; ``None`` where nothing was configured."""
        per = self.limits.get(model) or ModelLimits()
        rpm = per.rpm if per.rpm is not None else self.rpm
        rpd = per.rpd if per.rpd is not None else self.rpd
        return rpm, rpd

    @staticmethod
    def default_limits(model: str) -> tuple[int, int]:
        """The free-tier (RPM, RPD) guess for ``model``."""
        return FREE_TIER.get(model, UNKNOWN_MODEL_LIMITS)


def load_settings(workspace=None, **overrides: Any) -> DistillSettings:
    """Resolve the distill settings: defaults < ``[distill]`` in the TOML < ``GEMINI_BASE_URL`` < ``overrides``.

    Args:
        workspace: a :class:`tooldistill.config.Workspace` (``None``: defaults and overrides only).
        overrides: CLI flag values; ``None`` values are ignored.

    Raises: ConfigError naming the file and key when a value is invalid.
    """
    data: dict[str, Any] = {}
    where = "[distill]"
    if workspace is not None:
        data.update(workspace.section("distill"))
        if workspace.config_path:
            where = f"{workspace.config_path} [distill]"
        env_url = workspace.getenv("GEMINI_BASE_URL")
        if env_url:
            data["base_url"] = env_url
    data.update({k: v for k, v in overrides.items() if v is not None})
    try:
        return DistillSettings.model_validate(data)
    except ValidationError as exc:
        err = exc.errors()[0]
        key = ".".join(str(x) for x in err["loc"]) or "distill"
        raise ConfigError(f"{where}: key {key!r}: {err['msg']}") from None
