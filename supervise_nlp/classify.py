"""Where a segment is labelled, and a note gets its change share and label.

The segment model is a plain scikit-learn ``Pipeline`` (featurizer, tf-idf weighting, logistic
regression), so a researcher can inspect it, swap a step, or fit it on their own corpus.
``NoteLabeller`` joins it to the segmenter and applies the codebook's note-level rules.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from typing import Any

import numpy as np

from .features import SegmentFeatures
from .segment import Segment, get_nlp, segments_of

LABELS = ("procedural", "change_focused", "neutral")
NOTE_LABELS = ("procedural", "change_focused", "unclassified")
# keys the output contract adds; an input field with one of these names is kept as input_<name>
OUTPUT_KEYS = ("label", "change_share", "counts", "segments")


def build_pipeline(C: float = 10.0, class_weight: str | None = "balanced", **featurizer_params: Any) -> Any:
    """The default segment classifier, untrained (a scikit-learn ``Pipeline``)."""
    from sklearn.feature_extraction.text import TfidfTransformer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline

    from .features import SegmentFeaturizer

    return Pipeline(
        [
            ("features", SegmentFeaturizer(**featurizer_params)),
            ("tfidf", TfidfTransformer(sublinear_tf=True)),
            ("clf", LogisticRegression(C=C, class_weight=class_weight, max_iter=3000)),
        ]
    )


def change_share(counts: dict[str, int]) -> float | None:
    """The codebook's change share; undefined (None) with no procedural or change-focused segment."""
    denom = counts["procedural"] + counts["change_focused"]
    return counts["change_focused"] / denom if denom else None


def note_label(share: float | None) -> str:
    if share is None:
        return "unclassified"
    return "change_focused" if share > 0.5 else "procedural"


class NoteLabeller:
    """Labels whole notes: segment, featurise and predict in batches, one pipeline per process."""

    def __init__(self, model: Any, batch_size: int = 1024, batch_tokens: int = 50_000):
        self.model = model
        # a batch ends at batch_size notes or batch_tokens tokens, whichever comes first: short
        # notes share each batch's fixed costs, long ones keep its memory bounded
        self.batch_size = batch_size
        self.batch_tokens = batch_tokens
        self.classes_ = [str(c) for c in model.classes_]
        self._order = [self.classes_.index(lab) for lab in LABELS]
        # a pipeline that starts with our featurizer reads spans; any other (a researcher's
        # text pipeline, a baseline) gets the segment text
        self._takes_spans = isinstance(model.steps[0][1], SegmentFeatures) if hasattr(model, "steps") else False
        get_nlp()  # build the segmenter now: part of start-up, not of the first batch

    def segment_probabilities(self, segments: Sequence[Segment | str]) -> np.ndarray:
        """Probabilities in ``LABELS`` order, one row per segment."""
        if not len(segments):
            return np.zeros((0, len(LABELS)))
        if not self._takes_spans:
            segments = [s if isinstance(s, str) else s.text for s in segments]
        return self.model.predict_proba(segments)[:, self._order]

    def label_texts(self, texts: Iterable[str]) -> Iterator[dict[str, Any]]:
        """For each text: counts, change share, label and segments (the output contract's fields)."""
        for batch in self._batches(texts):
            yield from self._label_batch(batch)

    def label_texts_json(self, texts: Iterable[str]) -> Iterator[str]:
        """The same fields as :meth:`label_texts`, already written as the inside of a JSON object
        (``"label": ..., "segments": [...]``), exactly as ``json.dumps`` writes them: classify
        appends this to the note's own fields instead of building and encoding a dict per segment."""
        for batch in self._batches(texts):
            yield from self._label_batch_json(batch)

    def _batches(self, texts: Iterable[str]) -> Iterator[list[list[Segment]]]:
        nlp = get_nlp()
        batch: list[list[Segment]] = []
        tokens = 0
        for doc in nlp.pipe(texts, batch_size=256):
            batch.append(segments_of(doc))
            tokens += len(doc)
            if len(batch) >= self.batch_size or tokens >= self.batch_tokens:
                yield batch
                batch, tokens = [], 0
        if batch:
            yield batch

    def _per_note(self, batch: list[list[Segment]]) -> Iterator[tuple[dict[str, int], float | None, list[tuple]]]:
        """For each note of a scored batch: counts, change share, and (segment, label, p, c, n)."""
        flat = [s for segs in batch for s in segs]
        proba = self.segment_probabilities(flat)
        names = [LABELS[k] for k in proba.argmax(axis=1).tolist()] if len(flat) else []
        rows = iter(zip(flat, names, np.round(proba, 4).tolist()))
        for segs in batch:
            counts = {"procedural": 0, "change_focused": 0, "neutral": 0}
            scored = []
            for seg, label, (p, c, n) in (next(rows) for _ in segs):
                counts[label] += 1
                scored.append((seg, label, p, c, n))
            yield counts, change_share(counts), scored

    def _label_batch_json(self, batch: list[list[Segment]]) -> Iterator[str]:
        for counts, share, scored in self._per_note(batch):
            # float repr is what json.dumps writes for a finite float
            segs = ", ".join(f'{{"start": {seg.start}, "end": {seg.end}, "label": "{label}", "p": '
                             f'{{"procedural": {p!r}, "change_focused": {c!r}, "neutral": {n!r}}}}}'
                             for seg, label, p, c, n in scored)
            yield (f'"label": "{note_label(share)}", "change_share": '
                   f'{"null" if share is None else repr(round(share, 4))}, "counts": {{"procedural": '
                   f'{counts["procedural"]}, "change_focused": {counts["change_focused"]}, "neutral": '
                   f'{counts["neutral"]}}}, "segments": [{segs}]')

    def _label_batch(self, batch: list[list[Segment]]) -> Iterator[dict[str, Any]]:
        for counts, share, scored in self._per_note(batch):
            yield {
                "label": note_label(share),
                "change_share": None if share is None else round(share, 4),
                "counts": counts,
                "segments": [{"start": seg.start, "end": seg.end, "label": label,
                              "p": {"procedural": p, "change_focused": c, "neutral": n}}
                             for seg, label, p, c, n in scored],
            }


def output_record(note: Any, labelled: dict[str, Any], keep_text: bool = False) -> dict[str, Any]:
    """The output contract: every input field (text only with ``keep_text``) plus the labels."""
    out = input_fields(note, keep_text)
    out.update(labelled)
    return out


def input_fields(note: Any, keep_text: bool = False) -> dict[str, Any]:
    """The note's own fields as the output carries them (a field named like an output key is
    kept as ``input_<name>``; the text only with ``keep_text``)."""
    out = {(f"input_{k}" if k in OUTPUT_KEYS else k): v for k, v in note.fields.items()}
    if keep_text:
        out["text"] = note.text
    return out


def labelled_notes(results: Iterable[tuple[Any, dict[str, Any] | None]],
                   examples: bool = False) -> Iterator[tuple[dict[str, Any], dict[str, int], list]]:
    """(fields, counts, example sentences) for each labelled output, for the report.

    Example sentences are only gathered when asked for, and only where the note text is at hand.
    """
    for item, out in results:
        if out is None:
            continue
        ex: list[tuple[str, str, float]] = []
        if examples:
            text = getattr(item, "text", None) or out.get("text")
            if isinstance(text, str):
                for s in out.get("segments", []):
                    lab = s.get("label")
                    p = (s.get("p") or {}).get(lab, 0.0)
                    ex.append((text[s["start"]:s["end"]], lab, p))
        yield out, out["counts"], ex


# --- the fitted default pipeline without scikit-learn -----------------------------------------
# Labelling needs three steps of arithmetic: features, tf-idf weighting, a multinomial logistic
# regression. Importing scikit-learn (and skops to load it) costs more start-up than reading a
# small file takes, so ``modelio.load_model(light=True)`` builds these stand-ins from the same
# verified model file. Each repeats, operation for operation, what scikit-learn 1.9 does, so the
# probabilities are the same to the last bit (tests compare them on every corpus segment).


class LightTfidf:
    """``TfidfTransformer.transform`` (norm l2 or none, idf, sublinear tf) on a CSR matrix."""

    def __init__(self, idf: np.ndarray | None, sublinear_tf: bool, norm: str | None):
        self.idf_, self.sublinear_tf, self.norm = idf, sublinear_tf, norm

    def transform(self, X: Any, copy: bool = True) -> Any:
        import scipy.sparse as sp

        # copy=False: the caller hands over a fresh float matrix (the featurizer's), used in place
        X = sp.csr_matrix(X, dtype=np.float64, copy=copy)
        if self.sublinear_tf:
            np.log(X.data, X.data)
            X.data += 1.0
        if self.idf_ is not None:
            X.data *= self.idf_[X.indices]
        if self.norm == "l2":
            # sklearn's inplace_csr_row_normalize_l2: a sequential sum of squares per row, in
            # storage order (csr_matvec sums the same way), square root, divide; empty rows stay
            sq = sp.csr_matrix((X.data * X.data, X.indices, X.indptr), shape=X.shape)
            norms = np.sqrt(sq @ np.ones(X.shape[1]))
            norms[norms == 0.0] = 1.0
            X.data /= np.repeat(norms, np.diff(X.indptr))
        return X


class LightLogistic:
    """``LogisticRegression.predict_proba`` for three or more classes (softmax of the scores)."""

    def __init__(self, coef: np.ndarray, intercept: np.ndarray, classes: np.ndarray):
        self.coef_, self.intercept_, self.classes_ = coef, intercept, classes

    def decision_function(self, X: Any) -> np.ndarray:
        return X @ self.coef_.T + self.intercept_

    def predict_proba(self, X: Any) -> np.ndarray:
        scores = self.decision_function(X)
        scores -= np.max(scores, axis=1).reshape((-1, 1))
        np.exp(scores, out=scores)
        scores /= np.sum(scores, axis=1).reshape((-1, 1))
        return scores


class LightPipeline:
    """The pipeline's steps and ``predict_proba``, as ``NoteLabeller`` and ``explain`` use them."""

    def __init__(self, steps: list[tuple[str, Any]]):
        self.steps = steps
        self.classes_ = steps[-1][1].classes_

    def predict_proba(self, X: Any) -> np.ndarray:
        for i, (_, step) in enumerate(self.steps[:-1]):
            # after the first step the matrix is this call's own: tf-idf may weight it in place
            X = step.transform(X, copy=False) if i and isinstance(step, LightTfidf) else step.transform(X)
        return self.steps[-1][1].predict_proba(X)
