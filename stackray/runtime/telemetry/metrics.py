"""Per model and provider metrics: requests, errors, latency, time to first token, prompt
and completion tokens, queue time.

Each point goes three ways: Ray's metrics (`ray.util.metrics`, served by Ray's
Prometheus endpoint, in a Ray worker), OpenTelemetry instruments (exported by the OTLP or
console sink when configured), and the SQLite store (what `/v1/telemetry/metrics/{name}`
answers). Names in the store: `requests`, `errors`, `request_latency_seconds`,
`time_to_first_token_seconds`, `prompt_tokens`, `completion_tokens`, `total_tokens`,
`queue_time_seconds`; Ray and OTel use the same names prefixed with ``stackray_``.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from stackray.runtime.telemetry.sinks import MetricPointWriter
from stackray.runtime.telemetry.store import MetricPoint, TraceStore

logger = logging.getLogger("stackray.telemetry")

MODEL_LABELS = ("model_id", "provider_id")
LATENCY_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120]

# name -> (kind, description, label keys)
METRICS: dict[str, tuple[str, str, tuple[str, ...]]] = {
    "requests": ("counter", "Provider calls", MODEL_LABELS),
    "errors": ("counter", "Provider calls that failed", MODEL_LABELS),
    "request_latency_seconds": ("histogram", "Provider call latency", MODEL_LABELS),
    "time_to_first_token_seconds": (
        "histogram",
        "Streamed calls: time to the first chunk",
        MODEL_LABELS,
    ),
    "prompt_tokens": ("counter", "Prompt tokens", MODEL_LABELS),
    "completion_tokens": ("counter", "Completion tokens", MODEL_LABELS),
    "total_tokens": ("counter", "Prompt and completion tokens", MODEL_LABELS),
    "queue_time_seconds": (
        "histogram",
        "Time between a caller sending a deployment call and the replica starting it",
        ("deployment",),
    ),
}


class MetricsRecorder:
    """Records the metrics above to every configured destination: `record` only queues
    the point; the writer's thread applies it to Ray's and OpenTelemetry's instruments
    (`apply`) and to the store."""

    def __init__(
        self, store: TraceStore | None, meter: Any | None, use_ray: bool, interval_s: float
    ) -> None:
        self._otel: dict[str, Any] = {}
        self._ray: dict[str, Any] = {}
        if meter is not None:
            for name, (kind, desc, _) in METRICS.items():
                full = f"stackray_{name}"
                self._otel[name] = (
                    meter.create_counter(full, description=desc)
                    if kind == "counter"
                    else meter.create_histogram(full, unit="s", description=desc)
                )
        if use_ray:
            self._ray = _ray_metrics()
        apply = self.apply if (self._otel or self._ray) else None
        self.writer = MetricPointWriter(store, apply, interval_s=interval_s)

    def record(self, name: str, value: float, labels: dict[str, str]) -> None:
        self.writer.add(MetricPoint(name, time.time(), float(value), labels))

    def apply(self, points: list[MetricPoint]) -> None:
        """Update the Ray and OpenTelemetry instruments (on the writer's thread): counters
        once per label set with the batch's sum, histograms once per observation."""
        sums: dict[tuple[str, tuple[tuple[str, str], ...]], float] = {}
        for p in points:
            kind = METRICS[p.name][0] if p.name in METRICS else None
            if kind == "counter":
                key = (p.name, tuple(sorted(p.labels.items())))
                sums[key] = sums.get(key, 0.0) + p.value
            elif kind is not None:
                self._update(p.name, kind, p.value, p.labels)
        for (name, labels), value in sums.items():
            self._update(name, "counter", value, dict(labels))

    def _update(self, name: str, kind: str, value: float, labels: dict[str, str]) -> None:
        otel = self._otel.get(name)
        if otel is not None:
            if kind == "counter":
                otel.add(value, labels)
            else:
                otel.record(value, labels)
        ray_metric = self._ray.get(name)
        if ray_metric is not None:
            try:
                if kind == "counter":
                    ray_metric.inc(value, tags=labels)
                else:
                    ray_metric.observe(value, tags=labels)
            except Exception as exc:  # a bad tag must not stop the others
                logger.debug("ray metric %s: %s", name, exc)

    def flush_and_stop(self) -> None:
        self.writer.flush_and_stop()

    def provider_call(
        self,
        labels: dict[str, str],
        latency_s: float,
        error: bool,
        ttft_s: float | None,
        tokens: tuple[int, int] | None,
    ) -> None:
        self.record("requests", 1, labels)
        if error:
            self.record("errors", 1, labels)
        self.record("request_latency_seconds", latency_s, labels)
        if ttft_s is not None:
            self.record("time_to_first_token_seconds", ttft_s, labels)
        if tokens is not None:
            prompt, completion = tokens
            self.record("prompt_tokens", prompt, labels)
            self.record("completion_tokens", completion, labels)
            self.record("total_tokens", prompt + completion, labels)


def _ray_metrics() -> dict[str, Any]:
    """Ray metric objects, when this process is a Ray worker (a Serve replica)."""
    try:
        import ray

        if not ray.is_initialized():
            return {}
        from ray.util import metrics as ray_metrics

        out: dict[str, Any] = {}
        for name, (kind, desc, labels) in METRICS.items():
            full = f"stackray_{name}"
            if kind == "counter":
                out[name] = ray_metrics.Counter(full, description=desc, tag_keys=labels)
            else:
                out[name] = ray_metrics.Histogram(
                    full, description=desc, boundaries=LATENCY_BUCKETS, tag_keys=labels
                )
        return out
    except Exception as exc:
        logger.warning("telemetry: Ray metrics unavailable: %s", exc)
        return {}


def token_counts(result: Any) -> tuple[int, int] | None:
    """(prompt, completion) tokens of a response or final stream chunk: OpenAI's `usage`
    or Llama Stack's `metrics` list; None when it carries neither."""
    usage = getattr(result, "usage", None)
    if usage is not None:
        prompt = getattr(usage, "prompt_tokens", None)
        completion = getattr(usage, "completion_tokens", None)
        if prompt is not None:
            return int(prompt), int(completion or 0)
    metrics = getattr(result, "metrics", None)
    if metrics:
        values = {getattr(m, "metric", None): getattr(m, "value", None) for m in metrics}
        prompt = values.get("prompt_tokens")
        if prompt is not None:
            return int(prompt), int(values.get("completion_tokens") or 0)
    return None
