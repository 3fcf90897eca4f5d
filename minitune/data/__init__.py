"""Data: readers for users' files, prompts, batches, and the stream of batches a run reads
(the generated suite is `minitune/suite/`).

formats.py            reading JSONL / Alpaca / Dolly / chat files, errors with file:line
documents.py          reading plain-text documents for pretraining (.txt or .txt.gz)
templates.py          instruction + input -> prompt (optionally few-shot)
batching.py           tokenize, truncate (reported), bucket by length, pad
packing.py            several examples per row of fixed length
mixing.py             task mixing weighted by each task's loss
span_corruption.py    T5's pretraining objective
codecheck.py          run generated code against test cases, in a subprocess (the code-pass metric)
stream.py             what the training loop reads: the run's examples, the resumable batches
"""
