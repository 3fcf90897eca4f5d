"""The generators of the shipped data: the instruction suite and the two pretraining corpora.

The shipped files in the repository's `data/` folder are written by the code here, the same
bytes from the same seed (`minitune data generate | corpus`; `minitune data fresh` and the
training jobs' fresh examples draw from the same families). A learner following a tensor from
text to loss can skip this folder: it makes examples; reading, batching and scoring them live
in `minitune/data/`.

lexicon.py            a hand-written English–French lexicon and word lists (narrow and wide pools)
families_language.py  task families over language (translation, summaries, QA, dialogue, ...)
families_code.py      code generation: a Python function from its description, with test cases
families_symbolic.py  task families over symbols (arithmetic, strings, lists, extraction, formats)
families_shared.py    training-only families over inputs the other families already draw
reading.py            the contrast and held-out composition splits: does the model read the
                      instruction?
tasks.py              families -> the splits (train ... heldout_compositions), written as JSONL;
                      fresh training data (`draw_training_examples`)
corpus.py             data/pretrain.txt: pretraining text in the suite's own domain
world.py              data/world.txt.gz: the world corpus the shipped base model read, from the
                      word list english_words.tsv (package data), with evaluation strings left out

The checker of generated code (`codecheck.py`) is not here: evaluation runs it on a model's
answers, so it sits with the readers in `minitune/data/`.
"""
