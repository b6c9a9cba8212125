"""Query templates for the default catalogue: sentence frames grouped in families, each with its gold label.

A :class:`Family` is a set of frames that share a label rule: ``calls(s)`` turns the slot values of a rendered
query into its calls (``[]`` for no tool). Each frame's template id is ``<family>.<index>``, so a split can keep
all queries of one frame on one side. ``CLAUSES`` are short imperative frames that the generator joins into
multi-tool requests. Slots are ``{name}`` (see :mod:`slots`); ``{x2}`` is a second, different value of kind ``x``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

TOOLS = ("web_search", "calculator", "weather", "wikipedia", "datetime", "dictionary", "translate",
         "unit_converter", "web_reader")
"""The tools these templates label: the default catalogue's, with the same argument schemas."""


class Slots:
    """What a label rule sees: ``s["x"]`` is slot x's argument value (its text as finally written, if verbatim)."""

    def __init__(self, values: dict, texts: dict[str, str]):
        self._values, self._texts = values, texts

    def __getitem__(self, name: str) -> Any:
        value = self._values[name]
        return self._texts[name] if value.verbatim else value.arg

    def alts(self, name: str) -> tuple:
        return self._values[name].alts


Rule = Callable[[Slots], list[dict]]


@dataclass(frozen=True)
class Family:
    """Frames that share a label rule; ``acceptable`` lists every acceptable label (gold first) when ambiguous."""

    name: str
    category: str
    calls: Rule
    patterns: tuple[str, ...]
    acceptable: Callable[[Slots], list[list[dict]]] | None = None


def call(tool: str, **args: Any) -> dict:
    return {"tool": tool, "args": args}


def _unit(s: Slots) -> dict:
    return {"tool": "unit_converter", "args": {"value": s["value"], "from": s["from"], "to": s["to"]}}


def _dt(action: str, **keys: str) -> Rule:
    return lambda s: [call("datetime", action=action, **{arg: s[slot] for arg, slot in keys.items()})]


NONE: Rule = lambda s: []  # noqa: E731

_wiki_or_search = lambda slot: lambda s: [[call("wikipedia", query=s[slot])], [call("web_search", query=s[slot])]]  # noqa: E731

SINGLE = (
    Family("weather", "single", lambda s: [call("weather", location=s["location"])], (
        "what's the weather in {location}", "weather in {location}", "{location} weather",
        "what's the weather like in {location} today", "will it rain in {location} tomorrow",
        "is it going to snow in {location} this week", "how hot is it in {location} right now",
        "what's the temperature in {location}", "give me the forecast for {location}", "weather forecast {location}",
        "do I need an umbrella in {location} today", "how cold is it in {location}", "is it sunny in {location}",
        "tell me the weather for {location} this weekend", "could you check the weather in {location} for me",
        "what's the forecast for {location} on Saturday", "how windy is it in {location}",
        "current conditions in {location}", "should I bring a jacket to {location} tonight",
        "what will the weather be in {location} next week", "any storms expected in {location}",
        "I'm flying to {location} tomorrow, what's the weather going to be like", "humidity in {location} today",
        "please get me the weather report for {location}", "temperature {location} now",
    )),
    Family("calculator", "single", lambda s: [call("calculator", expression=s["calc"])], (
        "what's {calc}", "calculate {calc}", "what is {calc}", "{calc}", "{calc} = ?", "compute {calc}",
        "how much is {calc}", "can you work out {calc} for me", "quick math: {calc}", "solve {calc}",
        "what does {calc} equal", "please calculate {calc}", "I need the result of {calc}", "evaluate {calc}",
        "do the math: {calc}", "what do you get for {calc}", "help me figure out {calc}", "what's the answer to {calc}",
    )),
    Family("wikipedia", "single", lambda s: [call("wikipedia", query=s["wiki"])], (
        "look up {wiki} on wikipedia", "wikipedia {wiki}", "search wikipedia for {wiki}",
        "give me the wikipedia article on {wiki}", "what does wikipedia say about {wiki}",
        "I want to read about {wiki} on wikipedia", "summarize the wikipedia page for {wiki}",
        "encyclopedia entry for {wiki}", "give me some background on {wiki}", "I need an overview of {wiki}",
        "what's the history of {wiki}", "pull up the wiki page on {wiki}", "find the encyclopedia article about {wiki}",
        "facts about {wiki}", "wiki article: {wiki}",
    )),
    Family("wikipedia_person", "single", lambda s: [call("wikipedia", query=s["person"])], (
        "who was {person}", "who is {person}", "biography of {person}", "tell me the life story of {person}",
        "when was {person} born", "what is {person} famous for", "where did {person} grow up",
        "give me a short bio of {person}", "what did {person} discover", "{person} biography",
    )),
    Family("web_search", "single", lambda s: [call("web_search", query=s["search"])], (
        "search the web for {search}", "google {search}", "search for {search}", "look up {search} online",
        "find {search}", "{search}", "can you search {search}", "I need the latest on {search}", "web search: {search}",
        "what are people saying about {search}", "find me info on {search}", "search online for {search} please",
        "do a quick search for {search}", "check the internet for {search}", "any news on {search}",
        "browse for {search}", "look online: {search}", "show me results for {search}",
    )),
    Family("datetime_time", "single", _dt("current_time", timezone="tz"), (
        "what time is it in {tz}", "current time in {tz}", "time in {tz}", "what's the time in {tz} right now",
        "what time is it over in {tz}", "tell me the local time in {tz}", "clock in {tz}?",
        "is it morning yet in {tz}", "what's the local time in {tz}", "do you know what time it is in {tz}",
    )),
    Family("datetime_now", "single", _dt("current_time"), (
        "what time is it", "what time is it now", "current time please", "tell me the time", "what's the time",
        "do you have the time", "time check", "what time is it right now",
    )),
    Family("datetime_date", "single", _dt("current_date"), (
        "what's today's date", "what day is it today", "what's the date today", "today's date please",
        "which date is it", "what is the date", "tell me today's date", "what's the date",
    )),
    Family("datetime_convert", "single", _dt("convert_timezone", timezone="tz", target_timezone="tz2"), (
        "convert {time} {tz} to {tz2}", "what's {time} {tz} in {tz2}", "if it's {time} in {tz}, what time is it in {tz2}",
        "{time} {tz} to {tz2} time", "{time} in {tz} is what time in {tz2}", "convert {time} from {tz} to {tz2} time",
        "what time will it be in {tz2} when it's {time} in {tz}", "time zone conversion: {time} {tz} -> {tz2}",
    )),
    Family("datetime_until", "single", _dt("days_until", date="date"), (
        "how many days until {date}", "days until {date}", "how long until {date}", "countdown to {date}",
        "how many days left before {date}", "how many days is it to {date}", "number of days till {date}",
    )),
    Family("datetime_weekday", "single", _dt("day_of_week", date="date"), (
        "what day of the week is {date}", "what weekday is {date}", "which day does {date} fall on",
        "is {date} a weekend", "{date} is what day of the week", "what day will {date} be",
    )),
    Family("dictionary", "single", lambda s: [call("dictionary", word=s["word"])], (
        "define {word}", "what does {word} mean", "meaning of {word}", "definition of {word}", "{word} definition",
        "what's the meaning of the word {word}", "synonyms for {word}", "give me a synonym for {word}",
        "how do you pronounce {word}", "look up {word} in the dictionary", "dictionary: {word}",
        "what is the definition of {word}", "is {word} a real word", "what's another word for {word}",
        "explain the word {word}", "{word} meaning?", "what part of speech is {word}", "define the word {word} please",
    )),
    Family("translate", "single", lambda s: [call("translate", text=s["phrase"], to_lang=s["lang"])], (
        "translate '{phrase}' into {lang}", "translate {phrase} to {lang}", "how do you say '{phrase}' in {lang}",
        "what is '{phrase}' in {lang}", "say '{phrase}' in {lang}", "{lang} translation of '{phrase}'",
        'can you translate "{phrase}" to {lang}', "how would I say {phrase} in {lang}",
        "put '{phrase}' into {lang} please", "in {lang}, how do I say '{phrase}'", "translate to {lang}: {phrase}",
        "what's the {lang} for '{phrase}'", "I need '{phrase}' translated into {lang}", "render '{phrase}' in {lang}",
        '"{phrase}" in {lang}', "{lang}: {phrase}",
    )),
    Family("unit_converter", "single", lambda s: [_unit(s)], (
        "convert {value} {from} to {to}", "{value} {from} to {to}", "how many {to} is {value} {from}",
        "how many {to} in {value} {from}", "what is {value} {from} in {to}", "{value} {from} in {to}",
        "change {value} {from} into {to}", "{value} {from} equals how many {to}", "please convert {value} {from} into {to}",
        "I have {value} {from}, how much is that in {to}", "express {value} {from} in {to}", "what's {value} {from} in {to}",
        "turn {value} {from} into {to}", "{value} {from} = ? {to}",
    )),
    Family("web_reader", "single", lambda s: [call("web_reader", url=s["url"])], (
        "summarize {url}", "read {url}", "what does {url} say", "give me the gist of {url}", "tl;dr {url}",
        "open {url} and summarize it", "can you read this page: {url}", "extract the main points from {url}",
        "what's on {url}", "fetch {url}", "summarise this article {url}", "pull the text from {url}",
        "read this for me {url}", "key takeaways from {url}?", "{url} - summary please",
        "check out {url} and tell me what it says",
    )),
)

NO_TOOL = (
    Family("none_greeting", "no_tool", NONE, (
        "hi", "hello", "hey there", "good morning", "good evening", "hiya", "hello, how are you", "hey, {name} here",
        "hi, I'm {name}", "yo", "greetings", "morning!", "hello again", "hi {name} here, how's it going",
    )),
    Family("none_chitchat", "no_tool", NONE, (
        "how are you today", "what's your favorite {fav}", "tell me a joke about {animal}", "tell me a fun fact",
        "are you a robot", "I'm bored", "thanks a lot", "you're awesome", "what's your name", "do you like {animal}",
        "can we just chat", "I had a rough day", "good job", "ok thanks", "never mind", "who made you",
        "do you have a favorite {fav}", "what do you think about {animal}", "my name is {name}, nice to meet you",
        "I think my {relation} is annoyed with me", "that's funny", "can you keep a secret",
    )),
    Family("none_writing", "no_tool", NONE, (
        "write a {form} about {subject}", "can you write me a {form} about {subject}", "compose a {form} on {subject}",
        "draft a {form} about {subject} for my {relation}", "help me write a {form} about {subject}",
        "I need a {form} about {subject}", "give me a funny {form} about {subject}", "make up a {form} about {subject}",
        "write a short {form} for {name} about {subject}", "brainstorm ideas for a {form} about {subject}",
    )),
    Family("none_explain", "no_tool", NONE, (
        "explain {explain}", "explain {explain} like I'm five", "can you explain {explain} simply",
        "help me understand {explain}", "ELI5: {explain}", "walk me through {explain}",
        "I never understood {explain}, can you help", "give me an analogy for {explain}",
    )),
    Family("none_advice", "no_tool", NONE, (
        "any tips for {activity}?", "give me advice on {activity}", "how do I get better at {activity}",
        "what should I know before {activity}", "what can I cook with {ingredient} and {ingredient2}",
        "suggest a dinner with {ingredient}", "I'm nervous about {activity}", "make me a plan for {activity}",
        "quick recipe idea using {ingredient}", "how do I stay consistent with {activity}",
    )),
    Family("none_code", "no_tool", NONE, (
        "write a python function that {codetask}", "how do I write code that {codetask}",
        "give me a javascript snippet that {codetask}", "debug my function that {codetask}",
        "write a unit test for a function that {codetask}", "what's the cleanest way to write a function that {codetask}",
    )),
    Family("none_unservable", "no_tool", NONE, (
        "set an alarm for {time}", "remind me to call {name} at {time}", "send a text to {name}", "call {name}",
        "play some jazz", "order a pizza", "book a table for two at {time}", "turn off the lights",
        "add milk to my shopping list", "email my {relation} that I'm running late", "schedule a meeting with {name} at {time}",
        "open spotify", "buy me a train ticket", "pay my electricity bill", "post this on instagram",
    )),
    Family("none_vague", "no_tool", NONE, (
        "what's the weather", "what's the weather like", "translate this", "translate this for me please",
        "convert it", "convert that to metric", "calculate it", "what's the answer", "look it up", "search for it",
        "define it", "what does that word mean", "what time is it there", "read this link", "summarize that page",
        "how many days until then", "tell me about it", "what about tomorrow", "and in French?", "do the math",
        "can you check that for me", "find out", "what does it say", "how far is it",
    )),
)

AMBIGUOUS = (
    Family("amb_topic", "ambiguous", lambda s: [call("wikipedia", query=s["amb"])], (
        "tell me about {amb}", "what is {amb}", "{amb}?", "info on {amb}", "I want to know about {amb}",
        "what can you tell me about {amb}", "{amb}", "anything interesting about {amb}?",
    ), acceptable=_wiki_or_search("amb")),
    Family("amb_about", "ambiguous", lambda s: [call("wikipedia", query=s["topic"])], (
        "tell me about {topic}", "info about {topic}", "what do you know about {topic}", "{topic}?",
        "I'm curious about {topic}",
    ), acceptable=_wiki_or_search("topic")),
    Family("amb_concept", "ambiguous", lambda s: [call("wikipedia", query=s["concept"])], (
        "what is {concept}", "{concept}?", "tell me about {concept}", "{concept}, what is it",
    ), acceptable=lambda s: [[call("wikipedia", query=s["concept"])], [call("dictionary", word=s["concept"])],
                             [call("web_search", query=s["concept"])]]),
    Family("amb_word", "ambiguous", lambda s: [call("dictionary", word=s["word"])], (
        "{word}?", "{word}", "{word}??", "hmm, {word}?",
    ), acceptable=lambda s: [[call("dictionary", word=s["word"])], [call("wikipedia", query=s["word"])]]),
    Family("amb_person", "ambiguous", lambda s: [call("wikipedia", query=s["person"])], (
        "{person}", "{person}?", "what about {person}",
    ), acceptable=_wiki_or_search("person")),
    Family("amb_city", "ambiguous", lambda s: [call("weather", location=s["location"])], (
        "{location} today", "{location} right now?", "how's {location} looking today",
    ), acceptable=lambda s: [[call("weather", location=s["location"])], [call("web_search", query=s["location"])]]),
)

_PCT_RULE: Rule = lambda s: [call("calculator", expression=s["pct"])]  # noqa: E731

EDGE = (
    Family("edge_say", "edge", lambda s: [call("translate", text=s["short"], to_lang=s["lang"])], (
        "say {short} in {lang}", "{short} in {lang}", "{lang} for {short}", "how to say {short} {lang}",
        "{short} in {lang} pls", "say {short} in {lang}!",
    )),
    Family("edge_pct", "edge", _PCT_RULE, (
        "what's {pct}", "{pct}?", "how much is {pct}", "calculate {pct}", "tip: {pct}", "{pct}",
    ), acceptable=lambda s: [[call("calculator", expression=e)] for e in (s["pct"], *s.alts("pct"))]),
    Family("edge_sqrt", "edge", lambda s: [call("calculator", expression=s["root"])], (
        "sqrt of {root}", "square root of {root}", "√{root}", "sqrt {root}", "what's the sqrt of {root}",
        "root of {root}?",
    )),
    Family("edge_symbolic", "edge", lambda s: [call("calculator", expression=s["sym"])], (
        "{sym}", "{sym}=", "{sym} = ?", "{sym}??", "🧮 {sym}",
    )),
    Family("edge_trap", "edge", NONE, (
        "I'm feeling under the weather, any advice?", "how do I translate my ideas into a business plan",
        "my calculator is broken, what should I do", "what's the weather like in your world",
        "define yourself in three words", "search your feelings", "can you read my mind",
        "the weather ruined our picnic, how do I cheer up my {relation}", "calculate the meaning of life",
        "what time should I go to bed", "I have no time for this", "words can't define how much I love {name}",
        "I need to translate my feelings into words for {name}", "write a poem about the weather in {location}",
        "write a haiku about {location}", "tell me a story set in {location}", "I miss {location} so much",
        "is {lang} hard to learn?", "why do people love {location}?", "what rhymes with {word}",
        "write a sentence using the word {word}", "I'm a little lost in life right now",
    )),
    Family("edge_implicit_weather", "edge", lambda s: [call("weather", location=s["location"])], (
        "do I need sunscreen in {location} today", "is it shorts weather in {location}", "umbrella for {location}?",
        "☀️ {location}?", "🌧️ in {location} tomorrow?", "¿qué tiempo hace en {location}?", "wetter in {location}",
        "météo {location}", "tempo a {location} oggi", "so my flight lands in {location} tomorrow morning and I have "
        "no idea what to pack, what's it going to be like outside", "wether in {location}", "wheather {location}",
    )),
    Family("edge_implicit_other", "edge", lambda s: [call("datetime", action="current_time", timezone=s["tz"])], (
        "quelle heure est-il à {tz}", "wie spät ist es in {tz}", "is it too late to call someone in {tz}",
        "is it daytime in {tz}", "{tz} time?", "⏰ {tz}",
    )),
    Family("edge_hdate", "edge", _dt("day_of_week", date="hdate"), (
        "what day was {hdate}", "which weekday was {hdate}", "{hdate} - what day of the week was that",
    )),
    Family("edge_bare", "edge", lambda s: [call("web_reader", url=s["url"])], (
        "{url}", "{url} ?", "thoughts on {url}", "tldr {url}",
    )),
    Family("edge_context", "edge", lambda s: [call("translate", text=s["phrase"], to_lang=s["lang"])], (
        "my kid asked me what '{phrase}' is in {lang} and I have no clue",
        "I'm going on holiday and want to be able to say '{phrase}' in {lang}",
        "my {lang} neighbor keeps saying hi, how would I tell them '{phrase}'",
    )),
    Family("edge_unit_tight", "edge", lambda s: [_unit(s)], (
        "{value}{from} in {to}", "{value}{from} to {to}?", "{value} {from}->{to}", "{from} to {to}: {value}",
        "got {value} {from} here but the form wants {to}, help",
    )),
)

CLAUSES = (
    Family("weather", "clause", lambda s: [call("weather", location=s["location"])], (
        "check the weather in {location}", "get the forecast for {location}", "tell me if it will rain in {location}",
        "give me the weather in {location}",
    )),
    Family("calculator", "clause", lambda s: [call("calculator", expression=s["calc"])], (
        "calculate {calc}", "work out {calc}", "tell me what {calc} is",
    )),
    Family("wikipedia", "clause", lambda s: [call("wikipedia", query=s["wiki"])], (
        "look up {wiki} on wikipedia", "pull up the wikipedia page for {wiki}", "find the wiki article on {wiki}",
    )),
    Family("web_search", "clause", lambda s: [call("web_search", query=s["search"])], (
        "search the web for {search}", "google {search}", "find {search} online",
    )),
    Family("datetime", "clause", _dt("current_time", timezone="tz"), (
        "tell me the time in {tz}", "check the current time in {tz}",
    )),
    Family("datetime_until", "clause", _dt("days_until", date="date"), (
        "tell me how many days until {date}", "count the days until {date}",
    )),
    Family("dictionary", "clause", lambda s: [call("dictionary", word=s["word"])], (
        "define {word}", "tell me what {word} means", "give me the definition of {word}",
    )),
    Family("translate", "clause", lambda s: [call("translate", text=s["phrase"], to_lang=s["lang"])], (
        "translate '{phrase}' into {lang}", "say '{phrase}' in {lang}", "give me '{phrase}' in {lang}",
    )),
    Family("unit_converter", "clause", lambda s: [_unit(s)], (
        "convert {value} {from} to {to}", "tell me how many {to} is {value} {from}",
    )),
    Family("web_reader", "clause", lambda s: [call("web_reader", url=s["url"])], (
        "summarize {url}", "read {url} for me", "give me the gist of {url}",
    )),
)

MULTI = (
    Family("multi_same", "multi", lambda s: [call("weather", location=s["location"]),
                                             call("weather", location=s["location2"])], (
        "weather in {location} and {location2}", "compare the weather in {location} and {location2}",
        "is it warmer in {location} or {location2} today", "forecast for {location} vs {location2}",
    )),
    Family("multi_same_tz", "multi", lambda s: [call("datetime", action="current_time", timezone=s["tz"]),
                                                call("datetime", action="current_time", timezone=s["tz2"])], (
        "what time is it in {tz} and in {tz2}", "current time in {tz} and {tz2}",
    )),
    Family("multi_same_word", "multi", lambda s: [call("dictionary", word=s["word"]),
                                                  call("dictionary", word=s["word2"])], (
        "define {word} and {word2}", "what do {word} and {word2} mean", "difference between {word} and {word2}?",
    )),
    Family("multi_same_lang", "multi", lambda s: [call("translate", text=s["phrase"], to_lang=s["lang"]),
                                                  call("translate", text=s["phrase"], to_lang=s["lang2"])], (
        "translate '{phrase}' into {lang} and {lang2}", "how do you say '{phrase}' in {lang} and in {lang2}",
    )),
)

JOINERS = (" and ", " and also ", ", then ", ". also ", " & ", "; ", " and then ", ". after that, ", ", plus ",
           " + ", ", and ", ". Then ")
MULTI_OPENERS = ("", "", "", "can you ", "please ", "I need you to ", "could you ", "two things: ", "pls ")
PREFIXES = ("hey ", "hey, ", "hi, ", "hi! ", "hello, ", "ok so ", "okay, ", "quick question: ", "um, ", "uh ",
            "yo ", "so ", "please ", "pls ", "hey there, ", "sorry to bother you, ", "question: ", "hiya, ",
            "good morning! ", "excuse me, ", "hmm ", "quick one: ")
SUFFIXES = (" please", " pls", " thanks", " thank you", ", thanks!", " thx", " asap", " :)", " 🙏", " if you can",
            " for me", " real quick", " ty", " cheers", " lol", " now", " please and thank you", " when you get a chance")

FAMILIES = SINGLE + NO_TOOL + AMBIGUOUS + EDGE + MULTI
CATEGORY_WEIGHTS = {"single": 0.58, "multi": 0.14, "no_tool": 0.14, "ambiguous": 0.05, "edge": 0.09}
"""Share of each category in a generated set; no-tool queries are 14% plus the edge traps (about 16% overall)."""
