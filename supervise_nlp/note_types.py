"""Which note types are supervision and which are visits, for the mirroring analysis.

Exports name note types in many ways ("Home Visit", "Office Visit", "Visit - home", "HV",
"Supervision session"). ``patterns/note_types.json`` lists the common ones; ``report --type-map
"NAME=visit"`` adds an organisation's own. Only the mirroring analysis reads types this way:
``--by type`` keeps each type as recorded.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Iterable
from functools import lru_cache
from importlib import resources
from typing import Any

KINDS = ("supervision", "visit")


def normalise(value: Any) -> str:
    """Lower case, punctuation as spaces, single spaces: 'Visit - Home' -> 'visit home'."""
    return " ".join(re.sub(r"[^\w]+", " ", str(value).lower()).split())


@lru_cache(maxsize=1)
def synonyms() -> dict[str, dict[str, frozenset[str]]]:
    data = json.loads(resources.files("supervise_nlp.patterns").joinpath("note_types.json").read_text("utf-8"))
    return {kind: {"exact": frozenset(normalise(x) for x in data[kind]["exact"]),
                   "words": frozenset(normalise(x) for x in data[kind]["words"])} for kind in KINDS}


def parse_type_map(items: Iterable[str]) -> dict[str, str]:
    """'Home Visit=visit' (repeatable) -> {normalised name: kind}. Raises ValueError with a plain message."""
    out = {}
    for item in items:
        name, sep, kind = item.partition("=")
        kind = normalise(kind)
        if not sep or not name.strip():
            raise ValueError(f"--type-map {item!r}: give NAME=KIND, e.g. --type-map 'Home Visit=visit'")
        if kind not in (*KINDS, "other"):
            raise ValueError(f"--type-map {item!r}: the kind must be visit, supervision or other (not {kind!r})")
        out[normalise(name)] = kind
    return out


def kind_of(value: Any, type_map: dict[str, str] | None = None) -> str | None:
    """'supervision', 'visit' or None (neither, or both words: 'supervision visit' is not guessed)."""
    norm = normalise(value)
    if not norm:
        return None
    if type_map and norm in type_map:
        kind = type_map[norm]
        return kind if kind in KINDS else None
    syn = synonyms()
    for kind in KINDS:
        if norm in syn[kind]["exact"]:
            return kind
    words = set(norm.split())
    hits = [kind for kind in KINDS if words & syn[kind]["words"]]
    return hits[0] if len(hits) == 1 else None


def read_types(values: Iterable[Any], type_map: dict[str, str] | None = None) -> tuple[list[str], dict[str, Any]]:
    """Each note's type as 'supervision', 'visit' or '' and what was read as what (for the report).

    Returns (kinds, info): info["read_as"] maps each kind to {recorded type: notes}, info["other"]
    the commonest types read as neither (with their note counts).
    """
    values = [str(v) for v in values]
    kind, info = read_type_counts(Counter(values), type_map)
    return [kind[v] for v in values], info


def read_type_counts(counts: dict[str, int], type_map: dict[str, str] | None = None
                     ) -> tuple[dict[str, str], dict[str, Any]]:
    """:func:`read_types` from each distinct type's note count (in order of first appearance), so a
    large report reads each type once, not once per note. Returns ({type: kind}, info)."""
    counts = Counter(counts)
    kind = {v: kind_of(v, type_map) or "" for v in counts}
    read_as: dict[str, dict[str, int]] = {k: {} for k in KINDS}
    other: dict[str, int] = {}
    for v, n in counts.most_common():
        if kind[v]:
            read_as[kind[v]][v] = n
        else:
            other[v] = n
    return kind, {"read_as": read_as, "other": dict(list(other.items())[:12])}


def why_no_mirroring(info: dict[str, Any], min_notes: int, teams_with_both: int, no_type_field: bool) -> str:
    """A plain reason the mirroring analysis could not be computed."""
    if no_type_field:
        return ("the notes have no note type (give the column with --type-field), so supervision cannot be told "
                "from visits")
    missing = [k for k in KINDS if not info["read_as"][k]]
    if missing:
        seen = ", ".join(f"'{t}' ({n})" for t, n in list(info["other"].items())[:8]) or "none"
        return (f"no note type was recognised as {' or '.join(missing)} (types found: {seen}); if one of them "
                f"is, say so with --type-map 'NAME={missing[0]}'")
    if teams_with_both == 0:
        return (f"no team has at least {min_notes} supervision and {min_notes} visit notes (--min-notes)")
    return (f"only {teams_with_both} team(s) have at least {min_notes} notes of each type; a correlation across "
            "teams needs at least 3")
