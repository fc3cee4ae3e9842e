"""Llama Guard 3's hazard taxonomy (MLCommons), and how it maps onto OpenAI's moderation
categories. Imported by the router for moderations, so it stays free of heavy imports."""

from __future__ import annotations

# Code -> name, in the order the Llama Guard 3 prompt lists them.
CATEGORIES: dict[str, str] = {
    "S1": "Violent Crimes",
    "S2": "Non-Violent Crimes",
    "S3": "Sex Crimes",
    "S4": "Child Sexual Exploitation",
    "S5": "Defamation",
    "S6": "Specialized Advice",
    "S7": "Privacy",
    "S8": "Intellectual Property",
    "S9": "Indiscriminate Weapons",
    "S10": "Hate",
    "S11": "Suicide & Self-Harm",
    "S12": "Sexual Content",
    "S13": "Elections",
    "S14": "Code Interpreter Abuse",
}

# OpenAI's moderation categories (every result carries all of them).
OPENAI_CATEGORIES: tuple[str, ...] = (
    "harassment",
    "harassment/threatening",
    "hate",
    "hate/threatening",
    "illicit",
    "illicit/violent",
    "self-harm",
    "self-harm/intent",
    "self-harm/instructions",
    "sexual",
    "sexual/minors",
    "violence",
    "violence/graphic",
)

# Llama Guard categories with no OpenAI counterpart keep a category of their own, so a
# flagged result always says why.
EXTRA_CATEGORIES: tuple[str, ...] = (
    "defamation",
    "specialized-advice",
    "privacy",
    "intellectual-property",
    "elections",
    "code-interpreter-abuse",
)

TO_MODERATION: dict[str, tuple[str, ...]] = {
    "S1": ("violence", "illicit/violent"),
    "S2": ("illicit",),
    "S3": ("sexual", "illicit"),
    "S4": ("sexual/minors", "sexual"),
    "S5": ("defamation",),
    "S6": ("specialized-advice",),
    "S7": ("privacy",),
    "S8": ("intellectual-property",),
    "S9": ("violence", "illicit/violent"),
    "S10": ("hate",),
    "S11": ("self-harm",),
    "S12": ("sexual",),
    "S13": ("elections",),
    "S14": ("code-interpreter-abuse",),
}


def moderation_categories(codes: list[str]) -> list[str]:
    """The moderation categories that Llama Guard codes (``S1`` ...) flag."""
    out: list[str] = []
    for code in codes:
        for category in TO_MODERATION.get(code.upper(), ()):
            if category not in out:
                out.append(category)
    return out
