"""More ways to say each seen task: instruction phrasings generated from a small grammar.

Each seen task has five trained phrasings; a model trained on only those can learn them as five
fixed strings. Here each task has a few requests written with alternatives, `{a|b}`, which
expand to every combination ("{sort|order} the numbers" -> "sort the numbers", "order the
numbers"), and each request is said in one of several frames ("Please sort the numbers.",
"Could you sort the numbers?", "sort the numbers"). That gives dozens to hundreds of wordings per
task, trained in fresh data only (`tasks.draw_training_examples(..., grammar=share)`).

What is kept out: a generated phrasing that is within one word (after lower-casing and dropping
punctuation) of any held-out phrasing (each seen task's sixth, the held-out tasks' and the
held-out compositions') is dropped (`grammar_phrasings`; a test checks every one), so the
held-out phrasings stay new. The requests were written as plain English for each task, from
the task's meaning, not from its held-out phrasing.

Slots are those of the task's own phrasings: `{input}` puts the input inline (then the example's
input field is empty, as for the inline trained phrasings), `{letter}` and `{options}` are the
task's own. Words are what a user types; any word may be new to the suite (the world corpus of
the shipped base has them all; a model trained from random weights meets them here first).
"""

from __future__ import annotations

import itertools
import re
from functools import cache

# how a request is said; "{vp}" is the request, "{Vp}" the same with a capital letter
FRAMES = (
    "{Vp}.",
    "Please {vp}.",
    "{Vp}, please.",
    "Could you {vp}?",
    "Can you {vp}?",
    "I need you to {vp}.",
    "Task: {vp}.",
    "{vp}",
)

# requests per task: imperative verb phrases, lower case, alternatives as {a|b} ({|x}: optional)
REQUESTS: dict[str, tuple[str, ...]] = {
    "translate_en_fr": (
        "{translate|render|put} {this|the|the following} {sentence|text} {into|in} French",
        "give {the|a} French {translation|version} of {this|the} {sentence|English sentence}",
        "write {this|the} English sentence in French",
    ),
    "translate_fr_en": (
        "{translate|render|put} {this|the|the following} {sentence|text} {into|in} English",
        "give {the|an} English {translation|version} of {this|the} {sentence|French sentence}",
        "write {this|the} French sentence in English",
    ),
    "translate_phrase_en_fr": (
        "{translate|render|put} {this|the} {phrase|group of words} {into|in} French",
        "give {the|a} French {translation|version} of {this|the} phrase",
        "write {this|the} English phrase in French",
    ),
    "summarize_news": (
        "{summarize|sum up} {this|the} {news story|article|report|news item} in {one|a single} "
        "sentence",
        "write a {one-sentence|short} summary of {this|the} {article|report|news story}",
        "give the main point of {this|the} {article|report} in one sentence",
    ),
    "summarize_story": (
        "{summarize|sum up} {this|the} {story|short story} in {one|a single} sentence",
        "write a {one-sentence|short} summary of {this|the} story",
        "say in one sentence what happens in {this|the} story",
    ),
    "qa_extractive": (
        "answer the question {from|using|with} the {context|text|passage}",
        "{read|use} the {context|text|passage} {and|to} answer the question",
        "find the answer to the question in the {context|text|passage}",
    ),
    "qa_yes_no": (
        "answer the question with yes or no, {using|from} the {context|text|passage}",
        "{read|use} the {context|text|passage} and {reply|answer} yes or no",
        "say {whether|if} the {question|statement} is true {according to|from} the {text|passage}",
    ),
    "dialogue_recall": (
        "{write|give} the assistant's {reply|next message|response}",
        "{reply|respond} to the user as the assistant",
        "continue {this|the} {conversation|chat|dialogue} as the assistant",
    ),
    "dialogue_booking": (
        "{write|give} the assistant's {reply|response} {confirming|that confirms} the "
        "{booking|reservation}",
        "confirm the {booking|reservation|table} as the restaurant's assistant",
        "{reply|respond} to the customer and confirm the {booking|reservation}",
    ),
    "classify_sentiment": (
        "{say|decide|tell me} whether {this|the} review is positive or negative",
        "{give|find} the sentiment of {this|the} {review|text} ({options})",
        "classify {this|the} review{| as positive or negative}",
    ),
    "classify_topic": (
        "{give|choose|pick} the topic of {this|the} {sentence|text} from {options}",
        "classify {this|the} {sentence|text} into one of {these topics|the topics}: {options}",
        "{say|decide} which topic {this|the} sentence is about ({options})",
    ),
    "code_numbers": (
        "write {a|the} Python function {described below|that does what is described}",
        "implement {this|the} function in Python",
        "{give|write} Python code for {this|the} function",
    ),
    "code_strings": (
        "write {a|the} Python function {described below|that does what is described}",
        "implement {this|the} string function in Python",
        "{give|write} Python code for {this|the} function",
    ),
    "addition": (
        "{add|sum} the {two |}numbers",
        "{give|compute|find|work out} the sum",
        "{compute|calculate|work out|find} {input}",
    ),
    "subtraction": (
        "subtract the second number from the first",
        "{give|compute|find|work out} the difference",
        "{compute|calculate|work out|find} {input}",
    ),
    "multiplication": (
        "multiply the {two |}numbers",
        "{give|compute|find|work out} the product",
        "{compute|calculate|work out|find} {input}",
    ),
    "word_problem": (
        "solve {this|the} {problem|word problem}{| and answer with a number}",
        "{give|find|work out} the {answer|number} {to|for} {this|the} problem",
        "read the problem and {answer|reply} with a number",
    ),
    "reverse_word": (
        "{reverse|invert} the {letters|characters} of {this|the} text",
        "write {this|the} text {backwards|in reverse}",
        "spell {this|the} text backwards",
    ),
    "uppercase": (
        "{write|rewrite|put} {this|the} text in {capital letters|upper case|capitals}",
        "{convert|turn} {this|the} text {to|into} upper case",
        "make {this|the} text {uppercase|all capitals}",
    ),
    "count_letter": (
        "count {how many times|how often} the letter '{letter}' {appears|occurs} in {this|the} "
        "text",
        "{give|find} the number of times '{letter}' {appears|occurs}",
        "count the '{letter}' characters in {this|the} text",
    ),
    "acronym": (
        "{make|form|build} an acronym from {these|the} words",
        "{write|give} the {initials|first letters} of {these|the} words in capitals",
        "join the first letters of {these|the} words in upper case",
    ),
    "sort_numbers": (
        "{sort|order|arrange} {the|these} numbers from smallest to largest",
        "{sort|order|arrange} {the|this} list in {ascending|increasing} order",
        "put {the|these} numbers in {ascending|increasing} order",
    ),
    "list_max": (
        "{find|give|say} the {largest|biggest|highest} number in the list",
        "{find|give} the maximum of {these|the} numbers",
        "say which number in the list is the {largest|biggest}",
    ),
    "dedupe": (
        "remove the {duplicates|repeated numbers} from the list, keeping the first "
        "{occurrence|copy} of each",
        "{keep|list} each number only once, in the order {they first appear|of first appearance}",
        "drop the repeated numbers, keeping {their first copies|the first of each}",
    ),
    "date_format": (
        "{write|rewrite|give} {this|the} date in words",
        "{convert|turn} {this|the} ISO date {into|to} day, month name and year",
        "write {this|the} date with the name of the month",
    ),
    "to_json": (
        "{convert|turn} {these|the} {fields|lines} {into|to} {JSON|a JSON object}",
        "{write|format} {this|the} record as {JSON|a JSON object}",
        "give {these|the} key: value lines as JSON",
    ),
    "number_words": (
        "{write|spell out|give} {this|the} number in {English |}words",
        "{write|give} the English words for {this|the} number",
        "say {this|the} number in words",
    ),
}


def expand(pattern: str) -> list[str]:
    """Every combination of a pattern's {a|b} alternatives (a {slot} without | stays):
    "{sort|order} the list{| now}" -> ["sort the list", "sort the list now", "order the list",
    "order the list now"]."""
    parts = re.split(r"(\{[^{}]*\|[^{}]*\})", pattern)
    choices = [p[1:-1].split("|") if p.startswith("{") and "|" in p else [p] for p in parts]
    return [re.sub(r" +", " ", "".join(c)).strip() for c in itertools.product(*choices)]


def words(phrasing: str) -> list[str]:
    """The lower-cased words of a phrasing (slots count as words), punctuation dropped."""
    return re.findall(r"[a-z0-9{}_]+", phrasing.lower())


def word_distance(a: list[str], b: list[str]) -> int:
    """Edits (a word replaced, added or removed) that turn word list a into b."""
    previous = list(range(len(b) + 1))
    for i, x in enumerate(a, 1):
        current = [i]
        for j, y in enumerate(b, 1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (x != y)))
        previous = current
    return previous[-1]


def say(frame: str, request: str) -> str:
    return frame.replace("{Vp}", request[0].upper() + request[1:]).replace("{vp}", request)


@cache
def grammar_phrasings(task: str, held_out: tuple[str, ...]) -> tuple[str, ...]:
    """Every phrasing the grammar makes for `task`, in a fixed order, without those within one
    word of a phrasing in `held_out`."""
    far = [words(h) for h in held_out]
    out = []
    for pattern in REQUESTS[task]:
        for request in expand(pattern):
            for frame in FRAMES:
                phrasing = say(frame, request)
                if all(word_distance(words(phrasing), h) >= 2 for h in far):
                    out.append(phrasing)
    return tuple(dict.fromkeys(out))
