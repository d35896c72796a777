"""Adapting a model to an organisation's own labelled notes.

Every organisation writes differently, and a few hundred of its own labelled segments move
accuracy on its recording more than any change to the model. ``adapt`` retrains the base model's
design on the base model's own training corpus (which ships with the package) plus the added
notes, weighted. How much weight the added notes get is not guessed: it is chosen by
cross-validation over the added notes, grouped by worker (or by note when there are too few
workers), so a fold's held-out notes were written by people the fold's model never read. The
base model is scored on the same folds, so the card can say what adapting gained.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from importlib import resources
from pathlib import Path
from typing import Any

from sklearn.base import clone
from sklearn.model_selection import GroupKFold

from .classify import NoteLabeller
from .evaluate import score_outputs
from .modelio import ModelError, default_model_dir, load_card, load_model
from .read import corpus_text
from .train import WEIGHT_KEY, fit, read_weighted
from .validate import load_labelled

WEIGHT_GRID = (1.0, 3.0, 10.0)
SCORE_KEYS = ("segments", "macro_f1", "kappa", "accuracy", "team_balance_mae", "note_change_share_mae")


def _roots() -> list[Path]:
    """Where a card's relative corpus paths can be found: the installed package, then a checkout."""
    return [Path(str(resources.files("supervise_nlp"))), Path(__file__).resolve().parent.parent]


def base_corpus(base: str | None) -> tuple[list[str], list[tuple[str, float]], dict[str, Any]]:
    """The files (and weights) a base model was trained on, found and checked against its card."""
    directory = default_model_dir() if base in (None, "default") else Path(base)
    card = load_card(directory)
    trained = card.get("trained_on") or {}
    expected = (trained.get("fingerprint") or {}).get("files", {})
    files = []
    for name in trained.get("files", []):
        candidates = [Path(name)] if Path(name).is_absolute() else [root / name for root in _roots()]
        found = next((c for c in candidates if c.is_file()), None)
        if found is None:
            raise ModelError(f"the base model's training file {name} is not available here; "
                             "adapting needs the corpus the base model was trained on")
        digest = hashlib.sha256(found.read_bytes()).hexdigest()
        if expected.get(Path(name).name) not in (None, digest):
            raise ModelError(f"{found} differs from the file the base model was trained on (checksum mismatch)")
        files.append(str(found))
    if not files:
        raise ModelError(f"the card in {directory} does not list its training files")
    weights = [(w["pattern"], float(w["weight"])) for w in trained.get("weights") or []]
    return files, weights, card


MIN_WORKERS = 3  # fewer, and holding out a whole worker leaves too little of the added kind to learn from


def _groups(records: Sequence[dict[str, Any]]) -> tuple[list[str], str]:
    """Fold groups: whole workers when there are enough of them (the honest test for new writers), else notes."""
    workers = [str(r.get("worker") or "") for r in records]
    if len({w for w in workers if w}) >= MIN_WORKERS and all(workers):
        return workers, "worker"
    return [str(r.get("id", i)) for i, r in enumerate(records)], "note"


def _scores(records: Sequence[dict[str, Any]], outputs: Sequence[dict[str, Any]]) -> dict[str, Any]:
    s = score_outputs(records, outputs)
    out = {k: s[k] for k in SCORE_KEYS}
    out["per_class_f1"] = {lab: v["f1"] for lab, v in s["per_class"].items()}
    return out


def adapt(
    base: str | None,
    added_paths: Sequence[str],
    weight: float | None = None,
    folds: int = 5,
    grid: Sequence[float] = WEIGHT_GRID,
    progress: Callable[[str], None] | None = None,
) -> tuple[Any, dict[str, Any]]:
    """Retrain the base model's design on its corpus plus ``added_paths``; return model and card section."""
    files, base_weights, base_card = base_corpus(base)
    base_model = load_model(None if base in (None, "default") else base)
    base_records = read_weighted(files, base_weights)
    added = load_labelled(list(added_paths))  # corpus JSON Lines or filled sample sheets
    if not added:
        raise ValueError("the added files hold no labelled notes")
    groups, grouped_by = _groups(added)
    n_folds = min(folds, len(set(groups)))
    section: dict[str, Any] = {
        "base_model": base or "default",
        "base_files": [Path(f).name for f in files],
        "added_files": [str(p) for p in added_paths],
        "added_notes": len(added),
        "added_segments": sum(len(r["segments"]) for r in added),
        "folds": n_folds,
        "grouped_by": grouped_by,
    }
    design = clone(base_model)
    if n_folds >= 2:
        # the base model never saw the added notes: its score on them is the comparison, fold for fold
        base_out = list(NoteLabeller(base_model).label_texts(corpus_text(r) for r in added))
        section["base_model_scores"] = _scores(added, base_out)
        splits = list(GroupKFold(n_splits=n_folds).split(added, groups=groups))
        candidates = [weight] if weight is not None else list(grid)
        results = {}
        for w in candidates:
            outputs: list[dict[str, Any] | None] = [None] * len(added)
            for k, (tr, te) in enumerate(splits):
                if progress:
                    progress(f"weight {w:g}: fold {k + 1} of {n_folds}")
                train = base_records + [{**added[i], WEIGHT_KEY: w} for i in tr]
                labeller = NoteLabeller(fit(train, design))
                for i, out in zip(te, labeller.label_texts(corpus_text(added[i]) for i in te)):
                    outputs[i] = out
            results[w] = _scores(added, outputs)
        best = max(results, key=lambda w: (round(results[w]["macro_f1"], 4), -w))
        section["cross_validation"] = {f"{w:g}": s for w, s in results.items()}
        section["chosen_weight"] = best
        section["gain_macro_f1"] = results[best]["macro_f1"] - section["base_model_scores"]["macro_f1"]
        weight = best
    else:
        weight = weight if weight is not None else grid[len(grid) // 2]
        section["chosen_weight"] = weight
        section["note"] = "too few added notes (or workers) to cross-validate; weight not chosen by evidence"
    if progress:
        progress(f"fitting the adapted model (added notes weighted {weight:g})")
    model = fit(base_records + [{**r, WEIGHT_KEY: weight} for r in added], design)
    section["base_card_summary"] = {k: (base_card.get("cross_validation") or {}).get(k)
                                    for k in ("macro_f1", "kappa", "group")}
    return model, section
