"""Scoring a model against labelled notes, the way the codebook defines the measures.

The model segments each note itself; every gold segment then takes the label of the predicted
segment that overlaps it most, so segmentation errors count against the model. Beside the
segment scores come the measures the report relies on: note change-share error and per-team
balance error, and whether teams come out in the right order within each authority.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from typing import Any

import numpy as np
from scipy.stats import spearmanr
from sklearn.metrics import cohen_kappa_score, confusion_matrix, precision_recall_fscore_support

from .classify import LABELS, NoteLabeller, change_share
from .read import corpus_text, gold_spans


def align(gold: Sequence[tuple[int, int, str]], predicted: Sequence[dict[str, Any]]) -> list[tuple[str, dict]]:
    """For each gold segment, the predicted segment overlapping it most (label and probabilities)."""
    out = []
    j = 0
    for gs, ge, _ in gold:
        best, best_overlap = None, 0
        while j < len(predicted) and predicted[j]["end"] <= gs:
            j += 1
        k = j
        while k < len(predicted) and predicted[k]["start"] < ge:
            ov = min(ge, predicted[k]["end"]) - max(gs, predicted[k]["start"])
            if ov > best_overlap:
                best, best_overlap = predicted[k], ov
            k += 1
        if best is None:  # a gold segment of only whitespace/punctuation the model skipped
            out.append(("neutral", {lab: float(lab == "neutral") for lab in LABELS}))
        else:
            out.append((best["label"], best["p"]))
    return out


def segment_scores(y_true: Sequence[str], y_pred: Sequence[str], proba: np.ndarray | None = None) -> dict[str, Any]:
    p, r, f, support = precision_recall_fscore_support(y_true, y_pred, labels=list(LABELS), zero_division=0)
    scores: dict[str, Any] = {
        "segments": len(y_true),
        "accuracy": float(np.mean(np.array(y_true) == np.array(y_pred))) if len(y_true) else None,
        "macro_f1": float(np.mean(f)),
        "kappa": (float(cohen_kappa_score(y_true, y_pred, labels=list(LABELS)))
                  if len(set(y_true) | set(y_pred)) > 1 else None),
        "per_class": {
            lab: {"precision": float(p[i]), "recall": float(r[i]), "f1": float(f[i]), "support": int(support[i])}
            for i, lab in enumerate(LABELS)
        },
        "confusion": {
            "labels": list(LABELS),
            "matrix": confusion_matrix(y_true, y_pred, labels=list(LABELS)).tolist(),
        },
    }
    if proba is not None and len(proba):
        scores["calibration"] = calibration(np.array([LABELS.index(t) for t in y_true]), proba)
    return scores


def calibration(y_idx: np.ndarray, proba: np.ndarray, bins: int = 10) -> dict[str, float]:
    """Expected calibration error of the top label, and the multi-class Brier score."""
    conf = proba.max(axis=1)
    correct = proba.argmax(axis=1) == y_idx
    edges = np.linspace(0, 1, bins + 1)
    which = np.clip(np.digitize(conf, edges) - 1, 0, bins - 1)
    ece = 0.0
    for b in range(bins):
        m = which == b
        if m.any():
            ece += m.mean() * abs(conf[m].mean() - correct[m].mean())
    onehot = np.eye(proba.shape[1])[y_idx]
    return {"ece": float(ece), "brier": float(np.mean(np.sum((proba - onehot) ** 2, axis=1)))}


def evaluate_records(labeller: NoteLabeller, records: Sequence[dict[str, Any]],
                     keep_note_confusions: bool = False) -> dict[str, Any]:
    """Every measure for one model on one labelled set.

    With ``keep_note_confusions`` the result keeps each note's confusion matrix (under
    ``_note_confusions``, not JSON), for intervals and paired comparisons over notes.
    """
    outputs = list(labeller.label_texts(corpus_text(r) for r in records))
    return score_outputs(records, outputs, keep_note_confusions)


def note_confusions(records, y_true: Sequence[str], y_pred: Sequence[str]) -> np.ndarray:
    """One 3x3 confusion matrix (gold rows, predicted columns) per note, shape (notes, 3, 3)."""
    idx = {lab: i for i, lab in enumerate(LABELS)}
    out = np.zeros((len(records), len(LABELS), len(LABELS)), dtype=np.int64)
    pos = 0
    for n, rec in enumerate(records):
        for t, p in zip(y_true[pos:pos + len(rec["segments"])], y_pred[pos:pos + len(rec["segments"])]):
            out[n, idx[t], idx[p]] += 1
        pos += len(rec["segments"])
    return out


def _f1_kappa(cm: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Macro-F1 and Cohen's kappa of a stack of confusion matrices (..., 3, 3), as sklearn computes them
    (validate's vectorised scores: one definition for evaluate and validate)."""
    from .validate import scores_from_confusion

    s = scores_from_confusion(cm)
    return s["macro_f1"], s["kappa"]


def bootstrap_weights(n_notes: int, n_boot: int, seed: int) -> np.ndarray:
    """How often each note appears in each resample (resampling notes, not segments)."""
    rng = np.random.default_rng(seed)
    return rng.multinomial(n_notes, np.full(n_notes, 1 / n_notes), size=n_boot)


def _interval(values: np.ndarray) -> list[float] | None:
    v = values[np.isfinite(values)]
    if len(v) < 10:
        return None
    lo, hi = np.percentile(v, [2.5, 97.5])
    return [round(float(lo), 4), round(float(hi), 4)]


def intervals(note_cms: np.ndarray, weights: np.ndarray) -> dict[str, list[float] | None]:
    """95% percentile bootstrap intervals over notes for macro-F1 and kappa."""
    boot = np.einsum("bn,nij->bij", weights, note_cms)
    f1, kappa = _f1_kappa(boot)
    return {"macro_f1": _interval(f1), "kappa": _interval(kappa)}


def paired_comparison(a: np.ndarray, b: np.ndarray, weights: np.ndarray) -> dict[str, Any]:
    """Model A minus model B on the same notes: the difference in macro-F1 and kappa, with paired
    bootstrap intervals (each resample of notes scores both models)."""
    fa, ka = _f1_kappa(a.sum(axis=0))
    fb, kb = _f1_kappa(b.sum(axis=0))
    ba, bb = np.einsum("bn,nij->bij", weights, a), np.einsum("bn,nij->bij", weights, b)
    (bfa, bka), (bfb, bkb) = _f1_kappa(ba), _f1_kappa(bb)
    d = bfa - bfb
    ci = _interval(d)
    return {
        "macro_f1_difference": round(float(fa - fb), 4), "macro_f1_difference_ci": ci,
        "kappa_difference": round(float(ka - kb), 4), "kappa_difference_ci": _interval(bka - bkb),
        "share_of_resamples_a_better": round(float(np.mean(d > 0)), 4),
        "clear_difference": bool(ci and (ci[0] > 0 or ci[1] < 0)),
        "resamples": int(weights.shape[0]),
    }


def trained_on_these(card: dict[str, Any] | None, corpus_files: Sequence[str]) -> list[str]:
    """Corpus files whose SHA-256 is among the model's training files (by content, whatever the name)."""
    import hashlib
    from pathlib import Path

    from .read import iter_sources

    stored = ((card or {}).get("trained_on", {}).get("fingerprint", {}) or {}).get("files", {}) or {}
    hashes = set(stored.values())
    out = []
    for f in iter_sources(corpus_files):
        if f != "-" and hashlib.sha256(Path(f).read_bytes()).hexdigest() in hashes:
            out.append(f)
    return out


def score_outputs(records: Sequence[dict[str, Any]], outputs: Sequence[dict[str, Any]],
                  keep_note_confusions: bool = False) -> dict[str, Any]:
    """Every measure, given each labelled record and the model's output for its text."""
    y_true: list[str] = []
    y_pred: list[str] = []
    probs: list[list[float]] = []
    notes = []
    for rec, out in zip(records, outputs):
        gold = gold_spans(rec)
        aligned = align(gold, out["segments"])
        y_true.extend(g[2] for g in gold)
        y_pred.extend(a[0] for a in aligned)
        probs.extend([a[1][lab] for lab in LABELS] for a in aligned)
        gold_counts = {lab: 0 for lab in LABELS}
        for g in gold:
            gold_counts[g[2]] += 1
        notes.append((rec, gold_counts, out["counts"]))
    result = segment_scores(y_true, y_pred, np.array(probs))
    result["notes"] = len(records)
    if keep_note_confusions:
        result["_note_confusions"] = note_confusions(records, y_true, y_pred)
    result.update(note_and_team_scores(notes))
    result["per_authority"] = per_authority(records, y_true, y_pred)
    return result


def per_authority(records, y_true, y_pred) -> dict[str, dict[str, float]]:
    idx = 0
    by: dict[str, tuple[list, list]] = defaultdict(lambda: ([], []))
    for rec in records:
        n = len(rec["segments"])
        t, p = by[str(rec.get("authority", "unknown"))]
        t.extend(y_true[idx:idx + n])
        p.extend(y_pred[idx:idx + n])
        idx += n
    out = {}
    for auth, (t, p) in sorted(by.items()):
        s = segment_scores(t, p)
        out[auth] = {"segments": len(t), "macro_f1": s["macro_f1"], "kappa": s["kappa"], "accuracy": s["accuracy"]}
    return out


def note_and_team_scores(notes: Sequence[tuple[dict, dict, dict]]) -> dict[str, Any]:
    """Note change-share error and per-team balance error, per the codebook's measures."""
    errors = []
    label_agree = []
    teams: dict[tuple[str, str], list[dict[str, int]]] = defaultdict(lambda: [_zero(), _zero()])
    for rec, gold, pred in notes:
        g, p = change_share(gold), change_share(pred)
        if g is not None and p is not None:
            errors.append(abs(g - p))
            label_agree.append((g > 0.5) == (p > 0.5))
        key = (str(rec.get("authority", "unknown")), str(rec.get("team", "unknown")))
        for lab in LABELS:
            teams[key][0][lab] += gold[lab]
            teams[key][1][lab] += pred[lab]
    team_rows = []
    for (auth, team), (g, p) in sorted(teams.items()):
        gb, pb = change_share(g), change_share(p)
        team_rows.append({"authority": auth, "team": team, "true_balance": gb, "predicted_balance": pb,
                          "error": None if gb is None or pb is None else pb - gb})
    errs = [abs(t["error"]) for t in team_rows if t["error"] is not None]
    # ranking within each authority
    by_auth = defaultdict(list)
    for t in team_rows:
        if t["error"] is not None:
            by_auth[t["authority"]].append(t)
    order_ok, rhos = 0, []
    for rows in by_auth.values():
        true_order = [r["team"] for r in sorted(rows, key=lambda r: r["true_balance"])]
        pred_order = [r["team"] for r in sorted(rows, key=lambda r: r["predicted_balance"])]
        order_ok += true_order == pred_order
        if len(rows) > 2:
            rhos.append(spearmanr([r["true_balance"] for r in rows], [r["predicted_balance"] for r in rows])[0])
    return {
        "note_change_share_mae": float(np.mean(errors)) if errors else None,
        "note_label_agreement": float(np.mean(label_agree)) if label_agree else None,
        "team_balance_mae": float(np.mean(errs)) if errs else None,
        "team_balance_max_error": float(np.max(errs)) if errs else None,
        "authorities_in_true_team_order": f"{order_ok}/{len(by_auth)}",
        "team_rank_spearman_mean": float(np.mean(rhos)) if rhos else None,
        "teams": team_rows,
    }


def _zero() -> dict[str, int]:
    return {lab: 0 for lab in LABELS}
