"""Explaining one note: each segment's label, probability, and the words that pushed it there.

Contributions come from the model itself: for the linear classifier, a feature's contribution
to a label is its weighted value times how much more that label's coefficient is than the
average over labels. Character n-grams are credited to the word they came from, so the reasons
read as words and concepts, not fragments. Guidance is drawn from ``patterns/guidance.json``,
which restates the codebook's categories; it describes the recording, never the practice.
"""

from __future__ import annotations

import json
from collections import defaultdict
from importlib import resources
from typing import Any

import numpy as np

from .classify import LABELS, NoteLabeller, change_share, note_label
from .segment import get_nlp, segments_of


def _guidance() -> dict[str, Any]:
    return json.loads(resources.files("supervise_nlp.patterns").joinpath("guidance.json").read_text("utf-8"))


def contributions(labeller: NoteLabeller, segments: list) -> list[dict[str, list[tuple[str, float]]]]:
    """For each segment, every feature pushing toward each label, largest first."""
    model = labeller.model
    featurizer, clf = model.steps[0][1], model.steps[-1][1]
    if not hasattr(clf, "coef_") or not hasattr(featurizer, "feature_names_of"):
        return [{} for _ in segments]
    X = featurizer.transform(segments)
    for _, step in model.steps[1:-1]:
        X = step.transform(X)
    names = featurizer.feature_names_of(segments)
    classes = [str(c) for c in clf.classes_]
    coef = clf.coef_
    if coef.shape[0] == 1:  # binary: one row, for classes_[1]
        coef = np.vstack([-coef[0], coef[0]])
    relative = coef - coef.mean(axis=0, keepdims=True)
    out = []
    X = X.tocsr()
    for r in range(X.shape[0]):
        row = X.getrow(r)
        per_label: dict[str, list[tuple[str, float]]] = {}
        for k, lab in enumerate(classes):
            totals: dict[str, float] = defaultdict(float)
            for col, val in zip(row.indices, row.data):
                labels_here = names[r].get(int(col), {"(hashed feature)"})
                share = val * relative[k, col] / len(labels_here)
                for label in labels_here:
                    totals[label] += share
            ranked = sorted(totals.items(), key=lambda kv: -kv[1])
            per_label[lab] = [(n, round(float(v), 3)) for n, v in ranked if v > 0]
        out.append(per_label)
    return out


def explain_text(text: str, labeller: NoteLabeller, top: int = 5) -> dict[str, Any]:
    """Everything `explain` shows, as data."""
    doc = get_nlp()(text)
    segs = segments_of(doc)
    proba = labeller.segment_probabilities(segs)
    contrib = contributions(labeller, segs)
    featurizer = labeller.model.steps[0][1]
    concepts = featurizer.feature_names_of(segs) if hasattr(featurizer, "feature_names_of") else [{} for _ in segs]
    guide = _guidance()
    counts = {lab: 0 for lab in LABELS}
    out_segs = []
    for i, seg in enumerate(segs):
        label = LABELS[int(proba[i].argmax())]
        counts[label] += 1
        found = sorted({n.split(": ", 1)[1].replace(" ", "_") for labs in concepts[i].values() for n in labs
                        if n.startswith("concept: ")})
        entry = {
            "start": seg.start, "end": seg.end, "text": seg.text, "label": label,
            "p": {lab: round(float(proba[i][k]), 4) for k, lab in enumerate(LABELS)},
            "because": [{"feature": n, "weight": w} for n, w in contrib[i].get(label, [])[:top]],
            "concepts": found,
        }
        if label == "procedural":
            # the concept that pushed hardest toward procedural decides which suggestion fits
            ranked = [n.split(": ", 1)[1].replace(" ", "_") for n, _ in contrib[i].get(label, [])
                      if n.startswith("concept: ")]
            key = next((c for c in ranked + found if c in guide["by_concept"]), None)
            entry["a_change_focused_account_would_record"] = guide["by_concept"].get(key, guide["default"])
        out_segs.append(entry)
    share = change_share(counts)
    return {"label": note_label(share), "change_share": share, "counts": counts, "segments": out_segs,
            "summary": summary_line(counts, share)}


def summary_line(counts: dict[str, int], share: float | None) -> str:
    n = sum(counts.values())
    if share is None:
        return (f"{n} segment(s), none procedural or change-focused: the note is unclassified "
                "(all plain observation, headings or fact).")
    return (f"{n} segment(s): {counts['procedural']} procedural, {counts['change_focused']} change-focused, "
            f"{counts['neutral']} neutral. Change share {share:.2f}: the recording reads as "
            f"{'change-focused' if share > 0.5 else 'procedural'} (codebook threshold 0.5).")
