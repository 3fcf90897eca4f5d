"""The building blocks of the model, one concept per file.

positions.py    where a token is: sinusoidal, learned, T5 relative bias
attention.py    masks, the attention computation (reference and fast), the KV cache
feedforward.py  ReLU, GELU, gated-GELU, SwiGLU feed-forward layers
norm.py         LayerNorm, RMSNorm
blocks.py       encoder and decoder layers (pre- or post-norm residual sub-layers)
"""
