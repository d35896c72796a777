"""Where a note is read: JSON Lines, CSV, plain text, folders of text, standard input.

Every input record comes out of :func:`read_records` exactly once, either as a :class:`Note`
(ready to label) or as a :class:`Reject` (with the file, line and a reason), in input order.
Nothing is dropped silently, so a run's counts always reconcile.
"""

from __future__ import annotations

import codecs
import io
import json
import os
import re
import stat
import sys
import tempfile
from collections import deque
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

from .textsafe import has_surrogate

# Fields with a meaning to the tool; anything else is carried through untouched.
STANDARD_FIELDS = ("id", "text", "team", "worker", "type", "date")
DEFAULT_MAX_CHARS = 2_000_000
DEFAULT_MAX_LINES = 100_000  # physical lines one CSV record may span before its quote is taken as unclosed
DEFAULT_MAX_BYTES = 4 << 30  # what a compressed input may expand to (a zip bomb stops here)
MAX_DEPTH = 64  # nesting of JSON values in one record (notes are flat; 100,000 '[' are an attack)
FORMATS = ("auto", "jsonl", "csv", "txt")
COUNT_KEYS = ("procedural", "change_focused", "neutral")


class InputError(Exception):
    """An input that cannot be read at all (missing path, empty folder): a message, not a traceback."""


@dataclass
class Note:
    """One readable note: its text plus every other field of the record, untouched."""

    text: str
    fields: dict[str, Any]
    source: str
    line: int

    @property
    def id(self) -> Any:
        return self.fields.get("id")


@dataclass
class Labelled:
    """A record that is already the output of ``classify``: reported as is, never labelled again."""

    fields: dict[str, Any]
    source: str
    line: int

    @property
    def counts(self) -> dict[str, int]:
        return self.fields["counts"]


def _looks_classified(record: Mapping[str, Any]) -> bool:
    return "counts" in record and "segments" in record and "label" in record


def _classified_problem(record: Mapping[str, Any], max_chars: int) -> str | None:
    """Why a record shaped like ``classify`` output cannot be trusted as one (None when it can).

    Counts come from a file anyone can edit: a negative count gives intervals above 1 and 10^23
    overflows the sums, so each must be a whole number from 0 to the note's possible segments.
    """
    counts = record.get("counts")
    if not isinstance(counts, dict) or set(counts) != set(COUNT_KEYS):
        return "classify output whose 'counts' is not procedural, change_focused and neutral"
    for k in COUNT_KEYS:
        v = counts[k]
        if isinstance(v, bool) or not isinstance(v, int):
            return f"classify output whose count '{k}' is not a whole number"
        if not 0 <= v <= max_chars:
            return f"classify output whose count '{k}' is out of range (0 to {max_chars:,})"
    segs = record.get("segments")
    if not isinstance(segs, list):
        return "classify output whose 'segments' is not a list"
    if record.get("label") not in ("procedural", "change_focused", "unclassified"):
        return "classify output with an unknown label"
    return None


_SCALARS = (int, float, bool, type(None))


def _value_problem(record: Any) -> str | None:
    """Values no output can hold: lone surrogates (half a character), nesting past MAX_DEPTH."""
    if isinstance(record, dict):
        # the usual export row: a flat record of strings and numbers, checked in one pass
        for k, v in record.items():
            if isinstance(v, str):
                if not v.isascii() and has_surrogate(v):
                    break
            elif not isinstance(v, _SCALARS):
                break
            if not isinstance(k, str) or (not k.isascii() and has_surrogate(k)):
                break
        else:
            return None
    stack = [(record, 1)]
    while stack:
        value, depth = stack.pop()
        if depth > MAX_DEPTH:
            return f"values nested more than {MAX_DEPTH} deep"
        if isinstance(value, str):
            if has_surrogate(value):
                return "a value holds a lone surrogate (\\ud800-\\udfff: half of a character), not valid text"
        elif isinstance(value, dict):
            for k, v in value.items():
                if has_surrogate(k):
                    return "a field name holds a lone surrogate (half of a character), not valid text"
                stack.append((v, depth + 1))
        elif isinstance(value, list):
            stack.extend((v, depth + 1) for v in value)
    return None


def _raw_json(record: Any) -> str | None:
    try:
        return json.dumps(record, ensure_ascii=False) if not _value_problem(record) else \
            json.dumps(record, ensure_ascii=True)[:100_000]
    except (ValueError, RecursionError):
        return None


@dataclass
class Reject:
    """A record that could not be labelled, and why."""

    source: str
    line: int
    reason: str
    raw: str | None = None

    def to_dict(self, keep_raw: bool = False) -> dict[str, Any]:
        out: dict[str, Any] = {"file": self.source, "line": self.line, "reason": self.reason}
        if keep_raw and self.raw is not None:
            out["raw"] = self.raw
        return out


@dataclass
class ReadOptions:
    """How to find the note fields in the input; one object shared by every reader."""

    field_map: Mapping[str, str] = field(default_factory=dict)  # standard name -> input column
    encoding: str = "auto"
    input_format: str = "auto"
    max_chars: int = DEFAULT_MAX_CHARS
    keep_raw: bool = False
    max_lines: int = DEFAULT_MAX_LINES
    max_bytes: int = DEFAULT_MAX_BYTES

    def column(self, name: str) -> str:
        return self.field_map.get(name, name)


def corpus_text(record: Mapping[str, Any]) -> str:
    """The text of a labelled corpus record: its segments joined as its layout says."""
    sep = "\n" if record.get("layout") == "lines" else " "
    return sep.join(s["text"] for s in record["segments"])


def _json_kind(value: Any) -> str:
    """How a JSON value is described to a person reading a rejects file."""
    if isinstance(value, bool):
        return "true/false"
    return {int: "a number", float: "a number", str: "a string", list: "a list", dict: "an object"}.get(
        type(value), f"a {type(value).__name__}")


def _is_corpus_record(record: Mapping[str, Any]) -> bool:
    segs = record.get("segments")
    return (
        "text" not in record
        and isinstance(segs, list)
        and bool(segs)
        and all(isinstance(s, dict) and isinstance(s.get("text"), str) for s in segs)
    )


def make_note(record: dict[str, Any], source: str, line: int, opts: ReadOptions) -> Note | Labelled | Reject:
    """Validate one parsed record and map its columns to the standard field names."""
    problem = _value_problem(record)
    raw = _raw_json(record) if opts.keep_raw else None
    if problem:
        return Reject(source, line, problem, raw)
    fields: dict[str, Any] = {}
    mapped = {opts.column(k): k for k in STANDARD_FIELDS if opts.column(k) != k}
    for key, value in record.items():
        if key in mapped.values() and key not in mapped:
            key = f"input_{key}"  # a column named like a mapped field keeps its value, renamed
        fields[mapped.get(key, key)] = value
    if _looks_classified(fields):
        why = _classified_problem(fields, opts.max_chars)
        return Reject(source, line, why, raw) if why else Labelled(fields, source, line)
    if _is_corpus_record(fields):
        text = corpus_text(fields)
        fields.pop("segments")
    elif opts.column("text") not in record:
        have = ", ".join(sorted(map(str, record))[:12]) or "none"
        return Reject(source, line, f"no '{opts.column('text')}' field (fields: {have})", raw)
    else:
        text = fields.pop("text")
    if text is None:
        return Reject(source, line, "text is null", raw)
    if not isinstance(text, str):
        return Reject(source, line, f"text is {_json_kind(text)}, not a string", raw)
    if not text.strip():
        return Reject(source, line, "text is empty" if not text else "text is only whitespace", raw)
    if len(text) > opts.max_chars:
        return Reject(
            source,
            line,
            f"text is {len(text):,} characters, over the limit of {opts.max_chars:,} (--max-chars)",
            raw,
        )
    return Note(text=text, fields=fields, source=source, line=line)


# --- encodings -------------------------------------------------------------------------------

_BOMS = ((codecs.BOM_UTF32_LE, "utf-32"), (codecs.BOM_UTF32_BE, "utf-32"), (codecs.BOM_UTF8, "utf-8-sig"),
         (codecs.BOM_UTF16_LE, "utf-16"), (codecs.BOM_UTF16_BE, "utf-16"))
_WIDE = ("utf-16", "utf-16-le", "utf-16-be", "utf-32", "utf-32-le", "utf-32-be")


def _norm_enc(encoding: str) -> str:
    try:
        return codecs.lookup(encoding).name.replace("_", "-")
    except LookupError:
        return encoding.lower()


def sniff_wide_encoding(head: bytes) -> str | None:
    """UTF-8, UTF-16 or UTF-32 from a byte-order mark, or UTF-16 by its zero bytes (Excel's
    "Unicode text" export); None when the bytes say nothing."""
    for bom, enc in _BOMS:
        if head.startswith(bom):
            return enc
    sample = head[:4096]
    if len(sample) >= 8:
        even, odd = sample[0::2], sample[1::2]
        if odd.count(0) > 0.3 * len(odd) and even.count(0) < 0.05 * len(even):
            return "utf-16-le"
        if even.count(0) > 0.3 * len(even) and odd.count(0) < 0.05 * len(odd):
            return "utf-16-be"
    return None


def _mark_undecodable(e: UnicodeError) -> tuple[str, int]:
    """Error handler for wide encodings: bad code units become a marker the UTF-8 reader rejects."""
    if isinstance(e, UnicodeDecodeError):
        return "\udcff", e.end
    raise e


codecs.register_error("supervise-nlp-mark", _mark_undecodable)


def detect_encoding(path: Path | BinaryIO, encoding: str) -> tuple[str, str | None]:
    """Pick the encoding for a file; return it with a notice when it was not plain UTF-8.

    A byte-order mark (or UTF-16's zero bytes) is believed first. Excel on Windows still writes
    Windows-1252; reading that as UTF-8 would garble names, so a file that is not valid UTF-8 but
    is valid Windows-1252 is read as such and the user is told.
    """
    if encoding != "auto":
        return encoding, None
    if isinstance(path, (str, Path)):
        with open(path, "rb") as fh:
            return detect_encoding(fh, encoding)
    fh, name = path, getattr(path, "name", "input")
    fh.seek(0)
    wide = sniff_wide_encoding(fh.read(4096))
    fh.seek(0)
    if wide and wide != "utf-8-sig":
        return wide, f"{name}: read as {wide.upper()} (byte-order mark or zero bytes)"
    decoder = codecs.getincrementaldecoder("utf-8")()
    try:
        while chunk := fh.read(1 << 20):
            decoder.decode(chunk)
        decoder.decode(b"", final=True)
        return "utf-8-sig", None
    except UnicodeDecodeError:
        pass
    finally:
        fh.seek(0)
    utf8_text = re.compile(rb"[\xc2-\xf4][\x80-\xbf]+")
    try:
        data_seen_utf8 = False
        while chunk := fh.read(1 << 20):
            chunk.decode("cp1252")
            data_seen_utf8 = data_seen_utf8 or bool(utf8_text.search(chunk))
    except UnicodeDecodeError:
        data_seen_utf8 = True
    finally:
        fh.seek(0)
    if data_seen_utf8:
        # mostly UTF-8 with some bad bytes: reading it all as Windows-1252 would garble every name
        return "utf-8-sig", (f"{name}: not valid UTF-8 throughout; records with undecodable bytes are "
                             "rejected (name the encoding with --encoding)")
    return "cp1252", f"{name}: not valid UTF-8; read as Windows-1252 (set --encoding to override)"


def _spool(stream: BinaryIO, cap: int) -> BinaryIO | None:
    """A seekable copy of ``stream`` (in memory while small); None if it grows past ``cap`` bytes."""
    out = tempfile.SpooledTemporaryFile(max_size=32 << 20)
    total = 0
    while chunk := stream.read(1 << 20):
        total += len(chunk)
        if total > cap:
            out.close()
            return None
        out.write(chunk)
    out.seek(0)
    return out


def _transcode(fh: BinaryIO, encoding: str, cap: int) -> BinaryIO:
    """UTF-16/32 bytes as UTF-8 bytes, so every reader splits lines as usual; a bad code unit
    becomes bytes that are not UTF-8, so only its own record is rejected."""
    out = tempfile.SpooledTemporaryFile(max_size=32 << 20)
    dec = codecs.getincrementaldecoder(encoding)(errors="supervise-nlp-mark")
    fh.seek(0)
    while chunk := fh.read(1 << 20):
        out.write(dec.decode(chunk).encode("utf-8", "surrogatepass"))
    out.write(dec.decode(b"", final=True).encode("utf-8", "surrogatepass"))
    out.seek(0)
    return out


def _decode_lines(stream: BinaryIO, encoding: str) -> Iterator[tuple[int, str | None, bytes]]:
    """Yield (line number, decoded text or None when undecodable, raw bytes) for each line."""
    first = True
    for n, raw in enumerate(stream, 1):
        if first and encoding.lower().replace("_", "-") in ("utf-8-sig", "utf-8", "utf8"):
            raw = raw.removeprefix(codecs.BOM_UTF8)
        first = False
        try:
            yield n, raw.decode("utf-8" if encoding == "utf-8-sig" else encoding), raw
        except UnicodeDecodeError:
            yield n, None, raw


# --- JSON Lines ------------------------------------------------------------------------------


def _no_constant(name: str) -> None:
    """NaN and Infinity are not JSON; read them as null so the output stays valid JSON."""
    return None


def _parse_json(text: str) -> tuple[Any, str | None]:
    """(value, None), or (None, why not) for text that is not JSON or that no reader should build."""
    try:
        return json.loads(text, parse_constant=_no_constant), None
    except json.JSONDecodeError as e:
        truncated = "" if text.rstrip().endswith(("}", "]")) else " (the line looks cut short)"
        return None, f"malformed JSON ({e.msg}, column {e.colno}){truncated}"
    except RecursionError:
        return None, "JSON nested too deeply to read (more levels than any note has)"
    except ValueError as e:  # e.g. an integer of more than 4,300 digits
        return None, f"JSON with a value that cannot be read ({str(e).split(':')[0][:80]})"


def read_json_array(data: bytes, source: str, opts: ReadOptions, encoding: str) -> Iterator[Note | Reject]:
    """A ``.json`` file holding one array of notes: each item is a record (line = item number)."""
    try:
        text = data.decode("utf-8" if encoding == "utf-8-sig" else encoding).lstrip("\ufeff")
    except UnicodeDecodeError as e:
        yield Reject(source, 1, f"not a readable JSON array ({e.reason}); JSON Lines (one note per line) reads "
                                "record by record")
        return
    items, why = _parse_json(text)
    if why or not isinstance(items, list):
        yield Reject(source, 1, f"not a readable JSON array ({why or 'not an array'}); JSON Lines (one note per "
                                "line) reads record by record")
        return
    for i, rec in enumerate(items, 1):
        if isinstance(rec, dict):
            yield make_note(rec, source, i, opts)
        else:
            yield Reject(source, i, f"item {i} of the array is {_json_kind(rec)}, not a JSON object")


def read_jsonl(stream: BinaryIO, source: str, opts: ReadOptions, encoding: str) -> Iterator[Note | Labelled | Reject]:
    for n, line, raw in _decode_lines(stream, encoding):
        if line is None:
            yield Reject(source, n, f"line is not valid {encoding} text (try --encoding cp1252)",
                         raw.decode("utf-8", "replace") if opts.keep_raw else None)
            continue
        if not line.strip():
            continue  # blank lines are layout, not records
        record, why = _parse_json(line)
        if why:
            yield Reject(source, n, why, line.rstrip("\r\n") if opts.keep_raw else None)
            continue
        if not isinstance(record, dict):
            yield Reject(source, n, f"the line is {_json_kind(record)}, not a JSON object",
                         line.rstrip("\r\n")[:100_000] if opts.keep_raw else None)
            continue
        yield make_note(record, source, n, opts)


# --- CSV -------------------------------------------------------------------------------------

_START, _QUOTED, _UNQUOTED = 0, 1, 2


class _Lines:
    """Physical lines with their numbers, and a way to read some of them again."""

    def __init__(self, lines: Iterable[str]) -> None:
        self._it = iter(lines)
        self._back: deque[tuple[int, str]] = deque()
        self._n = 0

    def next(self) -> tuple[int, str] | None:
        if self._back:
            return self._back.popleft()
        line = next(self._it, None)
        if line is None:
            return None
        self._n += 1
        return self._n, line

    def again(self, lines: list[tuple[int, str]]) -> None:
        self._back.extendleft(reversed(lines))


def csv_records(lines: Iterable[str], delimiter: str = ",", max_lines: int = DEFAULT_MAX_LINES
                ) -> Iterator[tuple[int, list[str] | None, str | None]]:
    """Excel-style CSV records: (start line, fields, None), or (start line, None, why) for a record
    whose quoted field never closes properly.

    Python's csv module lets an unclosed quote swallow every later row into one field. Here a
    quoted field that runs to the end of the file, past ``max_lines`` lines, or that "closes" on a
    later line with text straight after the quote (a later row's opening quote) is taken as
    unclosed: its first line is rejected and reading starts again on the next line, so one bad
    row costs one record.
    """
    src = _Lines(lines)
    first = True
    while True:
        got = src.next()
        if got is None:
            return
        start, cur = got
        if first:
            cur = cur.lstrip("\ufeff")  # a byte-order mark before a quoted header
            first = False
        taken = [(start, cur)]
        fields: list[str] = []
        buf: list[str] = []
        state = _START
        why = None
        while True:
            body = cur.rstrip("\r\n")
            term = cur[len(body):]
            pos, n = 0, len(body)
            done = False
            while True:
                if state == _QUOTED:
                    i = body.find('"', pos)
                    if i < 0:
                        buf.append(body[pos:])
                        buf.append(term)
                        break  # the field goes on at the next line
                    buf.append(body[pos:i])
                    if i + 1 < n and body[i + 1] == '"':
                        buf.append('"')
                        pos = i + 2
                        continue
                    pos = i + 1
                    if pos >= n:
                        fields.append("".join(buf))
                        done = True
                        break
                    if body[pos] == delimiter:
                        fields.append("".join(buf))
                        pos += 1
                        state = _START
                        continue
                    if len(taken) > 1:
                        why = "mid"
                        done = True
                        break
                    state = _UNQUOTED  # text after a closing quote on one line: kept, as csv does
                    continue
                if state == _START:
                    buf = []
                    if pos < n and body[pos] == '"':
                        state = _QUOTED
                        pos += 1
                        continue
                    state = _UNQUOTED
                i = body.find(delimiter, pos)
                if i < 0:
                    buf.append(body[pos:])
                    fields.append("".join(buf))
                    done = True
                    break
                buf.append(body[pos:i])
                fields.append("".join(buf))
                pos = i + 1
                state = _START
            if done:
                break
            if len(taken) >= max_lines:
                why = "long"
                break
            got = src.next()
            if got is None:
                why = "eof"
                break
            taken.append(got)
            cur = got[1]
        if why:
            src.again(taken[1:])
            reason = {
                "eof": "a quoted field opened on this line is never closed (an unclosed quote)",
                "long": f"a quoted field opened on this line runs on for more than {max_lines:,} lines "
                        "(an unclosed quote?)",
                "mid": "a quoted field opened on this line only closes lines later, inside another row "
                       "(an unclosed quote)",
            }[why]
            yield start, None, reason + "; the rest of the file was read from the next line"
        else:
            yield start, fields, None


def read_csv(stream: io.TextIOBase, source: str, opts: ReadOptions, encoding: str = "utf-8",
             notice=None) -> Iterator[Note | Reject]:
    """Excel-style CSV: quoted fields may hold newlines, so records are counted by start line.

    The stream is decoded with ``surrogateescape``: a row holding bytes that are not valid in the
    encoding is rejected on its own, and the rest of the file is still read. An unclosed quote
    costs its own row only (see :func:`csv_records`).
    """
    sample = stream.read(64 * 1024)
    text_stream = _chain_text(sample, stream)
    # Excel's quoting rules, with the delimiter the header uses (some locales export ';')
    header_line = sample.lstrip("\ufeff").splitlines()[0] if sample.strip() else ""
    delimiter = max(",;\t|", key=lambda d: (header_line.count(d), d == ","))
    records = csv_records(text_stream, delimiter, max(2, opts.max_lines))
    header = None
    for start, row, why in records:
        if why:
            yield Reject(source, start, f"unreadable CSV header: {why}")
            continue
        if row and any(c.strip() for c in row):
            header = row
            break
    if header is None:
        return
    header = [h.lstrip("\ufeff").strip() for h in header]
    if opts.column("text") not in header:
        # the first row may be data (no header row): count it, and never echo a value
        looks_like_names = all(_HEADER_NAME.match(h) and len(h.split()) <= 4 for h in header)
        cols = ("columns: " + ", ".join(header[:12]) + (", ..." if len(header) > 12 else "")
                if looks_like_names else f"the first row, of {len(header)} field(s), does not look like a header row")
        reason = (f"CSV has no '{opts.column('text')}' column ({cols}); map it with --text-field, "
                  "or add a header row")
        yield Reject(source, start, reason + " [this is the first row]")
    else:
        reason = None
    lengths: list[int] = []
    for start, row, why in records:
        if why:
            yield Reject(source, start, why)
            continue
        if not row or all(not c.strip() for c in row):
            continue
        raw = ",".join(row) if opts.keep_raw else None
        if any(_UNDECODABLE.search(c) for c in row):
            hint = "try --encoding cp1252 for Excel on Windows" if "utf" in encoding else "check --encoding"
            yield Reject(source, start, f"row holds bytes that are not valid {encoding} ({hint})",
                         raw.encode("utf-8", "surrogateescape").decode("utf-8", "replace") if raw else None)
            continue
        if reason:
            yield Reject(source, start, reason, raw)
            continue
        if len(row) != len(header):
            yield Reject(source, start, f"row has {len(row)} field(s) but the header has {len(header)}", raw)
            continue
        record = dict(zip(header, row))
        item = make_note(record, source, start, opts)
        if notice and isinstance(item, Note):
            _warn_suspicious(item, header, delimiter, lengths, notice)
        yield item


_HEADER_NAME = re.compile(r"^[^\W\d][\w \-/#()]{0,39}$")
_UNDECODABLE = re.compile("[\udc80-\udcff]")


def _warn_suspicious(note: Note, header: list[str], delimiter: str, lengths: list[int], notice) -> None:
    """A note holding many lines shaped like rows of its file, or far longer than the notes before
    it, is most likely rows swallowed by a stray quote: it is kept, and the user is told where."""
    text = note.text
    if len(header) > 1 and "\n" in text:
        rowlike = sum(1 for ln in text.splitlines() if ln.count(delimiter) >= len(header) - 1)
        if rowlike >= 3:
            notice(f"{note.source}:{note.line}: warning: this note holds {rowlike} lines shaped like rows of "
                   "the file (a stray quote may have joined rows); check it")
    if len(lengths) >= 20:
        typical = sorted(lengths)[len(lengths) // 2]
        if len(text) > max(20_000, 50 * typical):
            notice(f"{note.source}:{note.line}: warning: this note is {len(text):,} characters, far longer than "
                   f"the others (typically {typical:,}); check that rows were not joined")
    if len(lengths) < 1000:
        lengths.append(len(text))


def _chain_text(first: str, rest: io.TextIOBase) -> Iterator[str]:
    """Lines of ``first`` followed by the rest of the stream, without reading it all into memory."""
    buf = io.StringIO(first, newline="")  # split on \r, \n and \r\n alike, as the stream does
    pending = ""
    for line in buf:
        if line.endswith(("\n", "\r")):
            yield pending + line
            pending = ""
        else:
            pending += line
    for line in rest:
        yield pending + line
        pending = ""
    if pending:
        yield pending


# --- spreadsheets ----------------------------------------------------------------------------


def _cell(value: Any) -> str:
    import datetime as dt

    if value is None:
        return ""
    if isinstance(value, dt.datetime):
        return value.date().isoformat() if value.time() == dt.time() else value.isoformat()
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def read_xlsx(fh: BinaryIO, source: str, opts: ReadOptions, notice=None) -> Iterator[Note | Reject]:
    """The first sheet of an Excel workbook (openpyxl, read-only: rows are streamed, formulas are
    read as their saved values, never evaluated): a header row, then one note per row."""
    try:
        import openpyxl
    except ImportError:
        yield Reject(source, 1, "reading .xlsx needs openpyxl (pip install openpyxl), or save the sheet as CSV")
        return
    import zipfile

    try:
        with zipfile.ZipFile(fh) as z:
            expanded = sum(i.file_size for i in z.infolist())
    except (zipfile.BadZipFile, OSError, ValueError):
        yield Reject(source, 1, "not a readable .xlsx workbook")
        return
    if expanded > opts.max_bytes:
        yield Reject(source, 1, f"workbook expands to {expanded:,} bytes, over the limit of {opts.max_bytes:,}")
        return
    fh.seek(0)
    try:
        wb = openpyxl.load_workbook(fh, read_only=True, data_only=True)
    except Exception as e:  # openpyxl raises many kinds for a damaged or foreign file
        yield Reject(source, 1, f"not a readable .xlsx workbook ({type(e).__name__})")
        return
    try:
        if len(wb.worksheets) > 1 and notice:
            notice(f"{source}: only the first of {len(wb.worksheets)} sheets was read")
        rows = wb.worksheets[0].iter_rows(values_only=True)
        header = None
        first = 0
        for k, row in enumerate(rows, 1):
            cells = [_cell(v) for v in row]
            if any(c.strip() for c in cells):
                header, first = cells, k
                break
        if header is None:
            return
        while header and not header[-1].strip():
            header.pop()
        header = [h.strip() for h in header]
        if opts.column("text") not in header:
            yield Reject(source, first, f"sheet has no '{opts.column('text')}' column; map it with --text-field")
            return
        for n, row in enumerate(rows, first + 1):
            cells = [_cell(v) for v in row]
            if not any(c.strip() for c in cells):
                continue
            extra = cells[len(header):]
            if any(c.strip() for c in extra):
                yield Reject(source, n, f"row has {len(cells)} field(s) but the header has {len(header)}")
                continue
            cells = (cells + [""] * len(header))[:len(header)]
            yield make_note(dict(zip(header, cells)), source, n, opts)
    finally:
        wb.close()


# --- plain text ------------------------------------------------------------------------------


def read_txt(path: Path | BinaryIO, opts: ReadOptions, encoding: str, name: str | None = None,
             source: str | None = None) -> Note | Reject:
    if isinstance(path, (str, Path)):
        path = Path(path)
        data, name, source = path.read_bytes(), name or path.name, source or str(path)
    else:
        path.seek(0)
        data = path.read()
    try:
        text = data.decode("utf-8" if encoding == "utf-8-sig" else encoding)
    except UnicodeDecodeError as e:
        return Reject(source, 1, f"not valid {encoding} text ({e.reason}); try --encoding cp1252")
    text = text.removeprefix("\ufeff")
    return make_note({"id": Path(name).stem, "text": text}, source, 1, opts)


# --- dispatch --------------------------------------------------------------------------------

ARCHIVE_SUFFIXES = (".gz", ".zip", ".xlsx")
KNOWN_SUFFIXES = (".jsonl", ".ndjson", ".json", ".csv", ".tsv", ".txt", *ARCHIVE_SUFFIXES)


def guess_format(name: str, head: bytes = b"") -> str:
    lower = name.lower()
    if lower.endswith((".jsonl", ".ndjson", ".json")):
        return "jsonl"
    if lower.endswith((".csv", ".tsv")):
        return "csv"
    if lower.endswith(".txt"):
        return "txt"
    stripped = head.lstrip(codecs.BOM_UTF8 + b" \t\r\n")
    return "jsonl" if stripped.startswith(b"{") else "txt"


def iter_sources(inputs: Iterable[str], notice=None) -> Iterator[str]:
    """Expand folders to their .txt files; check every path exists before any work starts."""
    out = []
    for item in inputs:
        if item == "-":
            out.append(item)
            continue
        p = Path(item)
        if not p.exists():
            raise InputError(f"{item}: no such file or folder")
        if p.is_dir():
            entries = list(p.iterdir())
            files = sorted(f for f in entries if f.suffix.lower() == ".txt" and f.is_file())
            if not files:
                raise InputError(f"{item}: folder has no .txt files")
            if notice and len(files) < len(entries):
                notice(f"{item}: {len(entries) - len(files)} entr(ies) that are not .txt files were skipped")
            out.extend(str(f) for f in files)
        elif not stat.S_ISREG(p.stat().st_mode):
            # a device (/dev/zero never ends) or a pipe (read twice to detect its encoding)
            raise InputError(f"{item}: not a regular file (give '-' to read standard input)")
        elif not os.access(p, os.R_OK):
            raise InputError(f"{item}: cannot be read (permission denied)")
        else:
            out.append(str(p))
    return iter(out)


def _archive_kind(name: str, head: bytes) -> str | None:
    lower = name.lower()
    if lower.endswith(".gz") or head[:2] == b"\x1f\x8b":
        return "gz"
    if lower.endswith(".xlsx"):
        return "xlsx"
    if lower.endswith(".zip") or head[:4] == b"PK\x03\x04":
        return "zip"
    return None


def _read_stream(fh: BinaryIO, source: str, name: str, opts: ReadOptions, notice=None, depth: int = 0,
                 stdin: bool = False) -> Iterator[Note | Labelled | Reject]:
    """Read one seekable binary stream named ``name``: archives are opened, text decoded, each
    record yielded once."""
    fh.seek(0)
    head = fh.read(4096)
    fh.seek(0)
    if not head:
        if notice:
            notice(f"{source}: empty file, no records")
        return
    kind = _archive_kind(name, head) if opts.input_format == "auto" or depth == 0 else None
    if kind and opts.input_format != "auto" and not head.startswith((b"\x1f\x8b", b"PK\x03\x04")):
        kind = None  # --input-format names what the bytes are
    if kind:
        if depth >= 2:
            yield Reject(source, 1, "an archive inside an archive inside an archive is not read")
            return
        if kind == "gz":
            yield from _read_gzip(fh, source, name, opts, notice, depth)
        elif kind == "zip" and not _is_workbook(fh):
            yield from _read_zip(fh, source, opts, notice, depth)
        else:
            yield from read_xlsx(fh, source, opts, notice)
        return
    fmt = opts.input_format if opts.input_format != "auto" else guess_format(name, head)
    if stdin and fmt == "txt" and opts.input_format == "auto" and notice:
        notice("standard input read as one plain-text note (use --input-format csv or jsonl for an export)")
    enc, message = detect_encoding(fh, opts.encoding)
    if message and notice:
        notice(message.replace(getattr(fh, "name", "input") + ":", source + ":", 1)
               if not message.startswith(source) else message)
    if _norm_enc(enc) in _WIDE:
        fh = _transcode(fh, enc, opts.max_bytes)
        enc = "utf-8"
        head = fh.read(4096)
        fh.seek(0)
        if opts.input_format == "auto":
            fmt = guess_format(name, head)
    if fmt == "txt":
        yield read_txt(fh, opts, enc, name=name if not stdin else "stdin", source=source)
    elif fmt == "csv":
        text = io.TextIOWrapper(fh, encoding="utf-8" if enc == "utf-8-sig" else enc, newline="",
                                errors="surrogateescape")
        try:
            yield from read_csv(text, source, opts, enc, notice)
        finally:
            text.detach()
    elif head.lstrip(codecs.BOM_UTF8 + b" \t\r\n").startswith(b"["):
        yield from read_json_array(fh.read(), source, opts, enc)
    else:
        yield from read_jsonl(fh, source, opts, enc)


def _is_workbook(fh: BinaryIO) -> bool:
    import zipfile

    try:
        with zipfile.ZipFile(fh) as z:
            return "xl/workbook.xml" in z.namelist()
    except (zipfile.BadZipFile, OSError, ValueError):
        return False
    finally:
        fh.seek(0)


def _read_gzip(fh: BinaryIO, source: str, name: str, opts: ReadOptions, notice, depth: int):
    import gzip
    import zlib

    try:
        with gzip.GzipFile(fileobj=fh) as gz:
            inner = _spool(gz, opts.max_bytes)
    except (OSError, EOFError, zlib.error) as e:
        yield Reject(source, 1, f"not a readable gzip file ({type(e).__name__})")
        return
    if inner is None:
        yield Reject(source, 1, f"decompresses to more than {opts.max_bytes:,} bytes (a zip bomb?); not read")
        return
    inner_name = name[:-3] if name.lower().endswith(".gz") else name
    with inner:
        yield from _read_stream(inner, source, inner_name, opts, notice, depth + 1)


def _read_zip(fh: BinaryIO, source: str, opts: ReadOptions, notice, depth: int):
    """Each file in a .zip is read as a file of its own (by its extension); others are skipped."""
    import zipfile
    import zlib

    try:
        z = zipfile.ZipFile(fh)
    except (zipfile.BadZipFile, OSError, ValueError) as e:
        yield Reject(source, 1, f"not a readable zip file ({type(e).__name__})")
        return
    with z:
        members = [i for i in z.infolist() if not i.is_dir()]
        wanted = [i for i in members if i.filename.lower().endswith(KNOWN_SUFFIXES)
                  and not i.filename.startswith("__MACOSX/") and not Path(i.filename).name.startswith(".")]
        if notice and len(wanted) < len(members):
            notice(f"{source}: {len(members) - len(wanted)} file(s) in the archive of no known format were skipped")
        if not wanted:
            yield Reject(source, 1, "zip file holds no .jsonl, .csv, .txt or .xlsx files")
            return
        expanded = sum(i.file_size for i in wanted)
        if expanded > opts.max_bytes:
            yield Reject(source, 1, f"zip file expands to {expanded:,} bytes, over the limit of {opts.max_bytes:,} "
                                    "(a zip bomb?); not read")
            return
        for info in wanted:
            member = f"{source}:{info.filename}"
            try:
                with z.open(info) as m:
                    inner = _spool(m, min(opts.max_bytes, info.file_size + (1 << 20)))
            except (RuntimeError, NotImplementedError, zipfile.BadZipFile, OSError, EOFError, zlib.error) as e:
                # encrypted, an unknown compression or damaged: this member only
                yield Reject(member, 1, f"file in the archive cannot be read ({type(e).__name__})")
                continue
            if inner is None:
                yield Reject(member, 1, "file in the archive is larger than the archive says; not read")
                continue
            with inner:
                yield from _read_stream(inner, member, info.filename, opts, notice, depth + 1)


def read_source(source: str, opts: ReadOptions, notice=None) -> Iterator[Note | Reject]:
    """Read one file (or ``-``), yielding notes and rejects in order."""
    if source == "-":
        data = _spool(sys.stdin.buffer, opts.max_bytes)
        if data is None:
            yield Reject("<stdin>", 1, f"standard input is over {opts.max_bytes:,} bytes; not read")
            return
        with data:
            yield from _read_stream(data, "<stdin>", "", opts, notice, stdin=True)
        return
    path = Path(source)
    with open(path, "rb") as fh:
        yield from _read_stream(fh, source, path.name, opts, notice)


def read_records(inputs: Iterable[str], opts: ReadOptions | None = None, notice=None) -> Iterator[Note | Reject]:
    """All records of all inputs, in order. Raises :class:`InputError` before reading if a path is bad.

    Once reading starts nothing in a file can stop the run: should a reader fail in a way no rule
    foresaw, the rest of that file is one reject (with the failure's kind, never its values) and
    the next file is read.
    """
    opts = opts or ReadOptions()
    for source in list(iter_sources(inputs, notice)):
        last = 0
        try:
            for item in read_source(source, opts, notice):
                last = max(last, item.line) if item.source == source else last
                yield item
        except (Exception, RecursionError, MemoryError) as e:
            what = e.strerror if isinstance(e, OSError) and e.strerror else type(e).__name__
            yield Reject(source, last + 1, f"reading stopped here ({what}); the rest of this file was not read")


def read_corpus(paths: Iterable[str]) -> list[dict[str, Any]]:
    """Labelled corpus records (the codebook format), for training and evaluation."""
    records = []
    for source in iter_sources(paths):
        with open(source, encoding="utf-8-sig") as fh:
            for n, line in enumerate(fh, 1):
                if not line.strip():
                    continue
                rec, why = _parse_json(line)
                if why:
                    raise InputError(f"{source}:{n}: {why} in corpus") from None
                if not isinstance(rec, dict) or not _is_corpus_record(rec):
                    raise InputError(f"{source}:{n}: not a labelled corpus record (needs 'segments')")
                for k, s in enumerate(rec["segments"]):
                    if s.get("label") not in ("procedural", "change_focused", "neutral"):
                        raise InputError(_bad_label(source, n, k, s))
                records.append(rec)
    return records


def _bad_label(source: str, line: int, k: int, seg: Mapping[str, Any]) -> str:
    """Which segment, which label, and the labels that are valid."""
    label = seg.get("label")
    text = str(seg.get("text", ""))
    said = "no label" if label is None else f"the label {label!r}"
    fix = str(label).strip().lower().replace("-", "_").replace(" ", "_") if label is not None else ""
    hint = f" (did you mean {fix!r}?)" if fix in ("procedural", "change_focused", "neutral") else ""
    return (f"{source}:{line}: segment {k + 1} ({text[:60]!r}{'…' if len(text) > 60 else ''}) has {said}{hint}; "
            "valid labels: procedural, change_focused, neutral")


def gold_spans(record: Mapping[str, Any]) -> list[tuple[int, int, str]]:
    """(start, end, label) of each gold segment in the joined corpus text."""
    sep = 1
    spans, pos = [], 0
    for s in record["segments"]:
        spans.append((pos, pos + len(s["text"]), s["label"]))
        pos += len(s["text"]) + sep
    return spans
