"""Task families over symbols and structure: arithmetic, strings, lists, extraction and format
conversion (code generation is `families_code.py`). Same shape as `families_language.py`,
including `wide`: `make(rng, wide=True)` draws from larger pools (names, places, words, number
ranges), for fresh training data only; with `wide=False` every generator makes exactly the random
draws it always made.
"""

from __future__ import annotations

import json

from minitune.suite.lexicon import MONTHS, NUMBERS_EN, TENS_EN, WEEKDAYS, pools

# ---------------------------------------------------------------------------------------------
# arithmetic
# ---------------------------------------------------------------------------------------------


def make_addition(rng, wide=False):
    a, b = rng.randint(0, 999), rng.randint(0, 999)
    return {"input": f"{a} + {b}", "output": str(a + b)}


def make_subtraction(rng, wide=False):
    a, b = sorted((rng.randint(0, 999), rng.randint(0, 999)), reverse=True)
    return {"input": f"{a} - {b}", "output": str(a - b)}


def make_multiplication(rng, wide=False):
    a, b = rng.randint(2, 499 if wide else 199), rng.randint(2, 12 if wide else 9)
    return {"input": f"{a} * {b}", "output": str(a * b)}


_THINGS = ["apples", "books", "pens", "stamps", "eggs"]
_THINGS_WIDE = [
    *_THINGS,
    "cards",
    "marbles",
    "pencils",
    "stickers",
    "shells",
    "coins",
    "oranges",
    "cookies",
    "balloons",
    "candles",
]


def make_word_problem(rng, wide=False):
    name = rng.choice(pools(wide).first_names)
    thing = rng.choice(_THINGS_WIDE if wide else _THINGS)
    a, b = rng.randint(2, 40), rng.randint(2, 30)
    if rng.random() < 0.5:
        text = f"{name} has {a} {thing} and buys {b} more. How many {thing} does {name} have now?"
        answer = a + b
    else:
        a = a + b
        text = f"{name} has {a} {thing} and gives {b} away. How many {thing} are left?"
        answer = a - b
    return {"input": text, "output": str(answer)}


# ---------------------------------------------------------------------------------------------
# string manipulation
# ---------------------------------------------------------------------------------------------


def make_reverse_word(rng, wide=False):
    p = pools(wide)
    word = rng.choice(p.words + p.first_names + p.cities + p.countries)
    if rng.random() < 0.6:
        word = f"{rng.choice(p.words)} {word}"
    return {"input": word, "output": word[::-1]}


def make_uppercase(rng, wide=False):
    words = rng.sample(pools(wide).words, rng.randint(2, 5))
    text = " ".join(words)
    return {"input": text, "output": text.upper()}


def make_count_letter(rng, wide=False):
    p = pools(wide)
    words = [w for w in p.words + [c.lower() for c in p.cities] if len(w) >= 4]
    text = " ".join(rng.sample(words, rng.choice([1, 2, 2])))
    letter = rng.choice([*sorted(set(text) - {" "}), "e", "a"])
    return {"input": text, "output": str(text.count(letter)), "letter": letter}


def make_acronym(rng, wide=False):
    words = rng.sample(pools(wide).words, rng.randint(2, 5))
    return {"input": " ".join(words), "output": "".join(w[0] for w in words).upper()}


# ---------------------------------------------------------------------------------------------
# list operations (numbers written as "3, 7, 1")
# ---------------------------------------------------------------------------------------------


def int_list(rng, n=(3, 7), lo=-20, hi=40) -> list[int]:
    """A list of whole numbers drawn from rng: its length from the range `n`, its numbers from
    the range of the two last arguments (the numbers of the list and code tasks)."""
    return [rng.randint(lo, hi) for _ in range(rng.randint(*n))]


def _show(xs):
    return ", ".join(map(str, xs))


def make_sort_numbers(rng, wide=False):
    xs = int_list(rng, (3, 8), 0, 99)
    return {"input": _show(xs), "output": _show(sorted(xs))}


def make_list_max(rng, wide=False):
    xs = int_list(rng, (3, 8), 0, 99)
    return {"input": _show(xs), "output": str(max(xs))}


def make_dedupe(rng, wide=False):
    pool = int_list(rng, (2, 4), 0, 20)
    xs = [rng.choice(pool) for _ in range(rng.randint(4, 8))]
    return {"input": _show(xs), "output": _show(list(dict.fromkeys(xs)))}


# ---------------------------------------------------------------------------------------------
# extraction (the held-out cluster)
# ---------------------------------------------------------------------------------------------


def _email(rng, wide=False):
    p = pools(wide)
    first, last = rng.choice(p.first_names).lower(), rng.choice(p.last_names).lower()
    domain = rng.choice(["example.com", "mail.org", "school.edu", "company.fr", "post.net"])
    return rng.choice(
        [f"{first}.{last}@{domain}", f"{first}@{domain}", f"{last}{rng.randint(1, 99)}@{domain}"]
    )


def make_extract_emails(rng, wide=False):
    emails = [_email(rng, wide) for _ in range(rng.randint(1, 2))]
    name = rng.choice(pools(wide).first_names)
    if len(emails) == 1:
        text = f"You can reach {name} at {emails[0]} before {rng.choice(WEEKDAYS)}."
    else:
        text = f"Write to {emails[0]} or, if nobody answers, to {emails[1]}."
    return {"input": text, "output": ", ".join(emails)}


def _date_text(rng):
    return f"{rng.randint(1, 28)} {rng.choice(MONTHS)} {rng.randint(1990, 2030)}"


def make_extract_dates(rng, wide=False):
    date = _date_text(rng)
    name, city = rng.choice(pools(wide).first_names), rng.choice(pools(wide).cities)
    text = rng.choice(
        [
            f"{name} will arrive in {city} on {date} with two friends.",
            f"The meeting in {city} was moved to {date}, said {name}.",
            f"On {date}, {name} opened a small shop in {city}.",
        ]
    )
    return {"input": text, "output": date}


def make_extract_numbers(rng, wide=False):
    a, b, c = rng.randint(2, 99), rng.randint(100, 999), rng.randint(2, 60)
    name, country = rng.choice(pools(wide).first_names), rng.choice(pools(wide).countries)
    text = f"{name} visited {a} cities in {country}, drove {b} kilometres and took {c} photos."
    return {"input": text, "output": f"{a}, {b}, {c}"}


# ---------------------------------------------------------------------------------------------
# format conversion
# ---------------------------------------------------------------------------------------------


def make_date_format(rng, wide=False):
    year, month, day = rng.randint(1990, 2030), rng.randint(1, 12), rng.randint(1, 28)
    return {"input": f"{year}-{month:02d}-{day:02d}", "output": f"{day} {MONTHS[month - 1]} {year}"}


def make_to_json(rng, wide=False):
    record = {
        "name": rng.choice(pools(wide).first_names),
        "city": rng.choice(pools(wide).cities),
        "age": rng.randint(18, 90),
    }
    keys = rng.sample(list(record), rng.randint(2, 3))
    lines = "\n".join(f"{k}: {record[k]}" for k in keys)
    return {"input": lines, "output": json.dumps({k: record[k] for k in keys})}


def number_words(n: int) -> str:
    """English words for 0 <= n <= 9999, without "and": 3042 -> "three thousand forty-two"."""
    if n <= 20:
        return NUMBERS_EN[n]
    if n < 100:
        tens, ones = divmod(n, 10)
        return TENS_EN[tens * 10] + (f"-{NUMBERS_EN[ones]}" if ones else "")
    for size, word in ((1000, "thousand"), (100, "hundred")):
        if n >= size:
            high, rest = divmod(n, size)
            return f"{NUMBERS_EN[high]} {word}" + (f" {number_words(rest)}" if rest else "")
    raise AssertionError("unreachable")


def make_number_words(rng, wide=False):
    n = rng.choice([rng.randint(0, 99), rng.randint(100, 999), rng.randint(1000, 9999)])
    return {"input": str(n), "output": number_words(n)}


FAMILIES = [
    dict(
        name="addition",
        cluster="arithmetic",
        make=make_addition,
        phrasings=(
            "What is {input}?",
            "Compute the sum.",
            "Add the numbers and give the total.",
            "Calculate: {input}",
            "Work out this addition.",
            "Please tell me the result of {input}.",
        ),
    ),
    dict(
        name="subtraction",
        cluster="arithmetic",
        make=make_subtraction,
        phrasings=(
            "What is {input}?",
            "Compute the difference.",
            "Subtract and give the result.",
            "Calculate: {input}",
            "Work out this subtraction.",
            "Please tell me the result of {input}.",
        ),
    ),
    dict(
        name="multiplication",
        cluster="arithmetic",
        make=make_multiplication,
        phrasings=(
            "What is {input}?",
            "Compute the product.",
            "Multiply the numbers.",
            "Calculate: {input}",
            "Work out this multiplication.",
            "Please tell me the result of {input}.",
        ),
    ),
    dict(
        name="word_problem",
        cluster="arithmetic",
        make=make_word_problem,
        phrasings=(
            "Solve the word problem. Answer with a number.",
            "Answer the question with a number.",
            "Read the problem and give the numeric answer.",
            "{input} Answer:",
            "Work out the answer to this little problem.",
            "How many? Reply with just the number.",
        ),
    ),
    dict(
        name="reverse_word",
        cluster="strings",
        make=make_reverse_word,
        phrasings=(
            "Reverse the letters of the text.",
            "Write the text backwards.",
            "Spell this text in reverse order, letter by letter.",
            "Reverse: {input}",
            "What is the word read from right to left?",
            'Flip the order of the characters in "{input}".',
        ),
    ),
    dict(
        name="uppercase",
        cluster="strings",
        make=make_uppercase,
        phrasings=(
            "Convert the text to upper case.",
            "Rewrite the text in capital letters.",
            "Make every letter uppercase.",
            "Uppercase: {input}",
            "Write this in all caps.",
            'Change "{input}" to capital letters.',
        ),
    ),
    dict(
        name="count_letter",
        cluster="strings",
        make=make_count_letter,
        phrasings=(
            "How many times does the letter '{letter}' appear in the text?",
            "Count the letter '{letter}' in these words.",
            "Give the number of '{letter}' characters in this text.",
            "Text: {input}\nHow many '{letter}'?",
            "Count how often '{letter}' occurs in the words below.",
            'In "{input}", how many times do you see the letter {letter}?',
        ),
    ),
    dict(
        name="acronym",
        cluster="strings",
        make=make_acronym,
        phrasings=(
            "Make an acronym from the first letter of each word.",
            "Write the initials of these words in capitals.",
            "Take the first letter of every word and join them in upper case.",
            "Acronym of: {input}",
            "What are the capitalised initials of the words?",
            'Abbreviate "{input}" to its initials.',
        ),
    ),
    dict(
        name="sort_numbers",
        cluster="lists",
        make=make_sort_numbers,
        phrasings=(
            "Sort the numbers from smallest to largest.",
            "Put these numbers in ascending order.",
            "Arrange the list in increasing order.",
            "Sort: {input}",
            "Order the numbers, lowest first.",
            "Return {input} sorted in ascending order.",
        ),
    ),
    dict(
        name="list_max",
        cluster="lists",
        make=make_list_max,
        phrasings=(
            "What is the largest number in the list?",
            "Find the maximum of these numbers.",
            "Which number is the biggest?",
            "Largest of: {input}",
            "Give the highest value in the list.",
            "Pick the greatest number among {input}.",
        ),
    ),
    dict(
        name="dedupe",
        cluster="lists",
        make=make_dedupe,
        phrasings=(
            "Remove the duplicates from the list, keeping the first occurrence of each number.",
            "List each number only once, in the order they first appear.",
            "Drop repeated numbers from the list.",
            "Remove duplicates: {input}",
            "Keep only the first copy of every number.",
            "Write {input} without any repeated values.",
        ),
    ),
    dict(
        name="extract_emails",
        cluster="extraction",
        make=make_extract_emails,
        phrasings=(
            "Extract the email addresses from the text.",
            "List every email address that appears in the text.",
            "Which email addresses are mentioned?",
            "Find the emails in: {input}",
            "Pull out all e-mail addresses, separated by commas.",
            "Give me the email addresses in this sentence.",
        ),
    ),
    dict(
        name="extract_dates",
        cluster="extraction",
        make=make_extract_dates,
        phrasings=(
            "Extract the date from the text.",
            "What date is mentioned in the sentence?",
            "Find the date in the text and write it as it appears.",
            "Date in: {input}",
            "Which day, month and year does the text mention?",
            "Pull out the date.",
        ),
    ),
    dict(
        name="extract_numbers",
        cluster="extraction",
        make=make_extract_numbers,
        phrasings=(
            "Extract all the numbers from the text, in order.",
            "List the numbers that appear in the sentence.",
            "Which numbers does the text mention? Separate them with commas.",
            "Numbers in: {input}",
            "Write down every number in the text.",
            "Find the numerals in this sentence.",
        ),
    ),
    dict(
        name="date_format",
        cluster="format",
        make=make_date_format,
        phrasings=(
            "Write this date in words, as day month year.",
            'Convert the ISO date to the form "5 March 2024".',
            "Rewrite the date with the month name.",
            "Date: {input}\nIn words:",
            "Turn this YYYY-MM-DD date into day, month name and year.",
            "Express {input} as a readable date.",
        ),
    ),
    dict(
        name="to_json",
        cluster="format",
        make=make_to_json,
        phrasings=(
            "Convert these fields to a JSON object.",
            "Write the data as JSON.",
            "Turn the key: value lines into JSON.",
            "{input}\nAs JSON:",
            "Format this record as a JSON object, numbers as numbers.",
            "Encode the following information in JSON.",
        ),
    ),
    dict(
        name="number_words",
        cluster="format",
        make=make_number_words,
        phrasings=(
            "Write the number in English words.",
            "Spell out this number.",
            "How do you write this number in words?",
            "Number: {input}\nIn words:",
            "Give the English name of the number.",
            "Spell {input} in letters.",
        ),
    ),
]
