"""The model card: what a model was trained on, and how well it does where it was never trained.

A card is the researcher's and the QA lead's answer to "can I trust these labels on notes like
mine?", so it leads with held-out scores: by organisation, by register (the kind of recording),
on independent check sets, and, for an adapted model, on the organisation's own notes.
"""

from __future__ import annotations

from typing import Any

from .classify import LABELS


def _f(x: Any, nd: int = 3) -> str:
    return "n/a" if x is None else f"{x:.{nd}f}"


def card_markdown(card: dict[str, Any]) -> str:
    """The human-readable model card (card.md beside the model)."""
    tr = card["trained_on"]
    lines = [
        "# Model card: supervise-nlp segment classifier",
        "",
        "Labels each segment of a social-work note `procedural`, `change_focused` or `neutral`, per the "
        "project's codebook (docs/codebook.md, version 2). "
        + f"Trained on {tr.get('description') or 'the files listed below'}. "
        + "Every score below is measured on notes the scored model never trained on.",
        "",
    ]
    lines += _headline(card)
    lines += [
        "## Training data",
        f"- Files: {', '.join(tr['files'])}",
        f"- SHA-256 of the training files: `{tr['fingerprint']['sha256']}`",
        f"- {tr['notes']} notes, {tr['segments']} segments, {len(tr['authorities'])} organisations, "
        f"{tr['teams']} teams",
        "- Label counts: " + ", ".join(f"{k} {v}" for k, v in sorted(tr["label_counts"].items())),
    ]
    if tr.get("registers"):
        lines.append("- Notes per register: " + ", ".join(f"{k} {v}" for k, v in tr["registers"].items()))
    if tr.get("weights"):
        lines.append("- Weights: " + ", ".join(f"`{w['pattern']}` × {w['weight']:g}" for w in tr["weights"]))
    lines += [
        "",
        "## Model",
        "A scikit-learn `Pipeline`: " + " → ".join(
            f"`{s['class']}`" for s in card["model"]["pipeline"]) + ". Features: words and word pairs, "
        "character 3-5-grams inside words (robust to misspelling), codebook concepts, NegEx-style negation "
        "scope, main/subordinate clause role, and segment shape (length, heading, bullet, date, quotes).",
        "",
    ]
    cv = card.get("cross_validation")
    if cv:
        lines += [f"## Cross-validation: leave one {cv['group']} out ({cv['folds']} folds)",
                  f"Each fold trains on everything but one {cv['group']} and labels its notes with its own "
                  "segmentation; scores are pooled over all folds.", ""]
        lines += _score_block(cv)
        base = card.get("baseline_cross_validation")
        if base:
            lines += ["", f"Plain TF-IDF + logistic regression baseline, same folds: macro-F1 {_f(base['macro_f1'])}, "
                      f"kappa {_f(base['kappa'])}, team balance MAE {_f(base['team_balance_mae'])}."]
        lines += ["", *_group_table(cv), ""]
        if cv.get("by_register"):
            lines += ["The same held-out labels by kind of recording ('(none)': notes without a register field):",
                      "",
                      "| recording | segments | macro-F1 | kappa |", "|---|---:|---:|---:|"]
            for name, s in cv["by_register"].items():
                lines.append(f"| {name} | {s['segments']} | {_f(s['macro_f1'])} | {_f(s['kappa'])} |")
            lines.append("")
    for key, value in card.items():
        if key.startswith("cross_validation_by_") and value:
            lines += _register_section(value)
    if "test" in card:
        t = card["test"]
        lines += [f"## Held-out test organisation: {', '.join(t.get('authorities', []))}",
                  "Never seen in training or model choice; scored by the final model.", ""]
        lines += _score_block(t)
        if "baseline_test" in card:
            b = card["baseline_test"]
            lines += ["", f"Baseline on the same test set: macro-F1 {_f(b['macro_f1'])}, "
                      f"team balance MAE {_f(b['team_balance_mae'])}."]
        lines += ["", "| team | true balance | predicted | error |", "|---|---:|---:|---:|"]
        for row in t["teams"]:
            lines.append(f"| {row['team']} | {_f(row['true_balance'], 2)} | {_f(row['predicted_balance'], 2)} | "
                         f"{_f(row['error'], 2)} |")
        lines.append("")
    for name, c in card.get("checks", {}).items():
        lines += [f"## Independent check set: {name}",
                  "Written by writers who never saw the training notes; never trained on.", ""]
        lines += _score_block(c)
        lines.append("")
    if card.get("adaptation"):
        lines += _adaptation_section(card["adaptation"])
    v = card["versions"]
    lines += [
        "## Reproduce",
        "```",
        "pip install .",
        card.get("command") or "supervise-nlp train ...",
        "```",
        "Library versions: " + ", ".join(f"{k} {val}" for k, val in v.items()) + ".",
        "",
        "## Limits",
        "- The shipped corpus is written by the project in the registers of real recording; it is not real "
        "case records. Scores on your organisation's notes will differ: measure them with `supervise-nlp "
        "sample` and `validate`, and adapt with `train --base default --add`.",
        "- The model labels sentences, not practice: a procedural note may record good work done elsewhere.",
        "- Team balances are more reliable than single notes: errors on sentences partly cancel when pooled.",
        "",
    ]
    return "\n".join(lines)


def _headline(card: dict[str, Any]) -> list[str]:
    """One table of every held-out score, so the reader sees the spread before the detail."""
    rows = []
    cv = card.get("cross_validation")
    if cv:
        rows.append((f"leave one {cv['group']} out ({cv['folds']} folds)", cv))
    for key, value in card.items():
        if key.startswith("cross_validation_by_") and value:
            rows.append((f"leave one {value['group']} out ({value['folds']} folds)", value))
    if "test" in card:
        rows.append(("held-out test organisation", card["test"]))
    for name, c in card.get("checks", {}).items():
        rows.append((f"check set {name}", c))
    if not rows:
        return []
    out = ["## Scores at a glance", "", "| measured on | segments | macro-F1 | kappa | team-balance MAE |",
           "|---|---:|---:|---:|---:|"]
    for name, s in rows:
        out.append(f"| {name} | {s['segments']} | {_f(s['macro_f1'])} | {_f(s['kappa'])} | "
                   f"{_f(s.get('team_balance_mae'))} |")
    return out + [""]


def _group_table(cv: dict[str, Any]) -> list[str]:
    groups = cv.get("per_group") or cv.get("per_authority") or {}
    out = [f"| held-out {cv['group']} | segments | macro-F1 | kappa |", "|---|---:|---:|---:|"]
    for name, s in groups.items():
        out.append(f"| {name} | {s['segments']} | {_f(s['macro_f1'])} | {_f(s['kappa'])} |")
    return out


def _register_section(cv: dict[str, Any]) -> list[str]:
    groups = cv.get("per_group") or {}
    ranked = sorted(groups.items(), key=lambda kv: (kv[1]["macro_f1"] is None, kv[1]["macro_f1"] or 0))
    lines = [f"## Cross-validation: leave one {cv['group']} out ({cv['folds']} folds)",
             f"Each kind of recording is labelled by a model trained on everything else (notes without a "
             f"{cv['group']}, {cv.get('never_held_out', 0)} of them, always train). This is the honest estimate "
             "for a kind of recording the model has never seen.", ""]
    lines += _score_block(cv)
    lines += ["", f"| held-out {cv['group']} (weakest first) | segments | macro-F1 | kappa | F1 procedural | "
              "F1 change-focused | F1 neutral | team-balance MAE |", "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for name, s in ranked:
        f1 = s.get("per_class_f1") or {}
        lines.append(f"| {name} | {s['segments']} | {_f(s['macro_f1'])} | {_f(s['kappa'])} | "
                     + " | ".join(_f(f1.get(lab)) for lab in LABELS) + f" | {_f(s.get('team_balance_mae'))} |")
    weak = [name for name, s in ranked[:3] if s["macro_f1"] is not None]
    if weak:
        lines += ["", f"**Weakest on**: {', '.join(weak)}. Check the model on your own notes of these kinds "
                  "before relying on team figures from them."]
    return lines + [""]


def _adaptation_section(ad: dict[str, Any]) -> list[str]:
    lines = ["## Adapted to added notes",
             f"Base model: {ad['base_model']}; added {ad['added_notes']} notes ({ad['added_segments']} segments) "
             f"from {', '.join(ad['added_files'])}.", ""]
    if "cross_validation" in ad:
        base = ad["base_model_scores"]
        why = ("so held-out notes come from workers the fold's model never read" if ad["grouped_by"] == "worker"
               else "too few workers to hold whole workers out, so whole notes are held out")
        lines += [f"Cross-validated on the added notes ({ad['folds']} folds grouped by {ad['grouped_by']}: {why}). "
                  "The base model is scored on the same notes.", "",
                  "| model | added-notes weight | macro-F1 | kappa | team-balance MAE |", "|---|---:|---:|---:|---:|",
                  f"| base model | | {_f(base['macro_f1'])} | {_f(base['kappa'])} | {_f(base['team_balance_mae'])} |"]
        for w, s in ad["cross_validation"].items():
            mark = " (chosen)" if float(w) == ad["chosen_weight"] else ""
            lines.append(f"| adapted{mark} | {w} | {_f(s['macro_f1'])} | {_f(s['kappa'])} | "
                         f"{_f(s['team_balance_mae'])} |")
        lines += ["", f"Gain in macro-F1 on the added kind of notes: {ad['gain_macro_f1']:+.3f}."]
    else:
        lines.append(ad.get("note", ""))
    return lines + [""]


def _score_block(s: dict[str, Any]) -> list[str]:
    out = [
        f"- Segments: {s['segments']} in {s['notes']} notes; macro-F1 **{_f(s['macro_f1'])}**, "
        f"Cohen's kappa {_f(s['kappa'])}, accuracy {_f(s['accuracy'])}",
        f"- Note change share MAE {_f(s['note_change_share_mae'])}; team balance MAE "
        f"{_f(s['team_balance_mae'])} (max {_f(s['team_balance_max_error'])}); organisations with teams in the "
        f"true order: {s['authorities_in_true_team_order']}",
    ]
    if s.get("calibration"):
        out.append(f"- Calibration: expected calibration error {_f(s['calibration']['ece'])}, "
                   f"Brier score {_f(s['calibration']['brier'])}")
    out += ["", "| label | precision | recall | F1 | support |", "|---|---:|---:|---:|---:|"]
    for lab in LABELS:
        c = s["per_class"][lab]
        out.append(f"| {lab} | {_f(c['precision'])} | {_f(c['recall'])} | {_f(c['f1'])} | {c['support']} |")
    out += ["", "Confusion matrix (rows gold, columns predicted):", "",
            "| | " + " | ".join(LABELS) + " |", "|---|" + "---:|" * len(LABELS)]
    for lab, row in zip(LABELS, s["confusion"]["matrix"]):
        out.append(f"| {lab} | " + " | ".join(map(str, row)) + " |")
    return out
