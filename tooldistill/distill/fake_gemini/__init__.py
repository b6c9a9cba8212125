"""A fake Gemini server on 127.0.0.1 that speaks the real generateContent protocol (notes/gemini-api.md
section 5): per-(project, model) RPM/RPD quotas answering the real 429 bodies, injected faults, an oracle with
seeded label noise, a request log and a stats route. The real google-genai client is what talks to it.

Example::

    with FakeGemini(FakeGeminiConfig(keys={"k1": "p1"})) as server:
        client = make_client("k1", base_url=server.base_url)
"""

from .config import BatchBehaviour, FakeGeminiConfig, FaultRates, SynthesisBehaviour, ModelSpec, key_fingerprint, keys_from_spec, load_fake_config
from .oracle import Answer, Oracle
from .protocol import GenerateRequest
from .server import FakeGemini, StructuredHook, default_structured_answer, serve

__all__ = [
    "Answer", "BatchBehaviour", "FakeGemini", "SynthesisBehaviour", "FakeGeminiConfig", "FaultRates", "GenerateRequest", "ModelSpec", "Oracle",
    "StructuredHook", "default_structured_answer", "key_fingerprint", "keys_from_spec", "load_fake_config", "serve",
]
