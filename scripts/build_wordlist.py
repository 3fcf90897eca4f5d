"""Build minitune/suite/english_words.tsv, the general English word list of the world corpus.

A developer's script, run once; minitune itself never imports it (nor the package it reads).

    pip download --no-deps spacy-lookups-data==1.0.5 -d /tmp/wl
    python scripts/build_wordlist.py /tmp/wl/spacy_lookups_data-1.0.5-py2.py3-none-any.whl

It reads two tables of that wheel (MIT licensed): `en_lemma_index` (WordNet 3.0's lemmas by part
of speech; WordNet's licence is in data/README.md) and `en_lexeme_prob` (spaCy's English word
log-probabilities), and writes the most common lemmas of each part of speech with the inflected
forms the corpus grammar needs. A form is kept only when the probability table knows it (so
"runned" never appears: irregular forms come from WordNet's exception lists).
"""

from __future__ import annotations

import gzip
import json
import sys
import zipfile
from pathlib import Path

COUNTS = {"verb": 2000, "noun": 6000, "adj": 2500, "adv": 500}  # verbs first: nouns ask them
OUT = Path(__file__).resolve().parent.parent / "minitune" / "suite" / "english_words.tsv"
# closed-class words: the corpus grammar writes these itself
CLOSED = set(
    """
be am is are was were been being have has had do does did can could will would shall should may
might must out up down in on off over under about after before into onto through i me my you your
he him his she her it its we us our they them their this that these those a an the and or but if
so not no yes all any some each every one there here then than very too also just well even still
as at by for from of to with like what who whom whose which where when why how more most many much
other another few less least own such same someone something anyone anything everyone nothing
nobody none both either neither since until while because although whether again ever never
""".split()
)
BLOCK = set(
    """
sex sexy porn fuck fucking fucked shit shitty damn bitch bastard cunt dick cock pussy ass asshole
nigger nigga fag faggot slut whore rape raped rapist nazi hitler kill killed killer murder
murderer suicide drug drugs cocaine heroin penis vagina boob boobs tit tits nude naked gay lesbian
piss crap hell porno masturbate orgasm erotic fetish kinky horny anal
""".split()
)


def _table(wheel: zipfile.ZipFile, name: str) -> dict:
    return json.loads(gzip.decompress(wheel.read(f"spacy_lookups_data/data/{name}.json.gz")))


def _best(candidates: list[str], prob: dict[str, float]) -> str | None:
    """The most common of the candidate spellings that the probability table knows."""
    known = [c for c in candidates if c in prob]
    return max(known, key=lambda c: prob[c]) if known else None


def _plural(lemma: str) -> list[str]:
    return [lemma + "s", lemma + "es", lemma[:-1] + "ies", lemma[:-1] + "ves", lemma[:-2] + "ves"]


def _verb_forms(lemma: str, odd: list[str], prob: dict[str, float]) -> list[str] | None:
    """[third person, past, past participle, -ing], or None where one is unknown."""
    third = _best(_plural(lemma)[:3], prob)
    doubled = lemma + lemma[-1]
    ing = _best([lemma + "ing", lemma[:-1] + "ing", doubled + "ing"], prob)
    regular = _best([lemma + "ed", lemma + "d", lemma[:-1] + "ied", doubled + "ed"], prob)
    past = [f for f in odd if not f.endswith(("ing", "s"))]
    participle = [f for f in past if f.endswith(("n", "ne"))]  # taken, gone
    simple = [f for f in past if f not in participle]
    past_form = (simple or participle or [regular])[0]
    participle_form = (participle or simple or [regular])[0]
    forms = [third, past_form, participle_form, ing]
    return None if None in forms else forms


def main(wheel_path: str) -> None:
    with zipfile.ZipFile(wheel_path) as wheel:
        index = _table(wheel, "en_lemma_index")
        exceptions = _table(wheel, "en_lemma_exc")
        prob = _table(wheel, "en_lexeme_prob")
    known = {w for w, p in prob.items() if p > -17.5}
    irregular: dict[tuple[str, str], list[str]] = {}
    for pos in ("noun", "verb"):
        for form, lemmas in exceptions[pos].items():
            for lemma in lemmas:
                irregular.setdefault((pos, lemma), []).append(form)
    # plurals that WordNet lists as lemmas of their own ("years"): the singular stands for them
    plurals = {w for w in index["noun"] if w.endswith("s") and w[:-1] in index["noun"]}
    rows, verbs = [], {}
    for pos, count in COUNTS.items():
        lemmas = [
            w
            for w in set(index[pos]) - plurals
            if w.isalpha()
            and w.islower()
            and w.isascii()
            and len(w) > 1
            and w not in BLOCK | CLOSED
            and w in prob
        ]
        lemmas.sort(key=lambda w: (-prob[w], w))
        for lemma in lemmas[:count]:
            odd = [f for f in irregular.get((pos, lemma), []) if f in known]
            forms: list[str] | None = []
            if pos == "verb":
                forms = _verb_forms(lemma, odd, prob)
                # a verb in use: its past is not rare beside it ("time" -> "timed" is)
                if forms is None or prob[forms[1]] < prob[lemma] - 4:
                    continue
                verbs[lemma] = forms
            elif pos == "noun":
                plural = odd[0] if odd else _best(_plural(lemma), prob) or lemma
                past = verbs.get(lemma, [None, None])[1]
                if past and prob[past] > prob.get(plural, -99) + 1:  # "took" > "takes"
                    continue
                forms = [plural]
            rows.append((lemma, pos, ",".join(forms)))
    header = (
        "# English lemmas by part of speech, most common first, with their forms (noun: "
        "plural; verb: third person, past, past participle, -ing).\n# Built by "
        "scripts/build_wordlist.py from WordNet 3.0 lemmas ranked by spaCy's word "
        "probabilities (data/README.md).\n"
    )
    OUT.write_text(header + "".join("\t".join(r) + "\n" for r in rows), encoding="utf-8")
    print(f"{OUT}: {len(rows)} lemmas")


if __name__ == "__main__":
    main(sys.argv[1])
