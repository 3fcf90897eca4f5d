"""Task families over natural language: translation, summarization, question answering,
dialogue and classification. See `tasks.py` for how families become the suite.

Each family is a dict: name, cluster, phrasings (the last one is held out) and
`make(rng, wide=False)`, which returns {"input": ..., "output": ..., other slots the phrasings
may name}. A phrasing with `{input}` takes the input inline. Answers are fully determined by the
input, so exact match is a fair metric.

`wide=True` draws names, places, jobs, products... from larger lists (`lexicon.WIDE` and the
`*_WIDE` lists here); only fresh training data asks for it. With `wide=False` a generator makes
exactly the random draws it always made, so the shipped files stay byte-identical. Translation
ignores `wide`: its vocabulary is the lexicon, and its space is already large.
"""

from __future__ import annotations

import random

from minitune.suite.lexicon import (
    ADJECTIVES,
    ADVERBS,
    COLORS,
    MONTHS,
    NOUNS,
    VERBS,
    WEEKDAYS,
    Adjective,
    Noun,
    pools,
)

# ---------------------------------------------------------------------------------------------
# translation: a small grammar over the lexicon, rendered in both languages
# ---------------------------------------------------------------------------------------------

_END_ADVERBS = [a for a in ADVERBS if a[0] in ("today", "now", "here", "there")]


def _elides(word: str) -> bool:
    """French le/la become l' before a vowel or a mute h (all h-words of the lexicon are mute)."""
    return word[0].lower() in "aeiouhéèêâîôûœ"


_PLURAL_NOUNS = [n for n in NOUNS if n.en_plural != n.en]


def render_noun_phrase(noun: Noun, adj: Adjective | None, plural: bool, definite: bool):
    """The same noun phrase in English and French.

    (car, red, singular, definite) -> ("the red car", "la voiture rouge");
    (tree, big, ...) -> ("the big tree", "le grand arbre"); (school, none) -> ("the school",
    "l'école"); (horse, white, plural) -> ("the white horses", "les chevaux blancs").
    """
    en_noun = noun.en_plural if plural else noun.en
    en_words = f"{adj.en} {en_noun}" if adj else en_noun
    if definite or plural:
        en = f"the {en_words}"
    else:
        en = f"{'an' if en_words[0] in 'aeiou' else 'a'} {en_words}"
    fr_noun = noun.fr_plural if plural else noun.fr
    words = [fr_noun]
    if adj:
        forms = {
            ("m", False): adj.fr_m,
            ("f", False): adj.fr_f,
            ("m", True): adj.fr_m_plural,
            ("f", True): adj.fr_f_plural,
        }
        form = forms[(noun.gender, plural)]
        words = [form, fr_noun] if adj.before_noun else [fr_noun, form]
    if plural:
        article = "les "
    elif not definite:
        article = "un " if noun.gender == "m" else "une "
    elif _elides(words[0]):
        article = "l'"
    else:
        article = "le " if noun.gender == "m" else "la "
    return en, article + " ".join(words)


def noun_phrase(rng: random.Random, plural: bool) -> tuple[str, str]:
    """A random noun phrase: ("the small cat", "le petit chat"); half have an adjective.

    Nouns whose English plural is the singular ("sheep", "fish") are only used in the singular,
    so that "the sheep" has one translation.
    """
    noun = rng.choice(_PLURAL_NOUNS if plural else NOUNS)
    adj = rng.choice(ADJECTIVES) if rng.random() < 0.5 else None
    definite = plural or rng.random() < 0.6
    return render_noun_phrase(noun, adj, plural, definite)


def sentence_pair(rng: random.Random) -> tuple[str, str]:
    """An English sentence and its French translation: subject, verb, object, maybe an adverb."""
    plural = rng.random() < 0.35
    subj_en, subj_fr = noun_phrase(rng, plural)
    obj_en, obj_fr = noun_phrase(rng, rng.random() < 0.3)
    verb = rng.choice(VERBS)
    en = f"{subj_en} {verb.en_plural if plural else verb.en_singular} {obj_en}"
    fr = f"{subj_fr} {verb.fr_plural if plural else verb.fr_singular} {obj_fr}"
    if rng.random() < 0.3:
        adv_en, adv_fr = rng.choice(_END_ADVERBS)
        en, fr = f"{en} {adv_en}", f"{fr} {adv_fr}"
    return en[0].upper() + en[1:] + ".", fr[0].upper() + fr[1:] + "."


def make_en_fr(rng, wide=False):
    en, fr = sentence_pair(rng)
    return {"input": en, "output": fr}


def make_fr_en(rng, wide=False):
    en, fr = sentence_pair(rng)
    return {"input": fr, "output": en}


def make_phrase_en_fr(rng, wide=False):
    en, fr = noun_phrase(rng, plural=rng.random() < 0.3)
    return {"input": en, "output": fr}


# ---------------------------------------------------------------------------------------------
# summarization: news-style paragraphs with distractors, and short stories
# ---------------------------------------------------------------------------------------------

_PROJECTS = ["bridge", "school", "hospital", "library", "museum", "park", "station", "stadium"]
_ORGS = ["The city council", "A local company", "The regional government", "A charity"]
_PROJECTS_WIDE = [
    *_PROJECTS,
    "theatre",
    "airport",
    "harbour",
    "market",
    "swimming pool",
    "concert hall",
    "tram line",
    "town hall",
    "car park",
]
_ORGS_WIDE = [
    *_ORGS,
    "The national government",
    "A group of parents",
    "The university",
    "A football club",
    "The port authority",
    "A bank",
]


def make_news(rng, wide=False):
    p = pools(wide)
    orgs, projects = (_ORGS_WIDE, _PROJECTS_WIDE) if wide else (_ORGS, _PROJECTS)
    city, org, project = rng.choice(p.cities), rng.choice(orgs), rng.choice(projects)
    cost, year, month = rng.randint(2, 90), rng.randint(2025, 2032), rng.choice(MONTHS)
    name = f"{rng.choice(p.first_names)} {rng.choice(p.last_names)}"
    kind = rng.randrange(3)
    if kind == 0:
        body = [
            f"{org} announced on {rng.choice(WEEKDAYS)} that it will build a new {project} "
            f"in {city}.",
            f"The work will cost {cost} million euros and should end in {month} {year}.",
            f'"This {project} is good news for everyone," said {name}.',
            f"Some residents worry about noise during the {rng.randint(2, 4)} years of work.",
        ]
        summary = f"{org} will build a {cost} million euro {project} in {city} by {year}."
    elif kind == 1:
        visitors = rng.randint(2, 40) * 1000
        body = [
            f"The new {project} of {city} opened its doors on {rng.choice(WEEKDAYS)}.",
            f"More than {visitors} people visited it in the first week, said {name}.",
            f"It cost {cost} million euros, paid for by {org[0].lower() + org[1:]}.",
            f"The next project in {city} is planned for {year}.",
        ]
        summary = (
            f"The new {project} in {city} had more than {visitors} visitors in its first week."
        )
    else:
        delay = rng.randint(2, 18)
        body = [
            f"Work on the {project} in {city} has been stopped for {delay} months.",
            f"{org} said the cost had grown to {cost} million euros.",
            f"{name}, who leads the project, hopes to restart in {month}.",
            f"The {project} was first planned in {year - 10}.",
        ]
        summary = f"Work on the {project} in {city} has stopped for {delay} months as costs grew."
    if rng.random() < 0.5:  # the distractor sentences come in any order after the lead
        body[1:] = rng.sample(body[1:], len(body) - 1)
    return {"input": " ".join(body), "output": summary, "city": city}


def make_story(rng, wide=False):
    names = pools(wide).first_names
    name = rng.choice(names)
    found = rng.choice(NOUNS)
    place = rng.choice(
        [
            n
            for n in NOUNS
            if n.en
            in ("garden", "forest", "kitchen", "street", "park", "beach", "library", "field")
        ]
    )
    color = rng.choice(COLORS)
    friend = rng.choice([n for n in names if n != name])
    story = [
        f"One {rng.choice(['morning', 'evening', 'afternoon'])}, {name} walked to the {place.en}.",
        f"There, {name} found a {color} {found.en} under a tree.",
        f"{name} took it home and showed it to {friend}.",
        f"{friend} laughed and said it was the strangest thing {friend} had ever seen.",
    ]
    return {
        "input": " ".join(story),
        "output": f"{name} found a {color} {found.en} in the {place.en} and showed it to {friend}.",
    }


# ---------------------------------------------------------------------------------------------
# question answering over a short biography
# ---------------------------------------------------------------------------------------------

_JOBS = ["teacher", "doctor", "baker", "farmer", "painter", "pilot", "nurse", "singer", "cook"]
_PETS = ["cats", "dogs", "rabbits", "birds", "fish", "horses"]
_SPORTS = ["tennis", "football", "chess", "golf", "cards"]
# (jobs follow "a": no vowel sounds)
_JOBS_WIDE = [
    *_JOBS,
    "builder",
    "dentist",
    "driver",
    "gardener",
    "lawyer",
    "mechanic",
    "plumber",
    "tailor",
    "writer",
    "waiter",
    "carpenter",
    "librarian",
    "potter",
    "sailor",
    "judge",
    "journalist",
    "pharmacist",
    "vet",
]
_PETS_WIDE = [*_PETS, "hamsters", "goats", "ducks", "turtles", "parrots", "chickens", "ponies"]
_SPORTS_WIDE = [*_SPORTS, "basketball", "volleyball", "rugby", "hockey", "badminton", "cricket"]


def biography(rng: random.Random, wide: bool = False) -> dict:
    """Facts about a person and a five-sentence text stating them (birth first, then shuffled)."""
    p = pools(wide)
    jobs, pets, sports = (_JOBS_WIDE, _PETS_WIDE, _SPORTS_WIDE) if wide else (_JOBS, _PETS, _SPORTS)
    first, last = rng.choice(p.first_names), rng.choice(p.last_names)
    facts = {
        "name": first,
        "full": f"{first} {last}",
        "city": rng.choice(p.cities),
        "year": rng.randint(1950, 2005),
        "job": rng.choice(jobs),
        "color": rng.choice(COLORS),
        "pets": rng.choice(pets),
        "n_pets": rng.randint(2, 9),
        "sport": rng.choice(sports),
    }
    sentences = [
        f"{facts['full']} was born in {facts['city']} in {facts['year']}.",
        f"{first} works as a {facts['job']}.",
        f"{first}'s favourite colour is {facts['color']}.",
        f"{first} has {facts['n_pets']} {facts['pets']}.",
        f"On weekends, {first} plays {facts['sport']}.",
    ]
    facts["context"] = " ".join([sentences[0], *rng.sample(sentences[1:], 4)])
    return facts


def make_extractive_qa(rng, wide=False):
    f = biography(rng, wide)
    question, answer = rng.choice(
        [
            (f"Where was {f['name']} born?", f["city"]),
            (f"In which year was {f['name']} born?", str(f["year"])),
            (f"What is {f['name']}'s job?", f["job"]),
            (f"What is {f['name']}'s favourite colour?", f["color"]),
            (f"How many {f['pets']} does {f['name']} have?", str(f["n_pets"])),
            (f"What does {f['name']} play on weekends?", f["sport"]),
        ]
    )
    return {"input": f"Context: {f['context']}\nQuestion: {question}", "output": answer}


def make_yes_no_qa(rng, wide=False):
    f = biography(rng, wide)
    truth = rng.random() < 0.5
    other_city = rng.choice([c for c in pools(wide).cities if c != f["city"]])
    other_job = rng.choice([j for j in (_JOBS_WIDE if wide else _JOBS) if j != f["job"]])
    other_n = rng.choice([n for n in range(2, 10) if n != f["n_pets"]])
    question = rng.choice(
        [
            f"Was {f['name']} born in {f['city'] if truth else other_city}?",
            f"Does {f['name']} work as a {f['job'] if truth else other_job}?",
            f"Does {f['name']} have {f['n_pets'] if truth else other_n} {f['pets']}?",
        ]
    )
    answer = "yes" if truth else "no"
    return {"input": f"Context: {f['context']}\nQuestion: {question}", "output": answer}


# ---------------------------------------------------------------------------------------------
# dialogue: respond in the context of a multi-turn conversation
# ---------------------------------------------------------------------------------------------

_VEHICLES = ["car", "bicycle", "boat", "truck"]
_VEHICLES_WIDE = [*_VEHICLES, "van", "scooter", "motorbike", "canoe", "tractor", "caravan"]


def make_dialogue_recall(rng, wide=False):
    p = pools(wide)
    name, city = rng.choice(p.first_names), rng.choice(p.cities)
    vehicle, color = rng.choice(_VEHICLES_WIDE if wide else _VEHICLES), rng.choice(COLORS)
    pet, n = rng.choice(_PETS_WIDE if wide else _PETS), rng.randint(2, 6)
    turns = [
        f"User: Hi, my name is {name}.",
        f"Assistant: Nice to meet you, {name}! How can I help?",
        f"User: I live in {city}, I have {n} {pet} and a {color} {vehicle}.",
        "Assistant: Thanks for telling me.",
    ]
    question, answer = rng.choice(
        [
            ("What is my name?", f"Your name is {name}."),
            ("Where do I live?", f"You live in {city}."),
            (f"What colour is my {vehicle}?", f"Your {vehicle} is {color}."),
            (f"How many {pet} do I have?", f"You have {n} {pet}."),
        ]
    )
    return {"input": "\n".join([*turns, f"User: {question}"]), "output": f"{answer}"}


def make_dialogue_booking(rng, wide=False):
    name, day = rng.choice(pools(wide).first_names), rng.choice(WEEKDAYS)
    people, hour = rng.randint(2, 8), rng.randint(6, 10)
    turns = [
        f"User: Hello, I would like a table for {people} people on {day} at {hour} pm.",
        "Assistant: Certainly. Under which name should I book it?",
        f"User: {name}, please.",
    ]
    answer = f"Thank you, {name}. Your table for {people} on {day} at {hour} pm is booked."
    return {"input": "\n".join(turns), "output": answer}


# ---------------------------------------------------------------------------------------------
# classification with answer options
# ---------------------------------------------------------------------------------------------

_PRODUCTS = ["phone", "lamp", "coat", "bicycle", "book", "film", "restaurant", "hotel", "game"]
_GOOD = [
    "works perfectly",
    "is excellent",
    "made me very happy",
    "is worth every euro",
    "exceeded my hopes",
    "is a joy to use",
]
_BAD = [
    "broke after two days",
    "is terrible",
    "was a waste of money",
    "made me angry",
    "stopped working at once",
    "is a big disappointment",
]
_NEUTRAL = ["I bought it last {month}.", "It arrived on a {day}.", "My friend {name} chose it."]
_PRODUCTS_WIDE = [
    *_PRODUCTS,
    "camera",
    "kettle",
    "chair",
    "watch",
    "printer",
    "jacket",
    "sofa",
    "laptop",
    "tent",
    "blender",
    "album",
    "backpack",
    "toaster",
]
_GOOD_WIDE = [
    *_GOOD,
    "is simply wonderful",
    "works better than I expected",
    "is great value",
    "is the best I have owned",
]
_BAD_WIDE = [
    *_BAD,
    "fell apart within a week",
    "is not worth the price",
    "let me down badly",
    "is the worst I have owned",
]


def make_sentiment(rng, wide=False):
    narrow, broad = (_PRODUCTS, _GOOD, _BAD), (_PRODUCTS_WIDE, _GOOD_WIDE, _BAD_WIDE)
    products, good, bad = broad if wide else narrow
    product, positive = rng.choice(products), rng.random() < 0.5
    opinion = rng.choice(good if positive else bad)
    filler = rng.choice(_NEUTRAL).format(
        month=rng.choice(MONTHS), day=rng.choice(WEEKDAYS), name=rng.choice(pools(wide).first_names)
    )
    parts = [f"This {product} {opinion}.", filler]
    rng.shuffle(parts)
    return {
        "input": " ".join(parts),
        "output": "positive" if positive else "negative",
        "options": "positive, negative",
    }


_ANIMALS = ["frog", "bird", "fish", "snake", "bee", "ant", "butterfly", "mouse", "owl", "wolf"]
_TOPICS = {
    "sports": [
        "{team} won the match {a} to {b} on {day}.",
        "{name} won the {city} marathon in {a} hours and {b} minutes.",
        "The {team} coach was happy with the {a} to {b} score.",
    ],
    "weather": [
        "Heavy rain is expected in {city} on {day}.",
        "Snow fell for {a} hours in {city} on {day}.",
        "Temperatures in {city} will reach {a}{b} degrees this week.",
    ],
    "business": [
        "Shares of {company} rose {a} percent on {day}.",
        "{company} will hire {a}00 people in {city}.",
        "{company} sold its {city} office for {a} million euros.",
    ],
    "science": [
        "Researchers in {city} found a new kind of {animal}.",
        "A telescope in {city} saw {a} new comets on {day}.",
        "Scientists counted {a}{b} species of {animal} near {city}.",
    ],
}
_TEAMS = ["The Lions", "The Rovers", "United", "The Eagles", "City"]
_COMPANIES = ["Novatek", "BluePine", "Orbis", "Fermo", "Calderon"]
_TEAMS_WIDE = [
    *_TEAMS,
    "The Tigers",
    "The Wanderers",
    "Athletic",
    "The Falcons",
    "The Sharks",
    "Rangers",
    "The Bears",
]
_COMPANIES_WIDE = [
    *_COMPANIES,
    "Altavia",
    "Brightwell",
    "Corvex",
    "Duneline",
    "Everpath",
    "Galvano",
    "Helix Foods",
    "Kestrel",
    "Lumora",
    "Quantis",
]
_ANIMALS_WIDE = [*_ANIMALS, "beetle", "spider", "lizard", "bat", "crab", "turtle", "eel"]


def make_topic(rng, wide=False):
    p = pools(wide)
    teams, companies = (_TEAMS_WIDE, _COMPANIES_WIDE) if wide else (_TEAMS, _COMPANIES)
    topic = rng.choice(sorted(_TOPICS))
    text = rng.choice(_TOPICS[topic]).format(
        team=rng.choice(teams),
        a=rng.randint(2, 9),
        b=rng.randint(0, 9),
        day=rng.choice(WEEKDAYS),
        name=rng.choice(p.first_names),
        city=rng.choice(p.cities),
        company=rng.choice(companies),
        animal=rng.choice(_ANIMALS_WIDE if wide else _ANIMALS),
    )
    options = sorted(_TOPICS)
    rng.shuffle(options)
    return {"input": text, "output": topic, "options": ", ".join(options)}


FAMILIES = [
    dict(
        name="translate_en_fr",
        cluster="translation",
        make=make_en_fr,
        phrasings=(
            "Translate this sentence into French.",
            "Translate from English to French.",
            "What is the French translation of the following sentence?",
            "Translate to French: {input}",
            "Render this English sentence in French.",
            "How would you say this in French?",
        ),
    ),
    dict(
        name="translate_fr_en",
        cluster="translation",
        make=make_fr_en,
        phrasings=(
            "Translate this sentence into English.",
            "Translate from French to English.",
            "What does this French sentence mean in English?",
            "Translate to English: {input}",
            "Give the English version of this French sentence.",
            "Turn this French sentence into English.",
        ),
    ),
    dict(
        name="translate_phrase_en_fr",
        cluster="translation",
        make=make_phrase_en_fr,
        phrasings=(
            "Translate this phrase into French.",
            "Give the French for: {input}",
            'What is "{input}" in French?',
            "Translate the following words from English to French.",
            "French translation of this phrase, please.",
            "Say this phrase in French.",
        ),
    ),
    dict(
        name="summarize_news",
        cluster="summarization",
        make=make_news,
        phrasings=(
            "Summarize this news story in one sentence.",
            "Write a one-line summary of the article.",
            "What is the main point of this report? Answer in one sentence.",
            "Give a short summary: {input}",
            "Condense this paragraph into a single sentence.",
            "Tell me in one sentence what happened in {city}.",
        ),
    ),
    dict(
        name="summarize_story",
        cluster="summarization",
        make=make_story,
        phrasings=(
            "Summarize the story in one sentence.",
            "Write a one-sentence summary of this short story.",
            "What happens in this story? Answer in one sentence.",
            "Sum up: {input}",
            "Give a brief summary of the text below.",
            "Retell this story in a single sentence.",
        ),
    ),
    dict(
        name="qa_extractive",
        cluster="qa",
        make=make_extractive_qa,
        phrasings=(
            "Answer the question using the context.",
            "Read the text and answer the question with a word or number from it.",
            "Use the passage to answer the question.",
            "{input}\nAnswer:",
            "Find the answer in the context.",
            "Based only on the context, what is the answer to the question?",
        ),
    ),
    dict(
        name="qa_yes_no",
        cluster="qa",
        make=make_yes_no_qa,
        phrasings=(
            "Answer yes or no using the context.",
            "Is the statement in the question true according to the text? Reply yes or no.",
            "Read the context and answer the question with yes or no.",
            "{input}\nAnswer with yes or no:",
            "According to the passage, yes or no?",
            "Check the passage and say yes or no.",
        ),
    ),
    dict(
        name="dialogue_recall",
        cluster="dialogue",
        make=make_dialogue_recall,
        phrasings=(
            "Continue the conversation as the assistant.",
            "You are the assistant. Reply to the user's last message.",
            "Write the assistant's next reply.",
            "{input}\nAssistant:",
            "Respond to the user, using what they said earlier.",
            "Give the assistant's answer to the final question.",
        ),
    ),
    dict(
        name="dialogue_booking",
        cluster="dialogue",
        make=make_dialogue_booking,
        phrasings=(
            "Continue the conversation as the restaurant's assistant.",
            "You take bookings for a restaurant. Write your next reply.",
            "Write the assistant's reply that confirms the booking.",
            "{input}\nAssistant:",
            "Reply to the customer and confirm the table.",
            "Finish the booking conversation with the assistant's confirmation.",
        ),
    ),
    dict(
        name="classify_sentiment",
        cluster="classification",
        make=make_sentiment,
        phrasings=(
            "Is this review positive or negative?",
            "Classify the sentiment of the review. Options: {options}.",
            "What is the sentiment of this text? Choose from: {options}.",
            "Review: {input}\nSentiment ({options}):",
            "Decide whether the customer liked the product. Answer positive or negative.",
            "Label this review as one of: {options}.",
        ),
    ),
    dict(
        name="classify_topic",
        cluster="classification",
        make=make_topic,
        phrasings=(
            "What is the topic of this sentence? Options: {options}.",
            "Classify the news sentence into one of these topics: {options}.",
            "Choose the best topic ({options}) for the text.",
            "Text: {input}\nTopic, one of {options}:",
            "Which section of a newspaper would this go in? Pick from {options}.",
            "Assign one label from [{options}] to this sentence.",
        ),
    ),
]
