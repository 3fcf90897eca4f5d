"""Data: the generated instruction suite, readers for users' files, prompts, batches.

lexicon.py            a hand-written English–French lexicon and word lists
families_language.py  task families over language (translation, summaries, QA, dialogue, ...)
families_symbolic.py  task families over symbols (code, arithmetic, strings, lists, ...)
tasks.py              families -> the five splits (train ... heldout_tasks), written as JSONL
corpus.py             the pretraining text corpus
formats.py            reading JSONL / Alpaca / Dolly / chat files, errors with file:line
templates.py          instruction + input -> prompt (optionally few-shot)
batching.py           tokenize, truncate (reported), bucket by length, pad
span_corruption.py    T5's pretraining objective
codecheck.py          run generated code against test cases, in a subprocess
"""
