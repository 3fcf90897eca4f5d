"""Decoding: greedy, sampling (temperature, top-k, top-p) and beam search, with a KV cache.

Notation: B batch, S source length, K beams, V vocabulary, L new tokens.

The encoder runs once; then the decoder produces one token per step, starting from the start
token (pad, as in T5). With `use_cache=True` each step feeds only the newest token: the decoder's
self-attention keys/values of earlier positions live in a `DecoderCache` (layers/kv_cache.py),
which also computes the cross-attention keys/values of the encoder output once, on the first
step, for all steps. With `use_cache=False` every step recomputes the whole prefix, which is
slower but has no state (for teaching and tests; both give the same tokens).

A decoding loop sees the decoder through one object, a `DecodeStep`: `step(tokens)` gives the
next-token logits (B, V) from `model.decode` (with the cache: on the newest token only) and
`step.reorder(rows)` lets beam rows continue from other rows. It holds everything decoding keeps
between steps: the encoder output, the source, and the `DecoderCache`.

All functions return only the new tokens, (B, L) with L <= max_new_tokens: each row ends at its
first EOS (included) and is padded with pad_id after it.

`model` is a `Seq2SeqTransformer` (model.py). model.py imports this file, for `model.generate`,
so this file does not import model.py back, not even for type hints (no import circle): the
hints below say `nn.Module`. `attention_mask` is the source padding mask (B, S), as in the
model.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn


def generate(
    model: nn.Module,
    input_ids: torch.Tensor,
    attention_mask: torch.Tensor | None = None,
    max_new_tokens: int = 32,
    num_beams: int = 1,
    do_sample: bool = False,
    temperature: float = 1.0,
    top_k: int = 0,
    top_p: float = 1.0,
    use_cache: bool = True,
    length_penalty: float = 1.0,
    early_stopping: bool | str = True,
    min_new_tokens: int = 0,
    generator: torch.Generator | None = None,
    on_token: Callable[[torch.Tensor], None] | None = None,
) -> torch.Tensor:
    """Generate up to `max_new_tokens` tokens for each source row of `input_ids` (B, S).

    num_beams > 1: beam search, scoring a finished hypothesis by its summed log-probability divided
      by length ** length_penalty. `early_stopping=True`: an example stops as soon as `num_beams`
      hypotheses have finished; False: only once no running beam can still beat the worst of
      them (judged at the current length); "never": judged at the maximum length.
    do_sample: sample from softmax(logits / temperature), restricted to the `top_k` most likely
      tokens (0 = all) and to the smallest set whose probability reaches `top_p` (1.0 = all);
      pass a seeded `torch.Generator` for reproducible samples. Otherwise greedy (argmax).
    min_new_tokens: EOS is forbidden before this many tokens (benchmarks use it to force length).
    on_token: called with each step's new tokens (B,) as they are chosen, greedy or sampled (to
      print an answer while it is decoded); beam search knows its answer only at the end.

    The model is put in eval mode (no dropout) for the call and restored afterwards.
    """
    if max_new_tokens < 1:
        raise ValueError(f"max_new_tokens must be >= 1, got {max_new_tokens}")
    if num_beams < 1:
        raise ValueError(f"num_beams must be >= 1, got {num_beams}")
    if do_sample and num_beams > 1:
        raise ValueError("do_sample=True with num_beams > 1 (beam sampling) is not supported")
    if temperature <= 0:
        raise ValueError(
            f"temperature must be > 0, got {temperature}; use do_sample=False for greedy"
        )
    if top_k < 0:
        raise ValueError(f"top_k must be >= 0 (0 = no limit), got {top_k}")
    if early_stopping not in (True, False, "never"):
        raise ValueError(f"early_stopping must be True, False or 'never', got {early_stopping!r}")
    if not 0.0 < top_p <= 1.0:
        raise ValueError(f"top_p must be in (0, 1], got {top_p}")

    was_training = model.training
    model.eval()
    try:
        with torch.inference_mode():  # no autograd bookkeeping at all: faster than no_grad
            memory = model.encode(input_ids, attention_mask)  # (B, S, C), computed once
            if num_beams > 1:
                return beam_search(
                    model,
                    memory,
                    attention_mask,
                    input_ids,
                    max_new_tokens=max_new_tokens,
                    num_beams=num_beams,
                    length_penalty=length_penalty,
                    early_stopping=early_stopping,
                    use_cache=use_cache,
                    min_new_tokens=min_new_tokens,
                )
            return greedy_or_sample(
                model,
                memory,
                attention_mask,
                input_ids,
                max_new_tokens=max_new_tokens,
                do_sample=do_sample,
                temperature=temperature,
                top_k=top_k,
                top_p=top_p,
                use_cache=use_cache,
                min_new_tokens=min_new_tokens,
                generator=generator,
                on_token=on_token,
            )
    finally:
        model.train(was_training)


class DecodeStep:
    """One decoding step, `model.decode` on the newest token with a `DecoderCache` (or, without
    a cache, on the whole prefix every time), and everything kept between steps: the encoder
    output `memory` (B, S, C), the source padding mask and tokens (B, S), the cache."""

    def __init__(self, model, memory, attention_mask, source_ids, *, max_length, use_cache):
        self.model, self.memory, self.attention_mask = model, memory, attention_mask
        self.source_ids = source_ids  # (B, S): the prompt's tokens, for a model's copy head
        self.cache = model.new_cache(max_length, memory.shape[1]) if use_cache else None

    def __call__(self, tokens: torch.Tensor) -> torch.Tensor:
        """tokens (B, t), start token included -> logits (B, V) of the next token, float32."""
        if self.cache is not None:  # newest token only: the cache holds the earlier ones
            tokens = tokens[:, -1:]
        logits = self.model.decode(
            tokens,
            self.memory,
            attention_mask=self.attention_mask,
            cache=self.cache,
            source_ids=self.source_ids,
        )
        return logits[:, -1].float()

    def reorder(self, rows: torch.Tensor) -> None:
        """Row i continues from row rows[i] (beam search)."""
        if self.cache is not None:
            self.cache.reorder(rows)  # each new beam continues from its parent's keys and values


def top_k_filter(logits: torch.Tensor, k: int) -> torch.Tensor:
    """Keep the k largest logits of each row, set the others to -inf (k = 0: keep all)."""
    if k <= 0 or k >= logits.shape[-1]:
        return logits
    kth_largest = logits.topk(k, dim=-1).values[..., -1:]  # (B, 1)
    return logits.masked_fill(logits < kth_largest, float("-inf"))


def top_p_filter(logits: torch.Tensor, p: float) -> torch.Tensor:
    """Nucleus filter: keep the smallest set of most likely tokens whose probability reaches p.

    Example: probabilities (0.5, 0.3, 0.15, 0.05) with p = 0.75 keep the first two (0.5 + 0.3
    reaches 0.75); p = 0.9 keeps three; p = 0.4 keeps one. The most likely token always stays.
    """
    if p >= 1.0:
        return logits
    sorted_logits, order = logits.sort(dim=-1, descending=True)  # (B, V)
    sorted_probs = sorted_logits.softmax(dim=-1)
    mass_before = sorted_probs.cumsum(dim=-1) - sorted_probs  # probability of the better tokens
    remove_sorted = mass_before >= p  # the set had already reached p without this token
    remove = remove_sorted.scatter(-1, order, remove_sorted)  # back to vocabulary order
    return logits.masked_fill(remove, float("-inf"))


def sample_token(
    logits: torch.Tensor,
    temperature: float = 1.0,
    top_k: int = 0,
    top_p: float = 1.0,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Draw one token per row from softmax(logits / temperature) after top-k and top-p: (B,)."""
    logits = top_p_filter(top_k_filter(logits / temperature, top_k), top_p)
    probs = logits.softmax(dim=-1)  # (B, V)
    return torch.multinomial(probs, num_samples=1, generator=generator).squeeze(-1)


def greedy_or_sample(
    model: nn.Module,
    memory: torch.Tensor,
    attention_mask: torch.Tensor | None,
    source_ids: torch.Tensor,
    *,
    max_new_tokens: int,
    do_sample: bool = False,
    temperature: float = 1.0,
    top_k: int = 0,
    top_p: float = 1.0,
    use_cache: bool = True,
    min_new_tokens: int = 0,
    generator: torch.Generator | None = None,
    on_token: Callable[[torch.Tensor], None] | None = None,
) -> torch.Tensor:
    """One token per step per row: the argmax, or a sample. Returns (B, L) new tokens;
    `on_token(next_token)` sees each step's (B,) tokens as they are chosen."""
    cfg = model.config
    B = memory.shape[0]
    tokens = torch.full((B, 1), cfg.decoder_start_id, dtype=torch.long, device=memory.device)
    finished = torch.zeros(B, dtype=torch.bool, device=memory.device)
    step_fn = DecodeStep(
        model, memory, attention_mask, source_ids, max_length=max_new_tokens, use_cache=use_cache
    )
    for step in range(max_new_tokens):
        logits = step_fn(tokens)  # (B, V)
        if step < min_new_tokens:
            logits[:, cfg.eos_id] = float("-inf")
        if do_sample:
            next_token = sample_token(logits, temperature, top_k, top_p, generator)  # (B,)
        else:
            next_token = logits.argmax(dim=-1)  # (B,)
        next_token = next_token.masked_fill(finished, cfg.pad_id)  # rows already done get pad
        tokens = torch.cat([tokens, next_token[:, None]], dim=1)  # (B, step + 2)
        if on_token is not None:
            on_token(next_token)
        finished |= next_token == cfg.eos_id
        if finished.all():
            break
    return tokens[:, 1:]  # drop the start token


def beam_search(
    model: nn.Module,
    memory: torch.Tensor,
    attention_mask: torch.Tensor | None,
    source_ids: torch.Tensor,
    *,
    max_new_tokens: int,
    num_beams: int,
    length_penalty: float = 1.0,
    early_stopping: bool | str = True,
    use_cache: bool = True,
    min_new_tokens: int = 0,
) -> torch.Tensor:
    """Beam search: keep the K best partial sequences; return each example's best finished one.

    Each step extends every beam by every token and ranks the K·V candidates by summed
    log-probability. Of the 2K best, those that end (EOS, or the length limit) and rank among
    the first K become finished hypotheses, scored  sum_logprob / length ** length_penalty;
    the K best of the others go on as the new beams. An example is done when K hypotheses have
    finished and (unless early_stopping is True) no running beam can still beat the worst of
    them. Returns the best hypothesis of each example, (B, L).
    """
    cfg = model.config
    B = memory.shape[0]
    K = num_beams
    device = memory.device
    neg_inf = float("-inf")
    # every example becomes K rows, one per beam: row b·K + k is beam k of example b
    memory = memory.repeat_interleave(K, dim=0)  # (B·K, S, C)
    if attention_mask is not None:
        attention_mask = attention_mask.repeat_interleave(K, dim=0)  # (B·K, S)
    source_ids = source_ids.repeat_interleave(K, dim=0)  # (B·K, S)
    step_fn = DecodeStep(
        model, memory, attention_mask, source_ids, max_length=max_new_tokens, use_cache=use_cache
    )

    tokens = torch.full((B * K, 1), cfg.decoder_start_id, dtype=torch.long, device=device)
    beam_scores = torch.zeros(B, K, device=device)  # summed log-probs of the running beams
    beam_scores[:, 1:] = neg_inf  # the K beams start identical: only the first may expand
    done_tokens = torch.full((B, K, max_new_tokens), cfg.pad_id, dtype=torch.long, device=device)
    done_scores = torch.full((B, K), neg_inf, device=device)  # finished hypotheses, best K
    done_lengths = torch.zeros(B, K, dtype=torch.long, device=device)
    example_done = torch.zeros(B, dtype=torch.bool, device=device)
    first_k = torch.arange(2 * K, device=device) < K  # (2K,) candidate ranks that may finish

    for step in range(max_new_tokens):
        length = step + 1
        log_probs = F.log_softmax(step_fn(tokens), -1)  # (B·K, V)
        if step < min_new_tokens:
            log_probs[:, cfg.eos_id] = neg_inf
        V = log_probs.shape[-1]
        # 1. score every (beam, token) extension and keep the 2K best of each example
        scores = beam_scores[:, :, None] + log_probs.view(B, K, V)  # (B, K, V)
        top_scores, top_index = scores.view(B, K * V).topk(2 * K, dim=1)  # (B, 2K), best first
        parent, token = top_index // V, top_index % V  # which beam, which token
        parent_rows = torch.arange(B, device=device)[:, None] * K + parent  # (B, 2K) rows
        ends = (token == cfg.eos_id) | (length == max_new_tokens)  # (B, 2K)

        # 2. candidates that end here, among the K best, join the finished hypotheses
        new_done = ends & first_k & ~example_done[:, None] & (top_scores > neg_inf)
        if new_done.any():
            sequences = torch.cat([tokens[parent_rows.view(-1), 1:], token.view(-1, 1)], dim=1)
            sequences = F.pad(sequences, (0, max_new_tokens - length), value=cfg.pad_id)
            pool_tokens = torch.cat([done_tokens, sequences.view(B, 2 * K, max_new_tokens)], dim=1)
            normalised = torch.where(new_done, top_scores / length**length_penalty, neg_inf)
            pool_scores = torch.cat([done_scores, normalised], dim=1)  # (B, 3K)
            pool_lengths = torch.cat([done_lengths, torch.full_like(token, length)], dim=1)
            done_scores, keep = pool_scores.topk(K, dim=1)  # (B, K)
            done_tokens = pool_tokens.gather(1, keep[:, :, None].expand(-1, -1, max_new_tokens))
            done_lengths = pool_lengths.gather(1, keep)
        if length == max_new_tokens:
            break

        # 3. the K best candidates that do not end become the next beams
        beam_scores, pick = top_scores.masked_fill(ends, neg_inf).topk(K, dim=1)  # (B, K)
        rows = parent_rows.gather(1, pick).view(-1)  # (B·K,) the parent of each new beam
        tokens = torch.cat([tokens[rows], token.gather(1, pick).view(-1, 1)], dim=1)
        step_fn.reorder(rows)  # each new beam continues from its parent's keys and values

        # 4. an example is done when K hypotheses have finished (and, unless early_stopping is
        # True, its best running beam, judged at this length or the longest, cannot beat them)
        full = (done_scores > neg_inf).all(dim=1)  # (B,)
        if early_stopping is True:
            example_done |= full
        else:
            best_length = (
                max_new_tokens if early_stopping == "never" and length_penalty > 0 else length
            )
            best_possible = beam_scores[:, 0] / best_length**length_penalty
            example_done |= full & (best_possible <= done_scores[:, -1])  # worst finished
        if example_done.all():
            break

    best = done_scores.argmax(dim=1)  # (B,)
    batch = torch.arange(B, device=device)
    out = done_tokens[batch, best]  # (B, max_new_tokens)
    return out[:, : int(done_lengths[batch, best].max())]
