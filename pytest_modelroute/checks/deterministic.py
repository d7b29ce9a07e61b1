"""Deterministic checks: string, JSON, number, distance and user-function checks."""

from __future__ import annotations

import importlib
import importlib.util
import inspect
import json
import re
import sys
import threading
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from . import CheckContext, CheckType, check_type

Spec = Mapping[str, Any]


def _text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)


def _list(spec: Spec, key: str = "value") -> list[str]:
    value = spec[key]
    if not isinstance(value, list | tuple):
        raise TypeError(f"{key!r} must be a list of strings, got {type(value).__name__}")
    return [_text(v) for v in value]


@check_type("equals", required=("value",), uses_reference=False)
def equals(output: str, spec: Spec, ctx: CheckContext) -> tuple[bool, str]:
    """The output equals ``value`` (JSON values compare as parsed JSON)."""
    value = spec["value"]
    if isinstance(value, dict | list):
        try:
            ok = json.loads(output) == value
        except ValueError:
            return False, "output is not JSON"
        return ok, "" if ok else "JSON differs from the expected value"
    ok = output == _text(value)
    return ok, "" if ok else f"expected {_text(value)!r}"


@check_type("contains", required=("value",))
def contains(output: str, spec: Spec, ctx: CheckContext) -> tuple[bool, str]:
    """The output contains ``value``."""
    ok = _text(spec["value"]) in output
    return ok, "" if ok else f"{_text(spec['value'])!r} not found"


@check_type("icontains", required=("value",))
def icontains(output: str, spec: Spec, ctx: CheckContext) -> tuple[bool, str]:
    """The output contains ``value``, ignoring case."""
    ok = _text(spec["value"]).lower() in output.lower()
    return ok, "" if ok else f"{_text(spec['value'])!r} not found (any case)"


@check_type("contains-any", required=("value",), keys=("ignore_case",))
def contains_any(output: str, spec: Spec, ctx: CheckContext) -> tuple[bool, str]:
    """The output contains at least one of the strings in ``value``."""
    fold = bool(spec.get("ignore_case"))
    hay = output.lower() if fold else output
    needles = [v.lower() if fold else v for v in _list(spec)]
    ok = any(n in hay for n in needles)
    return ok, "" if ok else f"none of {needles!r} found"


@check_type("contains-all", required=("value",), keys=("ignore_case",))
def contains_all(output: str, spec: Spec, ctx: CheckContext) -> tuple[float, str]:
    """The output contains every string in ``value``; partial credit per string found."""
    fold = bool(spec.get("ignore_case"))
    hay = output.lower() if fold else output
    needles = [v.lower() if fold else v for v in _list(spec)]
    if not needles:
        return 1.0, ""
    missing = [n for n in needles if n not in hay]
    score = 1 - len(missing) / len(needles)
    return score, "" if not missing else f"missing {missing!r}"


@check_type("starts-with", required=("value",))
def starts_with(output: str, spec: Spec, ctx: CheckContext) -> tuple[bool, str]:
    """The output starts with ``value``."""
    ok = output.startswith(_text(spec["value"]))
    return ok, "" if ok else f"does not start with {_text(spec['value'])!r}"


def _valid_regex(spec: Spec) -> str | None:
    try:
        re.compile(_text(spec["value"]))
    except re.error as exc:
        return f"invalid regular expression {spec['value']!r}: {exc}"
    return None


@check_type("regex", required=("value",), keys=("ignore_case",), validate=_valid_regex)
def regex(output: str, spec: Spec, ctx: CheckContext) -> tuple[bool, str]:
    """The output matches the regular expression ``value`` (search, not full match)."""
    flags = re.IGNORECASE if spec.get("ignore_case") else 0
    ok = re.search(_text(spec["value"]), output, flags) is not None
    return ok, "" if ok else f"no match for /{spec['value']}/"


@check_type("is-json")
def is_json(output: str, spec: Spec, ctx: CheckContext) -> tuple[bool, str]:
    """The output parses as JSON."""
    try:
        json.loads(output)
    except ValueError as exc:
        return False, f"not JSON: {exc}"
    return True, ""


def _valid_schema(spec: Spec) -> str | None:
    import jsonschema

    schema = spec["schema"]
    if not isinstance(schema, dict | bool):
        return "schema must be a JSON Schema (a mapping)"
    try:
        jsonschema.validators.validator_for(schema).check_schema(schema)
    except jsonschema.SchemaError as exc:
        return f"invalid JSON Schema: {exc.message}"
    return None


#: validators by their schema's JSON text: checking a schema against its metaschema takes
#: about 2.7 ms, validating one output about 0.05 ms (a cascade's json-schema acceptance
#: check ran the first on every output: 6 % of a 6,000-case suite's warm run)
_VALIDATORS: dict[str, Any] = {}
_MAX_VALIDATORS = 256


def _validator(schema: Any) -> Any:
    """A validator of ``schema``, the schema checked once (a rendered schema may differ
    from case to case: one validator per distinct schema)."""
    import jsonschema

    key = json.dumps(schema, sort_keys=True, default=repr)
    validator = _VALIDATORS.get(key)
    if validator is None:
        validator_cls = jsonschema.validators.validator_for(schema)
        validator_cls.check_schema(schema)  # an invalid schema raises, every time
        if len(_VALIDATORS) >= _MAX_VALIDATORS:
            _VALIDATORS.clear()
        validator = _VALIDATORS[key] = validator_cls(schema)
    return validator


@check_type("json-schema", required=("schema",), validate=_valid_schema)
def json_schema(output: str, spec: Spec, ctx: CheckContext) -> tuple[bool, str]:
    """The output is JSON valid against the JSON Schema ``schema``."""
    try:
        data = json.loads(output)
    except ValueError as exc:
        return False, f"not JSON: {exc}"
    errors = sorted(_validator(spec["schema"]).iter_errors(data), key=lambda e: list(e.path))
    if errors:
        err = errors[0]
        where = "/".join(map(str, err.path)) or "(root)"
        return False, f"{where}: {err.message}"
    return True, ""


_PATH_TOKEN = re.compile(r"\.?([^.\[\]]+)|\[(\d+|'[^']*'|\"[^\"]*\")\]")


def parse_json_path(path: str) -> list[str | int]:
    """``$.a.b[0]``, ``a.b.0`` or ``a['b c']`` -> ``["a", "b", 0]``."""
    text = path[1:] if path.startswith("$") else path
    parts: list[str | int] = []
    pos = 0
    while pos < len(text):
        m = _PATH_TOKEN.match(text, pos)
        if not m:
            raise ValueError(f"cannot parse JSON path {path!r} at {text[pos:]!r}")
        name, index = m.groups()
        if index is not None:
            parts.append(int(index) if index.isdigit() else index[1:-1])
        else:
            parts.append(int(name) if name.isdigit() else name)
        pos = m.end()
    return parts


@check_type("json-path", required=("path",), keys=("value",))
def json_path(output: str, spec: Spec, ctx: CheckContext) -> tuple[bool, str]:
    """The value at ``path`` in the JSON output equals ``value`` (or exists, without one)."""
    try:
        node: Any = json.loads(output)
    except ValueError as exc:
        return False, f"not JSON: {exc}"
    for part in parse_json_path(str(spec["path"])):
        if isinstance(part, int) and isinstance(node, list) and -len(node) <= part < len(node):
            node = node[part]
        elif isinstance(node, dict) and str(part) in node:
            node = node[str(part)]
        else:
            return False, f"{spec['path']} not found"
    if "value" not in spec:
        return True, ""
    expected = spec["value"]
    ok = node == expected or (
        not isinstance(node, dict | list) and _text(node).strip() == _text(expected).strip()
    )
    return ok, "" if ok else f"{spec['path']} is {json.dumps(node)[:80]}, expected {expected!r}"


_DECIMAL = re.compile(r"(?<!\d)-?\d(?:[\d,]*\d)?(?:\.\d+)?")
_DIGITS = re.compile(r"\d+")


def last_number(text: str, rule: str = "decimal") -> float | None:
    """The last number in ``text``.

    ``decimal`` (default) reads signs, thousands separators and decimals (``$1,200.50``
    is 1200.5). ``digits`` is the GSM8K graders' rule: drop commas, take the last run of
    digits (so ``$20.00`` reads as 0).
    """
    if rule == "digits":
        runs = _DIGITS.findall(text.replace(",", ""))
        return float(runs[-1]) if runs else None
    found = _DECIMAL.findall(text)
    return float(found[-1].replace(",", "")) if found else None


def _valid_last_number(spec: Spec) -> str | None:
    rule = spec.get("rule", "decimal")
    if rule not in ("decimal", "digits"):
        return f"rule must be 'decimal' or 'digits', got {rule!r}"
    if last_number(_text(spec["value"]), rule) is None:
        return f"value {spec['value']!r} holds no number"
    tolerance = spec.get("tolerance", 0)
    if isinstance(tolerance, bool) or not isinstance(tolerance, int | float) or tolerance < 0:
        return f"tolerance must be a number >= 0, got {tolerance!r}"
    return None


@check_type(
    "last-number", required=("value",), keys=("tolerance", "rule"), validate=_valid_last_number
)
def last_number_check(output: str, spec: Spec, ctx: CheckContext) -> tuple[bool, str]:
    """The last number in the output equals ``value`` (within ``tolerance``)."""
    rule = spec.get("rule", "decimal")
    if rule not in ("decimal", "digits"):
        raise ValueError(f"rule must be 'decimal' or 'digits', got {rule!r}")
    expected = last_number(_text(spec["value"]), rule)
    if expected is None:
        raise ValueError(f"value {spec['value']!r} holds no number")
    found = last_number(output, rule)
    if found is None:
        return False, "no number in the output"
    tolerance = float(spec.get("tolerance", 0) or 0)
    ok = abs(found - expected) <= tolerance + 1e-9
    return ok, "" if ok else f"last number {found:g}, expected {expected:g}"


def _valid_levenshtein(spec: Spec) -> str | None:
    limit = spec.get("max_distance", 3)
    if isinstance(limit, bool) or not isinstance(limit, int) or limit < 0:
        return f"max_distance must be a whole number >= 0, got {limit!r}"
    return None


@check_type("levenshtein", required=("value",), keys=("max_distance",), validate=_valid_levenshtein)
def levenshtein(output: str, spec: Spec, ctx: CheckContext) -> tuple[bool, str]:
    """The edit distance to ``value`` is at most ``max_distance`` (default 3)."""
    from rapidfuzz.distance import Levenshtein  # 15 ms to import: only where it is used

    limit = int(spec.get("max_distance", 3))
    distance = Levenshtein.distance(output, _text(spec["value"]))
    ok = distance <= limit
    return ok, f"distance {distance}" + ("" if ok else f" > {limit}")


def _valid_word_count(spec: Spec) -> str | None:
    if "min" not in spec and "max" not in spec:
        return "give 'min' and/or 'max'"
    for key in ("min", "max"):
        value = spec.get(key, 0)
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            return f"{key} must be a whole number >= 0, got {value!r}"
    return None


@check_type("word-count", keys=("min", "max"), validate=_valid_word_count)
def word_count(output: str, spec: Spec, ctx: CheckContext) -> tuple[bool, str]:
    """The output has between ``min`` and ``max`` words."""
    if "min" not in spec and "max" not in spec:
        raise ValueError("word-count needs 'min' and/or 'max'")
    n = len(output.split())
    low = int(spec.get("min", 0))
    high = int(spec.get("max", 10**9))
    ok = low <= n <= high
    return ok, f"{n} words" + ("" if ok else f", expected {low}..{spec.get('max', 'any')}")


_functions: dict[tuple[str, str], Callable[..., Any]] = {}
_import_lock = threading.Lock()


def load_function(ref: str, root: Path) -> Callable[..., Any]:
    """``module:function`` (importable, or from ``root``) or ``file.py:function``."""
    if ":" not in ref:
        raise ValueError(f"python check value must be 'module:function', got {ref!r}")
    target, name = ref.rsplit(":", 1)
    cache_key = (str(root), ref)
    with _import_lock:
        if cache_key in _functions:
            return _functions[cache_key]
        if target.endswith(".py"):
            path = (root / target).resolve()
            module_name = f"_modelroute_check_{abs(hash(str(path)))}"
            spec = importlib.util.spec_from_file_location(module_name, path)
            if spec is None or spec.loader is None or not path.is_file():
                raise FileNotFoundError(f"python check file {path} not found")
            module = importlib.util.module_from_spec(spec)
            spec.loader.exec_module(module)
        else:
            added = str(root) not in sys.path
            if added:
                sys.path.insert(0, str(root))
            try:
                module = importlib.import_module(target)
            finally:
                if added:
                    sys.path.remove(str(root))
        fn = getattr(module, name, None)
        if not callable(fn):
            raise AttributeError(f"{target} has no function {name!r}")
        _functions[cache_key] = fn
        return fn


@check_type("python", required=("value",), keys=("config",))
def python(output: str, spec: Spec, ctx: CheckContext) -> Any:
    """A user function ``f(output, context)`` returning bool, float or (score, reason)."""
    fn = load_function(str(spec["value"]), ctx.root)
    params = inspect.signature(fn).parameters
    if len(params) >= 2:
        return fn(
            output,
            {
                "vars": dict(ctx.vars),
                "expected": ctx.expected,
                "case": ctx.case,
                "task": ctx.task,
                "config": spec.get("config"),
            },
        )
    return fn(output)


CHECKS: dict[str, CheckType] = {
    c.name: c
    for c in (
        equals,
        contains,
        icontains,
        contains_any,
        contains_all,
        starts_with,
        regex,
        is_json,
        json_schema,
        json_path,
        last_number_check,
        levenshtein,
        word_count,
        python,
    )
}
