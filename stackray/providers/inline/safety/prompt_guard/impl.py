"""`inline::prompt-guard`: a sequence classifier in Prompt Guard's layout flags jailbreak
attempts and prompt injections in the untrusted messages of a conversation.

It runs in its own model-server deployment, on a GPU when the cluster has one.
"""

from __future__ import annotations

import asyncio
import os
import threading
from pathlib import Path
from typing import Any

from stackray.api.common import JsonValue, Message, interleaved_content_as_str
from stackray.api.datatypes import Api
from stackray.api.errors import BadRequestError, ConfigError
from stackray.api.safety import RunShieldResponse, SafetyViolation, Shield, ViolationLevel
from stackray.providers.inline.safety.prompt_guard.config import PromptGuardConfig
from stackray.runtime.resolver import ProviderContext

BENIGN, INJECTION, JAILBREAK = "BENIGN", "INJECTION", "JAILBREAK"


def select_device(configured: str, cuda_available: bool, cuda_count: int) -> str:
    """The torch device for `configured`: 'auto' picks cuda when a GPU is visible."""
    if configured == "auto":
        return "cuda" if cuda_available else "cpu"
    if configured.startswith("cuda"):
        if not cuda_available:
            raise ConfigError(f"device {configured!r} asked for, but no CUDA GPU is visible")
        index = configured.partition(":")[2]
        if index and (not index.isdigit() or int(index) >= cuda_count):
            raise ConfigError(
                f"device {configured!r}: this process sees {cuda_count} GPU(s) (cuda:0 ...)"
            )
        return configured
    if configured != "cpu":
        raise ConfigError(f"device must be 'auto', 'cpu' or 'cuda[:N]', got {configured!r}")
    return configured


class _Classifier:
    """One loaded model: tokenizer, model and label positions; used under a lock."""

    def __init__(self, model_dir: Path, device: str) -> None:
        from transformers import AutoModelForSequenceClassification, AutoTokenizer

        self.tokenizer = AutoTokenizer.from_pretrained(str(model_dir))
        self.model = AutoModelForSequenceClassification.from_pretrained(str(model_dir))
        self.model.eval().to(device)
        self.device = device
        labels = {str(v).upper(): int(k) for k, v in self.model.config.id2label.items()}
        missing = [label for label in (BENIGN, INJECTION, JAILBREAK) if label not in labels]
        if missing:
            raise BadRequestError(
                f"{model_dir} is not a Prompt Guard classifier: its labels "
                f"{sorted(labels)} lack {', '.join(missing)}",
                field="params.model_dir",
            )
        self.labels = labels
        self.lock = threading.Lock()

    def scores(self, text: str, max_length: int) -> list[dict[str, float]]:
        """Label probabilities for each window of `text`."""
        import torch

        with self.lock:
            enc = self.tokenizer(
                text,
                truncation=True,
                max_length=max_length,
                return_overflowing_tokens=True,
                padding=True,
                return_tensors="pt",
            )
            inputs = {
                k: v.to(self.device)
                for k, v in enc.items()
                if k in ("input_ids", "attention_mask", "token_type_ids")
            }
            with torch.no_grad():
                probs = torch.softmax(self.model(**inputs).logits.float(), dim=-1).cpu()
        return [{label: float(row[i]) for label, i in self.labels.items()} for row in probs]


class PromptGuardSafetyProvider:
    def __init__(
        self, config: PromptGuardConfig, deps: dict[Api, Any], context: ProviderContext
    ) -> None:
        self.config = config
        self.context = context
        self._classifiers: dict[Path, _Classifier] = {}
        self._loading = threading.Lock()
        self.device = "cpu"

    async def initialize(self) -> None:
        import torch

        self.device = select_device(
            self.config.device, torch.cuda.is_available(), torch.cuda.device_count()
        )

    # ---- shield settings ----------------------------------------------------------------

    def _settings(
        self, shield: Shield, params: dict[str, JsonValue] | None = None
    ) -> PromptGuardConfig:
        """The provider's config with the shield's (then the request's) overrides."""
        merged = {
            k: v
            for k, v in {**(shield.params or {}), **(params or {})}.items()
            if k in ("model_dir", "threshold", "guard_type")
        }
        if not merged:
            return self.config
        try:
            return PromptGuardConfig.model_validate({**self.config.model_dump(), **merged})
        except ValueError as e:
            raise BadRequestError(f"invalid prompt-guard params: {e}", field="params") from None

    def _model_dir(self, settings: PromptGuardConfig, shield: Shield) -> Path:
        if settings.model_dir is None:
            raise BadRequestError(
                f"shield {shield.identifier!r}: no Prompt Guard model directory: set `model_dir` "
                "in the provider's config or the shield's params",
                field="params.model_dir",
            )
        path = Path(os.path.expanduser(settings.model_dir))
        if not (path / "config.json").is_file():
            raise BadRequestError(
                f"shield {shield.identifier!r}: Prompt Guard model directory {str(path)!r} "
                + ("has no config.json" if path.is_dir() else "does not exist"),
                field="params.model_dir",
            )
        return path

    def _classifier(self, path: Path) -> _Classifier:
        with self._loading:
            if path not in self._classifiers:
                try:
                    self._classifiers[path] = _Classifier(path, self.device)
                except BadRequestError:
                    raise
                except Exception as e:  # unreadable weights or tokenizer
                    raise BadRequestError(
                        f"cannot load the Prompt Guard model in {str(path)!r}: {type(e).__name__}: {e}",
                        field="params.model_dir",
                    ) from None
            return self._classifiers[path]

    # ---- the provider -------------------------------------------------------------------

    async def register_shield(self, shield: Shield) -> Shield:
        settings = self._settings(shield)
        path = self._model_dir(settings, shield)
        await asyncio.to_thread(self._classifier, path)
        return shield

    async def unregister_shield(self, shield: Shield) -> None:
        return None

    async def run_shield(
        self, shield: Shield, messages: list[Message], params: dict[str, JsonValue]
    ) -> RunShieldResponse:
        settings = self._settings(shield, params)
        classifier = await asyncio.to_thread(self._classifier, self._model_dir(settings, shield))
        for index, message in enumerate(messages):
            if message.role not in settings.roles:
                continue
            text = interleaved_content_as_str(message.content)
            if not text.strip():
                continue
            windows = await asyncio.to_thread(classifier.scores, text, settings.max_length)
            for scores in windows:
                violation = self._judge(scores, settings, index)
                if violation is not None:
                    return RunShieldResponse(violation=violation)
        return RunShieldResponse(violation=None)

    @staticmethod
    def _judge(
        scores: dict[str, float], settings: PromptGuardConfig, index: int
    ) -> SafetyViolation | None:
        jailbreak = scores[JAILBREAK]
        injection = scores[INJECTION] + scores[JAILBREAK]
        if jailbreak > settings.threshold:
            kind, score, message = "jailbreak", jailbreak, "Possible jailbreak attempt detected."
        elif settings.guard_type == "injection" and injection > settings.threshold:
            kind, score, message = (
                "prompt_injection",
                injection,
                "Possible prompt injection detected.",
            )
        else:
            return None
        return SafetyViolation(
            violation_level=ViolationLevel.error,
            user_message=message,
            metadata={
                "violation_type": kind,
                "score": round(score, 6),
                "threshold": settings.threshold,
                "message_index": index,
                "label_scores": {k: round(v, 6) for k, v in scores.items()},
            },
        )
