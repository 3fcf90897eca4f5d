"""minitune: a readable encoder–decoder Transformer (T5 family) for instruction tuning.

import minitune
cfg = minitune.ModelConfig.preset("tiny")
model = minitune.Seq2SeqTransformer(cfg)
logits = model(input_ids, decoder_input_ids, attention_mask)   # (B, T, vocab_size)
new_tokens = model.generate(input_ids, attention_mask, max_new_tokens=32)
"""

from minitune.config import PRESETS, ModelConfig
from minitune.interop.t5 import export_t5, load_t5
from minitune.loss import cross_entropy_loss, token_nll_sum
from minitune.model import Seq2SeqTransformer, shift_right
from minitune.tokenizer import Tokenizer

__version__ = "0.1.0"

__all__ = [
    "PRESETS",
    "ModelConfig",
    "Seq2SeqTransformer",
    "Tokenizer",
    "cross_entropy_loss",
    "export_t5",
    "load_t5",
    "shift_right",
    "token_nll_sum",
]
