"""The ``modelroute.yaml`` schema and its loader.

Validation is done by pydantic; every error is reported with the file, the line and the
field, and says what was expected. Cross-references (aliases in ``baseline``,
``routes``, ``judge``) are checked after the schema, with the same precision.
"""

from __future__ import annotations

import difflib
import re
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    PrivateAttr,
    Tag,
    ValidationError,
    field_validator,
    model_validator,
)

from .errors import ConfigError
from .schema_errors import validation_error
from .yamlio import SourceMap, load_yaml

CONFIG_NAME = "modelroute.yaml"
Complexity = Literal["low", "medium", "high"]

#: Generation parameters accepted at the top level of a model entry.
GENERATION_KEYS = ("temperature", "max_tokens", "top_p", "top_k", "stop", "seed")
DEFAULT_MAX_TOKENS = 1024
#: Settings of the llama.cpp server a ``provider: local`` model runs on.
LOCAL_KEYS = ("gguf", "chat_template", "threads", "slots", "ctx_size")
#: Providers that answer a replay model's prompts its file does not hold.
FALLBACK_PROVIDERS = ("sim", "openai", "anthropic")
#: the least max_tokens a judge call gets unless ``judge: {max_tokens: ...}`` says otherwise
JUDGE_MAX_TOKENS = 1024


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Price(_Strict):
    """USD per million tokens. ``input`` and ``output`` go together; without them the
    price database gives the list prices and only the batch keys apply."""

    input: float | None = Field(default=None, ge=0)
    output: float | None = Field(default=None, ge=0)
    cache_read: float | None = Field(default=None, ge=0)
    cache_write: float | None = Field(default=None, ge=0)
    #: the share taken off list prices for calls made through a batch API (0.5: half price)
    batch_discount: float | None = Field(default=None, ge=0, le=1)
    #: explicit batch prices (USD per million tokens), instead of a discount
    batch_input: float | None = Field(default=None, ge=0)
    batch_output: float | None = Field(default=None, ge=0)

    @model_validator(mode="after")
    def _pairs(self) -> Price:
        for a, b in (("input", "output"), ("batch_input", "batch_output")):
            if (getattr(self, a) is None) != (getattr(self, b) is None):
                raise ValueError(f"give both '{a}' and '{b}' (USD per 1M tokens), or neither")
        if self.input is None and (self.cache_read is not None or self.cache_write is not None):
            raise ValueError("cache prices need 'input' and 'output' too")
        if self.batch_input is not None and self.batch_discount is not None:
            raise ValueError("give 'batch_discount' or 'batch_input'/'batch_output', not both")
        if all(v is None for v in self.__dict__.values()):
            raise ValueError("give 'input' and 'output' (USD per 1M tokens)")
        return self


class ModelConfig(_Strict):
    """One entry of ``models:``."""

    provider: str
    model: str
    base_url: str | None = None
    api_key_env: str | None = None
    price: Price | None = None
    concurrency: int | None = Field(default=None, ge=1)
    #: the user's own caps on this model's pace (e.g. to leave room on a shared API key)
    requests_per_minute: float | None = Field(default=None, gt=0)
    tokens_per_minute: float | None = Field(default=None, gt=0)
    timeout_s: float = Field(default=120.0, gt=0)
    max_retries: int = Field(default=2, ge=0, le=20)
    #: False for a model used only as a judge: bench mode does not run cases on it
    bench: bool = True
    #: True: uncached calls go through the provider's batch API (False: never, even with
    #: --model-route-batch)
    batch: bool | None = None
    #: price cached prompt tokens at the model's cache prices (else as input: a call's cost
    #: then does not depend on what the server happened to have cached)
    cache_prices: bool = False
    #: whether ``base_url`` is the user's own server, which may queue calls (its first
    #: calls made alone, its /props asked): None decides from the URL (providers.hosts)
    own_server: bool | None = None
    params: dict[str, Any] = Field(default_factory=dict)
    temperature: float | None = Field(default=None, ge=0)
    max_tokens: int | None = Field(default=None, ge=1)
    top_p: float | None = Field(default=None, gt=0, le=1)
    top_k: int | None = Field(default=None, ge=1)
    stop: list[str] | None = None
    seed: int | None = None
    # sim provider
    skill: dict[Complexity, Annotated[float, Field(ge=0, le=1)]] | None = None
    latency_ms: float = Field(default=0.0, ge=0)
    # replay provider
    file: str | None = None
    #: what answers a prompt the replay file holds no output for (the model's id and
    #: price are the replay model's unless it says otherwise): sim, openai or anthropic
    fallback: ModelConfig | None = None
    # local provider (a llama.cpp server started for the run)
    gguf: str | None = None
    chat_template: str | None = None
    threads: int | None = Field(default=None, ge=1)
    slots: int | None = Field(default=None, ge=1)
    ctx_size: int | None = Field(default=None, ge=256)
    # custom providers
    options: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="before")
    @classmethod
    def _model_from_gguf(cls, value: Any) -> Any:
        # {provider: local, gguf: path} needs no model id: the file names it
        if isinstance(value, dict) and "model" not in value and value.get("gguf"):
            return {**value, "model": Path(str(value["gguf"])).stem}
        fallback = value.get("fallback") if isinstance(value, dict) else None
        if isinstance(fallback, dict) and "model" in value:
            # the replay model's id and price, unless the fallback names its own
            inherited = {k: value[k] for k in ("model", "price") if k in value}
            return {**value, "fallback": {**inherited, **fallback}}
        return value

    def generation_params(self) -> dict[str, Any]:
        """Every generation parameter sent with a request (part of the cache key)."""
        params: dict[str, Any] = {"max_tokens": DEFAULT_MAX_TOKENS}
        params.update(self.params)
        for key in GENERATION_KEYS:
            value = getattr(self, key)
            if value is not None:
                params[key] = value
        return params


class CheckSpec(BaseModel):
    """A check as written; its own keys are validated by its check type."""

    model_config = ConfigDict(extra="allow", frozen=True)
    type: str


class CascadeSpec(_Strict):
    cascade: list[str] = Field(min_length=2)
    accept: list[CheckSpec] = Field(min_length=1)

    @model_validator(mode="before")
    @classmethod
    def _needs_accept(cls, value: Any) -> Any:
        # only when nothing else is wrong with the keys: a misspelt 'accept' gets its
        # did-you-mean from the unknown-key check instead
        if (
            isinstance(value, dict)
            and set(value) <= {"cascade", "accept"}
            and not value.get("accept")
        ):
            raise ValueError(
                "a cascade needs acceptance checks (accept: [...]): without them its first "
                "model always answers"
            )
        return value


class ConsensusInner(_Strict):
    model: str | None = None
    models: list[str] | None = Field(default=None, min_length=1)
    #: default: 5 samples of one model, or one of each of ``models``
    n: int | None = Field(default=None, ge=1, le=100)
    vote: Literal["majority"] = "majority"
    extract: str | None = None
    transform: str = "lower-strip"

    @field_validator("extract")
    @classmethod
    def _regex(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                re.compile(value)
            except re.error as exc:
                raise ValueError(f"invalid regular expression: {exc}") from None
        return value


class ConsensusSpec(_Strict):
    consensus: ConsensusInner

    @property
    def samples(self) -> int:
        inner = self.consensus
        return inner.n or (len(inner.models) if inner.models else 5)


def _route_tag(value: Any) -> str:
    if isinstance(value, str):
        return "route:model"
    if isinstance(value, dict) and "cascade" in value:
        return "route:cascade"
    if isinstance(value, dict) and "consensus" in value:
        return "route:consensus"
    return "route:invalid"


class _InvalidRoute(_Strict):
    """Never valid: makes a bad route report one clear error."""

    @classmethod
    def __get_pydantic_core_schema__(cls, source: Any, handler: Any) -> Any:
        from pydantic_core import PydanticCustomError, core_schema

        def fail(value: Any) -> Any:
            raise PydanticCustomError(
                "route",
                "expected a model alias, {cascade: [m1, m2, ...]} or {consensus: {model: m, n: N}}",
            )

        return core_schema.no_info_plain_validator_function(fail)


RouteSpec = Annotated[
    Annotated[str, Tag("route:model")]
    | Annotated[CascadeSpec, Tag("route:cascade")]
    | Annotated[ConsensusSpec, Tag("route:consensus")]
    | Annotated[_InvalidRoute, Tag("route:invalid")],
    Discriminator(_route_tag),
]


class JudgeSpec(_Strict):
    model: str | None = None
    models: list[str] | None = Field(default=None, min_length=1)
    n: int = Field(default=1, ge=1, le=50)
    aggregate: Literal["median", "mean", "majority"] = "median"
    template: str | None = None
    #: judge calls' max_tokens (default: the judge model's, and at least JUDGE_MAX_TOKENS)
    max_tokens: int | None = Field(default=None, ge=1)


class ModelRouteConfig(_Strict):
    """The validated contents of ``modelroute.yaml``."""

    models: dict[str, ModelConfig] = Field(min_length=1)
    baseline: str
    threshold: float = Field(default=4.0, ge=1, le=5)
    thresholds: dict[str, Annotated[float, Field(ge=1, le=5)]] = Field(default_factory=dict)
    judge: JudgeSpec | None = None
    routes: dict[str, RouteSpec] = Field(default_factory=dict)
    traffic: dict[str, Annotated[float, Field(ge=0)]] = Field(default_factory=dict)
    cases: list[str] = Field(default_factory=lambda: ["cases/**/*.yaml", "cases/**/*.yml"])
    tolerance: float = Field(default=0.2, ge=0)
    cost_tolerance: float = Field(default=0.10, ge=0)
    max_drop: float | None = Field(default=None, ge=0)
    confidence: float | None = Field(default=None, gt=0.5, lt=1)
    seed: int = 0

    _path: Path = PrivateAttr(default=Path(CONFIG_NAME))
    _srcmap: SourceMap | None = PrivateAttr(default=None)

    @property
    def path(self) -> Path:
        return self._path

    @property
    def root(self) -> Path:
        """The directory relative paths in the config are resolved against."""
        return self._path.parent

    @property
    def srcmap(self) -> SourceMap:
        return self._srcmap or SourceMap(self._path)

    def threshold_for(self, task: str) -> float:
        return self.thresholds.get(task, self.threshold)

    def error(self, message: str, *loc: str | int) -> ConfigError:
        """A ConfigError located at ``loc`` in this file."""
        from .yamlio import format_loc

        return ConfigError(
            message, path=self._path, line=self.srcmap.line(loc), field=format_loc(loc) or None
        )


def _unknown_alias(config: ModelRouteConfig, alias: str, *loc: str | int) -> ConfigError:
    known = list(config.models)
    close = difflib.get_close_matches(alias, known, n=1)
    hint = f"; did you mean {close[0]!r}?" if close else ""
    return config.error(f"unknown model {alias!r}{hint} (models defined: {', '.join(known)})", *loc)


def _check_references(config: ModelRouteConfig) -> None:
    if config.baseline not in config.models:
        raise _unknown_alias(config, config.baseline, "baseline")
    for task, spec in config.routes.items():
        if isinstance(spec, str):
            if spec not in config.models:
                raise _unknown_alias(config, spec, "routes", task)
        elif isinstance(spec, CascadeSpec):
            for i, alias in enumerate(spec.cascade):
                if alias not in config.models:
                    raise _unknown_alias(config, alias, "routes", task, "cascade", i)
        elif isinstance(spec, ConsensusSpec):
            inner = spec.consensus
            if (inner.model is None) == (inner.models is None):
                raise config.error(
                    "give either 'model' or 'models' (a list)", "routes", task, "consensus"
                )
            aliases = [inner.model] if inner.model else list(inner.models or [])
            for alias in aliases:
                if alias not in config.models:
                    raise _unknown_alias(config, alias, "routes", task, "consensus")
    if config.judge is not None:
        aliases = [config.judge.model] if config.judge.model else list(config.judge.models or [])
        if not aliases:
            raise config.error("give 'model' or 'models'", "judge")
        for alias in aliases:
            if alias not in config.models:
                raise _unknown_alias(config, alias, "judge")
    for name, model in config.models.items():
        if model.provider == "replay" and not model.file:
            raise config.error(
                "the replay provider needs 'file': a JSONL file of recorded outputs",
                "models",
                name,
            )
        if model.fallback is not None and model.provider != "replay":
            raise config.error(
                "'fallback' applies to 'provider: replay' models only", "models", name, "fallback"
            )
        if model.fallback is not None and model.fallback.provider not in FALLBACK_PROVIDERS:
            raise config.error(
                f"a replay's fallback is one of {', '.join(FALLBACK_PROVIDERS)}, not "
                f"{model.fallback.provider!r}",
                "models",
                name,
                "fallback",
                "provider",
            )
        if model.provider != "local":
            for key in LOCAL_KEYS:
                if getattr(model, key) is not None:
                    raise config.error(
                        f"{key!r} applies to 'provider: local' models only", "models", name, key
                    )


def load_config(path: Path) -> ModelRouteConfig:
    """Load and validate ``path``; raises ConfigError naming file, line and field."""
    from .errors import ModelRouteError

    try:
        data, srcmap = load_yaml(path, "config file")
    except ConfigError:
        raise
    except ModelRouteError as exc:
        raise ConfigError(exc.message, path=exc.path, line=exc.line, field=exc.field) from None
    if not isinstance(data, dict):
        raise ConfigError(
            f"expected a mapping with 'models', 'baseline' and 'routes', got {type(data).__name__}",
            path=path,
            line=1,
        )
    try:
        config = ModelRouteConfig.model_validate(data)
    except ValidationError as exc:
        raise validation_error(exc, srcmap, ModelRouteConfig, error_type=ConfigError) from None
    config._path = path
    config._srcmap = srcmap
    _check_references(config)
    return config


def find_config(start_dirs: list[Path], rootdir: Path) -> Path | None:
    """The ``modelroute.yaml`` next to the collected paths (searching up to the rootdir)."""
    found: list[Path] = []
    for start in start_dirs:
        current = start.resolve()
        root = rootdir.resolve()
        while True:
            candidate = current / CONFIG_NAME
            if candidate.is_file():
                if candidate not in found:
                    found.append(candidate)
                break
            if current == root or current.parent == current or root not in current.parents:
                break
            current = current.parent
    if not found:
        below: list[Path] = []
        for start in start_dirs:
            if start.is_dir():
                below.extend(sorted(start.resolve().glob(f"*/{CONFIG_NAME}")))
        found = below
    if len(found) > 1:
        listed = ", ".join(str(p) for p in found)
        raise ConfigError(
            f"several config files apply to this run ({listed}); "
            "run them separately or pass --model-route-config"
        )
    return found[0] if found else None
