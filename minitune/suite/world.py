"""The world corpus: generated text that reads like the web's, for pretraining a base model.

A pretrained base should know the language before it is taught tasks (the seed recipe's second
step). Nothing here can be downloaded, so the text is generated: a small English grammar whose
open word classes come from a general English word list (`english_words.tsv`: ~10,000 WordNet
lemmas, most common first, with their inflected forms), drawn with Zipf-like weights so that
common words are common and thousands of others occur. Document kinds:

    prose        everyday sentences (statements, questions, requests, if/when/because clauses)
    story        a short narrative in the past tense, or one of the suite's story paragraphs
    news         a dated report with places and numbers, or one of the suite's news paragraphs
    notice       opening hours, prices, dates, phone numbers
    email        headers with addresses ("From: ana.kim@mail.org"), a greeting, a body
    letter       a postal address, a date, a greeting, a body
    dialogue     two named speakers asking and answering everyday questions
    encyclopedia a city, a country, an animal or a person (the suite's biographies)
    bilingual    French sentences with their English glosses, as a phrasebook gives them
    synonyms     sentences that use two words of the same meaning ("big, even huge")
    code         a small Python function under its comment
    usage        sentences that use the generators' words (names, cities, every word of every
                 task phrasing, held-out tasks' included) that the other kinds left out

A document has no blank line inside (a blank line separates documents). None is an
instruction followed by its answer. `generate_world` drops every document that holds
an evaluation input or prompt (30+ characters) or an evaluation answer of three or more words
(`LeakFilter`), and then adds usage sentences until every word of the generators' lexicon
(`lexicon_words`) occurs. The same seed gives the same documents.
"""

from __future__ import annotations

import ast
import bisect
import gzip
import itertools
import random
import re
import string
import sys
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from minitune.suite import families_code as code_families
from minitune.suite import families_language as lang
from minitune.suite import families_shared as shared
from minitune.suite import families_symbolic as sym
from minitune.suite import lexicon
from minitune.suite.lexicon import MONTHS, NUMBERS_EN, WEEKDAYS, pools

WORDS_FILE = Path(__file__).with_name("english_words.tsv")
WORD = re.compile(r"[^\W\d_]+")  # a run of letters (accented ones included)
MIN_LEAK_CHARS = 30  # an evaluation input or prompt at least this long must not occur
MIN_LEAK_WORDS = 3  # nor an evaluation answer of at least this many words


# ---- the word list --------------------------------------------------------------------------


@dataclass(frozen=True)
class WordClass:
    """One part of speech: its lemmas most common first, their forms, Zipf-like weights."""

    lemmas: list[str]
    forms: list[list[str]]
    cumulative: list[float]

    def pick(self, rng: random.Random) -> int:
        return bisect.bisect(self.cumulative, rng.random() * self.cumulative[-1])


@cache
def word_classes() -> dict[str, WordClass]:
    """noun (forms: plural), verb (third person, past, participle, -ing), adj, adv."""
    rows: dict[str, list[tuple[str, list[str]]]] = {"noun": [], "verb": [], "adj": [], "adv": []}
    for line in WORDS_FILE.read_text(encoding="utf-8").splitlines():
        if line and not line.startswith("#"):
            lemma, pos, forms = line.split("\t")
            rows[pos].append((lemma, forms.split(",") if forms else []))
    classes = {}
    for pos, entries in rows.items():
        weights = itertools.accumulate(1 / (rank + 30) for rank in range(len(entries)))
        classes[pos] = WordClass([e[0] for e in entries], [e[1] for e in entries], list(weights))
    return classes


def _noun(rng, plural=False) -> str:
    singular, plural_form = _noun_forms(rng)
    return plural_form if plural else singular


def _noun_forms(rng) -> tuple[str, str]:
    """(singular, plural) of one noun."""
    c = word_classes()["noun"]
    i = c.pick(rng)
    return c.lemmas[i], c.forms[i][0]


def _verb(rng, form: int | None = None) -> str:
    """The lemma (form None), or 0 third person, 1 past, 2 participle, 3 -ing."""
    c = word_classes()["verb"]
    i = c.pick(rng)
    return c.lemmas[i] if form is None else c.forms[i][form]


def _adj(rng) -> str:
    c = word_classes()["adj"]
    return c.lemmas[c.pick(rng)]


def _adv(rng) -> str:
    c = word_classes()["adv"]
    return c.lemmas[c.pick(rng)]


def _a(word: str) -> str:
    return ("an " if word[0] in "aeiou" else "a ") + word


# ---- phrases --------------------------------------------------------------------------------

_SINGULAR_DET = [
    "the",
    "the",
    "the",
    "a",
    "this",
    "that",
    "my",
    "your",
    "our",
    "their",
    "his",
    "her",
    "every",
    "one",
]
_PLURAL_DET = [
    "the",
    "the",
    "some",
    "many",
    "these",
    "those",
    "my",
    "our",
    "their",
    "two",
    "three",
    "a few",
    "several",
    "all the",
]
_PREPS = [
    "in",
    "on",
    "near",
    "behind",
    "under",
    "beside",
    "after",
    "before",
    "with",
    "without",
    "across",
    "around",
    "inside",
    "outside",
    "above",
    "below",
    "from",
    "for",
    "about",
]
_TIMES = [
    "yesterday",
    "today",
    "last week",
    "last night",
    "this morning",
    "this year",
    "on {day}",
    "in {month}",
    "every {day}",
    "at {hour} o'clock",
    "two days ago",
    "a long time ago",
    "since {month}",
    "next week",
    "tomorrow",
    "soon",
    "later",
]
_CONNECT = [
    "because",
    "although",
    "while",
    "after",
    "before",
    "when",
    "since",
    "until",
    "as soon as",
    "even though",
]
_MODALS = ["could", "would", "should", "might", "must", "can", "will", "may"]


def noun_phrase(rng, plural: bool | None = None) -> tuple[str, bool]:
    """("the quiet river", False): a determiner, perhaps an adjective, a noun."""
    plural = rng.random() < 0.3 if plural is None else plural
    noun = _noun(rng, plural)
    if rng.random() < 0.35:
        noun = f"{_adj(rng)} {noun}"
    det = rng.choice(_PLURAL_DET if plural else _SINGULAR_DET)
    if det == "a":
        return _a(noun), plural
    return f"{det} {noun}", plural


def _np(rng, plural=None) -> str:
    return noun_phrase(rng, plural)[0]


def _time(rng) -> str:
    return rng.choice(_TIMES).format(
        day=rng.choice(WEEKDAYS), month=rng.choice(MONTHS), hour=rng.choice(NUMBERS_EN[1:12])
    )


def _name(rng) -> str:
    return rng.choice(pools(True).first_names)


def subject(rng) -> tuple[str, bool]:
    """(text, third_person_singular)."""
    r = rng.random()
    if r < 0.3:
        return _name(rng), True
    if r < 0.55:
        pronoun = rng.choice(["I", "you", "we", "they", "he", "she", "it"])
        return pronoun, pronoun in ("he", "she", "it")
    text, plural = noun_phrase(rng)
    return text, not plural


def _present(rng, singular: bool) -> str:
    return _verb(rng, 0) if singular else _verb(rng)


def _cap(text: str) -> str:
    return text[0].upper() + text[1:]


def clause(rng) -> str:
    """A clause without its final punctuation, in one of several shapes."""
    subj, singular = subject(rng)
    be_now = ("is" if singular else "are") if subj != "I" else "am"
    be_then = "was" if singular or subj == "I" else "were"
    do = "does" if singular else "do"
    shapes = [
        lambda: f"{subj} {_verb(rng, 1)} {_np(rng)} {_time(rng)}",
        lambda: f"{subj} {_verb(rng, 1)} {_np(rng)} {rng.choice(_PREPS)} {_np(rng)}",
        lambda: f"{subj} {_present(rng, singular)} {_np(rng)} {_adv(rng)}",
        lambda: f"{subj} {rng.choice(_MODALS)} {_verb(rng)} {_np(rng)}",
        lambda: f"{subj} {do} not {_verb(rng)} {_np(rng)}",
        lambda: f"{subj} did not {_verb(rng)} {_np(rng)} {_time(rng)}",
        lambda: f"{subj} {be_now} {_adj(rng)}",
        lambda: f"{subj} {be_then} {_adv(rng)} {_adj(rng)}",
        lambda: f"{subj} {be_then} {_verb(rng, 3)} {_np(rng)}",
        lambda: f"{subj} {'has' if singular else 'have'} {_verb(rng, 2)} {_np(rng)}",
        lambda: f"{subj} just {_verb(rng, 1)} {_np(rng)}",
        lambda: (
            f"{subj} {rng.choice(['wanted', 'tried', 'decided', 'needed', 'forgot'])} to "
            f"{_verb(rng)} {_np(rng)}"
        ),
        lambda: f"{subj} {'likes' if singular else 'like'} {_verb(rng, 3)}",
        lambda: f"{subj} will {_verb(rng)} {_np(rng)} {_time(rng)}",
        lambda: (
            f"there {'is' if rng.random() < 0.5 else 'was'} {_np(rng, False)} "
            f"{rng.choice(_PREPS)} {_np(rng)}"
        ),
        lambda: (
            f"there are {rng.choice(NUMBERS_EN[2:20])} {_noun(rng, True)} "
            f"{rng.choice(_PREPS)} {_np(rng)}"
        ),
    ]
    return rng.choice(shapes)()


def sentence(rng) -> str:
    """One sentence: a statement, a question, a request or two clauses joined."""
    r = rng.random()
    if r < 0.45:
        return _cap(clause(rng)) + "."
    if r < 0.65:
        return f"{_cap(clause(rng))} {rng.choice(_CONNECT)} {clause(rng)}."
    if r < 0.72:
        return f"If {clause(rng)}, {clause(rng)}."
    if r < 0.8:
        return f"{_name(rng)} said that {clause(rng)}."
    subj, singular = subject(rng)
    if subj == "I":
        subj, singular = "you", False
    questions = [
        f"Did {subj} {_verb(rng)} {_np(rng)}?",
        f"{'Does' if singular else 'Do'} {subj} {_verb(rng)} {_np(rng)}?",
        f"{_cap(rng.choice(_MODALS))} {subj} {_verb(rng)} {_np(rng)}?",
        f"Where did {subj} {_verb(rng)} {_np(rng)}?",
        f"When will {subj} {_verb(rng)} {_np(rng)}?",
        f"Why {'is' if singular else 'are'} {subj} so {_adj(rng)}?",
        f"Could you tell me where {_np(rng, False)} is?",
        f"Can you {_verb(rng)} {_np(rng)} for me, please?",
        f"Please {_verb(rng)} {_np(rng)} before {rng.choice(WEEKDAYS)}.",
        f"What did {subj} {_verb(rng)} {_time(rng)}?",
        f"How {rng.choice(['many', 'much'])} {_noun(rng, True)} did {subj} {_verb(rng)}?",
    ]
    return rng.choice(questions)


def _paragraph(rng, low=3, high=7) -> str:
    return " ".join(sentence(rng) for _ in range(rng.randint(low, high)))


# ---- document kinds -------------------------------------------------------------------------


def _date(rng) -> str:
    return f"{rng.randint(1, 28)} {rng.choice(MONTHS)} {rng.randint(1950, 2035)}"


def _address(rng) -> str:
    p = pools(True)
    first, last = _name(rng).lower(), rng.choice(p.last_names).lower()
    host = rng.choice(
        [
            "example.com",
            "mail.org",
            "post.net",
            "school.edu",
            "company.fr",
            "web.de",
            "library.org",
            "town.gov",
            "shop.co",
            "inbox.net",
        ]
    )
    user = rng.choice(
        [
            f"{first}.{last}",
            first,
            f"{last}{rng.randint(1, 99)}",
            f"{first[0]}{last}",
            f"{first}_{last}",
            f"info.{last}",
        ]
    )
    return f"{user}@{host}"


def _street(rng) -> str:
    kind = rng.choice(["Street", "Road", "Lane", "Avenue", "Square", "Way", "Place"])
    return f"{rng.randint(1, 240)} {_cap(_noun(rng))} {kind}"


def _phone(rng) -> str:
    return f"0{rng.randint(10, 99)} {rng.randint(100, 999)} {rng.randint(1000, 9999)}"


def _price(rng) -> str:
    return f"{rng.randint(1, 90)}.{rng.choice(['00', '50', '95', '20'])} euros"


def prose(rng) -> str:
    return _paragraph(rng, 3, 8)


def story(rng) -> str:
    if rng.random() < 0.3:
        return lang.make_story(rng, wide=True)["input"]
    name = _name(rng)
    moment = rng.choice(["morning", "evening", "night", "winter"])
    opening = rng.choice(
        [f"One {moment}", "Long ago", f"Last {rng.choice(MONTHS)}", "Once upon a time"]
    )
    lines = [f"{opening}, {name} {_verb(rng, 1)} {_np(rng)} {rng.choice(_PREPS)} {_np(rng)}."]
    for _ in range(rng.randint(2, 6)):
        pronoun = rng.choice(["He", "She", "They", name])
        subject = pronoun.lower() if pronoun != name else name  # mid-sentence
        lines.append(
            rng.choice(
                [
                    f"{pronoun} {_verb(rng, 1)} {_np(rng)} and {_verb(rng, 1)} {_np(rng)}.",
                    f"Then {subject} {_verb(rng, 1)} {_adv(rng)}.",
                    f"{_cap(clause(rng))}.",
                    f'"{_cap(clause(rng))}," {subject} said.',
                ]
            )
        )
    lines.append(
        rng.choice(
            [
                f"In the end, {clause(rng)}.",
                f"After that, {clause(rng)}.",
                f"{name} never forgot {_np(rng)}.",
            ]
        )
    )
    return " ".join(lines)


def news(rng) -> str:
    if rng.random() < 0.3:
        return lang.make_news(rng, wide=True)["input"]
    p = pools(True)
    city = rng.choice(p.cities)
    head = f"{city}, {_date(rng)}."
    body = [
        f"{rng.choice(['Officials', 'The mayor', 'A spokesperson', 'Local people', 'Police'])} "
        f"said on {rng.choice(WEEKDAYS)} that {clause(rng)}.",
        f"About {rng.randint(2, 900) * 10} people {_verb(rng, 1)} {_np(rng)} in {city}.",
        f"The project will cost {rng.randint(2, 95)} million euros and take {rng.randint(2, 30)} "
        f"months.",
        f"{_cap(clause(rng))}, according to {rng.choice(p.first_names)} "
        f"{rng.choice(p.last_names)}.",
        f"{_cap(clause(rng))}.",
    ]
    rng.shuffle(body)
    return " ".join([head, *body[: rng.randint(3, 5)]])


def notice(rng) -> str:
    place = rng.choice(
        [
            "library",
            "museum",
            "swimming pool",
            "post office",
            "town hall",
            "bakery",
            "pharmacy",
            "sports centre",
            "school",
            "station",
        ]
    )
    lines = [
        rng.choice(["NOTICE", "Please note", "Important", "Opening hours"]),
        f"The {place} at {_street(rng)} will be closed from {_date(rng)} until {_date(rng)}.",
        f"Opening hours: {rng.choice(WEEKDAYS)} to {rng.choice(WEEKDAYS)}, "
        f"{rng.randint(7, 10)}:{rng.choice(['00', '30'])} to {rng.randint(16, 21)}:00.",
        f"Tickets cost {_price(rng)} for adults and {_price(rng)} for children under "
        f"{rng.randint(6, 16)}.",
        f"For questions call {_phone(rng)} or write to {_address(rng)}.",
        f"{_cap(clause(rng))}.",
    ]
    return "\n".join([lines[0], *rng.sample(lines[1:], rng.randint(3, 5))])


def email(rng) -> str:
    sender, to = _address(rng), _address(rng)
    name = _cap(to.split("@")[0].split(".")[0].split("_")[0].rstrip("0123456789"))
    cc = f"\nCc: {_address(rng)}" if rng.random() < 0.3 else ""
    body = [f"{rng.choice(['Hi', 'Dear', 'Hello'])} {name},", _paragraph(rng, 2, 5)]
    if rng.random() < 0.5:
        body.append(
            rng.choice(
                [
                    f"My new address is {_address(rng)}.",
                    f"You can also reach {_name(rng)} at {_address(rng)}.",
                    f"Please reply to {_address(rng)}, not to this address.",
                    f"The meeting is on {_date(rng)}.",
                ]
            )
        )
    body.append(
        f"{rng.choice(['Best wishes', 'Thanks', 'Regards', 'See you soon'])},\n"
        f"{_cap(sender.split('@')[0].split('.')[0].rstrip('0123456789'))}"
    )
    return f"From: {sender}\nTo: {to}{cc}\nSubject: {_cap(_np(rng))}\n" + "\n".join(body)


def letter(rng) -> str:
    p = pools(True)
    head = f"{_street(rng)}\n{rng.choice(p.cities)}\n{_date(rng)}"
    greeting = f"Dear {rng.choice(['Mr', 'Ms', 'Dr'])} {rng.choice(p.last_names)},"
    body = _paragraph(rng, 3, 6)
    return f"{head}\n{greeting}\n{body}\nYours sincerely,\n{_name(rng)} {rng.choice(p.last_names)}"


def dialogue(rng) -> str:
    a, b = rng.sample(pools(True).first_names, 2)
    turns = []
    for _ in range(rng.randint(2, 4)):
        noun = _noun(rng)
        pair = rng.choice(
            [
                (
                    f"Could you tell me when the {noun} opens?",
                    f"It opens at {rng.randint(7, 11)} on {rng.choice(WEEKDAYS)}.",
                ),
                (f"Where did you {_verb(rng)} {_np(rng)}?", f"I {_verb(rng, 1)} it {_time(rng)}."),
                (
                    f"Do you know {a if rng.random() < 0.5 else 'anyone'} who {_verb(rng, 0)} "
                    f"{_np(rng)}?",
                    f"Yes, {_name(rng)} does.",
                ),
                ("What is your email address?", f"It is {_address(rng)}."),
                (f"How much is {_np(rng, False)}?", f"It costs {_price(rng)}."),
                (f"Are you {_adj(rng)}?", f"No, just a little {_adj(rng)}."),
                (f"{_cap(sentence(rng))}", f"{_cap(sentence(rng))}"),
                (f"Why did you {_verb(rng)} {_np(rng)}?", f"Because {clause(rng)}."),
            ]
        )
        turns += [f"{a}: {pair[0]}", f"{b}: {pair[1]}"]
    return "\n".join(turns)


def encyclopedia(rng) -> str:
    p = pools(True)
    r = rng.random()
    if r < 0.25:
        return lang.biography(rng, wide=True)["context"]
    if r < 0.6:
        city, country = rng.choice(p.cities), rng.choice(p.countries)
        return (
            f"{city} is a city in {country}. About {rng.randint(2, 990) * 1000} people live "
            f"there. It is known for its {_adj(rng)} {_noun(rng, True)} and its "
            f"{_noun(rng, True)}. {_cap(clause(rng))}. The city was founded in "
            f"{rng.randint(800, 1900)}."
        )
    noun, plural = _noun_forms(rng)
    return (
        f"{_cap(_a(noun))} is a kind of {_noun(rng)}. Most {plural} "
        f"are {_adj(rng)} and {_adj(rng)}. People often {_verb(rng)} them {rng.choice(_PREPS)} "
        f"{_np(rng)}. {_cap(clause(rng))}."
    )


def bilingual(rng) -> str:
    pairs = [lang.sentence_pair(rng) for _ in range(rng.randint(2, 5))]
    style = rng.randrange(3)
    if style == 0:
        return "\n".join(f"{fr} ({en})" for en, fr in pairs)
    if style == 1:
        return "\n".join(f"{fr} = {en}" for en, fr in pairs)
    return "\n".join(f"FR: {fr}\nEN: {en}" for en, fr in pairs)


# groups of words with about the same meaning (written by hand for minitune)
SYNONYMS = [
    group.split()
    for group in """
big large huge great|small little tiny|quick fast rapid swift|slow unhurried|happy glad cheerful
joyful|sad unhappy gloomy|angry cross furious|easy simple|hard difficult tough|begin start
commence|end finish stop|say tell state|ask inquire|answer reply respond|give provide hand
offer|get obtain receive|find locate discover|show display reveal|choose pick select|write
compose|make create produce build|change alter convert turn|fix repair mend|help assist
aid|try attempt|keep retain hold|buy purchase|sell|look watch observe|listen hear|talk speak
chat|walk stroll|run sprint jog|eat consume|shout yell|near close|far distant|often
frequently|rarely seldom|maybe perhaps possibly|mostly mainly largely|about roughly
approximately|enough sufficient|whole entire complete|part piece portion|job task work|trip
journey voyage|road street way|house home|shop store|child kid|friend pal companion|smart clever
bright intelligent|silly foolish|rich wealthy|poor needy|clean tidy neat|dirty messy|quiet
silent calm|loud noisy|strange odd weird|normal usual ordinary|important major key|idea
thought notion|mistake error fault|rule law|list series|copy duplicate|repeat redo|remove
delete drop|add include|count number|total sum|mention name cite|pull extract|address
location|message note letter|text passage|word term|sentence line|correct right|wrong
incorrect|reverse backwards|capital uppercase|lowercase small|initials first letters
""".replace("\n", " ").split("|")
]


def synonyms(rng) -> str:
    lines = []
    for _ in range(rng.randint(2, 5)):
        group = rng.choice(SYNONYMS)
        if len(group) < 2:
            continue
        a, b = rng.sample(group, 2)
        lines.append(
            rng.choice(
                [
                    f"{_cap(a)} and {b} mean about the same thing.",
                    f"Another word for {a} is {b}.",
                    f"{_name(rng)} did not say {a}; {_name(rng)} said {b}, which is nearly "
                    "the same.",
                    f"It was {a}, or rather {b}.",
                    f"Some people say {a}, others say {b}.",
                ]
            )
        )
        lines.append(sentence(rng))
    return " ".join(lines)


def code(rng) -> str:
    make = rng.choice([code_families.make_code_numbers, code_families.make_code_strings])
    sample = make(rng, True)
    return f"# {sample['input'].splitlines()[1].removeprefix('What it does: ')}\n{sample['output']}"


KINDS = {  # kind: weight
    prose: 20,
    story: 12,
    news: 9,
    notice: 6,
    email: 9,
    letter: 4,
    dialogue: 10,
    encyclopedia: 9,
    bilingual: 8,
    synonyms: 6,
    code: 3,
}


# ---- the lexicon the corpus must cover ------------------------------------------------------


@cache
def lexicon_words() -> frozenset[str]:
    """Every word (lower-cased) of the suite's generators: of every string written in the
    lexicon and the family modules (word pools, names, cities, topics, the sentence templates
    inside the generators, the wide pools too), and so of every phrasing of every family,
    held-out tasks and held-out phrasings included."""
    texts = []
    for module in (lexicon, lang, sym, code_families, shared):
        tree = ast.parse(Path(module.__file__).read_text(encoding="utf-8"))
        texts += [
            node.value
            for node in ast.walk(tree)
            if isinstance(node, ast.Constant) and isinstance(node.value, str)
        ]
    letters = string.ascii_lowercase  # the letters the string tasks ask about, one by one
    return frozenset([*letters, *(w.lower() for text in texts for w in WORD.findall(text))])


def usage(rng, word: str) -> str:
    """A sentence that uses `word`, shaped by its part of speech where the word list knows it."""
    classes = word_classes()
    name = _name(rng)
    if len(word) == 1:
        return f"{name} wrote the letter {word} on {_np(rng, False)}."
    if word in classes["verb"].lemmas:
        return f"{name} {rng.choice(_MODALS)} {word} {_np(rng)} {_time(rng)}."
    if word in classes["adj"].lemmas:
        return f"{_cap(_np(rng, False))} was {word}, and {name} was {word} too."
    if word in classes["adv"].lemmas:
        return f"{name} {_verb(rng, 1)} {_np(rng)} {word}."
    if word in classes["noun"].lemmas:
        return f"{name} {_verb(rng, 1)} the {word} {rng.choice(_PREPS)} {_np(rng)}."
    return rng.choice(
        [
            f'{name} wrote "{word}" in the notes {_time(rng)}.',
            f"The {word} part was the one {name} liked.",
            f"We talked about {word} and about {_np(rng)}.",
        ]
    )


# ---- leaks ----------------------------------------------------------------------------------


def _key_words(text: str) -> list[str]:
    return [w.lower() for w in WORD.findall(text)]


class LeakFilter:
    """Finds evaluation strings in a document: every evaluation input and prompt of at least
    MIN_LEAK_CHARS characters, and every evaluation answer of at least MIN_LEAK_WORDS words, of
    the suite of `seed` (regenerated by its own code; default: the shipped suite)."""

    def __init__(self, seed: int = 0):
        from minitune.data.templates import format_prompt
        from minitune.suite.tasks import EVAL_SPLITS, _suite_with_samples

        splits, _ = _suite_with_samples(seed)
        strings = set()
        for split in EVAL_SPLITS:
            for _sample, example in splits[split]:
                for text in (example.input, format_prompt(example.instruction, example.input)):
                    if len(text) >= MIN_LEAK_CHARS:
                        strings.add(text.strip())  # (a document ends without its newline)
                if len(example.output.split()) >= MIN_LEAK_WORDS:
                    strings.add(example.output.strip())
        self.strings = strings
        self._by_start: dict[tuple[str, ...], list[str]] = {}
        for text in strings:
            words = _key_words(text)
            if words:
                self._by_start.setdefault(tuple(words[:2]), []).append(text)

    def leaks(self, document: str) -> list[str]:
        """The evaluation strings that occur in `document` (empty: none)."""
        words = _key_words(document)
        found = []
        for pair in set(itertools.pairwise(words)) | {(w,) for w in words}:
            for text in self._by_start.get(pair, ()):
                if text in document:
                    found.append(text)
        return found


# ---- the corpus -----------------------------------------------------------------------------


def generate_world(seed: int = 0, n_documents: int = 60000, log=None) -> list[str]:
    """`n_documents` documents of the kinds above (none holding an evaluation string), then
    usage documents until every lexicon word occurs; deterministic from the seed."""
    rng = random.Random(f"minitune-world-{seed}")
    leaks = LeakFilter(seed)
    kinds, weights = list(KINDS), list(KINDS.values())
    documents, dropped = [], 0
    while len(documents) < n_documents:
        document = rng.choices(kinds, weights)[0](rng).strip("\n")
        if leaks.leaks(document):
            dropped += 1
            continue
        documents.append(document)
    seen = {w.lower() for d in documents for w in WORD.findall(d)}
    missing = sorted(lexicon_words() - seen)
    for start in range(0, len(missing), 6):  # two sentences per missing word, six words a doc
        part = missing[start : start + 6]
        document = " ".join(usage(rng, w) for w in part + part)
        if not leaks.leaks(document):
            documents.append(document)
    if log:
        log(
            f"{len(documents)} documents ({dropped} dropped for holding an evaluation string, "
            f"{len(missing)} lexicon words added by usage sentences)"
        )
    return documents


def write_world(path: str | Path, seed: int = 0, n_documents: int = 60000, log=None) -> int:
    """Write the corpus (gzip when `path` ends in .gz, with a fixed header so the bytes depend
    on the seed only); returns the number of documents."""
    documents = generate_world(seed, n_documents, log)
    data = ("\n\n".join(documents) + "\n").encode("utf-8")
    path = Path(path)
    if path.suffix == ".gz":
        data = gzip.compress(data, compresslevel=9, mtime=0)
    path.write_bytes(data)
    return len(documents)


if __name__ == "__main__":  # python -m minitune.suite.world: a few documents of each kind
    demo = random.Random(int(sys.argv[1]) if len(sys.argv) > 1 else 0)
    for kind in KINDS:
        print(f"--- {kind.__name__}\n{kind(demo)}\n")
