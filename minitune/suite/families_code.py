"""Task families of code generation: write a small Python function from its description.

Same shape as `families_language.py`, including `wide`: `make(rng, wide=True)` draws from larger
pools (words, number ranges, and about three times as many kinds of function), for fresh training
data only; with `wide=False` every generator makes exactly the random draws it always made.

Answers are small Python functions; each example carries its `entry_point` and `tests`
([arguments, expected result] pairs), computed here by plain Python, so a generated answer can be
checked by running it (`minitune.data.codecheck`, in a subprocess).
"""

from __future__ import annotations

import random
from collections.abc import Callable
from itertools import pairwise
from typing import NamedTuple

from minitune.suite.families_symbolic import int_list
from minitune.suite.lexicon import pools

# ---------------------------------------------------------------------------------------------
# a kind of function ("op") with its constants drawn, then 4 test cases
# ---------------------------------------------------------------------------------------------


class CodeOp(NamedTuple):
    """One function to write: `def <name>(<param>):\\n    <body>`, described in words."""

    description: str  # "takes a number x and returns x plus 3"
    names: tuple[str, ...]  # natural names for it; one is drawn (a single name: no draw)
    body: str  # one line of Python: "return x + 3"
    reference: Callable  # the same function in Python, to compute the expected test results
    make_args: Callable[[], list]  # draws the arguments of one test case
    param: str  # the parameter's name


# The op tables below are lists of tuples (description, name or names, body, reference[,
# make_args, param]); the order of each table is part of the shipped data (`rng.choice` picks
# by position), so new kinds go at the end.

# ---- functions over numbers and lists of numbers --------------------------------------------

_X, _XS = ["x", "n", "value"], ["xs", "nums", "values"]  # parameter names


def number_ops(rng: random.Random, wide: bool = False) -> list[CodeOp]:
    """The kinds of function over numbers and lists of numbers, with constants drawn from rng.

    13 kinds; `wide` draws constants and parameter names from larger ranges and adds 33 kinds.
    """
    k, m = rng.randint(2, 30 if wide else 12), rng.randint(1, 20 if wide else 9)
    a, b = sorted(rng.sample(range(0, 51 if wide else 21), 2))
    # the parameter's name varies too
    x = rng.choice([*_X, "num", "number"] if wide else _X)
    xs = rng.choice([*_XS, "numbers", "items"] if wide else _XS)
    one, many = (lambda: [rng.randint(-50, 50)]), (lambda: [int_list(rng)])
    ops = _number_ops(rng, x, xs, k, m, a, b, one, many)
    if wide:
        ops += _wide_one_number_ops(rng, x, k, a, b, one)
        ops += _wide_number_list_ops(rng, xs, k, a, b, many)
    return [CodeOp(desc, (name,), *rest) for desc, name, *rest in ops]


def _number_ops(rng, x, xs, k, m, a, b, one, many) -> list[tuple]:
    # the 13 kinds of the shipped suite: x or xs is the parameter, k, m, a <= b the constants,
    # one() and many() draw the arguments of a test case
    return [
        (
            f"takes a number {x} and returns {x} plus {k}",
            f"add_{k}",
            f"return {x} + {k}",
            lambda v: v + k,
            one,
            x,
        ),
        (
            f"takes a number {x} and returns {x} times {k} plus {m}",
            f"scale_{k}_shift_{m}",
            f"return {x} * {k} + {m}",
            lambda v: v * k + m,
            one,
            x,
        ),
        (
            f"returns True if the number {x} is divisible by {k}, else False",
            f"divisible_by_{k}",
            f"return {x} % {k} == 0",
            lambda v: v % k == 0,
            lambda: [rng.randint(0, 100)],
            x,
        ),
        (
            f"returns the remainder of {x} divided by {k}",
            f"mod_{k}",
            f"return {x} % {k}",
            lambda v: v % k,
            lambda: [rng.randint(0, 100)],
            x,
        ),
        (
            f"returns {x} limited to the range {a} to {b}",
            f"clamp_{a}_{b}",
            f"return min(max({x}, {a}), {b})",
            lambda v: min(max(v, a), b),
            one,
            x,
        ),
        (
            f"returns the distance between {x} and {k}",
            f"distance_to_{k}",
            f"return abs({x} - {k})",
            lambda v: abs(v - k),
            one,
            x,
        ),
        (
            f"takes a list of numbers {xs} and returns how many are greater than {k}",
            f"count_above_{k}",
            f"return sum(1 for v in {xs} if v > {k})",
            lambda vs: sum(1 for v in vs if v > k),
            many,
            xs,
        ),
        (
            f"takes a list of numbers {xs} and returns how many lie between {a} and {b} inclusive",
            f"count_between_{a}_{b}",
            f"return sum(1 for v in {xs} if {a} <= v <= {b})",
            lambda vs: sum(1 for v in vs if a <= v <= b),
            many,
            xs,
        ),
        (
            f"takes a list of numbers {xs} and returns those greater than {k}, each multiplied "
            f"by {m}",
            f"big_times_{m}",
            f"return [v * {m} for v in {xs} if v > {k}]",
            lambda vs: [v * m for v in vs if v > k],
            many,
            xs,
        ),
        (
            f"takes a list of numbers {xs} and returns the even ones, in order",
            "even_numbers",
            f"return [v for v in {xs} if v % 2 == 0]",
            lambda vs: [v for v in vs if v % 2 == 0],
            many,
            xs,
        ),
        (
            f"takes a list of numbers {xs} and returns the sum of their squares",
            "sum_of_squares",
            f"return sum(v * v for v in {xs})",
            lambda vs: sum(v * v for v in vs),
            many,
            xs,
        ),
        (
            f"takes a non-empty list of numbers {xs} and returns the largest minus the smallest",
            "value_range",
            f"return max({xs}) - min({xs})",
            lambda vs: max(vs) - min(vs),
            many,
            xs,
        ),
        (
            f"takes a list of numbers {xs} and returns each number plus {k}",
            f"shift_by_{k}",
            f"return [v + {k} for v in {xs}]",
            lambda vs: [v + k for v in vs],
            many,
            xs,
        ),
    ]


def _wide_one_number_ops(rng, x, k, a, b, one) -> list[tuple]:
    # wide only: 13 more kinds over one number
    some = lambda: [rng.randint(0, 999)]  # noqa: E731 (a whole number, not negative)
    near = lambda: [rng.randint(a - 5, b + 5)]  # noqa: E731
    signs = lambda: [rng.choice([0, rng.randint(-50, 50)])]  # noqa: E731
    return [
        (
            f"takes a number {x} and returns {x} minus {k}",
            f"subtract_{k}",
            f"return {x} - {k}",
            lambda v: v - k,
            one,
            x,
        ),
        (
            f"takes a number {x} and returns {x} multiplied by {k}",
            f"times_{k}",
            f"return {x} * {k}",
            lambda v: v * k,
            one,
            x,
        ),
        (
            f"returns the square of the number {x}",
            "square",
            f"return {x} * {x}",
            lambda v: v * v,
            one,
            x,
        ),
        (
            f"returns True if the number {x} is even, else False",
            "is_even",
            f"return {x} % 2 == 0",
            lambda v: v % 2 == 0,
            one,
            x,
        ),
        (
            f"returns True if the number {x} is greater than {k}, else False",
            f"is_above_{k}",
            f"return {x} > {k}",
            lambda v: v > k,
            one,
            x,
        ),
        (
            f"returns the absolute value of the number {x}",
            "absolute",
            f"return abs({x})",
            abs,
            one,
            x,
        ),
        (
            f"returns {x} divided by {k}, rounded down to a whole number",
            f"div_{k}",
            f"return {x} // {k}",
            lambda v: v // k,
            one,
            x,
        ),
        (
            f"returns the last digit of the whole number {x} (not negative)",
            "last_digit",
            f"return {x} % 10",
            lambda v: v % 10,
            some,
            x,
        ),
        (
            f"returns the number of digits of the whole number {x} (not negative)",
            "count_digits",
            f"return len(str({x}))",
            lambda v: len(str(v)),
            some,
            x,
        ),
        (
            f"returns the larger of {x} and {k}",
            f"at_least_{k}",
            f"return max({x}, {k})",
            lambda v: max(v, k),
            one,
            x,
        ),
        (
            f"returns the smaller of {x} and {k}",
            f"at_most_{k}",
            f"return min({x}, {k})",
            lambda v: min(v, k),
            one,
            x,
        ),
        (
            f"returns True if {x} lies between {a} and {b} inclusive, else False",
            f"in_range_{a}_{b}",
            f"return {a} <= {x} <= {b}",
            lambda v: a <= v <= b,
            near,
            x,
        ),
        (
            f"returns 1 if the number {x} is positive, -1 if it is negative and 0 if it is zero",
            "sign",
            f"return ({x} > 0) - ({x} < 0)",
            lambda v: (v > 0) - (v < 0),
            signs,
            x,
        ),
    ]


def _wide_number_list_ops(rng, xs, k, a, b, many) -> list[tuple]:
    # wide only: 20 more kinds over a list of numbers

    def with_k():  # lists where k shows up now and then
        return [[rng.choice([k, rng.randint(-20, 40)]) for _ in range(rng.randint(3, 7))]]

    a_list = f"takes a list of numbers {xs} and returns"
    a_full_list = f"takes a non-empty list of numbers {xs} and returns"
    return [
        (f"{a_list} their sum", "total", f"return sum({xs})", sum, many, xs),
        (
            f"{a_list} how many of them are even",
            "count_even",
            f"return sum(1 for v in {xs} if v % 2 == 0)",
            lambda vs: sum(1 for v in vs if v % 2 == 0),
            many,
            xs,
        ),
        (
            f"{a_list} how many of them are odd",
            "count_odd",
            f"return sum(1 for v in {xs} if v % 2 != 0)",
            lambda vs: sum(1 for v in vs if v % 2 != 0),
            many,
            xs,
        ),
        (
            f"{a_list} how many times {k} appears in it",
            f"occurrences_of_{k}",
            f"return {xs}.count({k})",
            lambda vs: vs.count(k),
            with_k,
            xs,
        ),
        (
            f"{a_list} the first number greater than {k}, or -1 if there is none",
            f"first_above_{k}",
            f"return next((v for v in {xs} if v > {k}), -1)",
            lambda vs: next((v for v in vs if v > k), -1),
            many,
            xs,
        ),
        (
            f"{a_list} the list in reverse order",
            "reversed_list",
            f"return {xs}[::-1]",
            lambda vs: vs[::-1],
            many,
            xs,
        ),
        (
            f"{a_list} the numbers sorted from largest to smallest",
            "sort_descending",
            f"return sorted({xs}, reverse=True)",
            lambda vs: sorted(vs, reverse=True),
            many,
            xs,
        ),
        (f"{a_full_list} the largest", "largest", f"return max({xs})", max, many, xs),
        (f"{a_full_list} the smallest", "smallest", f"return min({xs})", min, many, xs),
        (
            f"{a_full_list} the last one",
            "last_item",
            f"return {xs}[-1]",
            lambda vs: vs[-1],
            many,
            xs,
        ),
        (
            f"{a_list} True if every number is positive, else False",
            "all_positive",
            f"return all(v > 0 for v in {xs})",
            lambda vs: all(v > 0 for v in vs),
            many,
            xs,
        ),
        (
            f"{a_list} True if any number is divisible by {k}, else False",
            f"any_divisible_by_{k}",
            f"return any(v % {k} == 0 for v in {xs})",
            lambda vs: any(v % k == 0 for v in vs),
            many,
            xs,
        ),
        (
            f"{a_list} the list without its negative numbers",
            "drop_negatives",
            f"return [v for v in {xs} if v >= 0]",
            lambda vs: [v for v in vs if v >= 0],
            many,
            xs,
        ),
        (
            f"{a_list} the square of each number",
            "squares",
            f"return [v * v for v in {xs}]",
            lambda vs: [v * v for v in vs],
            many,
            xs,
        ),
        (
            f"{a_list} the sum of the numbers greater than {k}",
            f"sum_above_{k}",
            f"return sum(v for v in {xs} if v > {k})",
            lambda vs: sum(v for v in vs if v > k),
            many,
            xs,
        ),
        (
            f"{a_full_list} the position of the largest number (the first, if it appears "
            "more than once)",
            "index_of_max",
            f"return {xs}.index(max({xs}))",
            lambda vs: vs.index(max(vs)),
            many,
            xs,
        ),
        (
            f"{a_full_list} their average, rounded down to a whole number",
            "average_floor",
            f"return sum({xs}) // len({xs})",
            lambda vs: sum(vs) // len(vs),
            many,
            xs,
        ),
        (
            f"{a_list} the running totals (each number plus all the numbers before it)",
            "running_totals",
            f"return [sum({xs}[:i + 1]) for i in range(len({xs}))]",
            lambda vs: [sum(vs[: i + 1]) for i in range(len(vs))],
            many,
            xs,
        ),
        (
            f"{a_list} the differences between neighbours (each number minus the one before it)",
            "differences",
            f"return [b - a for a, b in zip({xs}, {xs}[1:])]",
            lambda vs: [q - p for p, q in pairwise(vs)],
            many,
            xs,
        ),
        (
            f"{a_list} each number limited to the range {a} to {b}",
            f"clamp_all_{a}_{b}",
            f"return [min(max(v, {a}), {b}) for v in {xs}]",
            lambda vs: [min(max(v, a), b) for v in vs],
            many,
            xs,
        ),
    ]


# ---- functions over one string --------------------------------------------------------------

_PALINDROMES = ["level", "radar", "noon", "civic", "stats"]
_CODE_WORDS = [*pools(False).words, *_PALINDROMES]  # the arguments of the string functions
# wide: more words, and capitalised names and places (for the functions about letter case)
_CODE_WORDS_WIDE = [
    *pools(True).words,
    *_PALINDROMES,
    "kayak",
    "refer",
    "rotor",
    "madam",
    *pools(True).first_names,
    *pools(True).cities,
]


_SEPARATORS = ["-", ", ", " ", "+", "/"]
_ENDINGS = ["!", "?", "ing", "s", "ed", "!!", "...", "er"]
_S = ["s", "text", "word"]  # parameter names


def string_ops(rng: random.Random, wide: bool = False) -> list[CodeOp]:
    """The kinds of function over one string, with constants drawn from rng.

    14 kinds; `wide` draws constants and parameter names from larger sets and adds 24 kinds.
    """
    c, d = rng.sample("abcdefghilmnoprstuy" if wide else "aeiorstnlmcdhu", 2)
    k = rng.randint(2, 8 if wide else 6)
    sep = rng.choice([*_SEPARATORS, "_", "|", ":"] if wide else _SEPARATORS)
    tail = rng.choice([*_ENDINGS, "ly", "ness", "?!", " :)", "ful"] if wide else _ENDINGS)
    s = rng.choice([*_S, "name", "string", "t"] if wide else _S)
    ops = _string_ops(s, c, d, k, sep, tail)
    if wide:
        ops += _wide_string_ops(rng, s, c, k, sep)
    words = _CODE_WORDS_WIDE if wide else _CODE_WORDS
    return [CodeOp(*op, lambda: [rng.choice(words)], s) for op in ops]


def _string_ops(s, c, d, k, sep, tail) -> list[tuple]:
    # the 14 kinds of the shipped suite: s is the parameter, letters c != d, a count k, a
    # separator and an ending the constants
    return [
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


def _wide_string_ops(rng, s, c, k, sep) -> list[tuple]:
    # wide only: 24 more kinds, with a prefix and a pair of brackets drawn (in this order)
    prefix = rng.choice(["un", "re", "my_", ">> ", "super", "#", "the "])
    left, right = rng.choice([("(", ")"), ("[", "]"), ("<", ">"), ("*", "*"), ("_", "_")])
    width = k + 4
    return [
        (
            f"returns the string {s} in lower case",
            ("to_lower", "lowercase", "quiet"),
            f"return {s}.lower()",
            lambda t: t.lower(),
        ),
        (
            f"returns the string {s} with its first letter in upper case and the others in "
            "lower case",
            ("capitalize_word", "capitalized"),
            f"return {s}.capitalize()",
            lambda t: t.capitalize(),
        ),
        (
            f"returns the number of characters in the string {s}",
            ("length", "count_chars"),
            f"return len({s})",
            len,
        ),
        (
            f"returns how many vowels (a, e, i, o, u, in either case) the string {s} contains",
            ("count_vowels", "vowel_count"),
            f"return sum(1 for ch in {s}.lower() if ch in 'aeiou')",
            lambda t: sum(1 for ch in t.lower() if ch in "aeiou"),
        ),
        (
            f"returns the string {s} without its vowels (a, e, i, o, u, in either case)",
            ("remove_vowels", "no_vowels"),
            f"return ''.join(ch for ch in {s} if ch.lower() not in 'aeiou')",
            lambda t: "".join(ch for ch in t if ch.lower() not in "aeiou"),
        ),
        (
            f"returns True if the string {s} ends with '{c}', else False",
            (f"ends_with_{c}", f"finishes_with_{c}"),
            f"return {s}.endswith('{c}')",
            lambda t: t.endswith(c),
        ),
        (
            f"returns the first character of the non-empty string {s}",
            ("first_char", "initial"),
            f"return {s}[0]",
            lambda t: t[0],
        ),
        (
            f"returns the last character of the non-empty string {s}",
            ("last_char", "final_letter"),
            f"return {s}[-1]",
            lambda t: t[-1],
        ),
        (
            f"returns the string {s} with every character written twice",
            ("double_letters", "stutter"),
            f"return ''.join(ch * 2 for ch in {s})",
            lambda t: "".join(ch * 2 for ch in t),
        ),
        (
            f"returns the characters of the string {s} joined by '{sep}'",
            ("spell_out", "join_letters"),
            f"return '{sep}'.join({s})",
            lambda t: sep.join(t),
        ),
        (
            f"returns every second character of the string {s}, starting with the first",
            ("every_other", "odd_positions"),
            f"return {s}[::2]",
            lambda t: t[::2],
        ),
        (
            f"returns the string {s} without its first {k} characters",
            (f"drop_first_{k}", f"skip_{k}"),
            f"return {s}[{k}:]",
            lambda t: t[k:],
        ),
        (
            f"returns the string {s} without its last {k} characters",
            (f"drop_last_{k}", f"trim_{k}"),
            f"return {s}[:-{k}]",
            lambda t: t[:-k],
        ),
        (
            f"returns '{prefix}' followed by the string {s}",
            ("add_prefix", "with_prefix"),
            f"return '{prefix}' + {s}",
            lambda t: prefix + t,
        ),
        (
            f"returns the string {s} between '{left}' and '{right}'",
            ("wrap", "enclose"),
            f"return '{left}' + {s} + '{right}'",
            lambda t: left + t + right,
        ),
        (
            f"returns True if the string {s} has more than {k} characters, else False",
            (f"longer_than_{k}", f"is_long_{k}"),
            f"return len({s}) > {k}",
            lambda t: len(t) > k,
        ),
        (
            f"returns the string {s} with upper-case letters made lower case and lower-case "
            "letters made upper case",
            ("swap_case", "invert_case"),
            f"return {s}.swapcase()",
            lambda t: t.swapcase(),
        ),
        (
            f"returns the string {s} with its first character moved to the end",
            ("rotate_left", "first_to_last"),
            f"return {s}[1:] + {s}[:1]",
            lambda t: t[1:] + t[:1],
        ),
        (
            f"returns how many characters of the string {s} are not '{c}'",
            (f"count_not_{c}", f"others_than_{c}"),
            f"return len({s}) - {s}.count('{c}')",
            lambda t: len(t) - t.count(c),
        ),
        (
            f"returns the letters of the string {s} in lower case and in alphabetical order",
            ("sort_letters", "alphabetize"),
            f"return ''.join(sorted({s}.lower()))",
            lambda t: "".join(sorted(t.lower())),
        ),
        (
            f"returns the string {s} with repeated characters removed, keeping the first "
            "occurrence of each",
            ("unique_chars", "dedupe_letters"),
            f"return ''.join(dict.fromkeys({s}))",
            lambda t: "".join(dict.fromkeys(t)),
        ),
        (
            f"returns True if the string {s} is all in lower case, else False",
            ("is_lower", "all_lowercase"),
            f"return {s}.islower()",
            lambda t: t.islower(),
        ),
        (
            f"returns True if the string {s} starts and ends with the same character, else False",
            ("same_ends", "matching_ends"),
            f"return {s}[:1] == {s}[-1:]",
            lambda t: t[:1] == t[-1:],
        ),
        (
            f"returns the string {s} padded on the right with '.' to {width} characters "
            "(unchanged if it is longer)",
            (f"pad_to_{width}", f"fill_to_{width}"),
            f"return {s}.ljust({width}, '.')",
            lambda t: t.ljust(width, "."),
        ),
    ]


# ---- examples -------------------------------------------------------------------------------


def code_sample(rng: random.Random, op: CodeOp) -> dict:
    """An example for one op: its name drawn, then 4 test cases computed by its reference."""
    name = op.names[0] if len(op.names) == 1 else rng.choice(op.names)
    tests = []
    for _ in range(4):
        args = op.make_args()
        tests.append([args, op.reference(*args)])
    return {
        "input": f"Function name: {name}\nWhat it does: {op.description}.",
        "output": f"def {name}({op.param}):\n    {op.body}\n",
        "extra": {"entry_point": name, "tests": tests},
    }


def make_code_numbers(rng, wide=False):
    return code_sample(rng, rng.choice(number_ops(rng, wide)))


def make_code_strings(rng, wide=False):
    return code_sample(rng, rng.choice(string_ops(rng, wide)))


FAMILIES = [
    dict(
        name="code_numbers",
        cluster="code",
        make=make_code_numbers,
        phrasings=(
            "Write a Python function that does what is described.",
            "Implement the following function in Python.",
            "Write the Python code for this function.",
            "{input}\nWrite this function in Python:",
            "Give a short Python implementation of the function below.",
            "Code this up as a Python function.",
        ),
    ),
    dict(
        name="code_strings",
        cluster="code",
        make=make_code_strings,
        phrasings=(
            "Write a Python function that does what is described.",
            "Implement the following string function in Python.",
            "Write the Python code for this function.",
            "{input}\nPython implementation:",
            "Give a one-line Python function for the description below.",
            "Program this string helper in Python.",
        ),
    ),
]
