"""List prices of the teacher models, and what tokens cost: the one price table of distill.

``distill run`` (its summary and live view), ``distill status``, ``distill plan`` and Batch Mode all price tokens
here. The workspace overrides or extends it under ``[distill.prices."MODEL"]`` (``input`` and ``output`` in USD
per million tokens), since list prices change and new models appear.
"""

from __future__ import annotations

PRICES_USD_PER_M: dict[str, tuple[float, float]] = {
    "gemini-2.5-pro": (1.25, 10.00),
    "gemini-2.5-flash": (0.30, 2.50),
    "gemini-2.5-flash-lite": (0.10, 0.40),
    "gemini-2.0-flash": (0.10, 0.40),
    "gemini-2.0-flash-lite": (0.075, 0.30),
}
"""(input, output) USD per million tokens at the standard paid rate (text, prompts up to 200k tokens), from
https://ai.google.dev/gemini-api/docs/pricing as of 2025; prices change, so treat costs as estimates."""
BATCH_DISCOUNT = 0.5


def price_of(model: str, *, prices: dict | None = None) -> tuple[float, float] | None:
    """(input, output) USD per million tokens for ``model``: the workspace's override, else the list price."""
    name = model.removeprefix("models/")
    override = (prices or {}).get(name)
    if override is not None:
        return (override.input, override.output) if hasattr(override, "input") else tuple(override)
    return PRICES_USD_PER_M.get(name)


def cost_usd(model: str, prompt_tokens: int, output_tokens: int, *, batch: bool = False,
             prices: dict | None = None) -> float | None:
    """What the tokens cost for ``model`` in USD (``None`` for a model without a known price).

    Args:
        batch: at the Batch Mode price (half the standard rate).
        prices: the workspace's ``[distill.prices]`` overrides (model -> input/output per million tokens).
    """
    price = price_of(model, prices=prices)
    if price is None:
        return None
    usd = (prompt_tokens * price[0] + output_tokens * price[1]) / 1e6
    return usd * BATCH_DISCOUNT if batch else usd
