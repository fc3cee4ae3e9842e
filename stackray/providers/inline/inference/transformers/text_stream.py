"""Incremental detokenisation with stop-string hold-back, for one generated sequence.

Decoding token by token is not the same as decoding the whole sequence: a UTF-8 character can
span several byte-level tokens (the partial decode ends in U+FFFD), and SentencePiece
tokenizers drop the leading space of a sequence's first word. So, like vLLM, we decode a
short window of recent tokens twice (with and without the newest ones) and emit only the
difference, once it no longer ends in an incomplete character.

Stop strings: text that could still turn out to be the start of a stop string is held back
until it is known not to be; when a stop string completes, it and everything after it is
dropped.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

# How many already-decoded tokens to keep as context in front of the new ones.
_CONTEXT_TOKENS = 5


class TextStream:
    """Turns token ids into text deltas and applies stop strings.

    `decode(ids)` must decode a list of ids to text, skipping special tokens. `context_ids`
    are the last prompt tokens, so the first generated word decodes with its leading space.
    """

    def __init__(
        self,
        decode: Callable[[list[int]], str],
        stop: Sequence[str] = (),
        context_ids: Sequence[int] = (),
    ) -> None:
        self._decode = decode
        self._stops = [s for s in stop if s]
        self._max_stop = max((len(s) for s in self._stops), default=0)
        self._ids: list[int] = list(context_ids[-_CONTEXT_TOKENS:])
        self._prefix_offset = 0
        self._read_offset = len(self._ids)
        # All text decoded so far, and how much of it has been handed out.
        self.text = ""
        self._emitted = 0
        self.stopped = False

    def push(self, token_id: int) -> None:
        """Add one generated token."""
        self._ids.append(token_id)
        prefix = self._decode(self._ids[self._prefix_offset : self._read_offset])
        full = self._decode(self._ids[self._prefix_offset :])
        if len(full) > len(prefix) and not full.endswith("\ufffd"):
            self.text += full[len(prefix) :]
            self._prefix_offset = self._read_offset
            self._read_offset = len(self._ids)
            # Keep the id window short: decoding cost stays constant per token.
            if self._prefix_offset > 4 * _CONTEXT_TOKENS:
                cut = self._prefix_offset
                self._ids = self._ids[cut:]
                self._prefix_offset -= cut
                self._read_offset -= cut

    def _flush_partial(self) -> None:
        """At the end of generation, emit a trailing incomplete character as decoded."""
        if self._read_offset < len(self._ids):
            prefix = self._decode(self._ids[self._prefix_offset : self._read_offset])
            full = self._decode(self._ids[self._prefix_offset :])
            if len(full) > len(prefix):
                self.text += full[len(prefix) :]
            self._read_offset = len(self._ids)

    def take(self, final: bool = False) -> str:
        """Text that can be released now; sets `stopped` when a stop string completed.

        With `final=True` (generation ended for another reason) held-back text is released,
        since it can no longer become a stop string.
        """
        if self.stopped:
            return ""
        if final:
            self._flush_partial()
        if self._stops:
            # Emitted text never ends with a possible stop prefix (it would have been held),
            # so a match can only start at or after the emitted position.
            hit = -1
            for s in self._stops:
                idx = self.text.find(s, self._emitted)
                if idx != -1 and (hit == -1 or idx < hit):
                    hit = idx
            if hit != -1:
                out = self.text[self._emitted : hit]
                self._emitted = hit
                self.stopped = True
                return out
        end = len(self.text)
        if not final and self._stops:
            end -= self._held_back()
        out = self.text[self._emitted : end]
        self._emitted = end
        return out

    def _held_back(self) -> int:
        """Length of the longest suffix of the unreleased text that starts some stop string."""
        pending = self.text[self._emitted :]
        longest = min(len(pending), self._max_stop - 1)
        for n in range(longest, 0, -1):
            tail = pending[-n:]
            if any(s.startswith(tail) for s in self._stops):
                return n
        return 0

    @property
    def output(self) -> str:
        """The text released so far."""
        return self.text[: self._emitted]
