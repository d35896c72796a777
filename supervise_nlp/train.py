"""Training, grouped cross-validation, and the model card.

The tool is used on organisations it has never seen, so the honest estimate is leave-one-group-
out cross-validation (by authority, by default): each fold trains on the other organisations and
labels this one's notes with its own segmentation. A held-out test set and any extra
generalisation checks (differently written notes) are scored by the final model and reported on
the card beside it.
"""

from __future__ import annotations

import fnmatch
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


WEIGHT_KEY = "_weight"  # set in memory by read_weighted; never written to a corpus file


def record_weight(record: dict[str, Any]) -> float:
    return float(record.get(WEIGHT_KEY, 1.0))


def fit(records: Sequence[dict[str, Any]], model: Pipeline | None = None) -> Pipeline:
    """Fit on gold segments; a record's weight (see ``read_weighted``) weights each of its segments."""
    model = clone(model) if model is not None else build_pipeline()
    examples, labels = training_examples(records, as_spans=isinstance(model.steps[0][1], SegmentFeaturizer))
    weights = [record_weight(r) for r in records for _ in r["segments"]]
    if any(w != 1.0 for w in weights):
        return model.fit(examples, labels, **{f"{model.steps[-1][0]}__sample_weight": weights})
    return model.fit(examples, labels)


def parse_weights(rules: Sequence[str]) -> list[tuple[str, float]]:
    """``PATTERN=W`` rules (a glob on the file's path or name) for ``read_weighted``."""
    out = []
    for rule in rules:
        pattern, sep, value = rule.rpartition("=")
        try:
            weight = float(value)
        except ValueError:
            weight = -1.0
        if not sep or not pattern or not weight > 0:
            raise ValueError(f"--weight takes PATTERN=W with a positive number W (got {rule!r})")
        out.append((pattern, weight))
    return out


def read_weighted(paths: Sequence[str], rules: Sequence[tuple[str, float]] = ()) -> list[dict[str, Any]]:
    """Corpus records with each file's weight: the last matching rule wins; unmatched files weigh 1."""
    records = []
    for source in iter_sources(paths):
        weight = 1.0
        for pattern, w in rules:
            # a relative pattern also matches the end of a longer path (a card's 'corpora/registers/*'
            # finds the corpus shipped inside an installed package)
            if any(fnmatch.fnmatch(source, pat) for pat in (pattern, "*/" + pattern.lstrip("/"))) \
                    or fnmatch.fnmatch(Path(source).name, pattern):
                weight = w
        for rec in read_corpus([source]):
            if weight != 1.0:
                rec[WEIGHT_KEY] = weight
            records.append(rec)
    return records


def baseline_pipeline() -> Pipeline:
    """The plain baseline the issue names: word TF-IDF and logistic regression on segment text."""
    return Pipeline([("tfidf", TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True, min_df=1)),
                     ("clf", LogisticRegression(C=4.0, class_weight="balanced", max_iter=3000))])


def cross_validate(
    records: Sequence[dict[str, Any]],
    group: str = "authority",
    model: Pipeline | None = None,
    progress: Callable[[str], None] | None = None,
    breakdown: str = "register",
) -> dict[str, Any]:
    """Leave-one-group-out: each group labelled by a model that never saw it; scores pooled, and
    per group (``per_group``). Records without the field are never held out: they always train
    (so "leave one register out" tests each written register against everything else)."""
    def key(r: dict[str, Any]) -> str | None:
        v = r.get(group)
        return None if v is None or str(v).strip() == "" else str(v)

    groups = sorted({k for r in records if (k := key(r)) is not None})
    always_train = sum(key(r) is None for r in records)
    if len(groups) < (1 if always_train else 2):
        raise ValueError(f"cross-validation by {group!r} needs at least two groups; found {groups}")
    outputs: dict[int, dict[str, Any]] = {}
    for g in groups:
        if progress:
            progress(f"fold: holding out {group}={g}")
        train = [r for r in records if key(r) != g]
        held = [i for i, r in enumerate(records) if key(r) == g]
        labeller = NoteLabeller(fit(train, model))
        for i, out in zip(held, labeller.label_texts(corpus_text(records[i]) for i in held)):
            outputs[i] = out
    held_all = sorted(outputs)
    pooled = score_outputs([records[i] for i in held_all], [outputs[i] for i in held_all])
    pooled["group"] = group
    pooled["folds"] = len(groups)
    pooled["never_held_out"] = len(records) - len(held_all)
    per_group = {}
    for g in groups:
        idx = [i for i in held_all if key(records[i]) == g]
        s = score_outputs([records[i] for i in idx], [outputs[i] for i in idx])
        per_group[g] = {k: s[k] for k in ("segments", "macro_f1", "kappa", "accuracy", "team_balance_mae")}
        per_group[g]["per_class_f1"] = {lab: s["per_class"][lab]["f1"] for lab in LABELS}
    pooled["per_group"] = per_group
    if group != breakdown and any(r.get(breakdown) for r in records):
        # the same held-out labels, pooled by another field (e.g. the synthetic sample vs each register)
        kinds = sorted({str(records[i].get(breakdown) or "(none)") for i in held_all})
        pooled[f"by_{breakdown}"] = {}
        for kind in kinds:
            idx = [i for i in held_all if str(records[i].get(breakdown) or "(none)") == kind]
            s = score_outputs([records[i] for i in idx], [outputs[i] for i in idx])
            pooled[f"by_{breakdown}"][kind] = {k: s[k] for k in ("segments", "macro_f1", "kappa", "team_balance_mae")}
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
    cv_group: str | Sequence[str] | None = "authority",
    baseline: bool = True,
    progress: Callable[[str], None] | None = None,
    weights: Sequence[tuple[str, float]] = (),
    description: str | None = None,
) -> tuple[Pipeline, dict[str, Any]]:
    """Fit on ``corpus``, cross-validate (leave one group out, for each of ``cv_group``), score test
    and checks; return the model and its card."""
    started = time.time()
    records = read_weighted(corpus, weights)
    cv_groups = [cv_group] if isinstance(cv_group, str) else list(cv_group or [])
    test_records = read_corpus(test) if test else []
    if progress:
        progress(f"training on {len(records)} notes")
    model = fit(records)
    card = describe_training(records, corpus, weights, model, description)
    for i, group in enumerate(cv_groups):
        if i and len({r.get(group) for r in records if r.get(group)}) < 2:
            continue  # a further grouping the corpus does not have (e.g. no register field)
        key = "cross_validation" if i == 0 else f"cross_validation_by_{group}"
        card[key] = cross_validate(records, group, progress=progress)
        if baseline and i == 0:
            if progress:
                progress("cross-validating the plain TF-IDF baseline for comparison")
            b = cross_validate(records, group, model=baseline_pipeline())
            card["baseline_cross_validation"] = {k: b[k] for k in ("macro_f1", "kappa", "team_balance_mae",
                                                                    "note_change_share_mae", "per_authority",
                                                                    "per_group")}
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


def describe_training(records: Sequence[dict[str, Any]], files: Sequence[str],
                      weights: Sequence[tuple[str, float]], model: Pipeline,
                      description: str | None = None) -> dict[str, Any]:
    """The card's account of what a model was trained on, with what weights and which libraries."""
    return {
        "labels": list(LABELS),
        "trained_on": {
            "files": [str(p) for p in files],
            "fingerprint": data_fingerprint(files),
            "notes": len(records),
            "segments": sum(len(r["segments"]) for r in records),
            "label_counts": dict(Counter(s["label"] for r in records for s in r["segments"])),
            "authorities": sorted({str(r.get("authority")) for r in records}),
            "teams": len({(r.get("authority"), r.get("team")) for r in records}),
            "registers": dict(sorted(Counter(str(r["register"]) for r in records if r.get("register")).items())),
            "weights": [{"pattern": p, "weight": w} for p, w in weights],
            "description": description,
        },
        "model": describe(model),
        "versions": library_versions(),
        "command": "supervise-nlp train " + " ".join(sys.argv[2:]) if sys.argv[1:2] == ["train"] else None,
    }


def describe(model: Pipeline) -> dict[str, Any]:
    simple = (int, float, str, bool, tuple, type(None))
    steps = []
    for name, step in model.steps:
        params = {k: list(v) if isinstance(v, tuple) else v
                  for k, v in step.get_params(deep=False).items() if isinstance(v, simple)}
        steps.append({"step": name, "class": type(step).__name__, "params": params})
    return {"pipeline": steps}
