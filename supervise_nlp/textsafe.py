"""Text that is safe to show: on a terminal, in a spreadsheet, in a chart, in JSON.

Everything a run prints or writes for people can hold text from an export (team and worker
names, note text, file names). These helpers make sure such text is shown, never obeyed:
terminal escape sequences and other control characters are dropped, spreadsheet formulas are
neutralised (OWASP's CSV-injection guidance), and JSON leaves no raw C1 control or line
separator that a terminal or a JavaScript reader would act on. Light: no heavy imports.
"""

from __future__ import annotations

import json
import re
from typing import Any

# C0 controls except tab and newline, DEL, C1 controls, and the bidirectional overrides and
# isolates that can make a name read differently from what it is (Trojan Source)
_CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u200e\u200f\u202a-\u202e\u2066-\u2069\ufeff]")
_CONTROL_LINE = re.compile("[\x00-\x1f\x7f-\x9f\u200e\u200f\u202a-\u202e\u2066-\u2069\ufeff\u2028\u2029]")
_SURROGATE = re.compile("[\ud800-\udfff]")
# what JSON encoders leave raw with ensure_ascii=False but a terminal or browser may act on
_JSON_RAW = re.compile("[\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")


def clean(text: Any, newlines: bool = True) -> str:
    """``text`` with control characters removed (and lone surrogates replaced): safe to print.

    With ``newlines=False`` line breaks and tabs go too (a name or a table cell stays one line).
    """
    s = text if isinstance(text, str) else str(text)
    s = _SURROGATE.sub("\ufffd", s)
    if newlines:
        return _CONTROL.sub("", s.replace("\r\n", "\n").replace("\r", "\n"))
    return _CONTROL_LINE.sub("", s.replace("\r\n", " ").replace("\n", " ").replace("\r", " ").replace("\t", " "))


def safe_name(path: Any) -> str:
    """A file name as it can be printed or stored: undecodable bytes and controls made visible."""
    s = str(path)
    if _SURROGATE.search(s):
        s = s.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
    return _CONTROL_LINE.sub("?", s)


# OWASP: a cell starting with one of these is a formula in Excel, LibreOffice or Sheets; the
# full-width forms are folded to them by some spreadsheet locales
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r", "\n", "\uff1d", "\uff0b", "\uff0d", "\uff20")


def csv_cell(value: Any) -> Any:
    """A spreadsheet cell that is shown, never evaluated: text starting like a formula gets a ``'``."""
    if not isinstance(value, str):
        return value
    value = clean(value, newlines=False)
    if value.startswith(_FORMULA_START):
        return "'" + value
    return value


def mathtext_safe(text: Any) -> str:
    """A chart label matplotlib shows as written: ``$`` never starts mathematics, no controls."""
    return clean(text, newlines=False).replace("$", r"\$")


def dumps(obj: Any, **kw: Any) -> str:
    """``json.dumps`` (UTF-8 text kept) with C1 controls, bidi overrides and line separators escaped."""
    text = json.dumps(obj, ensure_ascii=False, **kw)
    return _JSON_RAW.sub(lambda m: f"\\u{ord(m.group()):04x}", text)


def has_surrogate(text: str) -> bool:
    return bool(_SURROGATE.search(text))
