"""API keys: parsed from ``GEMINI_API_KEYS=KEY[@PROJECT],...``, known everywhere else only by a fingerprint.

Gemini quotas are per Google Cloud project and per model, so a key names its project after ``@``; keys of one
project share that project's buckets. A key without a project is its own project. The secret lives only inside
:class:`ApiKey` (its ``repr`` and ``str`` show the fingerprint), so it cannot reach the database, logs, output or
tracebacks by accident; only :meth:`ApiKey.reveal` hands it to the HTTP client.
"""

from __future__ import annotations

import hashlib
import re

from ..errors import ConfigError, NeedsKeyError

KEY_VARS = ("GEMINI_API_KEYS", "GEMINI_API_KEY", "GOOGLE_API_KEY")
_PROJECT_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:\-]{0,99}$")


def fingerprint(secret: str) -> str:
    """A short, stable, non-reversible name for a key: first 4 + last 4 hex chars of its SHA-256."""
    digest = hashlib.sha256(secret.encode("utf-8")).hexdigest()
    return f"{digest[:4]}-{digest[-4:]}"


class ApiKey:
    """One API key: its project, where it came from (``GEMINI_API_KEYS[2]``) and its fingerprint."""

    __slots__ = ("_secret", "project", "env_var", "fingerprint")

    def __init__(self, secret: str, *, project: str | None = None, env_var: str = "GEMINI_API_KEYS"):
        self._secret = secret
        self.fingerprint = fingerprint(secret)
        self.project = project or f"key-{self.fingerprint.replace('-', '')}"
        self.env_var = env_var

    def reveal(self) -> str:
        """The secret, for the HTTP client only."""
        return self._secret

    def __repr__(self) -> str:
        return f"ApiKey({self.fingerprint}, project={self.project!r}, from={self.env_var})"

    __str__ = __repr__

    def __reduce__(self):  # pickling would copy the secret somewhere we do not control
        raise TypeError("ApiKey cannot be pickled")

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ApiKey) and other.fingerprint == self.fingerprint

    def __hash__(self) -> int:
        return hash(self.fingerprint)


def parse_keys(value: str, *, env_var: str = "GEMINI_API_KEYS") -> list[ApiKey]:
    """Parse ``KEY[@PROJECT],KEY[@PROJECT],...`` (whitespace and empty items ignored, repeats dropped).

    Raises: ConfigError naming the variable and the item's position, never the key itself.
    """
    keys: list[ApiKey] = []
    seen: set[str] = set()
    for pos, item in enumerate(value.split(",")):
        item = item.strip()
        if not item:
            continue
        secret, at, project = item.partition("@")
        secret, project = secret.strip(), project.strip()
        where = f"{env_var} item {pos + 1}"
        if not secret:
            raise ConfigError(f"{where}: the key is empty; write KEY or KEY@PROJECT, separated by commas")
        if any(ch.isspace() for ch in secret):
            raise ConfigError(f"{where}: the key contains whitespace; write KEY or KEY@PROJECT, separated by commas")
        if at and not _PROJECT_RE.match(project):
            raise ConfigError(f"{where}: the project after '@' is empty or has odd characters; "
                              "use letters, digits, '-', '_' or '.'")
        key = ApiKey(secret, project=project or None, env_var=f"{env_var}[{len(keys)}]")
        if key.fingerprint in seen:
            continue
        seen.add(key.fingerprint)
        keys.append(key)
    return keys


def keys_from_env(env: dict[str, str]) -> list[ApiKey]:
    """The keys of a workspace environment: ``GEMINI_API_KEYS``, else ``GEMINI_API_KEY``, else ``GOOGLE_API_KEY``.

    Raises: NeedsKeyError saying where to put keys when there are none.
    """
    for var in KEY_VARS:
        if (env.get(var) or "").strip():
            keys = parse_keys(env[var], env_var=var)
            if keys:
                return keys
    raise NeedsKeyError("no Gemini API key: set GEMINI_API_KEYS=KEY[@PROJECT],... in the environment or in .env "
                        "(get a key at https://aistudio.google.com/apikey)")


def key_set_id(keys: list[ApiKey]) -> str:
    """An id of the key set (fingerprints and projects), to notice when the user changed keys."""
    text = ",".join(sorted(f"{k.fingerprint}@{k.project}" for k in keys))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]
