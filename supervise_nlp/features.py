"""Segment features: what the classifier sees of a sentence.

``SegmentFeaturizer`` is a scikit-learn transformer. It takes segments (spaCy spans from a
segmented note, or plain strings) and returns a sparse count matrix of hashed features:

- words and word pairs (lower-cased, digits folded so dates and times look alike);
- character 3-5-grams inside words, so "dicussed" still looks like "discussed";
- codebook concepts from ``patterns/concepts.json`` (a feature, never a rule);
- negation scope (NegEx-style, ``patterns/negation.json``): words and concepts under "not",
  "didn't have time to", "declined" get features of their own, because the codebook's
  "we did not have time to talk about her goals" is procedural;
- clause role: words after "although"/"despite" (subordinate) and after "but"/"taken up with"
  (main) are marked, because a mixed sentence takes the label of its main clause;
- shape: length, a heading's colon, a bullet, a date, quoted speech, the first word;
- context: the words of the segments just before and after in the same note, because a
  sentence inside a reflective paragraph or under "Actions:" tends to share its neighbours' aim.

Everything is computed with array operations per batch, and the expensive per-word work
(hashing, n-grams) is cached per word type, so features cost a fraction of tokenisation.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from importlib import resources
from typing import Any

import numpy as np
import scipy.sparse as sp
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.utils import murmurhash3_32
from spacy.attrs import IS_SPACE, LOWER
from spacy.tokens import Doc, Span

from .segment import Segment, get_nlp

_M1, _M2 = 0x9E3779B1, 0x85EBCA6B
SALTS = {"neg": 1, "sub": 2, "main": 3, "first": 4, "bigram": 5, "prev": 6, "next": 7}
BULLETS = {"-", "*", "•", "–", "—", "·", ">", "->", "o"}
QUOTES = {'"', "“", "”", "'"}
LEN_BUCKETS = (1, 2, 4, 7, 12, 20, 35)


def _load_json(name: str) -> dict[str, Any]:
    return json.loads(resources.files("supervise_nlp.patterns").joinpath(name).read_text("utf-8"))


def norm(word: str) -> str:
    """Lower-case with digits folded to 'd', so 12/03/2024 and 01/11/2025 are one feature."""
    w = word.lower()
    if any(c.isdigit() for c in w):
        w = "".join("d" if c.isdigit() else c for c in w)
    return w


def _h(s: str) -> int:
    return murmurhash3_32(s, seed=0, positive=True)


def _mix(h: np.ndarray | int, salt: int, n: int):
    return ((np.asarray(h, dtype=np.int64) * _M1 + salt * _M2) & 0xFFFFFFFF) % n


class SegmentFeaturizer(TransformerMixin, BaseEstimator):
    """Hashed lexical, concept, negation and shape features for segments.

    Parameters are switches a researcher can turn off to measure what each family adds.
    """

    def __init__(
        self,
        n_features: int = 2**18,
        char_ngrams: tuple[int, int] | None = (3, 5),
        word_bigrams: bool = True,
        concepts: bool = True,
        negation: bool = True,
        shape: bool = True,
        context: bool = True,
    ):
        self.n_features = n_features
        self.char_ngrams = char_ngrams
        self.word_bigrams = word_bigrams
        self.concepts = concepts
        self.negation = negation
        self.shape = shape
        self.context = context

    # -- fitted state is only the pattern data, kept in the model so a model is self-contained --
    def fit(self, X: Sequence[Any], y: Any = None) -> SegmentFeaturizer:
        data = _load_json("concepts.json")
        self.concept_terms_ = {c["name"]: list(c["terms"]) for c in data["concepts"]}
        neg = _load_json("negation.json")
        self.negation_terms_ = {k: list(v) for k, v in neg.items() if isinstance(v, list)}
        self.negation_window_ = int(neg.get("window", 6))
        return self

    def __getstate__(self) -> dict[str, Any]:
        # run-time caches are rebuilt on demand and never written to a model file
        return {k: v for k, v in self.__dict__.items() if not k.startswith("_rt")}

    def __setstate__(self, state: dict[str, Any]) -> None:
        # a model saved before a feature family existed keeps behaving as it was trained
        state.setdefault("context", False)
        self.__dict__.update(state)

    # -- caches --------------------------------------------------------------------------------
    def _runtime(self) -> dict[str, Any]:
        rt = self.__dict__.get("_rt")
        if rt is None:
            from spacy.matcher import PhraseMatcher

            nlp = get_nlp()
            matcher = PhraseMatcher(nlp.vocab, attr="LOWER")
            kinds: dict[int, tuple[str, str]] = {}

            def add(kind: str, name: str, terms: list[str]) -> None:
                key = f"{kind}:{name}"
                matcher.add(key, list(nlp.tokenizer.pipe(terms)))
                kinds[nlp.vocab.strings[key]] = (kind, name)

            if self.concepts:
                for name, terms in self.concept_terms_.items():
                    add("concept", name, terms)
            if self.negation:
                for name, terms in self.negation_terms_.items():
                    add("cue", name, terms)
            n = self.n_features
            concept_cols = {
                (prefix, name): _h(f"{prefix}|{name}") % n
                for name in self.concept_terms_
                for prefix in ("C", "N", "S", "M")
            }
            rt = self._rt = {"types": {}, "matcher": matcher, "kinds": kinds, "concept_cols": concept_cols}
        return rt

    def _type_info(self, key: int, strings) -> tuple[int, np.ndarray, list[str], int]:
        """(raw word hash, feature columns, their names, flags) for one word type, cached."""
        types = self._runtime()["types"]
        info = types.get(key)
        if info is None:
            text = strings[key]
            w = norm(text)
            n = self.n_features
            raw = _h("w|" + w)
            cols, names = [raw % n], [w]
            if self.char_ngrams and len(w) >= 4 and any(c.isalpha() for c in w):
                lo, hi = self.char_ngrams
                padded = f"<{w}>"
                for k in range(lo, hi + 1):
                    for i in range(len(padded) - k + 1):
                        cols.append(_h("c|" + padded[i:i + k]) % n)
                        names.append(w)
            flags = (1 if text in BULLETS else 0) | (2 if text in QUOTES else 0) \
                | (4 if any(c.isdigit() for c in text) and ("/" in text or "." in text) else 0) \
                | (8 if text.endswith(":") else 0)
            info = types[key] = (raw, np.array(cols, dtype=np.int64), names, flags)
        return info

    # -- transform ------------------------------------------------------------------------------
    def transform(self, X: Sequence[Any]) -> sp.csr_matrix:
        return self._features(X)[0]

    def feature_names_of(self, X: Sequence[Any]) -> list[dict[int, set[str]]]:
        """For each segment, which readable features stand behind each column (for explain)."""
        return self._features(X, names=True)[1]

    def _features(self, X: Sequence[Any], names: bool = False):
        rt = self._runtime()
        nlp = get_nlp()
        n = self.n_features
        docs, bounds = _as_doc_bounds(X, nlp)
        strings = nlp.vocab.strings

        tok_lower: list[np.ndarray] = []
        tok_row: list[np.ndarray] = []
        tok_pos: list[np.ndarray] = []  # position within its doc
        tok_doc: list[np.ndarray] = []
        rows_by_doc: dict[int, list[tuple[int, int, int]]] = {}
        arrays: dict[int, np.ndarray] = {}
        for row, (d, s, e) in enumerate(bounds):
            arr = arrays.get(d)
            if arr is None:
                arr = arrays[d] = docs[d].to_array([LOWER, IS_SPACE])
            keep = np.nonzero(arr[s:e, 1] == 0)[0] + s
            tok_lower.append(arr[keep, 0])
            tok_row.append(np.full(len(keep), row, dtype=np.int64))
            tok_pos.append(keep)
            tok_doc.append(np.full(len(keep), d, dtype=np.int64))
            rows_by_doc.setdefault(d, []).append((s, e, row))
        if not bounds:
            return sp.csr_matrix((0, n)), []
        lower = np.concatenate(tok_lower).astype(np.uint64)
        trow = np.concatenate(tok_row)
        tpos = np.concatenate(tok_pos)
        tdoc = np.concatenate(tok_doc)
        ntok = len(lower)

        # per-type lookup, once per distinct word in the batch
        uniq, inverse = np.unique(lower, return_inverse=True)
        infos = [self._type_info(k, strings) for k in uniq.tolist()]
        raw_u = np.array([i[0] for i in infos], dtype=np.int64)
        flags_u = np.array([i[3] for i in infos], dtype=np.int64)
        lens_u = np.array([len(i[1]) for i in infos], dtype=np.int64)
        cols_u = np.concatenate([i[1] for i in infos]) if infos else np.zeros(0, np.int64)
        ptr_u = np.concatenate([[0], np.cumsum(lens_u)])
        traw = raw_u[inverse]
        tflags = flags_u[inverse]

        # 1. word + char n-gram columns for every token
        tl = lens_u[inverse]
        starts = ptr_u[:-1][inverse]
        rep_rows = np.repeat(trow, tl)
        offs = np.arange(tl.sum()) - np.repeat(np.cumsum(tl) - tl, tl)
        rep_cols = cols_u[np.repeat(starts, tl) + offs]
        parts_r, parts_c = [rep_rows], [rep_cols]
        src: list[tuple[str, np.ndarray]] = []
        if names:
            src.append(("type", np.repeat(np.arange(ntok), tl)))

        # 2. word pairs within a segment, and the first word
        same = np.zeros(ntok, dtype=bool)
        if ntok > 1:
            same[:-1] = trow[:-1] == trow[1:]
        first = np.ones(ntok, dtype=bool)
        first[1:] = trow[1:] != trow[:-1]
        if self.word_bigrams and ntok > 1:
            pair = np.nonzero(same[:-1])[0]
            parts_r.append(trow[pair])
            parts_c.append(_mix(traw[pair] * 31 + traw[pair + 1], SALTS["bigram"], n))
            if names:
                src.append(("bigram", pair))
        fpos = np.nonzero(first)[0]
        parts_r.append(trow[fpos])
        parts_c.append(_mix(traw[fpos], SALTS["first"], n))
        if names:
            src.append(("first", fpos))

        # 3. concepts, negation scope and clause role from phrase matches
        scope_neg = np.zeros(ntok, dtype=bool)
        scope_sub = np.zeros(ntok, dtype=bool)
        scope_main = np.zeros(ntok, dtype=bool)
        concept_hits: list[tuple[int, str, int, int]] = []  # row, concept, doc, first token pos
        if self.concepts or self.negation:
            # map (doc, pos) -> global token index
            order = np.lexsort((tpos, tdoc))
            key_sorted = tdoc[order] * (1 << 32) + tpos[order]
            matcher, kinds = rt["matcher"], rt["kinds"]
            neg_spans: list[tuple[int, int, int, int]] = []
            for d, rows in rows_by_doc.items():
                matches = matcher(docs[d])
                if not matches:
                    continue
                rows.sort()
                seg_starts = [r[0] for r in rows]
                by_row: dict[int, list[tuple[str, str, int, int]]] = {}
                for mid, ms, me in matches:
                    i = np.searchsorted(seg_starts, ms, side="right") - 1
                    if i < 0:
                        continue
                    s, e, row = rows[i]
                    if me > e:
                        continue
                    kind, name = kinds[mid]
                    by_row.setdefault(row, []).append((kind, name, ms, me))
                extent = {row: (s, e) for s, e, row in rows}
                for row, hits in by_row.items():
                    s, e = extent[row]
                    concept_hits.extend((row, name, d, ms) for kind, name, ms, _ in hits if kind == "concept")
                    if self.negation:
                        neg_spans.extend(self._scopes(hits, s, e, d, row))
            for kind, d, a, b in neg_spans:
                lo = np.searchsorted(key_sorted, d * (1 << 32) + a)
                hi = np.searchsorted(key_sorted, d * (1 << 32) + b)
                idx = order[lo:hi]
                {"neg": scope_neg, "sub": scope_sub, "main": scope_main}[kind][idx] = True
            for mask, salt in ((scope_neg, "neg"), (scope_sub, "sub"), (scope_main, "main")):
                pos = np.nonzero(mask)[0]
                if len(pos):
                    parts_r.append(trow[pos])
                    parts_c.append(_mix(traw[pos], SALTS[salt], n))
                    if names:
                        src.append((salt, pos))
            if concept_hits:
                ccols = rt["concept_cols"]
                c_rows, c_cols, c_names = [], [], []
                for row, name, d, ms in concept_hits:
                    gi = order[np.searchsorted(key_sorted, d * (1 << 32) + ms)]
                    prefixes = ["C"]
                    if scope_neg[gi]:
                        prefixes.append("N")
                    if scope_sub[gi]:
                        prefixes.append("S")
                    if scope_main[gi]:
                        prefixes.append("M")
                    for p in prefixes:
                        c_rows.append(row)
                        c_cols.append(ccols[(p, name)])
                        c_names.append(_concept_label(p, name))
                parts_r.append(np.array(c_rows, dtype=np.int64))
                parts_c.append(np.array(c_cols, dtype=np.int64))
                if names:
                    src.append(("concept", np.array(c_names, dtype=object)))

        # 4. neighbouring segments in the same note
        if self.context and len(bounds) > 1:
            nrows = len(bounds)
            next_of = np.full(nrows, -1)
            prev_of = np.full(nrows, -1)
            for rows in rows_by_doc.values():
                ordered = sorted(rows)
                for (_, e1, r1), (s2, _, r2) in zip(ordered, ordered[1:]):
                    if e1 <= s2:
                        next_of[r1], prev_of[r2] = r2, r1
            for target, salt in ((next_of, "prev"), (prev_of, "next")):
                # tokens of row q become "previous sentence" features of the row after q, and vice versa
                dest = target[trow]
                pos = np.nonzero(dest >= 0)[0]
                if len(pos):
                    parts_r.append(dest[pos])
                    parts_c.append(_mix(traw[pos], SALTS[salt], n))
                    if names:
                        src.append((salt, pos))

        # 5. segment shape
        if self.shape:
            nrows = len(bounds)
            count = np.bincount(trow, minlength=nrows)
            bucket = np.searchsorted(LEN_BUCKETS, count)
            feats_r = [np.arange(nrows)]
            feats_c = [np.array([_h(f"len|{b}") % n for b in range(len(LEN_BUCKETS) + 1)])[bucket]]
            shape_names = [np.array([f"length {_len_label(b)}" for b in range(len(LEN_BUCKETS) + 1)],
                                    dtype=object)[bucket]]
            for bit, label in ((1, "bullet"), (2, "quoted speech"), (4, "a date"), (8, "a heading colon")):
                hit_rows = np.unique(trow[(tflags & bit) > 0])
                if bit == 1:  # a bullet only counts at the start of the segment
                    hit_rows = trow[fpos][(tflags[fpos] & 1) > 0]
                feats_r.append(hit_rows)
                feats_c.append(np.full(len(hit_rows), _h(f"shape|{label}") % n))
                shape_names.append(np.full(len(hit_rows), f"shape: {label}", dtype=object))
            parts_r.extend(feats_r)
            parts_c.extend(feats_c)
            if names:
                src.append(("shape", np.concatenate(shape_names)))

        rows_all = np.concatenate(parts_r)
        cols_all = np.concatenate(parts_c)
        data = np.ones(len(rows_all), dtype=np.float64)
        mat = sp.csr_matrix((data, (rows_all, cols_all)), shape=(len(bounds), n))
        mat.sum_duplicates()
        if not names:
            return mat, None
        return mat, self._names(rows_all, cols_all, src, infos, inverse, traw, len(bounds))

    def _scopes(self, hits, s: int, e: int, d: int, row: int):
        """NegEx-style scopes and clause roles inside one segment [s, e)."""
        w = self.negation_window_
        pseudo = [(a, b) for k, nm, a, b in hits if k == "cue" and nm == "pseudo_negations"]
        terms = sorted(a for k, nm, a, b in hits if k == "cue" and nm == "termination")

        def next_term(after: int) -> int:
            for t in terms:
                if t >= after:
                    return t
            return e

        def prev_term(before: int) -> int:
            out = s
            for t in terms:
                if t < before:
                    out = t + 1
            return out

        out = []
        for kind, name, a, b in hits:
            if kind != "cue" or any(pa <= a < pb for pa, pb in pseudo):
                continue
            if name == "preceding_negations":
                out.append(("neg", d, b, min(b + w, next_term(b), e)))
            elif name == "following_negations":
                out.append(("neg", d, max(a - w, prev_term(a), s), a))
            elif name == "subordinate_openers":
                comma = next_term(b) if b < e else e
                out.append(("sub", d, b, comma))
            elif name == "main_clause_openers":
                out.append(("main", d, b, e))
        del row
        return out

    def _names(self, rows, cols, src, infos, inverse, traw, nrows):
        """Readable names for each (row, column), in the order the parts were built."""
        out: list[dict[int, set[str]]] = [dict() for _ in range(nrows)]
        words = [infos[i][2][0] for i in inverse]
        labels: list[str] = []
        for kind, ref in src:
            if kind == "type":
                # every column of a word type (the word and its n-grams) is named by the word
                per_tok = [infos[inverse[t]][2] for t in np.unique(ref)]
                for names in per_tok:
                    labels.extend(names)
            elif kind == "bigram":
                labels.extend(f"{words[i]} {words[i + 1]}" for i in ref)
            elif kind == "first":
                labels.extend(f"starts with: {words[i]}" for i in ref)
            elif kind == "neg":
                labels.extend(f"negated: {words[i]}" for i in ref)
            elif kind == "sub":
                labels.extend(f"in a subordinate clause: {words[i]}" for i in ref)
            elif kind == "main":
                labels.extend(f"in the main clause: {words[i]}" for i in ref)
            elif kind == "prev":
                labels.extend(f"previous sentence: {words[i]}" for i in ref)
            elif kind == "next":
                labels.extend(f"next sentence: {words[i]}" for i in ref)
            else:
                labels.extend(ref.tolist())
        for r, c, label in zip(rows.tolist(), cols.tolist(), labels):
            out[r].setdefault(c, set()).add(label)
        return out


def _concept_label(prefix: str, name: str) -> str:
    readable = name.replace("_", " ")
    return {
        "C": f"concept: {readable}",
        "N": f"negated concept: {readable}",
        "S": f"concept in a subordinate clause: {readable}",
        "M": f"concept in the main clause: {readable}",
    }[prefix]


def _len_label(b: int) -> str:
    lo = 1 if b == 0 else LEN_BUCKETS[b - 1] + 1
    return f"{lo}+ words" if b == len(LEN_BUCKETS) else f"{lo}-{LEN_BUCKETS[b]} words"


def _as_doc_bounds(X: Sequence[Any], nlp) -> tuple[list[Doc], list[tuple[int, int, int]]]:
    """Normalise strings, spans and segments to (doc index, start token, end token)."""
    docs: list[Doc] = []
    doc_index: dict[int, int] = {}
    bounds: list[tuple[int, int, int]] = []
    strs = [x for x in X if isinstance(x, str)]
    str_docs = iter(nlp.tokenizer.pipe(strs)) if strs else iter(())
    for x in X:
        if isinstance(x, str):
            doc = next(str_docs)
            docs.append(doc)
            bounds.append((len(docs) - 1, 0, len(doc)))
            continue
        span = x.span if isinstance(x, Segment) else x
        if not isinstance(span, Span):
            raise TypeError(f"segments must be strings or spaCy spans, not {type(x).__name__}")
        key = id(span.doc)
        d = doc_index.get(key)
        if d is None:
            d = doc_index[key] = len(docs)
            docs.append(span.doc)
        bounds.append((d, span.start, span.end))
    return docs, bounds
