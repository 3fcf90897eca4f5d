"""The building blocks of the model, one concept per file; every command runs them.

base.py         what a variant implements: the Layer base class, the attention contract
registry.py     the names of the variants below (attention, position, ffn, norm), one line each
positions.py    where a token is: sinusoidal, learned, T5 relative bias (and the base class)
rotary.py       rotary positions (RoPE)
alibi.py        ALiBi linear distance penalties
attention.py    masks, the attention computation written out, GQA/MQA
kv_cache.py     the KV cache of one attention layer (keys and values kept while decoding)
qk_norm.py      QK-norm attention (a variant overriding one hook of attention.py)
feedforward.py  ReLU, GELU, gated-GELU, SwiGLU feed-forward layers
norm.py         LayerNorm, RMSNorm
blocks.py       encoder and decoder layers (pre- or post-norm residual sub-layers)
copy.py         the copy head (pointer-generator): copy a source token instead of generating
"""
