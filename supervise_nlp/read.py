"""Where a note is read: JSON Lines, CSV, plain text, folders of text, standard input.

Every input record comes out of :func:`read_records` exactly once, either as a :class:`Note`
(ready to label) or as a :class:`Reject` (with the file, line and a reason), in input order.
Nothing is dropped silently, so a run's counts always reconcile.
"""

from __future__ import annotations

import codecs
import csv
import io
import json
import os
import re
import sys
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

# Fields with a meaning to the tool; anything else is carried through untouched.
STANDARD_FIELDS = ("id", "text", "team", "worker", "type", "date")
DEFAULT_MAX_CHARS = 2_000_000
FORMATS = ("auto", "jsonl", "csv", "txt")


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


def _is_classified(record: Mapping[str, Any]) -> bool:
    counts = record.get("counts")
    return (
        isinstance(counts, dict)
        and all(isinstance(counts.get(k), int) for k in ("procedural", "change_focused", "neutral"))
        and isinstance(record.get("segments"), list)
        and record.get("label") in ("procedural", "change_focused", "unclassified")
    )


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
    raw = json.dumps(record, ensure_ascii=False) if opts.keep_raw else None
    fields: dict[str, Any] = {}
    mapped = {opts.column(k): k for k in STANDARD_FIELDS if opts.column(k) != k}
    for key, value in record.items():
        if key in mapped.values() and key not in mapped:
            key = f"input_{key}"  # a column named like a mapped field keeps its value, renamed
        fields[mapped.get(key, key)] = value
    if _is_classified(fields):
        return Labelled(fields, source, line)
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


def detect_encoding(path: Path, encoding: str) -> tuple[str, str | None]:
    """Pick the encoding for a file; return it with a notice when it was not plain UTF-8.

    Excel on Windows still writes Windows-1252; reading that as UTF-8 would garble names, so a
    file that is not valid UTF-8 but is valid Windows-1252 is read as such and the user is told.
    """
    if encoding != "auto":
        return encoding, None
    decoder = codecs.getincrementaldecoder("utf-8")()
    with open(path, "rb") as fh:
        try:
            while chunk := fh.read(1 << 20):
                decoder.decode(chunk)
            decoder.decode(b"", final=True)
            return "utf-8-sig", None
        except UnicodeDecodeError:
            pass
    utf8_text = re.compile(rb"[\xc2-\xf4][\x80-\xbf]+")
    try:
        with open(path, "rb") as fh:
            data_seen_utf8 = False
            while chunk := fh.read(1 << 20):
                chunk.decode("cp1252")
                data_seen_utf8 = data_seen_utf8 or bool(utf8_text.search(chunk))
    except UnicodeDecodeError:
        data_seen_utf8 = True
    if data_seen_utf8:
        # mostly UTF-8 with some bad bytes: reading it all as Windows-1252 would garble every name
        return "utf-8-sig", (f"{path}: not valid UTF-8 throughout; records with undecodable bytes are "
                             "rejected (name the encoding with --encoding)")
    return "cp1252", f"{path}: not valid UTF-8; read as Windows-1252 (set --encoding to override)"


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


def read_json_array(data: bytes, source: str, opts: ReadOptions, encoding: str) -> Iterator[Note | Reject]:
    """A ``.json`` file holding one array of notes: each item is a record (line = item number)."""
    try:
        items = json.loads(data.decode("utf-8" if encoding == "utf-8-sig" else encoding).lstrip("\ufeff"),
                           parse_constant=_no_constant)
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        yield Reject(source, 1, f"not a readable JSON array ({e}); JSON Lines (one note per line) reads "
                                "record by record")
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
        try:
            record = json.loads(line, parse_constant=_no_constant)
        except json.JSONDecodeError as e:
            truncated = "" if line.rstrip().endswith("}") else " (the line looks cut short)"
            yield Reject(source, n, f"malformed JSON ({e.msg}, column {e.colno}){truncated}",
                         line.rstrip("\r\n") if opts.keep_raw else None)
            continue
        if not isinstance(record, dict):
            yield Reject(source, n, f"the line is {_json_kind(record)}, not a JSON object",
                         line.rstrip("\r\n") if opts.keep_raw else None)
            continue
        yield make_note(record, source, n, opts)


# --- CSV -------------------------------------------------------------------------------------


def read_csv(stream: io.TextIOBase, source: str, opts: ReadOptions, encoding: str = "utf-8") -> Iterator[Note | Reject]:
    """Excel-style CSV: quoted fields may hold newlines, so records are counted by start line.

    The stream is decoded with ``surrogateescape``: a row holding bytes that are not valid in the
    encoding is rejected on its own, and the rest of the file is still read.
    """
    csv.field_size_limit(max(opts.max_chars * 4 + 1, 131072))  # the limit is --max-chars, not csv's
    sample = stream.read(64 * 1024)
    text_stream = _chain_text(sample, stream)
    # Excel's quoting rules, with the delimiter the header uses (some locales export ';')
    header_line = sample.splitlines()[0] if sample else ""
    delimiter = max(",;\t|", key=lambda d: (header_line.count(d), d == ","))
    reader = csv.reader(text_stream, csv.excel, delimiter=delimiter)
    try:
        header = next(reader)
    except StopIteration:
        return
    except csv.Error as e:
        yield Reject(source, 1, f"unreadable CSV header: {e}")
        return
    header = [h.lstrip("\ufeff").strip() for h in header]
    if opts.column("text") not in header:
        # the first row may be data (no header row): count it, and never echo note text
        looks_like_names = all(len(h) <= 40 and not re.search(r"[.!?]\s", h) for h in header)
        cols = ("columns: " + ", ".join(header[:12]) + (", ..." if len(header) > 12 else "")
                if looks_like_names else "the first row does not look like a header row")
        reason = (f"CSV has no '{opts.column('text')}' column ({cols}); map it with --text-field, "
                  "or add a header row")
        yield Reject(source, 1, reason + " [this is the first row]")
    else:
        reason = None
    line = reader.line_num + 1
    while True:
        start = line
        try:
            row = next(reader)
        except StopIteration:
            return
        except csv.Error as e:
            # after a parse error csv cannot tell where the next record starts: stop, and say so
            yield Reject(source, start, f"malformed CSV ({e}); the rest of the file from this line was not read")
            return
        line = reader.line_num + 1
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
        yield make_note(record, source, start, opts)


_UNDECODABLE = re.compile("[\udc80-\udcff]")


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


# --- plain text ------------------------------------------------------------------------------


def read_txt(path: Path, opts: ReadOptions, encoding: str) -> Note | Reject:
    source = str(path)
    try:
        text = path.read_bytes().decode("utf-8" if encoding == "utf-8-sig" else encoding)
    except UnicodeDecodeError as e:
        return Reject(source, 1, f"not valid {encoding} text ({e.reason}); try --encoding cp1252")
    text = text.removeprefix("\ufeff")
    return make_note({"id": path.stem, "text": text}, source, 1, opts)


# --- dispatch --------------------------------------------------------------------------------


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
        elif not os.access(p, os.R_OK):
            raise InputError(f"{item}: cannot be read (permission denied)")
        else:
            out.append(str(p))
    return iter(out)


def read_source(source: str, opts: ReadOptions, notice=None) -> Iterator[Note | Reject]:
    """Read one file (or ``-``), yielding notes and rejects in order."""
    if source == "-":
        data = sys.stdin.buffer.read()
        fmt = opts.input_format if opts.input_format != "auto" else guess_format("", data[:1024])
        enc = "utf-8-sig" if opts.encoding == "auto" else opts.encoding
        if fmt == "txt" and opts.input_format == "auto" and notice:
            notice("standard input read as one plain-text note (use --input-format csv or jsonl for an export)")
        if fmt == "txt":
            try:
                text = data.decode("utf-8" if enc == "utf-8-sig" else enc).removeprefix("\ufeff")
            except UnicodeDecodeError as e:
                yield Reject("<stdin>", 1, f"not valid {enc} text ({e.reason}); try --encoding cp1252")
                return
            yield make_note({"id": "stdin", "text": text}, "<stdin>", 1, opts)
        elif fmt == "csv":
            yield from read_csv(io.TextIOWrapper(io.BytesIO(data), encoding=enc, newline="", errors="surrogateescape"),
                                "<stdin>", opts, enc)
        else:
            yield from read_jsonl(io.BytesIO(data), "<stdin>", opts, enc)
        return
    path = Path(source)
    with open(path, "rb") as fh:
        head = fh.read(1024)
    if not head:
        if notice:
            notice(f"{source}: empty file, no records")
        return
    fmt = opts.input_format if opts.input_format != "auto" else guess_format(path.name, head)
    enc, message = detect_encoding(path, opts.encoding)
    if message and notice:
        notice(message)
    if fmt == "txt":
        yield read_txt(path, opts, enc)
    elif fmt == "csv":
        with open(path, encoding="utf-8" if enc == "utf-8-sig" else enc, newline="",
                  errors="surrogateescape") as fh:
            yield from read_csv(fh, source, opts, enc)
    elif head.lstrip(codecs.BOM_UTF8 + b" \t\r\n").startswith(b"["):
        yield from read_json_array(path.read_bytes(), source, opts, enc)
    else:
        with open(path, "rb") as fh:
            yield from read_jsonl(fh, source, opts, enc)


def read_records(inputs: Iterable[str], opts: ReadOptions | None = None, notice=None) -> Iterator[Note | Reject]:
    """All records of all inputs, in order. Raises :class:`InputError` before reading if a path is bad."""
    opts = opts or ReadOptions()
    for source in list(iter_sources(inputs, notice)):
        yield from read_source(source, opts, notice)


def read_corpus(paths: Iterable[str]) -> list[dict[str, Any]]:
    """Labelled corpus records (the codebook format), for training and evaluation."""
    records = []
    for source in iter_sources(paths):
        with open(source, encoding="utf-8-sig") as fh:
            for n, line in enumerate(fh, 1):
                if not line.strip():
                    continue
                try:
                    rec = json.loads(line)
                except json.JSONDecodeError as e:
                    raise InputError(f"{source}:{n}: malformed JSON in corpus ({e.msg})") from None
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
