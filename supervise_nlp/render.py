"""Where results are written for people: terminal tables, model cards, CSV and HTML reports."""

from __future__ import annotations

import io
from typing import Any

from .classify import LABELS

WIDTH = 100


def _console(buf: io.StringIO):
    from rich.console import Console

    return Console(file=buf, width=WIDTH, force_terminal=False, color_system=None, highlight=False)


def _f(x: Any, nd: int = 3) -> str:
    return "n/a" if x is None else f"{x:.{nd}f}"


def evaluation_table(results: dict[str, dict[str, Any]]) -> str:
    """Side-by-side scores of one or more models on the same labelled notes."""
    from rich.table import Table

    buf = io.StringIO()
    con = _console(buf)
    names = list(results)
    t = Table(title="Segment labels (gold segments, aligned by character overlap)")
    t.add_column("measure")
    for n in names:
        t.add_column(n, justify="right")
    first = results[names[0]]
    t.add_row("notes / segments", *[f"{r['notes']} / {r['segments']}" for r in results.values()])
    t.add_row("macro-F1", *[_f(r["macro_f1"]) for r in results.values()])
    t.add_row("Cohen's kappa", *[_f(r["kappa"]) for r in results.values()])
    t.add_row("accuracy", *[_f(r["accuracy"]) for r in results.values()])
    for lab in LABELS:
        t.add_row(f"{lab} P / R / F1", *[
            f"{_f(r['per_class'][lab]['precision'], 2)} / {_f(r['per_class'][lab]['recall'], 2)} / "
            f"{_f(r['per_class'][lab]['f1'], 2)}" for r in results.values()])
    t.add_row("calibration ECE", *[_f(r.get("calibration", {}).get("ece")) for r in results.values()])
    t.add_row("note change share MAE", *[_f(r["note_change_share_mae"]) for r in results.values()])
    t.add_row("team balance MAE", *[_f(r["team_balance_mae"]) for r in results.values()])
    t.add_row("authorities in true team order", *[r["authorities_in_true_team_order"] for r in results.values()])
    con.print(t)
    for name, r in results.items():
        cm = Table(title=f"Confusion matrix ({name}): rows gold, columns predicted")
        cm.add_column("")
        for lab in LABELS:
            cm.add_column(lab, justify="right")
        for lab, row in zip(LABELS, r["confusion"]["matrix"]):
            cm.add_row(lab, *map(str, row))
        con.print(cm)
    teams = Table(title=f"Team balance, true vs predicted ({names[0]})")
    for col in ("authority", "team", "true", "predicted", "error"):
        teams.add_column(col, justify="right" if col in ("true", "predicted", "error") else "left")
    for row in first["teams"]:
        teams.add_row(row["authority"], row["team"], _f(row["true_balance"], 2), _f(row["predicted_balance"], 2),
                      _f(row["error"], 2))
    con.print(teams)
    return buf.getvalue()


def card_markdown(card: dict[str, Any]) -> str:
    """The human-readable model card: what it was trained on and how well it does."""
    tr = card["trained_on"]
    lines = [
        "# Model card: supervise-nlp segment classifier",
        "",
        "Labels each segment of a social-work note `procedural`, `change_focused` or `neutral`, per the "
        "project's codebook (docs/codebook.md). Trained only on the labelled sample corpus named below, "
        "which is synthetic: read the limits at the end before relying on the figures.",
        "",
        "## Training data",
        f"- Files: {', '.join(tr['files'])}",
        f"- SHA-256 of the training files: `{tr['fingerprint']['sha256']}`",
        f"- {tr['notes']} notes, {tr['segments']} segments, {len(tr['authorities'])} authorities, {tr['teams']} teams",
        "- Label counts: " + ", ".join(f"{k} {v}" for k, v in sorted(tr["label_counts"].items())),
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
                  "Each fold trains on the other organisations and labels this one's notes with its own "
                  "segmentation; scores are pooled over all folds.", ""]
        lines += _score_block(cv)
        base = card.get("baseline_cross_validation")
        if base:
            lines += ["", f"Plain TF-IDF + logistic regression baseline, same folds: macro-F1 {_f(base['macro_f1'])}, "
                      f"kappa {_f(base['kappa'])}, team balance MAE {_f(base['team_balance_mae'])}."]
        lines += ["", "| held-out authority | segments | macro-F1 | kappa |", "|---|---:|---:|---:|"]
        for auth, s in cv["per_authority"].items():
            lines.append(f"| {auth} | {s['segments']} | {_f(s['macro_f1'])} | {_f(s['kappa'])} |")
        lines.append("")
    if "test" in card:
        t = card["test"]
        lines += [f"## Held-out test authority: {', '.join(t.get('authorities', []))}",
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
        lines += [f"## Generalisation check: {name}", ""]
        lines += _score_block(c)
        lines.append("")
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
        "- The corpus is written by the project to resemble UK social-work recording; it is not real case "
        "records. Scores on real notes will be lower, most of all on styles the corpus lacks.",
        "- The model labels sentences, not practice: a procedural note may record good work done elsewhere.",
        "- Team balances are more reliable than single notes: errors on sentences partly cancel when pooled.",
        "",
    ]
    return "\n".join(lines)


def _score_block(s: dict[str, Any]) -> list[str]:
    out = [
        f"- Segments: {s['segments']} in {s['notes']} notes; macro-F1 **{_f(s['macro_f1'])}**, "
        f"Cohen's kappa {_f(s['kappa'])}, accuracy {_f(s['accuracy'])}",
        f"- Note change share MAE {_f(s['note_change_share_mae'])}; team balance MAE "
        f"{_f(s['team_balance_mae'])} (max {_f(s['team_balance_max_error'])}); authorities with teams in the "
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
