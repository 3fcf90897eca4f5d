"""Task families over symbols and structure: code generation, arithmetic, strings, lists,
extraction and format conversion. Same shape as `families_language.py`.

Code-generation answers are small Python functions; each example carries its `entry_point` and
`tests` ([arguments, expected result] pairs), computed here by plain Python, so a generated
answer can be checked by running it (`minitune.data.codecheck`, in a subprocess).
"""

from __future__ import annotations

import json

from minitune.data.lexicon import (
    ADJECTIVES,
    CITIES,
    COUNTRIES,
    FIRST_NAMES,
    LAST_NAMES,
    MONTHS,
    NOUNS,
    NUMBERS_EN,
    TENS_EN,
    WEEKDAYS,
)

_WORDS = [n.en for n in NOUNS if " " not in n.en] + [a.en for a in ADJECTIVES if " " not in a.en]

# ---------------------------------------------------------------------------------------------
# code generation: (description, function name, body, reference implementation, argument maker)
# ---------------------------------------------------------------------------------------------


def _int_list(rng, n=(3, 7), lo=-20, hi=40):
    return [rng.randint(lo, hi) for _ in range(rng.randint(*n))]


def _number_op(rng):
    k, m = rng.randint(2, 12), rng.randint(1, 9)
    a, b = sorted(rng.sample(range(0, 21), 2))
    x = rng.choice(["x", "n", "value"])  # the parameter's name varies too
    xs = rng.choice(["xs", "nums", "values"])
    one, many = (lambda: [rng.randint(-50, 50)]), (lambda: [_int_list(rng)])
    ops = [
        (f"takes a number {x} and returns {x} plus {k}", f"add_{k}", f"return {x} + {k}",
         lambda v: v + k, one, x),
        (f"takes a number {x} and returns {x} times {k} plus {m}", f"scale_{k}_shift_{m}",
         f"return {x} * {k} + {m}", lambda v: v * k + m, one, x),
        (f"returns True if the number {x} is divisible by {k}, else False", f"divisible_by_{k}",
         f"return {x} % {k} == 0", lambda v: v % k == 0, lambda: [rng.randint(0, 100)], x),
        (f"returns the remainder of {x} divided by {k}", f"mod_{k}", f"return {x} % {k}",
         lambda v: v % k, lambda: [rng.randint(0, 100)], x),
        (f"returns {x} limited to the range {a} to {b}", f"clamp_{a}_{b}",
         f"return min(max({x}, {a}), {b})", lambda v: min(max(v, a), b), one, x),
        (f"returns the distance between {x} and {k}", f"distance_to_{k}",
         f"return abs({x} - {k})", lambda v: abs(v - k), one, x),
        (f"takes a list of numbers {xs} and returns how many are greater than {k}",
         f"count_above_{k}", f"return sum(1 for v in {xs} if v > {k})",
         lambda vs: sum(1 for v in vs if v > k), many, xs),
        (f"takes a list of numbers {xs} and returns how many lie between {a} and {b} inclusive",
         f"count_between_{a}_{b}", f"return sum(1 for v in {xs} if {a} <= v <= {b})",
         lambda vs: sum(1 for v in vs if a <= v <= b), many, xs),
        (f"takes a list of numbers {xs} and returns those greater than {k}, each multiplied "
         f"by {m}", f"big_times_{m}", f"return [v * {m} for v in {xs} if v > {k}]",
         lambda vs: [v * m for v in vs if v > k], many, xs),
        (f"takes a list of numbers {xs} and returns the even ones, in order", "even_numbers",
         f"return [v for v in {xs} if v % 2 == 0]", lambda vs: [v for v in vs if v % 2 == 0],
         many, xs),
        (f"takes a list of numbers {xs} and returns the sum of their squares", "sum_of_squares",
         f"return sum(v * v for v in {xs})", lambda vs: sum(v * v for v in vs), many, xs),
        (f"takes a non-empty list of numbers {xs} and returns the largest minus the smallest",
         "value_range", f"return max({xs}) - min({xs})", lambda vs: max(vs) - min(vs), many, xs),
        (f"takes a list of numbers {xs} and returns each number plus {k}", f"shift_by_{k}",
         f"return [v + {k} for v in {xs}]", lambda vs: [v + k for v in vs], many, xs),
    ]  # fmt: skip
    return rng.choice(ops)


def _string_op(rng):
    c, d = rng.sample("aeiorstnlmcdhu", 2)
    k = rng.randint(2, 6)
    sep = rng.choice(["-", ", ", " ", "+", "/"])
    tail = rng.choice(["!", "?", "ing", "s", "ed", "!!", "...", "er"])
    s = rng.choice(["s", "text", "word"])
    ops = [
        (
            f"takes a string {s} and returns it reversed",
            ("reverse_text", "backwards", "mirror"),
            f"return {s}[::-1]",
            lambda t: t[::-1],
        ),
        (
            f"takes a string {s} and returns it repeated {k} times",
            (f"repeat_{k}", f"times_{k}"),
            f"return {s} * {k}",
            lambda t: t * k,
        ),
        (
            f"returns {k} copies of the string {s} joined by '{sep}'",
            (f"join_{k}_copies", f"chain_{k}"),
            f"return '{sep}'.join([{s}] * {k})",
            lambda t: sep.join([t] * k),
        ),
        (
            f"returns how many times the letter '{c}' appears in the string {s}",
            (f"count_{c}", f"how_many_{c}"),
            f"return {s}.count('{c}')",
            lambda t: t.count(c),
        ),
        (
            f"returns True if the string {s} starts with '{c}', else False",
            (f"starts_with_{c}", f"begins_with_{c}"),
            f"return {s}.startswith('{c}')",
            lambda t: t.startswith(c),
        ),
        (
            f"returns True if the string {s} contains the letter '{c}', else False",
            (f"has_{c}", f"contains_{c}"),
            f"return '{c}' in {s}",
            lambda t: c in t,
        ),
        (
            f"returns the string {s} without any letter '{c}'",
            (f"remove_{c}", f"drop_{c}"),
            f"return {s}.replace('{c}', '')",
            lambda t: t.replace(c, ""),
        ),
        (
            f"returns the string {s} with every '{c}' replaced by '{d}'",
            (f"swap_{c}_{d}", f"replace_{c}_with_{d}"),
            f"return {s}.replace('{c}', '{d}')",
            lambda t: t.replace(c, d),
        ),
        (
            f"returns the first {k} characters of the string {s}",
            (f"first_{k}_chars", f"head_{k}"),
            f"return {s}[:{k}]",
            lambda t: t[:k],
        ),
        (
            f"returns the last {k} characters of the string {s}",
            (f"last_{k}_chars", f"tail_{k}"),
            f"return {s}[-{k}:]",
            lambda t: t[-k:],
        ),
        (
            f"returns the string {s} followed by '{tail}'",
            ("add_ending", "with_suffix"),
            f"return {s} + '{tail}'",
            lambda t: t + tail,
        ),
        (
            f"returns the position of the first '{c}' in the string {s}, or -1 if there is none",
            (f"find_{c}", f"index_of_{c}"),
            f"return {s}.find('{c}')",
            lambda t: t.find(c),
        ),
        (
            f"returns the string {s} in upper case",
            ("shout", "to_upper", "loud"),
            f"return {s}.upper()",
            lambda t: t.upper(),
        ),
        (
            f"returns True if the string {s} reads the same backwards, else False",
            ("is_palindrome", "reads_same_backwards"),
            f"return {s} == {s}[::-1]",
            lambda t: t == t[::-1],
        ),
    ]
    desc, names, body, fn = rng.choice(ops)
    name = rng.choice(names)  # several natural names for the same function

    def word():
        return [rng.choice([*_WORDS, "level", "radar", "noon", "civic", "stats"])]

    return desc, name, body, fn, word, s


def _code_sample(desc, name, body, fn, make_args, param):
    tests = []
    for _ in range(4):
        args = make_args()
        tests.append([args, fn(*args)])
    return {
        "input": f"Function name: {name}\nWhat it does: {desc}.",
        "output": f"def {name}({param}):\n    {body}\n",
        "extra": {"entry_point": name, "tests": tests},
    }


def make_code_numbers(rng):
    return _code_sample(*_number_op(rng))


def make_code_strings(rng):
    return _code_sample(*_string_op(rng))


# ---------------------------------------------------------------------------------------------
# arithmetic
# ---------------------------------------------------------------------------------------------


def make_addition(rng):
    a, b = rng.randint(0, 999), rng.randint(0, 999)
    return {"input": f"{a} + {b}", "output": str(a + b)}


def make_subtraction(rng):
    a, b = sorted((rng.randint(0, 999), rng.randint(0, 999)), reverse=True)
    return {"input": f"{a} - {b}", "output": str(a - b)}


def make_multiplication(rng):
    a, b = rng.randint(2, 199), rng.randint(2, 9)
    return {"input": f"{a} * {b}", "output": str(a * b)}


def make_word_problem(rng):
    name, thing = rng.choice(FIRST_NAMES), rng.choice(["apples", "books", "pens", "stamps", "eggs"])
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


def make_reverse_word(rng):
    word = rng.choice(_WORDS + FIRST_NAMES + CITIES + COUNTRIES)
    if rng.random() < 0.6:
        word = f"{rng.choice(_WORDS)} {word}"
    return {"input": word, "output": word[::-1]}


def make_uppercase(rng):
    words = rng.sample(_WORDS, rng.randint(2, 5))
    text = " ".join(words)
    return {"input": text, "output": text.upper()}


def make_count_letter(rng):
    words = [w for w in _WORDS + [c.lower() for c in CITIES] if len(w) >= 4]
    text = " ".join(rng.sample(words, rng.choice([1, 2, 2])))
    letter = rng.choice([*sorted(set(text) - {" "}), "e", "a"])
    return {"input": text, "output": str(text.count(letter)), "letter": letter}


def make_acronym(rng):
    words = rng.sample(_WORDS, rng.randint(2, 5))
    return {"input": " ".join(words), "output": "".join(w[0] for w in words).upper()}


# ---------------------------------------------------------------------------------------------
# list operations (numbers written as "3, 7, 1")
# ---------------------------------------------------------------------------------------------


def _show(xs):
    return ", ".join(map(str, xs))


def make_sort_numbers(rng):
    xs = _int_list(rng, (3, 8), 0, 99)
    return {"input": _show(xs), "output": _show(sorted(xs))}


def make_list_max(rng):
    xs = _int_list(rng, (3, 8), 0, 99)
    return {"input": _show(xs), "output": str(max(xs))}


def make_dedupe(rng):
    pool = _int_list(rng, (2, 4), 0, 20)
    xs = [rng.choice(pool) for _ in range(rng.randint(4, 8))]
    return {"input": _show(xs), "output": _show(list(dict.fromkeys(xs)))}


# ---------------------------------------------------------------------------------------------
# extraction (the held-out cluster)
# ---------------------------------------------------------------------------------------------


def _email(rng):
    first, last = rng.choice(FIRST_NAMES).lower(), rng.choice(LAST_NAMES).lower()
    domain = rng.choice(["example.com", "mail.org", "school.edu", "company.fr", "post.net"])
    return rng.choice(
        [f"{first}.{last}@{domain}", f"{first}@{domain}", f"{last}{rng.randint(1, 99)}@{domain}"]
    )


def make_extract_emails(rng):
    emails = [_email(rng) for _ in range(rng.randint(1, 2))]
    name = rng.choice(FIRST_NAMES)
    if len(emails) == 1:
        text = f"You can reach {name} at {emails[0]} before {rng.choice(WEEKDAYS)}."
    else:
        text = f"Write to {emails[0]} or, if nobody answers, to {emails[1]}."
    return {"input": text, "output": ", ".join(emails)}


def _date_text(rng):
    return f"{rng.randint(1, 28)} {rng.choice(MONTHS)} {rng.randint(1990, 2030)}"


def make_extract_dates(rng):
    date = _date_text(rng)
    name, city = rng.choice(FIRST_NAMES), rng.choice(CITIES)
    text = rng.choice(
        [
            f"{name} will arrive in {city} on {date} with two friends.",
            f"The meeting in {city} was moved to {date}, said {name}.",
            f"On {date}, {name} opened a small shop in {city}.",
        ]
    )
    return {"input": text, "output": date}


def make_extract_numbers(rng):
    a, b, c = rng.randint(2, 99), rng.randint(100, 999), rng.randint(2, 60)
    name, country = rng.choice(FIRST_NAMES), rng.choice(COUNTRIES)
    text = f"{name} visited {a} cities in {country}, drove {b} kilometres and took {c} photos."
    return {"input": text, "output": f"{a}, {b}, {c}"}


# ---------------------------------------------------------------------------------------------
# format conversion
# ---------------------------------------------------------------------------------------------


def make_date_format(rng):
    year, month, day = rng.randint(1990, 2030), rng.randint(1, 12), rng.randint(1, 28)
    return {"input": f"{year}-{month:02d}-{day:02d}", "output": f"{day} {MONTHS[month - 1]} {year}"}


def make_to_json(rng):
    record = {
        "name": rng.choice(FIRST_NAMES),
        "city": rng.choice(CITIES),
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


def make_number_words(rng):
    n = rng.choice([rng.randint(0, 99), rng.randint(100, 999), rng.randint(1000, 9999)])
    return {"input": str(n), "output": number_words(n)}


FAMILIES = [
    dict(name="code_numbers", cluster="code", make=make_code_numbers, phrasings=(
        "Write a Python function that does what is described.",
        "Implement the following function in Python.",
        "Write the Python code for this function.",
        "{input}\nWrite this function in Python:",
        "Give a short Python implementation of the function below.",
        "Code this up as a Python function.",
    )),
    dict(name="code_strings", cluster="code", make=make_code_strings, phrasings=(
        "Write a Python function that does what is described.",
        "Implement the following string function in Python.",
        "Write the Python code for this function.",
        "{input}\nPython implementation:",
        "Give a one-line Python function for the description below.",
        "Program this string helper in Python.",
    )),
    dict(name="addition", cluster="arithmetic", make=make_addition, phrasings=(
        "What is {input}?",
        "Compute the sum.",
        "Add the numbers and give the total.",
        "Calculate: {input}",
        "Work out this addition.",
        "Please tell me the result of {input}.",
    )),
    dict(name="subtraction", cluster="arithmetic", make=make_subtraction, phrasings=(
        "What is {input}?",
        "Compute the difference.",
        "Subtract and give the result.",
        "Calculate: {input}",
        "Work out this subtraction.",
        "Please tell me the result of {input}.",
    )),
    dict(name="multiplication", cluster="arithmetic", make=make_multiplication, phrasings=(
        "What is {input}?",
        "Compute the product.",
        "Multiply the numbers.",
        "Calculate: {input}",
        "Work out this multiplication.",
        "Please tell me the result of {input}.",
    )),
    dict(name="word_problem", cluster="arithmetic", make=make_word_problem, phrasings=(
        "Solve the word problem. Answer with a number.",
        "Answer the question with a number.",
        "Read the problem and give the numeric answer.",
        "{input} Answer:",
        "Work out the answer to this little problem.",
        "How many? Reply with just the number.",
    )),
    dict(name="reverse_word", cluster="strings", make=make_reverse_word, phrasings=(
        "Reverse the letters of the text.",
        "Write the text backwards.",
        "Spell this text in reverse order, letter by letter.",
        "Reverse: {input}",
        "What is the word read from right to left?",
        "Flip the order of the characters in \"{input}\".",
    )),
    dict(name="uppercase", cluster="strings", make=make_uppercase, phrasings=(
        "Convert the text to upper case.",
        "Rewrite the text in capital letters.",
        "Make every letter uppercase.",
        "Uppercase: {input}",
        "Write this in all caps.",
        "Change \"{input}\" to capital letters.",
    )),
    dict(name="count_letter", cluster="strings", make=make_count_letter, phrasings=(
        "How many times does the letter '{letter}' appear in the text?",
        "Count the letter '{letter}' in these words.",
        "Give the number of '{letter}' characters in this text.",
        "Text: {input}\nHow many '{letter}'?",
        "Count how often '{letter}' occurs in the words below.",
        "In \"{input}\", how many times do you see the letter {letter}?",
    )),
    dict(name="acronym", cluster="strings", make=make_acronym, phrasings=(
        "Make an acronym from the first letter of each word.",
        "Write the initials of these words in capitals.",
        "Take the first letter of every word and join them in upper case.",
        "Acronym of: {input}",
        "What are the capitalised initials of the words?",
        "Abbreviate \"{input}\" to its initials.",
    )),
    dict(name="sort_numbers", cluster="lists", make=make_sort_numbers, phrasings=(
        "Sort the numbers from smallest to largest.",
        "Put these numbers in ascending order.",
        "Arrange the list in increasing order.",
        "Sort: {input}",
        "Order the numbers, lowest first.",
        "Return {input} sorted in ascending order.",
    )),
    dict(name="list_max", cluster="lists", make=make_list_max, phrasings=(
        "What is the largest number in the list?",
        "Find the maximum of these numbers.",
        "Which number is the biggest?",
        "Largest of: {input}",
        "Give the highest value in the list.",
        "Pick the greatest number among {input}.",
    )),
    dict(name="dedupe", cluster="lists", make=make_dedupe, phrasings=(
        "Remove the duplicates from the list, keeping the first occurrence of each number.",
        "List each number only once, in the order they first appear.",
        "Drop repeated numbers from the list.",
        "Remove duplicates: {input}",
        "Keep only the first copy of every number.",
        "Write {input} without any repeated values.",
    )),
    dict(name="extract_emails", cluster="extraction", make=make_extract_emails, phrasings=(
        "Extract the email addresses from the text.",
        "List every email address that appears in the text.",
        "Which email addresses are mentioned?",
        "Find the emails in: {input}",
        "Pull out all e-mail addresses, separated by commas.",
        "Give me the email addresses in this sentence.",
    )),
    dict(name="extract_dates", cluster="extraction", make=make_extract_dates, phrasings=(
        "Extract the date from the text.",
        "What date is mentioned in the sentence?",
        "Find the date in the text and write it as it appears.",
        "Date in: {input}",
        "Which day, month and year does the text mention?",
        "Pull out the date.",
    )),
    dict(name="extract_numbers", cluster="extraction", make=make_extract_numbers, phrasings=(
        "Extract all the numbers from the text, in order.",
        "List the numbers that appear in the sentence.",
        "Which numbers does the text mention? Separate them with commas.",
        "Numbers in: {input}",
        "Write down every number in the text.",
        "Find the numerals in this sentence.",
    )),
    dict(name="date_format", cluster="format", make=make_date_format, phrasings=(
        "Write this date in words, as day month year.",
        "Convert the ISO date to the form \"5 March 2024\".",
        "Rewrite the date with the month name.",
        "Date: {input}\nIn words:",
        "Turn this YYYY-MM-DD date into day, month name and year.",
        "Express {input} as a readable date.",
    )),
    dict(name="to_json", cluster="format", make=make_to_json, phrasings=(
        "Convert these fields to a JSON object.",
        "Write the data as JSON.",
        "Turn the key: value lines into JSON.",
        "{input}\nAs JSON:",
        "Format this record as a JSON object, numbers as numbers.",
        "Encode the following information in JSON.",
    )),
    dict(name="number_words", cluster="format", make=make_number_words, phrasings=(
        "Write the number in English words.",
        "Spell out this number.",
        "How do you write this number in words?",
        "Number: {input}\nIn words:",
        "Give the English name of the number.",
        "Spell {input} in letters.",
    )),
]  # fmt: skip
