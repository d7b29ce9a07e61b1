"""Reading log files as a stream of calls, counting every line.

Files are read line by line (gzip is decompressed on the fly), so memory does not grow
with the file; a line longer than ``MAX_LINE_BYTES`` is reported, not loaded. Only a
log written as one JSON document (not JSON lines) is loaded whole, up to
``MAX_DOCUMENT_BYTES``. Every line ends up counted: as used, skipped (with its reason),
malformed (reported with its file and line, or fatal with ``--strict``), blank, or as a
batch request line joined with its output.
"""

from __future__ import annotations

import csv
import gzip
import io
import json
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from . import detect
from .calls import Call, Item, Malformed, Skip
from .readers import REQUEST_LINE, WAITING, Parser, ReaderOptions, anthropic, mapped, openai, otel

MAX_LINE_BYTES = 64 * 2**20
MAX_DOCUMENT_BYTES = 256 * 2**20
PARSERS: dict[str, Parser] = {
    detect.OPENAI: openai.parse,
    detect.ANTHROPIC: anthropic.parse,
    detect.OTLP: otel.parse,
    detect.MAPPED: mapped.parse,
}
NO_REQUEST = "batch output without its request line (pass the batch input file too)"


class LogProblem(Exception):
    """A log that cannot be read at all, or a malformed line under ``--strict``."""


@dataclass
class ReadStats:
    """Every line and record read, and what became of it."""

    files: list[tuple[str, str]] = field(default_factory=list)
    lines: int = 0
    bytes: int = 0
    used: int = 0
    skipped: Counter[str] = field(default_factory=Counter)
    malformed: Counter[str] = field(default_factory=Counter)
    malformed_lines: int = 0
    blank_lines: int = 0
    batch_requests: int = 0
    unanswered_requests: int = 0
    #: calls whose timestamp is there but unreadable, and the first of them
    unreadable_times: int = 0
    unreadable_time: str = ""
    #: files of a known format, read without the --map given (it is for other shapes)
    unmapped: list[str] = field(default_factory=list)


def _open(path: Path) -> IO[bytes]:
    try:
        raw = path.open("rb")
    except FileNotFoundError:
        raise LogProblem(f"{path}: no such file") from None
    except IsADirectoryError:
        raise LogProblem(f"{path}: is a directory, not a log file") from None
    except OSError as exc:
        raise LogProblem(f"{path}: cannot read: {exc.strerror}") from None
    if raw.read(2) == b"\x1f\x8b":
        raw.seek(0)
        return gzip.GzipFile(fileobj=raw, mode="rb")  # type: ignore[return-value]
    raw.seek(0)
    return raw


def _head(stream: IO[bytes]) -> list[bytes]:
    """The first lines (whole, however long, up to 64 KB in all), then back to the start."""
    lines: list[bytes] = []
    total = 0
    while total < 65536 and len(lines) < detect.SNIFF_RECORDS:
        line = stream.readline(MAX_LINE_BYTES)
        if not line:
            break
        lines.append(line)
        total += len(line)
    stream.seek(0)
    return lines


def _lines(stream: IO[bytes]) -> Iterator[bytes | None]:
    """Each line, or None for one longer than MAX_LINE_BYTES (skipped to its end)."""
    readline = stream.readline
    while True:
        line = readline(MAX_LINE_BYTES)
        if not line:
            return
        if len(line) >= MAX_LINE_BYTES and not line.endswith(b"\n"):
            while True:
                rest = readline(MAX_LINE_BYTES)
                if not rest or rest.endswith(b"\n"):
                    break
            yield None
        else:
            yield line


def _json_problem(raw: bytes, exc: json.JSONDecodeError) -> str:
    """What is wrong with a JSON line, with its column. A line cut short inside a string
    (a log truncated mid-write) ends at its newline, which json calls an "Invalid control
    character": parsed without it, it says "Unterminated string" as it is."""
    body = raw.rstrip(b"\r\n")
    if exc.pos >= len(body) and len(body) < len(raw):
        try:
            json.loads(body)
        except json.JSONDecodeError as inner:
            exc = inner
        except UnicodeDecodeError:
            pass
    at = " column" if exc.msg.endswith(" at") else " at column"
    return f"{exc.msg}{at} {exc.colno}"


def _dialect(head: str) -> type[csv.Dialect]:
    """Standard CSV quoting (RFC 4180, as spreadsheets and pandas write it: a quote in a
    quoted cell is doubled) with the header's delimiter. Only
    the delimiter is taken from the sniffer: from one header line it cannot see how quotes
    are escaped, and guessed ``doublequote=False`` split every cell holding ``""``."""
    try:
        delimiter = csv.Sniffer().sniff(head, delimiters=",;\t|").delimiter
    except csv.Error:
        return csv.excel
    return type("Sniffed", (csv.excel,), {"delimiter": delimiter})


class LogReader:
    """Reads log files into calls; ``on_problem`` hears of each malformed line."""

    def __init__(
        self,
        options: ReaderOptions,
        *,
        strict: bool = False,
        on_problem: Callable[[str], None] | None = None,
    ) -> None:
        self.options = options
        self.strict = strict
        self.on_problem = on_problem or (lambda message: None)
        self.stats = ReadStats()

    def read(self, paths: list[Path]) -> Iterator[Call]:
        try:
            for path in paths:
                yield from self._file(path)
            yield from self._finish()
        finally:
            self.options.join.close()

    def _problem(self, where: str, message: str, reason: str) -> None:
        self.stats.malformed_lines += 1
        self.stats.malformed[reason] += 1
        text = f"{where}: {message}"
        if self.strict:
            raise LogProblem(text + " (--strict)")
        self.on_problem(text)

    def _file(self, path: Path) -> Iterator[Call]:
        try:
            yield from self._stream(path)
        except (OSError, EOFError) as exc:  # a corrupt or truncated gzip stream, a bad disk
            raise LogProblem(
                f"{path}: cannot read past line {self.stats.lines:,}: {exc or type(exc).__name__}"
            ) from None

    def _stream(self, path: Path) -> Iterator[Call]:
        with _open(path) as stream:
            container, fmt = detect.sniff(_head(stream))
            if container == detect.JSON_DOC:
                yield from self._document(path, stream)
            elif container == detect.CSV:
                self.stats.files.append((str(path), "csv"))
                self.stats.bytes += path.stat().st_size  # as stored (compressed if gzip)
                yield from self._csv(path, stream)
            else:
                assert fmt is not None
                self.stats.files.append((str(path), fmt))
                if self.options.field_map and fmt != detect.MAPPED:
                    self.stats.unmapped.append(f"{path.name} ({fmt})")
                yield from self._jsonl(path, stream, fmt)

    def _jsonl(self, path: Path, stream: IO[bytes], fmt: str) -> Iterator[Call]:
        parser = PARSERS[fmt]
        stats = self.stats
        checked = fmt != detect.MAPPED
        for lineno, raw in enumerate(_lines(stream), 1):
            stats.lines += 1
            where = f"{path}:{lineno}"
            if raw is None:
                self._problem(
                    where, f"line longer than {MAX_LINE_BYTES // 2**20} MB", "line too long"
                )
                continue
            stats.bytes += len(raw)
            if not raw.strip():
                stats.blank_lines += 1
                continue
            try:
                record = json.loads(raw)
            except UnicodeDecodeError:
                self._problem(where, "not valid UTF-8", "not UTF-8")
                continue
            except json.JSONDecodeError as exc:
                self._problem(where, f"invalid JSON: {_json_problem(raw, exc)}", "invalid JSON")
                continue
            if not isinstance(record, dict):
                self._problem(where, "expected a JSON object", "not a JSON object")
                continue
            if not checked:
                self._check_mapping(path, record)
                checked = True
            yield from self._record(record, parser, where)

    def _record(self, record: dict[str, Any], parser: Parser, where: str) -> list[Call]:
        self.options.where = where
        try:
            items = parser(record, self.options)
        except Malformed as exc:
            items = self._other_provider(record, parser)
            if items is None:
                self._problem(where, str(exc), "not the shape its format promises")
                return []
        return self._count(items, where)

    def _other_provider(self, record: dict[str, Any], parser: Parser) -> list[Item] | None:
        """A gateway's log mixes OpenAI and Anthropic records: a record its file's format
        cannot read, but that is plainly the other provider's, is read as such (and the
        file's format shown as both)."""
        found = detect.classify(record)
        if found is None or not found[1] or found[0] not in (detect.OPENAI, detect.ANTHROPIC):
            return None
        other = PARSERS[found[0]]
        if other is parser:
            return None
        try:
            items = other(record, self.options)
        except Malformed:
            return None
        path, fmt = self.stats.files[-1]
        if found[0] not in fmt.split("+"):
            self.stats.files[-1] = (path, f"{fmt}+{found[0]}")
        return items

    def _count(self, items: list[Item], where: str) -> list[Call]:
        stats = self.stats
        calls = []
        for item in items:
            if item is REQUEST_LINE:
                stats.batch_requests += 1
            elif item is WAITING:
                pass  # counted once its request line is read, or at the end as NO_REQUEST
            elif isinstance(item, Skip):
                stats.skipped[item.reason] += 1
            else:
                stats.used += 1
                if not item.where:
                    item.where = where
                calls.append(item)
        return calls

    def _check_mapping(self, path: Path, record: dict[str, Any]) -> None:
        """A file of an unknown shape: its first record must have the mapped fields."""
        from .calls import lookup

        fields = self.options.field_map
        needed = [fields.get("output", "output")]
        prompt = fields.get("messages") or fields.get("prompt", "prompt")
        needed.append(prompt)
        missing = [f for f in needed if lookup(record, f) is None]
        if missing:
            keys = ", ".join(list(record)[:12]) or "none"
            raise LogProblem(
                f"{path}: not a known log format (OpenAI, Anthropic, OTLP), and its first "
                f"record has no field {missing[0]!r}; say which fields hold the prompt and "
                f"the output, e.g. --map prompt=FIELD,output=FIELD (its fields: {keys})"
            )

    def _document(self, path: Path, stream: IO[bytes]) -> Iterator[Call]:
        data = stream.read(MAX_DOCUMENT_BYTES + 1)
        self.stats.lines += data.count(b"\n") + 1
        self.stats.bytes += len(data)
        if len(data) > MAX_DOCUMENT_BYTES:
            raise LogProblem(
                f"{path}: one JSON document larger than {MAX_DOCUMENT_BYTES // 2**20} MB; "
                "export it as JSON lines (one record per line) to stream it"
            )
        try:
            document = json.loads(data)
        except ValueError as exc:
            line = getattr(exc, "lineno", None)
            raise LogProblem(
                f"{path}:{line or 1}: invalid JSON: {getattr(exc, 'msg', exc)}"
            ) from None
        records = detect.records_of(document)
        fmt = detect.format_of(records)
        self.stats.files.append((str(path), fmt))
        parser = PARSERS[fmt]
        for i, record in enumerate(records, 1):
            where = f"{path}: record {i}"
            if not isinstance(record, dict):
                self._problem(where, "expected a JSON object", "not a JSON object")
                continue
            if fmt == detect.MAPPED and i == 1:
                self._check_mapping(path, record)
            yield from self._record(record, parser, where)

    def _csv(self, path: Path, stream: IO[bytes]) -> Iterator[Call]:
        csv.field_size_limit(MAX_LINE_BYTES)
        text = io.TextIOWrapper(stream, encoding="utf-8-sig", newline="", errors="strict")
        try:
            head = text.readline(MAX_LINE_BYTES)
        except UnicodeDecodeError:
            raise LogProblem(
                f"{path}:1: not a log file: not UTF-8 text (expected JSON lines, a JSON "
                "document or CSV, optionally gzip-compressed)"
            ) from None
        if not head:
            return  # an empty file: no lines
        dialect = _dialect(head)
        header = next(csv.reader([head], dialect))
        base = self.stats.lines + 1
        self.stats.lines = base
        reader = csv.reader(text, dialect)
        first = True
        while True:
            try:
                row = next(reader)
            except StopIteration:
                break
            except UnicodeDecodeError:
                self.stats.lines = base + reader.line_num + 1
                self._problem(
                    f"{path}:{reader.line_num + 2}",
                    "not valid UTF-8: the rest of this CSV file is not read",
                    "not UTF-8",
                )
                break
            except csv.Error as exc:
                self.stats.lines = base + reader.line_num
                self._problem(f"{path}:{reader.line_num + 1}", f"invalid CSV: {exc}", "invalid CSV")
                continue
            self.stats.lines = base + reader.line_num
            where = f"{path}:{reader.line_num + 1}"
            if not row or not any(cell.strip() for cell in row):
                self.stats.blank_lines += 1
                continue
            if len(row) != len(header):
                self._problem(
                    where,
                    f"{len(row)} fields where the header has {len(header)}",
                    "wrong number of CSV fields",
                )
                continue
            record = dict(zip(header, row))
            if first:
                self._check_mapping(path, record)
                first = False
            yield from self._record(record, mapped.parse, where)
        if first:  # a line of text alone reads as a CSV header: say so, not "no records"
            self.stats.skipped[
                f"line of {path.name}, not JSON, read as a CSV header with no rows after it"
            ] += 1

    def _finish(self) -> Iterator[Call]:
        left = self.options.join.leftovers()
        waiting = left.get("output", 0)
        if waiting:
            self.stats.skipped[NO_REQUEST] += waiting
        self.stats.unanswered_requests = left.get("request", 0)
        self.stats.unreadable_times = self.options.unreadable_times
        self.stats.unreadable_time = self.options.unreadable_time
        return iter(())
