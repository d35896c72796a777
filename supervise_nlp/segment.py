"""Where a note is split into segments, the codebook's unit: sentences in prose, lines in forms.

The pipeline is a blank English spaCy ``Language`` (no model download) with two additions:
tokenizer special cases so recording abbreviations ("s.47", "approx.", "D.o.B.") stay whole, and
the ``note_segmenter`` component, which marks segment starts. The rules follow the clinical
sentence splitters (PyRuSH, pysbd): a line break ends a segment unless the line was merely
wrapped, terminal punctuation ends one unless it closes an abbreviation or a list number, and
closing quotes and brackets stay with the sentence they close. They are computed with array
operations over a whole batch, so segmentation costs about what spaCy's own sentencizer does.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources

import numpy as np
from spacy.attrs import IDX, IS_SPACE, LENGTH, ORTH, SENT_START, SPACY
from spacy.attrs import LOWER as LOWER_ATTR
from spacy.language import Language
from spacy.tokens import Doc, Span

TERMINAL, CLOSER, NEWLINE, LISTMARK, TITLE, LOWER, SPACE, HEADEND, CONTINUES = (1 << i for i in range(9))
TERMINAL_TOKENS = {".", "!", "?", "...", "..", "?!", "!?", "!!", "??", "…"}
CLOSING_TOKENS = {'"', "'", ")", "]", "”", "’", "»"}
# A line break inside a sentence (text wrapped by an export) is only recognised when the line ends
# on a word that cannot end a line and the next starts in lower case; terse notes are written a
# line per point, lower case or not, so anything looser merges separate points.
CONTINUATION_WORDS = {"the", "a", "an", "and", "or", "to", "of", "with", "for", "in", "on", "at", "by",
                      "her", "his", "their", "my", "our", "your", "that", "which", "who", "is", "was",
                      "were", "be", "been", "from", "as", "but", "about", "into", "if", "than", ","}


# per-doc results the segmenter leaves for the stages after it (keyed with the doc's length, so a
# doc changed since is worked out afresh)
SEGMENTS_KEY = "supervise_nlp.segments"
FEATURES_KEY = "supervise_nlp.lower_space"


def load_abbreviations() -> list[str]:
    text = resources.files("supervise_nlp.patterns").joinpath("abbreviations.txt").read_text("utf-8")
    return [ln.strip() for ln in text.splitlines() if ln.strip() and not ln.startswith("#")]


@lru_cache(maxsize=1 << 20)
def _token_flags(text: str) -> int:
    f = 0
    if text in TERMINAL_TOKENS or (len(text) > 1 and set(text) <= set(".!?…")):
        f |= TERMINAL
    if text in CLOSING_TOKENS:
        f |= CLOSER
    if text.isspace():
        f |= SPACE
        if "\n" in text or "\r" in text:
            f |= NEWLINE
    if text.isdigit() and len(text) <= 3 or (len(text) == 1 and text.isalpha()):
        f |= LISTMARK
    if text[:1].isupper():
        f |= TITLE
    if text[:1].islower():
        f |= LOWER
    if text in (":",) or text.endswith(":"):
        f |= HEADEND
    if text.lower() in CONTINUATION_WORDS:
        f |= CONTINUES
    return f


@Language.factory("note_segmenter")
class NoteSegmenter:
    """Marks segment starts (``token.is_sent_start``) by the codebook's unit rules."""

    def __init__(self, nlp: Language, name: str = "note_segmenter"):
        self.name = name
        self.vocab = nlp.vocab
        self._flags: dict[int, int] = {}  # word (ORTH id) -> rule flags, computed once per word

    def _lookup(self, orths: np.ndarray) -> np.ndarray:
        """Rule flags for every token: one hash factorisation, then one lookup per distinct word."""
        import pandas as pd

        codes, uniq = pd.factorize(orths)
        cache, strings = self._flags, self.vocab.strings
        vals = np.fromiter((cache[k] if k in cache else cache.setdefault(k, _token_flags(strings[k]))
                            for k in uniq.tolist()), dtype=np.int64, count=len(uniq))
        return vals[codes]

    def __call__(self, doc: Doc) -> Doc:
        return next(iter(self.pipe([doc])))

    def pipe(self, docs: Iterable[Doc], batch_size: int = 256) -> Iterator[Doc]:
        batch: list[Doc] = []
        for doc in docs:
            batch.append(doc)
            if len(batch) >= batch_size:
                yield from self._mark(batch)
                batch = []
        if batch:
            yield from self._mark(batch)

    def _mark(self, docs: list[Doc]) -> list[Doc]:
        docs_nonempty = [d for d in docs if len(d)]
        if not docs_nonempty:
            return docs
        arrays = [d.to_array([ORTH, SPACY, IDX, LENGTH, LOWER_ATTR]) for d in docs_nonempty]
        lengths = np.array([len(a) for a in arrays])
        arr = np.concatenate(arrays)
        flags = self._lookup(arr[:, 0])
        ws = arr[:, 1].astype(bool)
        doc_first = np.zeros(len(arr), dtype=bool)
        offsets = np.cumsum(lengths) - lengths
        doc_first[offsets] = True
        starts = segment_starts(flags, ws, doc_first)
        values = np.where(starts, 1, -1).astype(np.uint64).reshape(-1, 1)
        # what labelling reads next, worked out here for the whole batch at once: each doc's
        # segments (segments_of) and its (LOWER, IS_SPACE) token array (the featurizer)
        is_space = (flags & SPACE) > 0
        per_doc = _batch_segments(starts, is_space, arr[:, 2].astype(np.int64), arr[:, 3].astype(np.int64),
                                  offsets, lengths)
        feats = np.stack([arr[:, 4], is_space.astype(np.uint64)], axis=1)
        for d, off, n, segs in zip(docs_nonempty, offsets.tolist(), lengths.tolist(), per_doc):
            d.from_array([SENT_START], values[off:off + n])
            d.user_data[SEGMENTS_KEY] = (n, segs)
            d.user_data[FEATURES_KEY] = (n, feats[off:off + n])
        return docs


def segment_starts(flags: np.ndarray, ws: np.ndarray, doc_first: np.ndarray) -> np.ndarray:
    """Boolean array: does each token start a segment? Works across many concatenated docs."""
    n = len(flags)
    is_space = (flags & SPACE) > 0
    newline = (flags & NEWLINE) > 0
    terminal = (flags & TERMINAL) > 0
    closer = (flags & CLOSER) > 0
    prev = np.zeros(n, dtype=bool)  # token i has a token before it in the same doc
    prev[1:] = ~doc_first[1:]

    # A list number ("1." / "a.") at the start of a line is a marker, not a sentence end.
    line_start = doc_first.copy()
    line_start[1:] |= newline[:-1]
    listmark_start = ((flags & LISTMARK) > 0) & line_start
    after_listmark = np.zeros(n, dtype=bool)
    after_listmark[1:] = listmark_start[:-1] & prev[1:] & ~ws[:-1]
    terminal &= ~after_listmark

    # Closing quotes/brackets glued to a terminal run belong to that sentence.
    end = terminal.copy()
    for _ in range(3):
        ext = np.zeros(n, dtype=bool)
        ext[1:] = end[:-1] & ~ws[:-1] & closer[1:] & prev[1:]
        if not ext.any():
            break
        end |= ext
    # The sentence ends at the last token of that run.
    run_continues = np.zeros(n, dtype=bool)
    run_continues[:-1] = end[1:] & prev[1:] & ~ws[:-1] & (closer[1:] | terminal[1:])
    end_last = end & ~run_continues

    cand = np.zeros(n, dtype=bool)
    # after a sentence end: a new segment if there is a space, or a capital starts straight after ("visit.Mum")
    nxt_title = np.zeros(n, dtype=bool)
    nxt_title[:-1] = (flags[1:] & TITLE) > 0
    cand[1:] = end_last[:-1] & prev[1:] & (ws[:-1] | nxt_title[:-1] | is_space[1:])

    # After a line break: a new segment unless the previous line was just wrapped prose.
    after_nl = np.zeros(n, dtype=bool)
    after_nl[1:] = newline[:-1] & prev[1:]
    prev_nonspace_flags = _previous_nonspace(flags, is_space, doc_first)
    ends_open = (prev_nonspace_flags & CONTINUES) > 0
    soft_wrap = after_nl & ends_open & ((flags & LOWER) > 0)
    cand |= after_nl & ~soft_wrap
    cand |= doc_first

    # A boundary that lands on whitespace moves to the next real token.
    starts = np.zeros(n, dtype=bool)
    cand_pos = np.where(cand)[0]
    tgt = _next_true(~is_space)[cand_pos]
    doc_id = np.cumsum(doc_first) - 1
    ok = tgt < n
    ok[ok] &= doc_id[tgt[ok]] == doc_id[cand_pos[ok]]
    starts[tgt[ok]] = True
    # every doc's first token stays a start so spaCy sees a complete partition
    starts |= doc_first
    return starts


def _batch_segments(starts: np.ndarray, is_space: np.ndarray, idx: np.ndarray, length: np.ndarray,
                    offsets: np.ndarray, lengths: np.ndarray) -> list[list[tuple[int, int, int, int]]]:
    """Per doc, its segments as (start char, end char, first token, end token), leading and
    trailing whitespace left out: what :func:`segments_of` gives, for a whole batch at once."""
    n = len(starts)
    seg_start = np.flatnonzero(starts)
    seg_end = np.empty_like(seg_start)
    seg_end[:-1] = seg_start[1:]
    seg_end[-1:] = n  # every doc's first token is a start, so no segment runs into the next doc
    nonspace = ~is_space
    # first non-space token at or after each position; last non-space token at or before it
    nxt = _next_true(nonspace)
    prv = np.maximum.accumulate(np.where(nonspace, np.arange(n), -1))
    s = nxt[seg_start]
    keep = s < seg_end
    s, e = s[keep], prv[seg_end[keep] - 1] + 1
    doc = np.searchsorted(offsets, s, side="right") - 1
    base = offsets[doc]
    rows = zip((idx[s]).tolist(), (idx[e - 1] + length[e - 1]).tolist(), (s - base).tolist(), (e - base).tolist())
    out: list[list[tuple[int, int, int, int]]] = [[] for _ in range(len(lengths))]
    for d, row in zip(doc.tolist(), rows):
        out[d].append(row)
    return out


def _next_true(mask: np.ndarray) -> np.ndarray:
    """For each position, the index of the first True at or after it (len(mask) if none)."""
    n = len(mask)
    pos = np.where(mask, np.arange(n), n)
    return np.minimum.accumulate(pos[::-1])[::-1]


def _previous_nonspace(flags: np.ndarray, is_space: np.ndarray, doc_first: np.ndarray) -> np.ndarray:
    """Flags of the nearest non-space token before each position (0 at a doc's start)."""
    n = len(flags)
    pos = np.where(~is_space, np.arange(n), -1)
    last = np.maximum.accumulate(pos)
    out = np.zeros(n, dtype=np.int64)
    prev_last = np.full(n, -1)
    prev_last[1:] = last[:-1]
    doc_start = np.maximum.accumulate(np.where(doc_first, np.arange(n), 0))
    valid = prev_last >= doc_start
    out[valid] = flags[prev_last[valid]]
    return out


@lru_cache(maxsize=1)
def get_nlp() -> Language:
    """The one segmentation pipeline of the process (built once, reused everywhere)."""
    nlp = _blank_english()
    for abbr in load_abbreviations():
        for form in {abbr, abbr.lower(), abbr.capitalize(), abbr.upper()}:
            nlp.tokenizer.add_special_case(form, [{ORTH: form}])
    nlp.add_pipe("note_segmenter")
    nlp.max_length = 3_000_000
    return nlp


def _blank_english() -> Language:
    import spacy

    return spacy.blank("en")


@dataclass(frozen=True, slots=True)
class Segment:
    """A segment: character offsets into the note's text, and its tokens in the note's doc."""

    start: int
    end: int
    doc: Doc
    first: int  # token index of the first token
    last: int  # token index after the last token

    @property
    def span(self) -> Span:
        return self.doc[self.first:self.last]

    @property
    def text(self) -> str:
        return self.doc.text[self.start:self.end]


def segments_of(doc: Doc) -> list[Segment]:
    """The segments of a processed doc, with leading and trailing whitespace left out.

    Read from one ``to_array`` call instead of ``doc.sents`` and token objects (which cost more
    than the segmentation itself); the result is the same, segment for segment.
    """
    n = len(doc)
    if not n:
        return []
    done = doc.user_data.get(SEGMENTS_KEY)
    if done is None or done[0] != n:  # not left by the segmenter (or the doc changed since)
        if not doc.has_annotation("SENT_START"):
            return _segments_by_sents(doc)
        arr = doc.to_array([SENT_START, IS_SPACE, IDX, LENGTH]).astype(np.int64)
        starts = arr[:, 0] == 1
        starts[0] = True
        done = (n, _batch_segments(starts, arr[:, 1] == 1, arr[:, 2], arr[:, 3], np.zeros(1, np.int64),
                                   np.array([n]))[0])
    return [Segment(a, b, doc, f, z) for a, b, f, z in done[1]]


def _segments_by_sents(doc: Doc) -> list[Segment]:
    out = []
    for sent in doc.sents:
        s, e = sent.start, sent.end
        while s < e and doc[s].is_space:
            s += 1
        while e > s and doc[e - 1].is_space:
            e -= 1
        if s == e:
            continue
        last = doc[e - 1]
        out.append(Segment(doc[s].idx, last.idx + len(last), doc, s, e))
    return out


def segment_texts(texts: Iterable[str], batch_size: int = 256) -> Iterator[list[Segment]]:
    """Segments of each text, in order."""
    for doc in get_nlp().pipe(texts, batch_size=batch_size):
        yield segments_of(doc)
