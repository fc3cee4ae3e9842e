"""The KV-cache side of a running batch: left-padded rows that can be merged and dropped.

A batch is a transformers `DynamicCache` of shape `[rows, heads, T, head_dim]` per layer plus a
`[rows, T]` attention mask. Rows are left-padded: row i's real tokens are the last ones of its
mask, with zeros in front. Position ids are tracked per row (count of real tokens), so padding
never shifts a row's positions and a row decodes exactly as it would alone.

Continuous batching needs two operations beyond what `generate()` does:

* `merge`: newly prefilled rows join a running batch. The shorter of the two caches is padded on
  the left (zeros in K/V, zeros in the mask) to the longer one's length, then both are
  concatenated along the batch dimension.
* `select`: finished rows are dropped (index the batch dimension), and leading columns that are
  padding in every remaining row are trimmed, so a long-gone long prompt stops costing
  attention time.

Both rebuild the per-layer tensors, which is only valid for plain full-attention layers
(`DynamicLayer`). Models with sliding-window or other special layers report
`can_reshape == False`, and the engine then only batches requests that start together.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover - typing only
    import torch


def new_cache(model_config: Any) -> Any:
    """An empty `DynamicCache` laid out for `model_config` (sliding layers included)."""
    from transformers import DynamicCache

    try:
        return DynamicCache(config=model_config)
    except TypeError:  # older transformers: no config argument
        return DynamicCache()


def cache_is_reshapable(cache: Any) -> bool:
    """True when every layer is a plain full-attention `DynamicLayer` (or a legacy cache)."""
    layers = getattr(cache, "layers", None)
    if layers is None:
        return hasattr(cache, "key_cache")
    from transformers.cache_utils import DynamicLayer

    return all(type(layer) is DynamicLayer for layer in layers)


def _kv(cache: Any) -> list[tuple[torch.Tensor, torch.Tensor]]:
    layers = getattr(cache, "layers", None)
    if layers is not None:
        return [(layer.keys, layer.values) for layer in layers]
    return list(zip(cache.key_cache, cache.value_cache, strict=True))


def _from_kv(kv: list[tuple[torch.Tensor, torch.Tensor]]) -> Any:
    from transformers import DynamicCache

    cache = DynamicCache()
    for idx, (k, v) in enumerate(kv):
        cache.update(k, v, idx)
    return cache


def _pad_left(t: torch.Tensor, length: int, dim: int) -> torch.Tensor:
    import torch

    missing = length - t.shape[dim]
    if missing <= 0:
        return t
    shape = list(t.shape)
    shape[dim] = missing
    return torch.cat([t.new_zeros(shape), t], dim=dim)


class KVBatch:
    """KV cache, attention mask and token-presence mask of the rows decoding together.

    `seen` is a `[rows, vocab]` bool mask of tokens in each row's prompt and output, kept for
    the repetition penalty. Row order matches the engine's list of row states.
    """

    def __init__(self, cache: Any, mask: torch.Tensor, seen: torch.Tensor) -> None:
        self.cache = cache
        self.mask = mask
        self.seen = seen

    @property
    def size(self) -> int:
        return int(self.mask.shape[0])

    @property
    def length(self) -> int:
        return int(self.mask.shape[1])

    def append_step(self) -> torch.Tensor:
        """Extend the mask by one real column for the token about to be fed; returns it."""
        import torch

        ones = torch.ones((self.size, 1), dtype=self.mask.dtype, device=self.mask.device)
        self.mask = torch.cat([self.mask, ones], dim=1)
        return self.mask

    def merge(self, other: KVBatch) -> None:
        """Append `other`'s rows after this batch's rows (both caches must be reshapable)."""
        import torch

        length = max(self.length, other.length)
        kv = []
        for (k1, v1), (k2, v2) in zip(_kv(self.cache), _kv(other.cache), strict=True):
            kv.append(
                (
                    torch.cat([_pad_left(k1, length, 2), _pad_left(k2, length, 2)], dim=0),
                    torch.cat([_pad_left(v1, length, 2), _pad_left(v2, length, 2)], dim=0),
                )
            )
        mask = torch.cat([_pad_left(self.mask, length, 1), _pad_left(other.mask, length, 1)])
        seen = torch.cat([self.seen, other.seen])
        # Assign only once everything is built: a failure (e.g. out of memory) above leaves
        # the running batch untouched, and only the joining rows fail.
        self.cache, self.mask, self.seen = _from_kv(kv), mask, seen

    def select(self, keep: list[int], reshapable: bool) -> None:
        """Keep only rows `keep` (in that order); trim all-padding columns when possible."""
        import torch

        index = torch.tensor(keep, dtype=torch.long, device=self.mask.device)
        self.mask = self.mask.index_select(0, index)
        self.seen = self.seen.index_select(0, index)
        if not reshapable:
            self.cache.batch_select_indices(index)
            return
        used = self.mask.any(dim=0).nonzero()
        start = int(used[0, 0]) if used.numel() else 0
        kv = [
            (k.index_select(0, index)[:, :, start:], v.index_select(0, index)[:, :, start:])
            for k, v in _kv(self.cache)
        ]
        self.cache = _from_kv(kv)
        self.mask = self.mask[:, start:]
