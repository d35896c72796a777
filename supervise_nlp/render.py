"""Where results are written for people: terminal tables, model cards, CSV and HTML reports."""

from __future__ import annotations

import io
from typing import Any

from .classify import LABELS
from .textsafe import clean, csv_cell

WIDTH = 100


def _console(buf: io.StringIO):
    from rich.console import Console

    # names come from exports: "[bold]" or ":x:" in a team name is text, never markup or emoji
    return Console(file=buf, width=WIDTH, force_terminal=False, color_system=None, highlight=False, markup=False,
                   emoji=False)


def _f(x: Any, nd: int = 3) -> str:
    return "n/a" if x is None else f"{x:.{nd}f}"


def _with_ci(x: Any, ci: Any) -> str:
    return _f(x) + (f" ({ci[0]:.3f}–{ci[1]:.3f})" if ci else "")


def evaluation_table(results: dict[str, dict[str, Any]], comparisons: dict[str, dict[str, Any]] | None = None) -> str:
    """Side-by-side scores of one or more models on the same labelled notes, each with its own
    confusion matrix and team table, and paired comparisons with the first model."""
    from rich.table import Table

    buf = io.StringIO()
    con = _console(buf)
    names = list(results)
    for name, r in results.items():
        if r.get("scored_on_its_own_training_files"):
            con.print(f"Warning: {name} was trained on {', '.join(r['scored_on_its_own_training_files'])}; "
                      "its scores on them are not an estimate for new notes.")
    t = Table(title="Segment labels (gold segments, aligned by character overlap)")
    t.add_column("measure")
    for n in names:
        t.add_column(n, justify="right")
    rows = results.values()
    t.add_row("notes / segments", *[f"{r['notes']} / {r['segments']}" for r in rows])
    t.add_row("macro-F1 (95% CI)", *[_with_ci(r["macro_f1"], r.get("intervals", {}).get("macro_f1")) for r in rows])
    t.add_row("Cohen's kappa (95% CI)", *[_with_ci(r["kappa"], r.get("intervals", {}).get("kappa")) for r in rows])
    t.add_row("accuracy", *[_f(r["accuracy"]) for r in rows])
    for lab in LABELS:
        t.add_row(f"{lab} P / R / F1", *[
            f"{_f(r['per_class'][lab]['precision'], 2)} / {_f(r['per_class'][lab]['recall'], 2)} / "
            f"{_f(r['per_class'][lab]['f1'], 2)}" for r in rows])
    t.add_row("calibration ECE", *[_f(r.get("calibration", {}).get("ece")) for r in rows])
    t.add_row("note change share MAE", *[_f(r["note_change_share_mae"]) for r in rows])
    t.add_row("team balance MAE", *[_f(r["team_balance_mae"]) for r in rows])
    t.add_row("authorities in true team order", *[r["authorities_in_true_team_order"] for r in rows])
    con.print(t)
    con.print("Intervals: 95% bootstrap over notes (notes resampled, so a note's sentences stay together).")
    for label, c in (comparisons or {}).items():
        ci = c["macro_f1_difference_ci"]
        verdict = ("a clear difference" if c["clear_difference"] else
                   "no clear difference (the interval spans zero)")
        con.print(f"Paired comparison {label}: macro-F1 difference {c['macro_f1_difference']:+.3f}"
                  + (f" (95% CI {ci[0]:+.3f} to {ci[1]:+.3f})" if ci else "")
                  + f", kappa difference {c['kappa_difference']:+.3f}: {verdict}.")
    for name, r in results.items():
        cm = Table(title=f"Confusion matrix ({name}): rows gold, columns predicted")
        cm.add_column("")
        for lab in LABELS:
            cm.add_column(lab, justify="right")
        for lab, row in zip(LABELS, r["confusion"]["matrix"]):
            cm.add_row(lab, *map(str, row))
        con.print(cm)
    for name, r in results.items():
        teams = Table(title=f"Team balance, true vs predicted ({name})")
        for col in ("authority", "team", "true", "predicted", "error"):
            teams.add_column(col, justify="right" if col in ("true", "predicted", "error") else "left")
        for row in r["teams"]:
            teams.add_row(row["authority"], row["team"], _f(row["true_balance"], 2), _f(row["predicted_balance"], 2),
                          _f(row["error"], 2))
        con.print(teams)
    return buf.getvalue()


def evaluation_csv(results: dict[str, dict[str, Any]], comparisons: dict[str, dict[str, Any]] | None = None) -> str:
    """One row per model and measure (with its interval), per team, and per paired comparison."""
    import csv

    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["section", "model", "authority", "team", "measure", "value", "ci_low", "ci_high"])

    def num(x: Any) -> str:
        return "" if x is None else f"{x:.4f}" if isinstance(x, float) else str(x)

    for name, r in results.items():
        ivs = r.get("intervals", {})
        for m in ("macro_f1", "kappa", "accuracy", "note_change_share_mae", "team_balance_mae"):
            ci = ivs.get(m) or [None, None]
            w.writerow(["overall", name, "", "", m, num(r.get(m)), num(ci[0]), num(ci[1])])
        w.writerow(["overall", name, "", "", "notes", r["notes"], "", ""])
        w.writerow(["overall", name, "", "", "segments", r["segments"], "", ""])
        for lab in LABELS:
            for m in ("precision", "recall", "f1"):
                w.writerow(["per_class", name, "", "", f"{lab}_{m}", num(r["per_class"][lab][m]), "", ""])
        for row in r["teams"]:
            for m, key in (("true_balance", "true_balance"), ("predicted_balance", "predicted_balance"),
                           ("error", "error")):
                w.writerow(["team", name, row["authority"], row["team"], m, num(row[key]), "", ""])
    for label, c in (comparisons or {}).items():
        for m in ("macro_f1_difference", "kappa_difference"):
            ci = c.get(f"{m}_ci") or [None, None]
            w.writerow(["paired_comparison", label, "", "", m, num(c[m]), num(ci[0]), num(ci[1])])
    return buf.getvalue()


# --- the team report ---------------------------------------------------------------------------


def _key(k: dict[str, str]) -> str:
    """A group's name as shown anywhere: its values, without control characters."""
    return clean(" / ".join(map(str, k.values())), newlines=False)


def _pct(x: Any) -> str:
    return "n/a" if x is None else f"{x:.0%}"


def _ci(ci: Any) -> str:
    return "n/a" if not ci or ci[0] is None else f"{ci[0]:.2f}–{ci[1]:.2f}"


def _pct_ci(ci: Any) -> str:
    return "n/a" if not ci or ci[0] is None else f"{ci[0] * 100:.0f}–{ci[1] * 100:.0f}%"


def report_table(rep: dict[str, Any]) -> str:
    """The report in a terminal, within 100 columns: percentages, as in the HTML."""
    from rich.table import Table

    from .report_words import headline

    buf = io.StringIO()
    con = _console(buf)
    inp = rep["input"]
    con.print(clean(f"Balance of change-focused to procedural recording, by {' and '.join(rep['by'])}"))
    con.print(clean(" ".join(headline(rep)), newlines=False), markup=False)
    con.print(f"Input: {inp['records']} records, {inp['labelled']} labelled, {inp['rejected']} rejected. "
              "Balance = change-focused / (change-focused + procedural) sentences. " + _interval_words(rep)
              + (" Rows in date order." if rep.get("groups_order") == "date" else " Rows sorted by balance."))
    t = Table(show_lines=False)
    t.add_column(clean(" / ".join(rep["by"]), newlines=False), overflow="fold", max_width=36)
    for col in ("notes", "wkrs", "proc.", "change", "neutral", "balance", "95% CI", "CF notes"):
        t.add_column(col, justify="right")
    rows = rep["groups"] + ([{"key": {"": "overall"}, **rep["overall"]}] if rep["overall"] else [])
    for i, g in enumerate(rows):
        t.add_row(_key(g["key"]), str(g["notes"]), "" if g.get("workers") is None else str(g["workers"]),
                  str(g["procedural"]), str(g["change_focused"]), str(g["neutral"]),
                  _pct(g["balance"]), _pct_ci(g["balance_ci"]), _pct(g["change_focused_notes"]),
                  end_section=i == len(rows) - 2)
    con.print(t)
    con.print("CF notes: the share of notes in which change-focused sentences outnumber procedural ones.")
    _corrected_table(rep, con)
    for line in report_findings(rep):
        con.print("• " + clean(line, newlines=False), markup=False)
    return buf.getvalue()


def _interval_words(rep: dict[str, Any]) -> str:
    groups = rep["groups"] + ([rep["overall"]] if rep.get("overall") else [])
    if any(g.get("balance_ci_describes", "").startswith("this group") for g in groups):
        return ("95% intervals describe each group allowing for differences between its workers (workers as "
                "clusters, t with workers-1 df); the interval for these notes alone is in the JSON and CSV.")
    return "95% intervals describe these notes (notes as clusters)."


def report_findings(rep: dict[str, Any], technical: bool = True) -> list[str]:
    """The report's findings in plain words (the same sentences appear in every format)."""
    from .report_words import report_findings as words

    return validation_findings(rep) + words(rep, technical)


def report_csv(rep: dict[str, Any]) -> str:
    import csv

    buf = io.StringIO()
    w = csv.writer(buf)
    by = rep["by"]
    # OWASP CSV injection: a name starting =, +, -, @ (or a tab) would be a formula in Excel
    w.writerow([*map(csv_cell, by), "notes", "procedural", "change_focused", "neutral", "balance", "balance_ci_low",
                "balance_ci_high", "change_focused_notes", "workers", "balance_ci_describes",
                "balance_ci_notes_low", "balance_ci_notes_high", "notice", *CORRECTED_CSV_COLUMNS])
    rows = rep["groups"] + ([{"key": {k: "overall" for k in by}, **rep["overall"]}] if rep["overall"] else [])
    for g in rows:
        lo, hi = g["balance_ci"]
        nlo, nhi = g.get("balance_ci_notes") or [None, None]
        w.writerow([*(csv_cell(str(g["key"].get(k, ""))) for k in by), g["notes"], g["procedural"],
                    g["change_focused"], g["neutral"], g["balance"], lo, hi, g["change_focused_notes"],
                    g.get("workers"), csv_cell(g.get("balance_ci_describes")), nlo, nhi, csv_cell(g.get("notice", "")),
                    *map(csv_cell, _corrected_csv(rep, g))])
    return buf.getvalue()


# --- validation on the organisation's own notes (report --validation) ------------------------------

CORRECTED_CSV_COLUMNS = ("corrected_balance", "corrected_balance_ci_low", "corrected_balance_ci_high", "validation")


def validation_findings(rep: dict[str, Any]) -> list[str]:
    """How the figures were validated (or that they were not): the first finding in every format."""
    v = rep.get("validation")
    if not v:
        return []
    if not v.get("validated"):
        return [v["statement"]]
    out = [v["statement"], "Corrected balances undo the misclassification measured there, assuming "
           + v["assumption"] + "; method: " + v["method"] + "."]
    if v.get("verdict") in ("not_good_enough", "too_few"):
        out.append("The validation found the model not good enough on these notes (or the sample too small): read "
                   "even the corrected balances with great care.")
    return out


def _corrected_rows(rep: dict[str, Any]) -> list[dict[str, Any]]:
    rows = [g for g in rep["groups"] if g.get("corrected")]
    if rep.get("overall") and rep["overall"].get("corrected"):
        rows.append({"key": {"": "overall"}, **rep["overall"]})
    return rows


def _corrected_table(rep: dict[str, Any], con) -> None:
    from rich.table import Table

    rows = _corrected_rows(rep)
    if not rows:
        return
    t = Table(title="Corrected for the model's measured errors", show_lines=False)
    t.add_column(clean(" / ".join(rep["by"]), newlines=False), overflow="fold", max_width=36)
    for col in ("raw balance", "corrected", "95% CI"):
        t.add_column(col, justify="right")
    for g in rows:
        c = g["corrected"]
        t.add_row(_key(g["key"]), _f(g["balance"], 2), _f(c["balance"], 2), _ci(c["balance_ci"]))
    con.print(t)


def _corrected_csv(rep: dict[str, Any], g: dict[str, Any]) -> list[Any]:
    v = rep.get("validation") or {}
    c = g.get("corrected") or {}
    lo, hi = c.get("balance_ci") or (None, None)
    return [c.get("balance"), lo, hi, v.get("statement", "")]


def report_html(rep: dict[str, Any], card: dict[str, Any] | None = None) -> str:
    """The HTML report (in report_html.py)."""
    from .report_html import report_html as page

    return page(rep, card)


# --- one explained note ------------------------------------------------------------------------

MARK = {"procedural": "P", "change_focused": "C", "neutral": "N"}
STYLE = {"procedural": "bold red", "change_focused": "bold green", "neutral": "dim"}
HTML_COLOUR = {"procedural": "#fde2e1", "change_focused": "#ddf3e4", "neutral": "#f2f2f2"}


def _reasons(s: dict[str, Any]) -> tuple[str, str]:
    """(codebook category line, words line) for one explained segment; either may be empty."""
    cat = s.get("category")
    cat_line = f"codebook: {cat['title']} ({', '.join(cat['words'])})" if cat else ""
    words = [b["feature"] for b in s["because"] if b.get("kind", "word") == "word"]
    return cat_line, ("words: " + ", ".join(words)) if words else ""


def explain_terminal(ex: dict[str, Any], colour: bool) -> str:
    """The verdict first, then the note back, a segment per line, marked; colour in a terminal."""
    from rich.console import Console
    from rich.text import Text

    from .explain import verdict

    buf = io.StringIO()
    con = Console(file=buf, width=WIDTH, force_terminal=colour, color_system="standard" if colour else None,
                  highlight=False, emoji=False)
    con.print(Text(clean(verdict(ex)), style="bold" if colour else ""))
    con.print(Text(clean(ex["summary"])))
    con.print(Text("P = procedural, C = change-focused, N = neutral (probability in brackets).",
                   style="dim" if colour else ""))
    con.print()
    for s in ex["segments"]:
        p = s["p"][s["label"]]
        line = Text(f"[{MARK[s['label']]} {p:.2f}] ", style=STYLE[s["label"]] if colour else "")
        # the note's own text: escape sequences in it are shown as nothing, never obeyed
        line.append(clean(s["text"], newlines=False),
                    style=STYLE[s["label"]] if colour and s["label"] != "neutral" else "")
        con.print(line)
        for part in _reasons(s):
            if part:
                con.print(Text("        " + clean(part, newlines=False), style="italic" if colour else ""))
        if s.get("a_change_focused_account_would_record"):
            con.print(Text("        a change-focused account would record: "
                           + clean(s["a_change_focused_account_would_record"], newlines=False),
                           style="cyan" if colour else ""))
    return buf.getvalue()


def explain_html(ex: dict[str, Any], form: bool = False) -> str:
    """A small self-contained page with the verdict and the highlighted note (with a paste box when served)."""
    from html import escape

    from .explain import verdict

    items = []
    for s in ex["segments"]:
        cat_line, words_line = _reasons(s)
        why = "; ".join(p for p in (cat_line, words_line) if p)
        tip = f"{s['label'].replace('_', '-')} {s['p'][s['label']]:.2f}" + (f": {why}" if why else "")
        guide = s.get("a_change_focused_account_would_record")
        items.append(
            f"<div class=seg style='background:{HTML_COLOUR[s['label']]}' title='{escape(tip, quote=True)}'>"
            f"<span class=tag>{MARK[s['label']]} {s['p'][s['label']]:.2f}</span> {escape(clean(s['text']))}"
            + "".join(f"<div class=why>{escape(clean(p))}</div>" for p in (cat_line, words_line) if p)
            + (f"<div class=guide>A change-focused account would record: {escape(guide)}</div>" if guide else "")
            + "</div>")
    style = ("body{font-family:system-ui,sans-serif;max-width:48rem;margin:2rem auto;padding:0 1rem;color:#222}"
             ".seg{padding:.4rem .6rem;margin:.25rem 0;border-radius:4px}.tag{font-family:monospace;font-weight:bold}"
             ".why{font-size:.8rem;color:#555}.guide{font-size:.85rem;color:#1f5f8b}.sum{margin:.5rem 0 1rem}"
             ".verdict{font-size:1.2rem;font-weight:bold}.key span{padding:0 .4rem;margin-right:.5rem}"
             "textarea{width:100%;min-height:8rem;font:inherit}")
    key = "".join(f"<span style='background:{HTML_COLOUR[lab]}'>{MARK[lab]} = {lab.replace('_', '-')}</span>"
                  for lab in LABELS)
    box = ("<form method=post><label for=note>Paste a note</label><textarea id=note name=note></textarea>"
           "<p><button type=submit>Explain</button></p></form>") if form else ""
    body = ("" if not ex["segments"] else
            f"<p class=verdict>{escape(verdict(ex))}</p><p class=sum>{escape(ex['summary'])}</p>"
            f"<p class=key>{key}</p>" + "".join(items))
    return ("<!doctype html><html lang=en><head><meta charset=utf-8>"
            "<meta name=viewport content='width=device-width,initial-scale=1'><title>Explained note</title>"
            f"<style>{style}</style></head><body><h1>Explained note</h1>{box}{body}"
            "<p>This describes how the note is written, sentence by sentence, using the project's codebook; "
            "it is not a judgement of the practice behind it.</p></body></html>")
