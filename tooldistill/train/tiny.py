"""A tiny student built offline: Qwen2 shapes, a BPE tokenizer trained on rendered router chats, random weights.

No model hub is reachable in tests or in ``make demo``, so this folder stands in for a real base model. It loads
with ``AutoTokenizer`` / ``AutoModelForCausalLM.from_pretrained`` like any checkpoint and exercises the production
path end to end. The recipe and its reasons are in notes/training-on-cpu.md section 3: the Qwen normalizer and
pre-tokenizer (so the ``Qwen2Tokenizer`` that ``AutoTokenizer`` picks for ``model_type=qwen2`` tokenizes exactly as
trained), trl's own copy of the Qwen2.5 chat template, and ``initializer_range=0.2`` (at the default 0.02 a frozen
tied lm_head barely moves the loss).

:func:`synthetic_examples` writes labeled router queries for a catalogue; the tokenizer corpus, the benchmarks and
the tests use it.
"""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

from ..catalog import Catalog, Label, ToolCall, load_catalog

_CITIES = ["Tokyo", "Paris", "Lima", "Oslo", "Cairo", "Denver", "Madrid", "Seoul", "Austin", "Nairobi", "Quito",
           "Berlin", "Toronto", "Mumbai", "Perth", "Dublin"]
_TOPICS = ["electric cars", "the stock market", "quantum computing", "the world cup", "solar panels",
           "mortgage rates", "the new iphone", "climate policy", "bitcoin", "remote work", "the mars rover"]
_THINGS = ["Marie Curie", "the Roman Empire", "photosynthesis", "Ada Lovelace", "the Eiffel Tower",
           "black holes", "Nelson Mandela", "the Silk Road", "jazz", "the Amazon river"]
_WORDS = ["ephemeral", "ubiquitous", "serendipity", "laconic", "gregarious", "pragmatic", "quixotic", "benign"]
_LANGS = ["Japanese", "French", "Spanish", "German", "Italian", "Korean"]
_PHRASES = ["good morning", "where is the station", "thank you very much", "I love this city", "see you soon"]
_UNITS = [("km", "miles"), ("kg", "pounds"), ("celsius", "fahrenheit"), ("liters", "gallons"), ("cm", "inches")]
_SITES = ["example.com/news/today", "blog.example.org/post/42", "docs.example.net/guide", "example.io/pricing"]
_SMALL_TALK = ["hello there", "thanks, that was helpful", "tell me a joke", "how are you today?", "good night",
               "you are great", "what is your name?", "I'm bored", "ok cool", "write a haiku about rain"]


def _default_tool_example(name: str, rng: random.Random) -> tuple[str, dict] | None:
    """A query and its arguments for a tool of the default catalogue, or None for other tools."""
    c, t = rng.choice(_CITIES), rng.choice(_TOPICS)
    if name == "weather":
        return rng.choice([f"weather in {c}", f"will it rain in {c} tomorrow?", f"forecast for {c} this weekend",
                           f"how hot is it in {c}"]), {"location": c}
    if name == "web_search":
        return rng.choice([f"latest news about {t}", f"search the web for {t}", f"what's new with {t}",
                           f"find reviews of {t}"]), {"query": t}
    if name == "calculator":
        a, b = rng.randint(2, 999), rng.randint(2, 99)
        op = rng.choice(["*", "+", "-", "/"])
        return rng.choice([f"what is {a} {op} {b}", f"calculate {a} {op} {b}", f"compute {a} {op} {b} please"]), \
            {"expression": f"{a} {op} {b}"}
    if name == "wikipedia":
        th = rng.choice(_THINGS)
        return rng.choice([f"who was {th}", f"tell me about {th}", f"wikipedia article on {th}"]), {"query": th}
    if name == "datetime":
        day = f"{rng.randint(1, 28)} May"
        return rng.choice([(f"what time is it in {c}", {"action": "current_time", "timezone": c}),
                           ("what's today's date", {"action": "current_date"}),
                           (f"how many days until {day}", {"action": "days_until", "date": day})])
    if name == "dictionary":
        w = rng.choice(_WORDS)
        return rng.choice([f"define {w}", f"what does {w} mean", f"synonyms for {w}"]), {"word": w}
    if name == "translate":
        p, lang = rng.choice(_PHRASES), rng.choice(_LANGS)
        return rng.choice([f"translate '{p}' into {lang}", f"how do you say '{p}' in {lang}"]), \
            {"text": p, "to_lang": lang}
    if name == "unit_converter":
        v, (a, b) = rng.randint(1, 500), rng.choice(_UNITS)
        return rng.choice([f"convert {v} {a} to {b}", f"how many {b} is {v} {a}"]), {"value": v, "from": a, "to": b}
    if name == "web_reader":
        url = "https://" + rng.choice(_SITES)
        return rng.choice([f"summarize {url}", f"read {url} and give me the key points"]), {"url": url}
    return None


def _generic_value(schema: dict, rng: random.Random) -> Any:
    if "enum" in schema:
        return rng.choice(schema["enum"])
    typ = schema.get("type")
    typ = typ[0] if isinstance(typ, list) else typ
    if typ in ("number", "integer"):
        return rng.randint(1, 100)
    if typ == "boolean":
        return rng.random() < 0.5
    if typ == "array":
        return [_generic_value(schema.get("items", {"type": "string"}), rng)]
    return rng.choice(_CITIES + _TOPICS + _WORDS)


def _generic_tool_example(tool, rng: random.Random) -> tuple[str, dict]:
    """A query that names the tool's purpose and its required arguments' values (for any catalogue)."""
    args = {k: _generic_value(s, rng) for k, s in tool.properties.items() if k in tool.required}
    purpose = tool.description.split(".")[0].rstrip().lower() or tool.name.replace("_", " ")
    values = ", ".join(str(v) for v in args.values())
    lead = rng.choice(["please", "can you", "I need to", "help me"])
    return f"{lead} {purpose}" + (f": {values}" if values else ""), args


def synthetic_examples(catalog: Catalog | None = None, n: int = 400, *, seed: int = 0,
                       no_tool_share: float = 0.12, multi_share: float = 0.06) -> list[tuple[str, Label]]:
    """Return ``n`` labeled router queries for ``catalog`` (the default catalogue when None).

    Tools of the default catalogue get hand-written templates; any other tool gets a query naming its purpose and
    argument values. About ``no_tool_share`` are small talk labeled ``[]`` and ``multi_share`` ask for two tools.
    Deterministic for a seed.
    """
    catalog = catalog or load_catalog()
    rng = random.Random(seed)
    out: list[tuple[str, Label]] = []

    def one(tool) -> tuple[str, ToolCall]:
        made = _default_tool_example(tool.name, rng) or _generic_tool_example(tool, rng)
        text, args = made
        args = {k: v for k, v in args.items() if v is not None and k in tool.properties}
        return text, ToolCall(tool=tool.name, args=args)

    for i in range(n):
        r = rng.random()
        if r < no_tool_share:
            out.append((rng.choice(_SMALL_TALK), Label(calls=[])))
        elif r < no_tool_share + multi_share and len(catalog.tools) > 1:
            t1, t2 = rng.sample(list(catalog.tools), 2)
            (q1, c1), (q2, c2) = one(t1), one(t2)
            out.append((f"{q1} and also {q2}", Label(calls=[c1, c2])))
        else:
            q, c = one(rng.choice(catalog.tools))
            out.append((q, Label(calls=[c])))
    return out


def qwen_chat_template() -> str:
    """trl's bundled copy of the Qwen2.5 chat template (string-identical to the one trl recognises)."""
    import trl

    return (Path(trl.__file__).parent / "chat_templates" / "qwen2_5.jinja").read_text(encoding="utf-8")


def _corpus(catalog: Catalog, n_chats: int, seed: int) -> list[str]:
    """Rendered router chats (prompt + output) through a template-only tokenizer, plus a little filler."""
    from tokenizers import Tokenizer, models
    from transformers import PreTrainedTokenizerFast

    from .render import detect_format, render_example

    renderer = PreTrainedTokenizerFast(tokenizer_object=Tokenizer(models.BPE()), eos_token="<|im_end|>")
    renderer.chat_template = qwen_chat_template()
    fmt = detect_format(renderer)
    texts = []
    for query, label in synthetic_examples(catalog, n_chats, seed=seed):
        ex = render_example(renderer, catalog, query, label, fmt=fmt)
        texts.append(ex["prompt"] + ex["completion"])
    texts += [json.dumps(t, ensure_ascii=False) for t in catalog.to_openai_tools()]
    texts += [" ".join(_CITIES + _TOPICS + _THINGS + _WORDS + _LANGS + _PHRASES + _SMALL_TALK), "0123456789"]
    return texts


def build_tiny_model(out: str | Path, *, catalog: Catalog | None = None, vocab_size: int = 1024,
                     hidden_size: int = 64, num_layers: int = 2, n_chats: int = 400, seed: int = 0,
                     model_config: dict | None = None) -> Path:
    """Build the tiny offline student (tokenizer + random Qwen2 model) into folder ``out``.

    Args:
        out: the folder to write (created; existing files are overwritten).
        catalog: the catalogue whose rendered chats train the tokenizer (default catalogue when None).
        vocab_size: BPE vocabulary target (the result is smaller when the corpus has fewer merges).
        hidden_size, num_layers: the model's shape (4 heads, 2 KV heads, MLP 2x hidden).
        n_chats: rendered chats in the tokenizer corpus.
        seed: seeds the corpus and the weights.
        model_config: extra ``Qwen2Config`` fields that override the tiny shape (benchmarks build real shapes).

    Returns: ``out`` as a Path; it holds config.json, generation_config.json, model.safetensors and the tokenizer.
    """
    import torch
    from tokenizers import Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers
    from transformers import GenerationConfig, PreTrainedTokenizerFast, Qwen2Config, Qwen2ForCausalLM
    from transformers.models.qwen2.tokenization_qwen2 import PRETOKENIZE_REGEX

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    catalog = catalog or load_catalog()
    tok = Tokenizer(models.BPE())
    tok.normalizer = normalizers.NFC()
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(PRETOKENIZE_REGEX), behavior="isolated", invert=False),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)])
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=["<|endoftext|>", "<|im_start|>", "<|im_end|>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tok.train_from_iterator(_corpus(catalog, n_chats, seed), trainer)
    hf_tok = PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="<|im_end|>", pad_token="<|endoftext|>",
                                     additional_special_tokens=["<|im_start|>"])
    hf_tok.chat_template = qwen_chat_template()
    hf_tok.save_pretrained(out)
    shape = dict(vocab_size=len(hf_tok), hidden_size=hidden_size, intermediate_size=2 * hidden_size,
                 num_hidden_layers=num_layers, num_attention_heads=4, num_key_value_heads=2,
                 tie_word_embeddings=True, initializer_range=0.2, max_position_embeddings=4096)
    shape.update(model_config or {})
    shape["vocab_size"] = max(shape["vocab_size"], len(hf_tok))
    cfg = Qwen2Config(**shape, eos_token_id=hf_tok.eos_token_id, pad_token_id=hf_tok.pad_token_id,
                      bos_token_id=None)
    torch.manual_seed(seed)
    model = Qwen2ForCausalLM(cfg)
    model.generation_config = GenerationConfig(eos_token_id=hf_tok.eos_token_id, pad_token_id=hf_tok.pad_token_id,
                                               do_sample=False)
    from .load import quiet_libraries

    with quiet_libraries():
        model.save_pretrained(out)
    return out
