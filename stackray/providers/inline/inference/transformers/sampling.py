"""Per-request sampling, vectorised over the rows of a batch.

Every row of a batch carries its own `SamplingConfig`; the functions here turn a list of
configs into per-row tensors once (when the batch composition changes) and then apply them to
a `[rows, vocab]` logits tensor in a handful of tensor ops per decode step.

Randomness is drawn per row from the row's own `torch.Generator` (one uniform number per step,
then inverse-CDF sampling over the filtered distribution). That makes a seeded request produce
the same tokens whatever else shares its batch, and keeps the draw itself vectorised.
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from stackray.api.errors import BadRequestError

if TYPE_CHECKING:  # pragma: no cover - typing only
    import torch


@dataclass
class SamplingConfig:
    """How to pick each next token of one request.

    `greedy` takes the argmax. `top_p` and `top_k` sample at `temperature` from the nucleus
    / the k most likely tokens (both filters apply when both are set; `top_k=0` and
    `top_p=1.0` disable them). A temperature of 0 means greedy. `repetition_penalty` is the
    HF/CTRL penalty over prompt + generated tokens (1.0 = off). `seed` makes sampling
    reproducible for this request.
    """

    strategy: Literal["greedy", "top_p", "top_k"] = "greedy"
    temperature: float = 1.0
    top_p: float = 1.0
    top_k: int = 0
    repetition_penalty: float = 1.0
    seed: int | None = None

    def validate(self) -> None:
        """Raise `BadRequestError` for values no sampler can honour."""
        if self.strategy not in ("greedy", "top_p", "top_k"):
            raise BadRequestError(f"unknown sampling strategy '{self.strategy}'", field="strategy")
        if not math.isfinite(self.temperature) or self.temperature < 0:
            raise BadRequestError(
                f"temperature must be >= 0, got {self.temperature}", field="temperature"
            )
        if not (0.0 < self.top_p <= 1.0):
            raise BadRequestError(f"top_p must be in (0, 1], got {self.top_p}", field="top_p")
        if self.top_k < 0:
            raise BadRequestError(f"top_k must be >= 0, got {self.top_k}", field="top_k")
        if not math.isfinite(self.repetition_penalty) or self.repetition_penalty <= 0:
            raise BadRequestError(
                f"repetition_penalty must be > 0, got {self.repetition_penalty}",
                field="repetition_penalty",
            )

    @property
    def is_greedy(self) -> bool:
        return self.strategy == "greedy" or self.temperature == 0.0 or self.top_k == 1


def make_generator(seed: int | None) -> torch.Generator:
    """A CPU generator for one row: seeded if asked, otherwise from OS entropy."""
    import torch

    gen = torch.Generator(device="cpu")
    gen.manual_seed(seed if seed is not None else random.SystemRandom().getrandbits(63))
    return gen


@dataclass
class SamplingTensors:
    """The per-row parameters of a batch as tensors on the logits' device."""

    greedy: torch.Tensor  # [B] bool
    temperature: torch.Tensor  # [B, 1] float
    top_p: torch.Tensor  # [B, 1] float
    top_k: torch.Tensor  # [B, 1] long, 0 = off
    penalty: torch.Tensor  # [B, 1] float
    any_sampled: bool
    any_penalty: bool
    any_top_k: bool
    any_top_p: bool

    @classmethod
    def build(cls, configs: Sequence[SamplingConfig], device: torch.device) -> SamplingTensors:
        import torch

        greedy = [c.is_greedy for c in configs]
        temps = [max(c.temperature, 1e-5) for c in configs]
        return cls(
            greedy=torch.tensor(greedy, dtype=torch.bool, device=device),
            temperature=torch.tensor(temps, dtype=torch.float32, device=device)[:, None],
            top_p=torch.tensor([c.top_p for c in configs], device=device)[:, None],
            top_k=torch.tensor([c.top_k for c in configs], device=device)[:, None],
            penalty=torch.tensor([c.repetition_penalty for c in configs], device=device)[:, None],
            any_sampled=not all(greedy),
            any_penalty=any(c.repetition_penalty != 1.0 for c in configs),
            any_top_k=any(c.top_k > 0 and not g for c, g in zip(configs, greedy, strict=True)),
            any_top_p=any(c.top_p < 1.0 and not g for c, g in zip(configs, greedy, strict=True)),
        )


def apply_repetition_penalty(
    logits: torch.Tensor, seen: torch.Tensor, penalty: torch.Tensor
) -> torch.Tensor:
    """HF/CTRL repetition penalty: divide positive / multiply negative logits of seen tokens.

    `seen` is a `[B, V]` bool mask of tokens in each row's prompt + output so far.
    """
    import torch

    penalised = torch.where(logits > 0, logits / penalty, logits * penalty)
    return torch.where(seen & (penalty != 1.0), penalised, logits)


def sample(
    logits: torch.Tensor,
    params: SamplingTensors,
    generators: Sequence[torch.Generator],
) -> torch.Tensor:
    """Pick one token per row from `[B, V]` float32 logits (already penalised / masked).

    Greedy rows take the argmax; the others sample with their temperature, top-k and top-p.
    Masked tokens must carry `-inf`; they can never be drawn.
    """
    import torch

    choice = logits.argmax(dim=-1)
    if not params.any_sampled:
        return choice

    rows = (~params.greedy).nonzero(as_tuple=True)[0]
    sub = logits[rows] / params.temperature[rows]
    # Sort once and filter in sorted order: both top-k (rank < k) and top-p (mass before
    # this token < p) are prefix conditions there, and the draw is a prefix sum as well.
    sorted_logits, sorted_idx = sub.sort(dim=-1, descending=True)
    vocab = sorted_logits.shape[-1]
    if params.any_top_k:
        ranks = torch.arange(vocab, device=logits.device)[None, :]
        k = params.top_k[rows]
        sorted_logits = sorted_logits.masked_fill((k > 0) & (ranks >= k), float("-inf"))
    probs = sorted_logits.softmax(dim=-1)
    if params.any_top_p:
        mass_before = probs.cumsum(dim=-1) - probs
        cut = mass_before >= params.top_p[rows]
        cut[:, 0] = False  # always keep the most likely token
        probs = probs.masked_fill(cut, 0.0)
    cdf = probs.cumsum(dim=-1)
    draws = torch.cat([torch.rand(1, generator=generators[int(r)]) for r in rows.tolist()])
    targets = draws.to(cdf.device)[:, None] * cdf[:, -1:]
    picked = (cdf <= targets).sum(dim=-1).clamp_(max=vocab - 1)
    # Never land on a zero-probability token because of rounding at the top of the cdf.
    picked = torch.minimum(picked, (probs > 0).sum(dim=-1) - 1)
    choice[rows] = sorted_idx.gather(1, picked[:, None]).squeeze(1)
    return choice


def top_logprobs(
    logits: torch.Tensor, chosen: torch.Tensor, ks: Sequence[int]
) -> list[list[tuple[int, float]] | None]:
    """For each row with `k > 0`: its top-k `(token, logprob)` plus the chosen token.

    Log-probabilities are of the model's own distribution (log-softmax of the raw logits,
    before penalties, temperature or constraints), as OpenAI-style APIs report them.
    """
    out: list[list[tuple[int, float]] | None] = [None] * len(ks)
    kmax = max(ks, default=0)
    if kmax <= 0:
        return out
    logprobs = logits.float().log_softmax(dim=-1)
    values, indices = logprobs.topk(min(kmax, logprobs.shape[-1]), dim=-1)
    chosen_lp = logprobs.gather(1, chosen[:, None]).squeeze(1)
    values_l, indices_l, chosen_l = values.tolist(), indices.tolist(), chosen.tolist()
    chosen_lp_l = chosen_lp.tolist()
    for row, k in enumerate(ks):
        if k <= 0:
            continue
        pairs = list(zip(indices_l[row][:k], values_l[row][:k], strict=True))
        if chosen_l[row] not in indices_l[row][:k]:
            pairs.append((chosen_l[row], chosen_lp_l[row]))
        out[row] = pairs
    return out
