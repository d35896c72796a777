"""Training, grouped cross-validation, and the model card.

The tool is used on organisations it has never seen, so the honest estimate is leave-one-group-
out cross-validation (by authority, by default): each fold trains on the other organisations and
labels this one's notes with its own segmentation. A held-out test set and any extra
generalisation checks (differently written notes) are scored by the final model and reported on
the card beside it.
"""

from __future__ import annotations

import hashlib
import platform
import sys
import time
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from sklearn.base import clone
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline

from .classify import LABELS, NoteLabeller, build_pipeline
from .evaluate import evaluate_records, score_outputs
from .features import SegmentFeaturizer
from .read import corpus_text, gold_spans, iter_sources, read_corpus
from .segment import get_nlp


def training_examples(records: Sequence[dict[str, Any]], as_spans: bool = True) -> tuple[list[Any], list[str]]:
    """Gold segments with their labels: spans inside their note (so context features see the
    neighbours, as at prediction time), or plain strings for text-only pipelines."""
    nlp = get_nlp()
    examples, labels = [], []
    for rec in records:
        gold = gold_spans(rec)
        if as_spans:
            doc = nlp.make_doc(corpus_text(rec))
            for start, end, label in gold:
                span = doc.char_span(start, end, alignment_mode="expand")
                examples.append(span if span is not None and len(span) else doc.text[start:end])
                labels.append(label)
        else:
            examples.extend(s["text"] for s in rec["segments"])
            labels.extend(label for _, _, label in gold)
    return examples, labels


def fit(records: Sequence[dict[str, Any]], model: Pipeline | None = None) -> Pipeline:
    model = clone(model) if model is not None else build_pipeline()
    examples, labels = training_examples(records, as_spans=isinstance(model.steps[0][1], SegmentFeaturizer))
    return model.fit(examples, labels)


def baseline_pipeline() -> Pipeline:
    """The plain baseline the issue names: word TF-IDF and logistic regression on segment text."""
    return Pipeline([("tfidf", TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True, min_df=1)),
                     ("clf", LogisticRegression(C=4.0, class_weight="balanced", max_iter=3000))])


def cross_validate(
    records: Sequence[dict[str, Any]],
    group: str = "authority",
    model: Pipeline | None = None,
    progress: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Leave-one-group-out: each group labelled by a model that never saw it; scores pooled."""
    groups = sorted({str(r.get(group, "unknown")) for r in records})
    if len(groups) < 2:
        raise ValueError(f"cross-validation by {group!r} needs at least two groups; found {groups}")
    outputs: dict[int, dict[str, Any]] = {}
    for g in groups:
        if progress:
            progress(f"fold: holding out {group}={g}")
        train = [r for r in records if str(r.get(group, "unknown")) != g]
        held = [i for i, r in enumerate(records) if str(r.get(group, "unknown")) == g]
        labeller = NoteLabeller(fit(train, model))
        for i, out in zip(held, labeller.label_texts(corpus_text(records[i]) for i in held)):
            outputs[i] = out
    pooled = score_outputs(records, [outputs[i] for i in range(len(records))])
    pooled["group"] = group
    pooled["folds"] = len(groups)
    return pooled


def data_fingerprint(paths: Sequence[str]) -> dict[str, Any]:
    files = sorted(iter_sources(paths))
    whole = hashlib.sha256()
    per = {}
    for f in files:
        data = Path(f).read_bytes()
        whole.update(data)
        per[Path(f).name] = hashlib.sha256(data).hexdigest()
    return {"sha256": whole.hexdigest(), "files": per}


def library_versions() -> dict[str, str]:
    import numpy
    import scipy
    import sklearn
    import skops
    import spacy

    from . import __version__

    return {"supervise-nlp": __version__, "python": platform.python_version(), "spacy": spacy.__version__,
            "scikit-learn": sklearn.__version__, "numpy": numpy.__version__, "scipy": scipy.__version__,
            "skops": skops.__version__}


def train_model(
    corpus: Sequence[str],
    test: Sequence[str] = (),
    checks: Sequence[str] = (),
    cv_group: str | None = "authority",
    baseline: bool = True,
    progress: Callable[[str], None] | None = None,
) -> tuple[Pipeline, dict[str, Any]]:
    """Fit on ``corpus``, cross-validate, score test and checks; return the model and its card."""
    started = time.time()
    records = read_corpus(corpus)
    test_records = read_corpus(test) if test else []
    if progress:
        progress(f"training on {len(records)} notes")
    model = fit(records)
    card: dict[str, Any] = {
        "labels": list(LABELS),
        "trained_on": {
            "files": [str(p) for p in corpus],
            "fingerprint": data_fingerprint(corpus),
            "notes": len(records),
            "segments": sum(len(r["segments"]) for r in records),
            "label_counts": dict(Counter(s["label"] for r in records for s in r["segments"])),
            "authorities": sorted({str(r.get("authority")) for r in records}),
            "teams": len({(r.get("authority"), r.get("team")) for r in records}),
        },
        "model": describe(model),
        "versions": library_versions(),
        "command": "supervise-nlp train " + " ".join(sys.argv[2:]) if sys.argv[1:2] == ["train"] else None,
    }
    if cv_group:
        card["cross_validation"] = cross_validate(records, cv_group, progress=progress)
        if baseline:
            if progress:
                progress("cross-validating the plain TF-IDF baseline for comparison")
            b = cross_validate(records, cv_group, model=baseline_pipeline())
            card["baseline_cross_validation"] = {k: b[k] for k in ("macro_f1", "kappa", "team_balance_mae",
                                                                    "note_change_share_mae", "per_authority")}
    if test_records:
        if progress:
            progress(f"scoring the held-out test set ({len(test_records)} notes)")
        card["test"] = evaluate_records(NoteLabeller(model), test_records)
        card["test"]["files"] = [str(p) for p in test]
        card["test"]["authorities"] = sorted({str(r.get("authority")) for r in test_records})
        if baseline:
            bm = NoteLabeller(fit(records, baseline_pipeline()))
            bt = evaluate_records(bm, test_records)
            card["baseline_test"] = {k: bt[k] for k in ("macro_f1", "kappa", "team_balance_mae")}
    for path in checks:
        recs = read_corpus([path])
        card.setdefault("checks", {})[Path(path).name] = evaluate_records(NoteLabeller(model), recs)
    card["training_seconds"] = round(time.time() - started, 1)
    return model, card


def describe(model: Pipeline) -> dict[str, Any]:
    simple = (int, float, str, bool, tuple, type(None))
    steps = []
    for name, step in model.steps:
        params = {k: list(v) if isinstance(v, tuple) else v
                  for k, v in step.get_params(deep=False).items() if isinstance(v, simple)}
        steps.append({"step": name, "class": type(step).__name__, "params": params})
    return {"pipeline": steps}
