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
from murmurhash.mrmr import hash as _murmurhash3_32  # spaCy's dependency; same MurmurHash3 as scikit-learn's
from spacy.attrs import IS_SPACE, LOWER
from spacy.tokens import Doc, Span

from .segment import FEATURES_KEY, Segment, get_nlp

_M1, _M2 = 0x9E3779B1, 0x85EBCA6B
SALTS = {"neg": 1, "sub": 2, "main": 3, "first": 4, "bigram": 5, "prev": 6, "next": 7}
BULLETS = {"-", "*", "•", "–", "—", "·", ">", "->", "o"}
QUOTES = {'"', "“", "”", "'"}
LEN_BUCKETS = (1, 2, 4, 7, 12, 20, 35)
K_CONCEPT, K_PSEUDO, K_PRE, K_FOL, K_TERM, K_SUB, K_MAIN, K_OTHER = range(8)
CUE_CODES = {"pseudo_negations": K_PSEUDO, "preceding_negations": K_PRE, "following_negations": K_FOL,
             "termination": K_TERM, "subordinate_openers": K_SUB, "main_clause_openers": K_MAIN}


def _load_json(name: str) -> dict[str, Any]:
    return json.loads(resources.files("supervise_nlp.patterns").joinpath(name).read_text("utf-8"))


def norm(word: str) -> str:
    """Lower-case with digits folded to 'd', so 12/03/2024 and 01/11/2025 are one feature."""
    w = word.lower()
    if any(c.isdigit() for c in w):
        w = "".join("d" if c.isdigit() else c for c in w)
    return w


def _h(s: str) -> int:
    # sklearn.utils.murmurhash3_32(s, seed=0, positive=True), without importing scikit-learn
    return _murmurhash3_32(s) & 0xFFFFFFFF


def _mix(h: np.ndarray | int, salt: int, n: int):
    return ((np.asarray(h, dtype=np.int64) * _M1 + salt * _M2) & 0xFFFFFFFF) % n


class SegmentFeatures:
    """Hashed lexical, concept, negation and shape features for segments.

    Parameters are switches a researcher can turn off to measure what each family adds.
    This is the plain computation; :class:`SegmentFeaturizer` is the same thing as a
    scikit-learn transformer (for training and pipelines). Labelling uses this class directly so
    that classify and explain need not import scikit-learn.
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
    def fit(self, X: Sequence[Any], y: Any = None) -> SegmentFeatures:
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
            concept_names = list(self.concept_terms_)
            ids = np.array(sorted(kinds), dtype=np.uint64)
            kind_code = np.array([CUE_CODES.get(kinds[i][1], K_CONCEPT) if kinds[i][0] == "cue" else K_CONCEPT
                                  for i in ids.tolist()], dtype=np.int64)
            concept_idx = np.array([concept_names.index(kinds[i][1]) if kinds[i][0] == "concept" else 0
                                    for i in ids.tolist()], dtype=np.int64)
            table = np.array([[_h(f"{p}|{name}") % n for p in "CNSM"] for name in concept_names], dtype=np.int64)
            rt = self._rt = {"types": {}, "matcher": matcher, "kind_ids": ids, "kind_code": kind_code,
                             "concept_idx": concept_idx, "concept_col_table": table.reshape(-1, 4),
                             "concept_names": concept_names}
        return rt

    def _type_info(self, key: int, strings) -> tuple[int, np.ndarray, list[str], int]:
        """(raw word hash, feature columns, their names, flags) for one word type, cached."""
        types = self._runtime()["types"]
        info = types.get(key)  # the caller has usually looked already; this keeps the method safe alone
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
        nrows = len(bounds)
        if not nrows:
            return sp.csr_matrix((0, n)), []
        strings = nlp.vocab.strings

        # every token of the batch in one array; rows are segments, positions are global
        arrays = [_lower_space(d) for d in docs]
        doc_off = np.concatenate([[0], np.cumsum([len(a) for a in arrays])]).astype(np.int64)
        allarr = np.concatenate(arrays)
        ntotal = len(allarr)
        b = np.array(bounds, dtype=np.int64).reshape(-1, 3)
        gstart = doc_off[b[:, 0]] + b[:, 1]
        gend = doc_off[b[:, 0]] + b[:, 2]
        lengths = gend - gstart
        rows_all = np.repeat(np.arange(nrows), lengths)
        gidx = np.repeat(gstart - np.cumsum(lengths) + lengths, lengths) + np.arange(int(lengths.sum()))
        row_of_glob = np.full(ntotal + 1, -1, dtype=np.int64)
        row_of_glob[gidx] = rows_all
        keep = allarr[gidx, 1] == 0  # spaces carry no features
        gtok = gidx[keep]
        trow = rows_all[keep]
        ntok = len(gtok)
        tok_of_glob = np.full(ntotal + 1, -1, dtype=np.int64)
        tok_of_glob[gtok] = np.arange(ntok)

        # per-type lookup, once per distinct word in the batch (hash-based factorize: scikit-learn
        # has already imported pandas, and it is several times faster than sorting with np.unique)
        import pandas as pd

        inverse, uniq = pd.factorize(allarr[gtok, 0])
        types = rt["types"]
        infos = [types.get(k) or self._type_info(k, strings) for k in uniq.tolist()]
        raw_u = np.array([i[0] for i in infos], dtype=np.int64)
        flags_u = np.array([i[3] for i in infos], dtype=np.int64)
        lens_u = np.array([len(i[1]) for i in infos], dtype=np.int64)
        cols_u = np.concatenate([i[1] for i in infos]) if infos else np.zeros(0, np.int64)
        ptr_u = np.concatenate([[0], np.cumsum(lens_u)])
        traw = raw_u[inverse]
        tflags = flags_u[inverse]

        # 1. words and their character n-grams: labelling multiplies a segments x types count
        # matrix by the cached types x features matrix (``_assemble``), so the many n-gram entries
        # are summed in C; explain lists each entry, to name it
        parts_r: list[np.ndarray] = []
        parts_c: list[np.ndarray] = []
        src: list[tuple[str, Any]] = []
        if names:
            tl = lens_u[inverse]
            offs = np.arange(tl.sum()) - np.repeat(np.cumsum(tl) - tl, tl)
            parts_r.append(np.repeat(trow, tl))
            parts_c.append(cols_u[np.repeat(ptr_u[:-1][inverse], tl) + offs])
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
            src.append(("bigram", pair))
        fpos = np.nonzero(first)[0]
        parts_r.append(trow[fpos])
        parts_c.append(_mix(traw[fpos], SALTS["first"], n))
        src.append(("first", fpos))

        # 3. concepts, negation scope and clause role from phrase matches
        if self.concepts or self.negation:
            self._match_features(rt, docs, doc_off, ntotal, row_of_glob, tok_of_glob, gstart, gend,
                                 gtok, trow, traw, parts_r, parts_c, src, names)

        # 4. neighbouring segments in the same note
        if self.context and nrows > 1:
            order = np.lexsort((b[:, 1], b[:, 0]))
            a, z = order[:-1], order[1:]
            adjacent = (b[a, 0] == b[z, 0]) & (b[a, 2] <= b[z, 1])
            next_of = np.full(nrows, -1)
            prev_of = np.full(nrows, -1)
            next_of[a[adjacent]] = z[adjacent]
            prev_of[z[adjacent]] = a[adjacent]
            for target, salt in ((next_of, "prev"), (prev_of, "next")):
                # tokens of row q become "previous sentence" features of the row after q, and vice versa
                dest = target[trow]
                pos = np.nonzero(dest >= 0)[0]
                if len(pos):
                    parts_r.append(dest[pos])
                    parts_c.append(_mix(traw[pos], SALTS[salt], n))
                    src.append((salt, pos))

        # 5. segment shape
        if self.shape:
            count = np.bincount(trow, minlength=nrows)
            bucket = np.searchsorted(LEN_BUCKETS, count)
            parts_r.append(np.arange(nrows))
            parts_c.append(np.array([_h(f"len|{k}") % n for k in range(len(LEN_BUCKETS) + 1)])[bucket])
            shape_names = [np.array([f"length {_len_label(k)}" for k in range(len(LEN_BUCKETS) + 1)],
                                    dtype=object)[bucket]]
            for bit, label in ((1, "bullet"), (2, "quoted speech"), (4, "a date"), (8, "a heading colon")):
                if bit == 1:  # a bullet only counts at the start of the segment
                    hit_rows = trow[fpos][(tflags[fpos] & 1) > 0]
                else:
                    hit_rows = np.unique(trow[(tflags & bit) > 0])
                parts_r.append(hit_rows)
                parts_c.append(np.full(len(hit_rows), _h(f"shape|{label}") % n))
                shape_names.append(np.full(len(hit_rows), f"shape: {label}", dtype=object))
            src.append(("shape", np.concatenate(shape_names)))

        if not names:  # words' columns come in through their types, in one product with the rest
            return _assemble(nrows, n, trow, inverse, cols_u, ptr_u, parts_r, parts_c), None
        rows_cat = np.concatenate(parts_r)
        cols_cat = np.concatenate(parts_c)
        mat = sp.csr_matrix((np.ones(len(rows_cat)), (rows_cat, cols_cat)), shape=(nrows, n))
        return mat, self._names(rows_cat, cols_cat, src, infos, inverse, traw, nrows)

    def _match_features(self, rt, docs, doc_off, ntotal, row_of_glob, tok_of_glob, gstart, gend,
                        gtok, trow, traw, parts_r, parts_c, src, names) -> None:
        """Concept features with their negation / clause-role variants, and word scope features.

        NegEx-style, on whole batches: a preceding cue negates up to ``window`` tokens after it,
        stopping at a termination cue or the segment's end; a following cue negates before it;
        a cue inside a pseudo-negation ("no further") negates nothing.
        """
        n = self.n_features
        matcher = rt["matcher"]
        found = [(d, np.array(m, dtype=np.uint64).reshape(-1, 3)) for d, m in
                 ((d, matcher(doc)) for d, doc in enumerate(docs)) if m]
        if not found:
            return
        mid = np.concatenate([m[:, 0] for _, m in found])
        gms = np.concatenate([m[:, 1].astype(np.int64) + doc_off[d] for d, m in found])
        gme = np.concatenate([m[:, 2].astype(np.int64) + doc_off[d] for d, m in found])
        at = np.searchsorted(rt["kind_ids"], mid)
        code = rt["kind_code"][at]
        cidx = rt["concept_idx"][at]
        mrow = row_of_glob[gms]
        ok = (mrow >= 0) & (row_of_glob[gme - 1] == mrow)
        mid, gms, gme, code, cidx, mrow = mid[ok], gms[ok], gme[ok], code[ok], cidx[ok], mrow[ok]
        rstart, rend = gstart[mrow], gend[mrow]

        def cover(lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
            diff = np.zeros(ntotal + 2, dtype=np.int64)
            good = hi > lo
            np.add.at(diff, lo[good], 1)
            np.add.at(diff, hi[good], -1)
            return np.cumsum(diff)[: ntotal + 1] > 0

        w = self.negation_window_
        cue_ok = ~cover(gms[code == K_PSEUDO], gme[code == K_PSEUDO])[gms]
        terms = np.sort(gms[code == K_TERM])
        big = ntotal + 1

        def next_term(after: np.ndarray) -> np.ndarray:
            i = np.searchsorted(terms, after, side="left")
            return np.where(i < len(terms), terms[np.minimum(i, max(len(terms) - 1, 0))] if len(terms) else big, big)

        def prev_term_end(before: np.ndarray) -> np.ndarray:
            i = np.searchsorted(terms, before, side="left") - 1
            return np.where(i >= 0, terms[np.maximum(i, 0)] + 1 if len(terms) else -1, -1)

        pre = (code == K_PRE) & cue_ok
        fol = (code == K_FOL) & cue_ok
        sub = (code == K_SUB) & cue_ok
        main = (code == K_MAIN) & cue_ok
        neg_lo = np.concatenate([gme[pre], np.maximum.reduce([gms[fol] - w, prev_term_end(gms[fol]), rstart[fol]])])
        neg_hi = np.concatenate([np.minimum.reduce([gme[pre] + w, next_term(gme[pre]), rend[pre]]), gms[fol]])
        masks = {
            "neg": cover(neg_lo, neg_hi) if self.negation else np.zeros(ntotal + 1, bool),
            "sub": cover(gme[sub], np.minimum(next_term(gme[sub]), rend[sub])) if self.negation
            else np.zeros(ntotal + 1, bool),
            "main": cover(gme[main], rend[main]) if self.negation else np.zeros(ntotal + 1, bool),
        }
        tok_masks = {k: m[gtok] for k, m in masks.items()}
        for kind in ("neg", "sub", "main"):
            pos = np.nonzero(tok_masks[kind])[0]
            if len(pos):
                parts_r.append(trow[pos])
                parts_c.append(_mix(traw[pos], SALTS[kind], n))
                src.append((kind, pos))
        if not self.concepts:
            return
        is_concept = (code == K_CONCEPT) & (tok_of_glob[gms] >= 0)
        crow, cpos, cid = mrow[is_concept], gms[is_concept], cidx[is_concept]
        table = rt["concept_col_table"]  # concepts x (C, N, S, M)
        flags = [np.ones(len(cpos), bool), masks["neg"][cpos], masks["sub"][cpos], masks["main"][cpos]]
        for j, (prefix, on) in enumerate(zip("CNSM", flags)):
            if on.any():
                parts_r.append(crow[on])
                parts_c.append(table[cid[on], j])
                src.append(("concept", np.array([_concept_label(prefix, rt["concept_names"][c]) for c in cid[on]],
                                                dtype=object) if names else None))

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


_IDENTITY: dict[int, tuple[np.ndarray, np.ndarray]] = {}
_ONES: list[np.ndarray] = [np.ones(0)]


def _ones(k: int) -> np.ndarray:
    """A read-only array of at least ``k`` ones, reused across batches (the products only read it)."""
    if len(_ONES[0]) < k:
        buf = np.ones(max(k, 2 * len(_ONES[0])))
        buf.flags.writeable = False
        _ONES[0] = buf
    return _ONES[0]


def _assemble(nrows: int, n: int, trow: np.ndarray, inverse: np.ndarray, cols_u: np.ndarray,
              ptr_u: np.ndarray, parts_r: list[np.ndarray], parts_c: list[np.ndarray]) -> sp.csr_matrix:
    """The segments x features count matrix, in one sparse product and without sorting.

    Rows of ``A`` count, per segment, each word type of the batch (whose row of ``B`` lists the
    word's feature columns: the word and its character n-grams) and each other feature (whose
    row of ``B`` is that single column). ``A @ B`` sums duplicates with a dense accumulator, in
    C; the result has one entry per column of a row (unsorted), which is all tf-idf needs. ``A``
    is put in row order with a stable counting sort (numpy's radix sort on 16-bit keys).
    """
    ntypes = len(ptr_u) - 1
    rows_cat = np.concatenate([trow, *parts_r])
    cols_cat = np.concatenate([inverse, *(c + ntypes for c in parts_c)])
    key = rows_cat.astype(np.int16 if nrows < 2**15 else np.int32)
    order = np.argsort(key, kind="stable")
    indptr = np.zeros(nrows + 1, dtype=np.int64)
    np.cumsum(np.bincount(rows_cat, minlength=nrows), out=indptr[1:])
    ones = _ones(max(len(order), len(cols_u) + n))
    A = sp.csr_matrix((ones[:len(order)], cols_cat[order], indptr), shape=(nrows, ntypes + n))
    ident = _IDENTITY.get(n)
    if ident is None:
        ident = _IDENTITY[n] = (np.arange(n, dtype=np.int64), np.arange(1, n + 1, dtype=np.int64))
    B = sp.csr_matrix((ones[:len(cols_u) + n], np.concatenate([cols_u, ident[0]]),
                       np.concatenate([ptr_u, ptr_u[-1] + ident[1]])), shape=(ntypes + n, n))
    return A @ B


def _sklearn_featurizer() -> type:
    """``SegmentFeaturizer``: built on first use, so importing this module does not import
    scikit-learn (about a second of start-up that labelling does not need)."""
    from sklearn.base import BaseEstimator, TransformerMixin

    class SegmentFeaturizer(SegmentFeatures, TransformerMixin, BaseEstimator):
        __doc__ = SegmentFeatures.__doc__
        # defined here, as before, so scikit-learn's set_output wrapping applies to it
        transform = SegmentFeatures.transform

    SegmentFeaturizer.__module__ = __name__
    SegmentFeaturizer.__qualname__ = "SegmentFeaturizer"
    return SegmentFeaturizer


def __getattr__(name: str) -> Any:
    if name == "SegmentFeaturizer":
        cls = globals()["SegmentFeaturizer"] = _sklearn_featurizer()
        return cls
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


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


def _lower_space(doc: Doc) -> np.ndarray:
    """The doc's (LOWER, IS_SPACE) token array: left by the segmenter, or read now."""
    done = doc.user_data.get(FEATURES_KEY)
    if done is not None and done[0] == len(doc):
        return done[1]
    return doc.to_array([LOWER, IS_SPACE]).reshape(-1, 2)


def _as_doc_bounds(X: Sequence[Any], nlp) -> tuple[list[Doc], list[tuple[int, int, int]]]:
    """Normalise strings, spans and segments to (doc index, start token, end token)."""
    docs: list[Doc] = []
    doc_index: dict[int, int] = {}
    bounds: list[tuple[int, int, int]] = []
    strs = [x for x in X if isinstance(x, str)]
    str_docs = iter(nlp.tokenizer.pipe(strs)) if strs else iter(())
    last_doc, d = None, -1
    for x in X:
        if isinstance(x, Segment):  # the labelling path: consecutive segments share their note's doc
            doc, start, end = x.doc, x.first, x.last
        elif isinstance(x, str):
            doc = next(str_docs)
            start, end = 0, len(doc)
        elif isinstance(x, Span):
            doc, start, end = x.doc, x.start, x.end
        else:
            raise TypeError(f"segments must be strings or spaCy spans, not {type(x).__name__}")
        if doc is not last_doc:
            key = id(doc)
            d = doc_index.get(key)
            if d is None:
                d = doc_index[key] = len(docs)
                docs.append(doc)
            last_doc = doc
        bounds.append((d, start, end))
    return docs, bounds
