"""The Llama Guard 3 prompt and the parsing of its verdict."""

from __future__ import annotations

import re
from dataclasses import dataclass

from stackray.api.common import CompletionMessage, Message, UserMessage, interleaved_content_as_str
from stackray.providers.inline.safety.llama_guard.categories import CATEGORIES

PROMPT = """Task: Check if there is unsafe content in '{role}' messages in conversations according our safety policy with the below categories.

<BEGIN UNSAFE CONTENT CATEGORIES>
{categories}
<END UNSAFE CONTENT CATEGORIES>

<BEGIN CONVERSATION>

{conversation}

<END CONVERSATION>

Provide your safety assessment for ONLY THE LAST {role} message in the above conversation:
 - First line must read 'safe' or 'unsafe'.
 - If unsafe, a second line must include a comma-separated list of violated categories."""

# Llama 3's header tokens around a user turn, and the assistant header the verdict follows.
# No <|begin_of_text|>: servers add the BOS token to a raw prompt themselves.
RAW_TEMPLATE = (
    "<|start_header_id|>user<|end_header_id|>\n\n{prompt}<|eot_id|>"
    "<|start_header_id|>assistant<|end_header_id|>\n\n"
)


class VerdictError(ValueError):
    """The guard model's answer is neither 'safe' nor 'unsafe' with categories."""


def judged_messages(messages: list[Message]) -> list[Message]:
    """The messages Llama Guard judges: the user's and the assistant's (system prompts and
    tool results are the application's own, not a party of the conversation)."""
    return [m for m in messages if isinstance(m, UserMessage | CompletionMessage)]


def build_prompt(messages: list[Message], excluded: set[str]) -> str:
    """The prompt for the conversation `messages` (already `judged_messages`), its last
    message being the one judged; `excluded` categories are left out."""
    role = "Agent" if isinstance(messages[-1], CompletionMessage) else "User"
    categories = "\n".join(
        f"{code}: {name}." for code, name in CATEGORIES.items() if code not in excluded
    )
    conversation = "\n\n".join(
        f"{'Agent' if isinstance(m, CompletionMessage) else 'User'}: "
        f"{interleaved_content_as_str(m.content)}"
        for m in messages
    )
    return PROMPT.format(role=role, categories=categories, conversation=conversation)


@dataclass(frozen=True)
class Verdict:
    safe: bool
    categories: list[str]
    """The violated categories named by the model, excluded ones removed."""


_CODES = re.compile(r"^S\d{1,2}$")


def parse_verdict(answer: str, excluded: set[str]) -> Verdict:
    """``safe`` / ``unsafe`` + a line of comma-separated codes; anything else raises."""
    lines = [line.strip() for line in answer.strip().splitlines() if line.strip()]
    if lines and lines[0].lower() == "safe":
        return Verdict(True, [])
    if lines and lines[0].lower() == "unsafe":
        codes: list[str] = []
        if len(lines) > 1:
            for part in lines[1].split(","):
                code = part.strip().upper()
                if not _CODES.match(code) or code not in CATEGORIES:
                    raise VerdictError(f"unknown category {part.strip()!r}")
                codes.append(code)
        kept = [c for c in codes if c not in excluded]
        if codes and not kept:
            # Only categories this shield does not check were named: not a violation.
            return Verdict(True, [])
        return Verdict(False, kept)
    raise VerdictError("the first line is neither 'safe' nor 'unsafe'")


MAX_GRAMMAR_CATEGORIES = 3


def verdict_grammar(excluded: set[str]) -> dict[str, str]:
    """A grammar (GBNF rules, for a `grammar` response format) of Llama Guard's answer:
    ``safe``, or ``unsafe``, a newline and 1 to 3 comma-separated categories the shield
    checks (3 fit in the default 20 tokens, so a bounded answer is never cut mid-code)."""
    checked = [code for code in CATEGORIES if code not in excluded]
    if not checked:
        return {"root": '"safe"'}
    more = MAX_GRAMMAR_CATEGORIES - 1
    return {
        "root": '"safe" | "unsafe\\n" categories',
        "categories": f'category ("," category){{0,{more}}}',
        "category": " | ".join(f'"{code}"' for code in checked),
    }
