"""The HTML team report, written for a head of children's or adults' services.

One self-contained page (inline CSS and SVG, no scripts, no network). It leads with plain
sentences (what the figures say, how sure we are, what they do not mean), defines every column,
uses percentages throughout, and keeps the methods for a closing "How these figures were made".
Every chart has alt text and a text equivalent, and runs in the same order as its table; each
chart is drawn twice (a wide one for screens and print, a narrow one with larger type for phones),
and the styles reflow for a 390 px phone and print on A4 portrait.
"""

from __future__ import annotations

import datetime as dt
import io
import os
import re
from html import escape
from pathlib import Path
from typing import Any

from .report_words import (
    group_noun,
    headline,
    key_name,
    long_date,
    mirroring_words,
    pct,
    pct_range,
    points,
    points_range,
    report_findings,
    what_they_do_not_mean,
)
from .textsafe import clean, mathtext_safe

BLUE, LIGHT, GREY, RED = "#1f5f8b", "#7fa7c4", "#777", "#b03a2e"

# --- what the report was made from (shared with the JSON) -----------------------------------------


def report_about(inputs: tuple[str, ...], files: dict[str, dict[str, int]], card: dict[str, Any],
                 model_path: str | None, from_classify: int, pseudonymised: str | None,
                 type_map: tuple[str, ...] = ()) -> dict[str, Any]:
    """Date made, input files and counts, the model and its card's headline accuracy, naming."""
    made = dt.date.today()
    if os.environ.get("SOURCE_DATE_EPOCH", "").isdigit():  # reproducible builds
        made = dt.datetime.fromtimestamp(int(os.environ["SOURCE_DATE_EPOCH"]), dt.timezone.utc).date()
    cv = card.get("cross_validation") or {}
    model_dir = Path(model_path) if model_path else None
    labelled = sum(c["labelled"] for c in files.values())
    about: dict[str, Any] = {
        "made": made.isoformat(),
        "files": [{"file": Path(src).name if src != "-" else "standard input", **c} for src, c in files.items()],
        "model": {
            "name": card.get("description") or (model_dir.name if model_dir else "the shipped default model"),
            "version": (card.get("versions") or {}).get("supervise-nlp"),
            "accuracy": cv.get("accuracy"),
            "kappa": cv.get("kappa"),
            "accuracy_describes": ("share of sentences labelled as the codebook's coders labelled them, on "
                                   f"organisations the model had not seen (leave one {cv.get('group', 'authority')} "
                                   "out)") if cv else None,
            "labels_from": ("classify output" if from_classify == labelled and labelled else
                            "this report" if not from_classify else "both"),
        },
        "workers": ("pseudonymised (teams too)" if pseudonymised == "teams too" else
                    "pseudonymised" if pseudonymised else "named"),
        "trained_on_inputs": _trained_on(card, inputs),
    }
    if type_map:
        about["type_map"] = list(type_map)
    return about


def _trained_on(card: dict[str, Any], inputs: tuple[str, ...]) -> list[str]:
    """Input files the model was trained on (by SHA-256 on the card); large files are not hashed."""
    import hashlib

    stored = set((((card.get("trained_on") or {}).get("fingerprint") or {}).get("files") or {}).values())
    out = []
    for f in inputs:
        p = Path(f)
        if not stored or f == "-" or not p.is_file() or p.stat().st_size > 50_000_000:
            continue
        if hashlib.sha256(p.read_bytes()).hexdigest() in stored:
            out.append(p.name)
    return out


# --- charts ---------------------------------------------------------------------------------------


def _svg(fig, label: str) -> str:
    import matplotlib.pyplot as plt

    buf = io.StringIO()
    fig.savefig(buf, format="svg", bbox_inches="tight")
    plt.close(fig)
    text = buf.getvalue()
    # drop matplotlib's RDF block (a timestamp and namespace URIs): reports stay reproducible
    text = re.sub(r"<metadata>.*?</metadata>", "", text[text.find("<svg"):], flags=re.S)
    return text.replace("<svg ", f"<svg role=\"img\" aria-label=\"{escape(clean(label), quote=True)}\" ", 1)


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    plt.rcParams.update({"svg.fonttype": "none", "font.family": "sans-serif", "svg.hashsalt": "supervise-nlp"})
    return plt


def _pct_axis(axis) -> None:
    from matplotlib.ticker import FuncFormatter

    axis.set_major_formatter(FuncFormatter(lambda v, _: f"{v * 100:.0f}%"))


def _wrap(text: str, width: int) -> str:
    import textwrap

    return "\n".join(textwrap.wrap(text, width)) or text


def balance_chart(rows: list[dict[str, Any]], overall: float | None, narrow: bool, label: str) -> str:
    """Each group's balance and 95% interval, top to bottom in the table's order.

    The wide chart names groups on the left; the narrow one (phones) names each above its line, so
    the plot can use the whole width and the type stays about 11 px on a 390 px screen.
    """
    import textwrap

    from matplotlib.transforms import blended_transform_factory

    plt = _plt()
    fs = 12 if narrow else 10.5
    plt.rcParams["font.size"] = fs
    ys, labels, y = [], [], 0.0
    for g in rows:  # y in inches from the top
        if narrow:
            lines = textwrap.wrap(mathtext_safe(key_name(g["key"])), 34) or [""]  # "$" is not mathematics
            labels.append((y, "\n".join(lines)))
            y += 0.19 * len(lines) + 0.14
        else:
            y += 0.14
        ys.append(y)
        y += 0.16 if narrow else 0.14
    height = y + 0.1
    fig, ax = plt.subplots(figsize=(3.7 if narrow else 5.0, height + (0.95 if narrow else 0.9)))
    for yy, g in zip(ys, rows):
        lo, hi = g["balance_ci"] if g.get("balance_ci") else (None, None)
        if lo is not None:
            ax.plot([lo, hi], [yy, yy], color=LIGHT, lw=2.2 if narrow else 1.8, solid_capstyle="butt")
        ax.plot([g["balance"]], [yy], "o", color=BLUE, ms=6 if narrow else 5)
    for yy, text in labels:
        ax.text(0.005, yy, text, fontsize=fs - 1, va="top", ha="left", color="#222", linespacing=1.1,
                bbox={"facecolor": "white", "edgecolor": "none", "alpha": 0.85, "pad": 0.5})
    ax.axvline(0.5, color="#aaa", lw=1)
    top = blended_transform_factory(ax.transData, ax.transAxes)
    marks = [(0.5, "50%", "#666", "-")]
    if overall is not None:
        ax.axvline(overall, color=GREY, ls="--", lw=1)
        marks.append((overall, f"overall {pct(overall)}", GREY, "--"))
    for x, text, colour, _ in marks:
        left = x < 0.5 or (x == 0.5 and overall is not None and overall > 0.5)
        ax.text(x + (-0.01 if left else 0.01), 1.005, text, transform=top, ha="right" if left else "left",
                va="bottom", fontsize=fs - 1.5, color=colour)
    ax.set_ylim(height, 0)  # first row at the top, as in the table
    ax.set_xlim(0, 1)
    _pct_axis(ax.xaxis)
    if narrow:
        ax.set_yticks([])
        ax.spines[["top", "right", "left"]].set_visible(False)
        ax.set_xlabel("balance (line: 95% interval)")
    else:
        ax.set_yticks(ys, [mathtext_safe(key_name(g["key"])) for g in rows])
        ax.spines[["top", "right"]].set_visible(False)
        ax.set_xlabel("balance: change-focused share of procedural\n+ change-focused sentences "
                      "(line: 95% interval)")
    ax.tick_params(axis="y", length=0)
    return _svg(fig, label)


def mirroring_chart(teams: list[dict[str, Any]], narrow: bool, label: str) -> str:
    plt = _plt()
    fs = 12 if narrow else 10
    plt.rcParams["font.size"] = fs
    fig, ax = plt.subplots(figsize=(3.7, 3.7) if narrow else (4.6, 4.4))
    s = [t["supervision"]["balance"] for t in teams]
    v = [t["visit"]["balance"] for t in teams]
    ax.plot([0, 1], [0, 1], color="#bbb", lw=1)
    ax.text(0.97, 0.9, "same balance", rotation=45, ha="right", va="top", fontsize=fs - 2, color=GREY,
            rotation_mode="anchor", transform=ax.transAxes)
    ax.scatter(v, s, color=BLUE, s=28 if narrow else 22, zorder=3)
    named = range(len(v))
    keep = 2 if narrow else 4
    if len(v) > (6 if narrow else 12):  # name the widest supervision/visit gaps and the two ends
        by_gap = sorted(named, key=lambda i: -abs(s[i] - v[i]))[:keep]
        named = {*by_gap, min(named, key=lambda i: v[i]), max(named, key=lambda i: v[i])}
    for i in named:
        right = v[i] > 0.6
        ax.annotate(_wrap(mathtext_safe(teams[i]["team"]), 18 if narrow else 26), (v[i], s[i]), fontsize=fs - 3,
                    xytext=(-4 if right else 4, -3), textcoords="offset points", ha="right" if right else "left",
                    va="top")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    _pct_axis(ax.xaxis)
    _pct_axis(ax.yaxis)
    ax.set_xlabel("balance of the team's visit notes")
    ax.set_ylabel("balance of its supervision records")
    ax.spines[["top", "right"]].set_visible(False)
    return _svg(fig, label)


def trend_chart(months: list[dict[str, Any]], milestone: str | None, narrow: bool, label: str) -> str:
    plt = _plt()
    fs = 12 if narrow else 10
    plt.rcParams["font.size"] = fs
    fig, ax = plt.subplots(figsize=(3.7, 3.0) if narrow else (7.2, 2.9))
    x = list(range(len(months)))
    ax.fill_between(x, [m["balance_ci"][0] if m["balance_ci"][0] is not None else m["balance"] for m in months],
                    [m["balance_ci"][1] if m["balance_ci"][1] is not None else m["balance"] for m in months],
                    color=BLUE, alpha=0.15, lw=0, label="95% interval")
    ax.plot(x, [m["balance"] for m in months], marker="o", ms=3.5, color=BLUE, label="balance")
    ax.axhline(0.5, color="#bbb", lw=1)
    ax.text(len(months) - 1, 0.52, "50%", ha="right", va="bottom", fontsize=fs - 2, color=GREY)
    step = max(1, len(months) // (4 if narrow else 12))
    ax.set_xticks(x[::step], [mathtext_safe(m["month"]) for m in months][::step], rotation=45, ha="right")
    ax.set_ylim(0, 1)
    _pct_axis(ax.yaxis)
    ax.set_ylabel("balance")
    if milestone:
        pos = [i for i, m in enumerate(months) if m["month"] >= milestone[:7]]
        if pos:
            ax.axvline(pos[0] - 0.5, color=RED, ls="--", lw=1)
            ax.text(pos[0] - 0.4, 0.95, f"milestone\n{long_date(milestone)}" if narrow else
                    f"milestone {long_date(milestone)}", color=RED, fontsize=fs - 2, va="top")
    ax.spines[["top", "right"]].set_visible(False)
    return _svg(fig, label)


def _figure(wide: str, narrow: str, caption: str) -> str:
    return (f"<figure class=chart><div class=wide>{wide}</div><div class=narrow>{narrow}</div>"
            f"<figcaption>{caption}</figcaption></figure>")


# --- the page -----------------------------------------------------------------------------------

HTML_STYLE = """
*{box-sizing:border-box}
body{font-family:system-ui,-apple-system,'Segoe UI',Roboto,sans-serif;max-width:60rem;margin:1.5rem auto;
padding:0 1rem;color:#222;line-height:1.5;font-size:1rem;overflow-wrap:break-word}
h1{font-size:1.6rem;line-height:1.25;margin:.5rem 0}h2{font-size:1.25rem;margin-top:2.2rem;
border-bottom:1px solid #ccd;padding-bottom:.2rem}h3{font-size:1.05rem;margin-top:1.5rem}
.lead{font-size:1.1rem;background:#f3f7fa;padding:.8rem 1rem;border-left:4px solid #1f5f8b}
.lead p{margin:.4rem 0}
.about{display:grid;grid-template-columns:max-content 1fr;gap:.2rem 1rem;font-size:.92rem;margin:.5rem 0;
background:#fafafa;border:1px solid #e4e4e4;padding:.6rem .8rem}.about dt{font-weight:600}.about dd{margin:0}
.warn{color:#8a4b00}
.scroll{overflow-x:auto;max-width:100%;margin:.5rem 0;border:1px solid #e4e4e4}
table{border-collapse:collapse;font-size:.9rem;width:100%}
td,th{padding:.3rem .55rem;border-bottom:1px solid #eee;vertical-align:top;text-align:left}
thead th{background:#f3f5f7;border-bottom:2px solid #ccd;font-weight:600}
td.n,th.n{text-align:right;white-space:nowrap}thead th.n{white-space:normal;min-width:4.5rem}
tbody th{font-weight:normal}tr.overall td,tr.overall th{font-weight:600;border-top:2px solid #ccd}
.scroll th:first-child,.scroll td:first-child{position:sticky;left:0;background:#fff;min-width:11rem}
.scroll thead th:first-child{background:#f3f5f7}
dl.cols dt{font-weight:600;margin-top:.4rem}dl.cols dd{margin:0 0 0 1rem}
figure.chart{margin:1rem 0}figure.chart svg{max-width:100%;height:auto;display:block}
figcaption{font-size:.9rem;color:#444;margin-top:.3rem}
.narrow{display:none}
.muted{color:#555;font-size:.9rem}
details{margin:.5rem 0}summary{cursor:pointer;color:#1f5f8b}
@media (max-width:40rem){
 body{margin:.8rem auto;padding:0 .75rem;font-size:1rem}
 h1{font-size:1.35rem}.lead{font-size:1rem;padding:.6rem .7rem}
 .about{grid-template-columns:1fr}.about dd{margin-bottom:.4rem}
 .wide{display:none}.narrow{display:block}
 td,th{padding:.3rem .4rem}.scroll th:first-child,.scroll td:first-child{min-width:8.5rem}
}
@page{size:A4 portrait;margin:14mm 13mm 16mm}
@media print{
 body{max-width:none;margin:0;padding:0;font-size:10pt;line-height:1.35}
 h1{font-size:16pt}h2{font-size:13pt;margin-top:1.2rem}
 h2,h3{break-after:avoid;page-break-after:avoid}
 .keep,figure.chart,.lead,.about,li{break-inside:avoid;page-break-inside:avoid}
 .wide{display:block!important}.narrow{display:none!important}
 .scroll{overflow:visible;border:0}.scroll th:first-child,.scroll td:first-child{position:static}
 thead{display:table-header-group}tr{break-inside:avoid;page-break-inside:avoid}
 table{font-size:8.5pt}td,th{padding:.12rem .35rem}.scroll th:first-child{min-width:12rem}
 details>summary{display:none}details{display:block}.noprint{display:none!important}
 dl.cols>div{break-inside:avoid;page-break-inside:avoid}dt{break-after:avoid;page-break-after:avoid}
 a{color:inherit;text-decoration:none}
}
"""

COLUMNS = [  # the key figures first, so a phone shows them before the table scrolls
    ("balance", "Balance", "change-focused sentences as a share of procedural plus change-focused sentences. "
     "50% means as many of one as of the other; higher is more change-focused."),
    ("balance_ci", "Likely range (95% interval)", "where the group's balance is likely to lie, allowing for "
     "differences between its workers: what the group's workers in general would be expected to record, not "
     "only these notes. Wide when the group has few workers or notes; 'not estimated' when it has one worker."),
    ("change_focused_notes", "Change-focused notes", "the share of the group's notes in which change-focused "
     "sentences outnumber procedural ones (notes with neither are left out)."),
    ("notes", "Notes", "how many notes (records) the group wrote."),
    ("workers", "Workers", "how many different workers wrote them."),
    ("procedural", "Procedural sentences", "sentences that serve the organisation's or the statutory system's "
     "needs: tasks, forms, meetings, timescales, compliance checks."),
    ("change_focused", "Change-focused sentences", "sentences about change in the person's or family's life, or "
     "the reflective, relational work behind it: their goals and motivation, strengths, progress, direct work, "
     "community connections, reflective supervision."),
    ("neutral", "Neutral sentences", "everything else: who was present, headings, plain observation. They do not "
     "count towards the balance."),
]


def _cell(g: dict[str, Any], col: str) -> str:
    if col == "balance":
        return pct(g["balance"])
    if col == "balance_ci":
        return pct_range(g.get("balance_ci"))
    if col == "change_focused_notes":
        return pct(g.get("change_focused_notes"))
    v = g.get(col)
    return "" if v is None else str(v)


def _table(rep: dict[str, Any], corrected: bool) -> str:
    cols = list(COLUMNS)
    if corrected:
        cols.insert(2, ("corrected", "Corrected balance", ""))
    by = " / ".join(rep["by"])
    head = "".join(f"<th scope=col class=n>{escape(title)}</th>" for _, title, _ in cols)
    rows = []
    for g in rep["groups"]:
        cells = "".join(f"<td class=n>{escape(_corrected(g) if c == 'corrected' else _cell(g, c))}</td>"
                        for c, _, _ in cols)
        rows.append(f"<tr><th scope=row>{escape(key_name(g['key']))}</th>{cells}</tr>")
    ov = rep.get("overall")
    foot = ""
    if ov:
        cells = "".join(f"<td class=n>{escape(_corrected(ov) if c == 'corrected' else _cell(ov, c))}</td>"
                        for c, _, _ in cols)
        foot = f"<tr class=overall><th scope=row>All notes</th>{cells}</tr>"
    order = ("in date order" if rep.get("groups_order") == "date" else "from the least to the most change-focused")
    return (f"<div class=scroll role=region aria-label='Balance by {escape(by)}, table' tabindex=0>"
            f"<table><thead><tr><th scope=col>{escape(by)}</th>{head}</tr></thead><tbody>{''.join(rows)}{foot}</tbody>"
            f"</table></div><p class=muted>Rows {order}; the last row is every note together. On a narrow screen "
            "the table scrolls sideways.</p>")


def _corrected(g: dict[str, Any]) -> str:
    c = g.get("corrected") or {}
    if c.get("balance") is None:
        return "n/a"
    return f"{pct(c['balance'])} ({pct_range(c.get('balance_ci'))})"


def _columns_dl(corrected: bool) -> str:
    items = [("Group", "the team (or other grouping) the notes belong to.")]
    items += [(title, text) for _, title, text in COLUMNS]
    if corrected:
        items.append(("Corrected balance", "the balance after allowing for the model's mistakes as measured "
                      "against your own staff's labels, with its 95% interval."))
    return "<dl class=cols>" + "".join(f"<div><dt>{escape(t)}</dt><dd>{escape(d)}</dd></div>"
                                       for t, d in items) + "</dl>"


def _about_html(rep: dict[str, Any], card: dict[str, Any]) -> str:
    about = rep.get("about") or {}
    inp = rep["input"]
    parts: list[tuple[Any, ...]] = []
    made = about.get("made")
    if made:
        parts.append(("Made", long_date(made)))
    files = about.get("files") or []
    names = ", ".join(f"{f['file']} ({f['labelled']})" for f in files[:6]) + (
        f" and {len(files) - 6} more" if len(files) > 6 else "")
    text = (f"{inp['labelled']} notes labelled of {inp['records']} records read ({inp['rejected']} rejected)"
            + (f", from {len(files)} file{'s' if len(files) != 1 else ''}: {names}" if files else ""))
    up = inp.get("classify")
    if up:
        text += f". Before that, classify read {up['records']} records and rejected {up['rejected']}"
    parts.append(("Notes", text + "."))
    model = about.get("model") or {}
    cv = card.get("cross_validation") or {}
    acc = model.get("accuracy", cv.get("accuracy"))
    mtext = f"{model.get('name', 'the shipped default model')}"
    if model.get("version"):
        mtext += f", supervise-nlp {model['version']}"
    if acc is not None:
        mtext += (f". On organisations it had not seen, it labelled {pct(acc)} of sentences as the codebook's "
                  "coders did (from its model card)")
    if model.get("labels_from") == "classify output":
        mtext += (". The labels were read from classify output: they come from the model classify was given, "
                  "which may not be this one")
    parts.append(("Labelled by", mtext[:1].upper() + mtext[1:] + "."))
    trained = about.get("trained_on_inputs") or []
    if trained:
        parts.append(("Caution", f"<span class=warn>{len(trained)} of the input files are the model's own "
                      "training notes, so its labels on them are more accurate than they would be on new notes."
                      "</span>", True))
    val = rep.get("validation") or {}
    if val.get("validated"):
        parts.append(("Checked on these notes", f"Yes. {val.get('statement', '')}"))
    else:
        parts.append(("Checked on these notes", "No: the model's accuracy on these notes is unmeasured (the figure "
                      "above comes from its own test notes). Measure it with supervise-nlp validate and "
                      "report --validation."))
    workers = about.get("workers")
    has_workers = bool((rep.get("overall") or {}).get("workers"))
    if not has_workers:
        wtext = "The notes name no workers."
    elif workers and workers.startswith("pseudonymised"):
        wtext = ("Pseudonymised: workers appear as keyed codes (W-…)"
                 + (" and teams as T-…" if "teams" in workers else "") + ", not names.")
    else:
        wtext = ("Named: this report names individual workers. Share it as you would staff records, or make it "
                 "again with --pseudonymise.")
    parts.append(("Workers", wtext))
    out = []
    for dt_, dd, *markup in parts:
        # only our own markup goes in as written: file names, model names and card text are escaped
        safe = dd if markup else escape(clean(dd, newlines=False))
        out.append(f"<dt>{escape(dt_)}</dt><dd>{safe}</dd>")
    return "<dl class=about>" + "".join(out) + "</dl>"


def report_html(rep: dict[str, Any], card: dict[str, Any] | None = None) -> str:
    """One self-contained page for a head of service: no scripts, no network, charts inline."""
    card = card or {}
    by = " and ".join(rep["by"])
    noun = group_noun(rep)
    ov = rep.get("overall") or {}
    corrected = any(g.get("corrected") for g in rep["groups"])
    shown = [g for g in rep["groups"] if g.get("balance") is not None]
    lead = "".join(f"<p>{escape(s)}</p>" for s in headline(rep))
    lead += "<p><b>What they do not mean.</b> " + escape(" ".join(what_they_do_not_mean(rep))) + "</p>"
    parts = [
        "<!doctype html><html lang=en><head><meta charset=utf-8>",
        "<meta name=viewport content='width=device-width,initial-scale=1'>",
        f"<title>Procedural and change-focused recording, by {escape(by)}</title><style>{HTML_STYLE}</style>"
        "</head><body><main>",
        f"<h1>Procedural and change-focused recording, by {escape(by)}</h1>",
        _about_html(rep, card),
        f"<div class=lead>{lead}</div>",
        "<p class=muted><b>Change-focused</b> sentences are about change in people's lives and the relational work "
        "behind it; <b>procedural</b> sentences serve the organisation's or statutory system's needs. The "
        "<b>balance</b> is the change-focused share of the two (50% means as many of each).</p>",
    ]
    if shown:
        hi, lo = max(shown, key=lambda g: g["balance"]), min(shown, key=lambda g: g["balance"])
        alt = (f"Dot chart of the balance of {len(shown)} {noun}, in the same order as the table below, "
               f"from {pct(lo['balance'])} ({key_name(lo['key'])}) to {pct(hi['balance'])} "
               f"({key_name(hi['key'])}); each line is the 95% interval; a grey line marks 50%"
               + (f" and a dashed line the overall {pct(ov.get('balance'))}" if ov.get("balance") is not None
                  else "") + ". The table below gives every figure.")
        overall = ov.get("balance")
        parts += [
            f"<section class=keep><h2>Balance by {escape(by)}</h2>",
            _figure(balance_chart(shown, overall, False, alt), balance_chart(shown, overall, True, alt),
                    f"The balance of each of the {len(shown)} {escape(noun)} (dot) with its likely range (line), "
                    "in the table's order. The same figures are in the table below."),
            "</section>",
        ]
    parts += [
        f"<h2>The figures for each of the {escape(noun)}</h2>",
        _table(rep, corrected),
        "<details open><summary>What the columns mean</summary>", _columns_dl(corrected), "</details>",
    ]
    findings = report_findings(rep)
    parts.append(f"<h2>What the figures say</h2><ul>{''.join(f'<li>{escape(clean(x))}</li>' for x in findings)}</ul>")
    parts += _mirroring_section(rep)
    parts += _trend_section(rep)
    examples = [g for g in rep["groups"] if g.get("examples")]
    if examples:
        parts.append("<h2>Example sentences (shown because the report was asked to include them)</h2>")
        for g in examples:
            items = "".join(f"<li><b>{escape(lab.replace('_', '-'))}</b> ({pct(e['p'])} sure): "
                            f"{escape(clean(e['text']))}</li>" for lab, es in g["examples"].items() for e in es)
            parts.append(f"<h3>{escape(key_name(g['key']))}</h3><ul>{items}</ul>")
    parts.append(methods_html(rep, card))
    parts.append("</main></body></html>")
    return "\n".join(parts)


def _mirroring_section(rep: dict[str, Any]) -> list[str]:
    mir = (rep.get("culture") or {}).get("mirroring")
    if mir is None:
        return []
    words = " ".join(mirroring_words(mir))
    head = "<h2>Does supervision mirror visits?</h2>"
    teams = [t for t in mir.get("teams", []) if t.get("supervision") and t.get("visit")]
    if "pearson_r" not in mir or len(teams) < 3:
        return [head, f"<p>{escape(words)}</p>"]
    alt = (f"Scatter chart of {len(teams)} teams: each team's visit-note balance (across) against its supervision "
           "balance (up), with a diagonal where the two are equal. " + words)
    rows = "".join(f"<tr><th scope=row>{escape(clean(t['team'], newlines=False))}</th>"
                   f"<td class=n>{pct(t['supervision']['balance'])}</td>"
                   f"<td class=n>{t['supervision']['notes']}</td><td class=n>{pct(t['visit']['balance'])}</td>"
                   f"<td class=n>{t['visit']['notes']}</td></tr>" for t in teams)
    return [
        f"<section class=keep>{head}<p>{escape(words)}</p>",
        _figure(mirroring_chart(teams, False, alt), mirroring_chart(teams, True, alt),
                "Each point is a team: how change-focused its supervision records are (up) against its visit notes "
                "(across). Points near the diagonal mean supervision and work with families read alike."),
        "</section>",
        "<details><summary>The figures behind the chart</summary><div class=scroll tabindex=0 role=region "
        "aria-label='Supervision and visit balance by team'><table><thead><tr><th scope=col>team</th>"
        "<th scope=col class=n>supervision balance</th><th scope=col class=n>supervision notes</th>"
        "<th scope=col class=n>visit balance</th><th scope=col class=n>visit notes</th></tr></thead>"
        f"<tbody>{rows}</tbody></table></div></details>",
    ]


def _trend_section(rep: dict[str, Any]) -> list[str]:
    trend = (rep.get("culture") or {}).get("trend") or {}
    months = [m for m in trend.get("by_month") or [] if m["balance"] is not None]
    ms = trend.get("milestone")
    if len(months) < 2:
        return []
    months = sorted(months, key=lambda m: m["month"])  # date order, whatever order they came in
    lo, hi = min(months, key=lambda m: m["balance"]), max(months, key=lambda m: m["balance"])
    alt = (f"Line chart of the balance for each of {len(months)} months from {months[0]['month']} to "
           f"{months[-1]['month']}, in date order, with a shaded 95% interval and a grey line at 50%; the monthly "
           f"figures lie between {pct(lo['balance'])} and {pct(hi['balance'])}"
           + (f"; a red dashed line marks the milestone, {long_date(ms['date'])}" if ms else "")
           + ". The table below the chart gives every month.")
    rows = "".join(f"<tr><th scope=row>{escape(clean(m['month'], newlines=False))}</th><td class=n>{m['notes']}</td>"
                   f"<td class=n>{pct(m['balance'])}</td><td class=n>{pct_range(m['balance_ci'])}</td></tr>"
                   for m in months)
    out = ["<section class=keep><h2>Balance by month</h2>"]
    if ms:
        from .report_words import milestone_words

        out.append("".join(f"<p>{escape(s)}</p>" for s in milestone_words(ms)))
    out += [
        _figure(trend_chart(months, ms["date"] if ms else None, False, alt),
                trend_chart(months, ms["date"] if ms else None, True, alt),
                "The balance month by month, in date order; the shaded band is the 95% interval. Months with fewer "
                f"than {rep['min_notes']} notes are left out."),
        "</section>",
        "<details><summary>The figures behind the chart</summary><div class=scroll tabindex=0 role=region "
        "aria-label='Balance by month, table'><table><thead><tr><th scope=col>month</th><th scope=col class=n>notes"
        "</th><th scope=col class=n>balance</th><th scope=col class=n>likely range (95% interval)</th></tr></thead>"
        f"<tbody>{rows}</tbody></table></div></details>",
    ]
    return out


def methods_html(rep: dict[str, Any], card: dict[str, Any]) -> str:
    """The closing section: how the labels, intervals, tests and models were made, with the technical detail."""
    m = rep["method"]
    cv = card.get("cross_validation") or {}
    acc = ""
    if cv:
        acc = (f"Tested on organisations it had not seen (leave one {cv.get('group', 'authority')} out), the model "
               f"agreed with the coders on {pct(cv.get('accuracy'))} of sentences (macro-F1 {cv['macro_f1']:.2f}, "
               f"Cohen's kappa {cv['kappa']:.2f}: kappa is agreement beyond chance, 1 is perfect), and team "
               f"balances were within {points(cv['team_balance_mae']).lstrip('+')} of the coders' on average.")
        t = card.get("test")
        if t:
            acc += (f" On a held-out test organisation: macro-F1 {t['macro_f1']:.2f}, team balances within "
                    f"{points(t['team_balance_mae']).lstrip('+')}.")
        acc += (" These figures are from the card of the model given to the report (by default the shipped "
                "model); if the notes were labelled earlier by another model, that model's card applies.")
    val = rep.get("validation") or {}
    technical = report_findings(rep, technical=True)
    ms = ((rep.get("culture") or {}).get("trend") or {}).get("milestone")
    items = [
        ("The labels", "Every sentence (or line of a form) is labelled by a statistical model following the "
         "project's codebook (procedural, change-focused or neutral). " + acc
         + (" " + val["statement"] if val.get("validated") else
            " Its accuracy on these notes has not been measured.")),
        ("The likely ranges", f"{m['interval']}. Sentences in one note, and notes by one worker, are not "
         "independent, so a team's figure is only as sure as its number of workers allows; the range for these "
         "notes alone (notes as clusters) is in the JSON and CSV as balance_ci_notes."),
        ("Do the groups differ?", "Tested by moving whole workers between groups (a permutation test, "
         f"{m['permutations']} permutations, seed {m['seed']}) when each worker writes in one group, or a "
         "cluster-robust Wald test with workers as clusters when workers write in several (months, note types). "
         "Pairs are compared with the same worker-based intervals and Holm-adjusted p-values."),
        ("Teams, workers and notes", "The split of variation comes from a binomial mixed model "
         "(statsmodels BinomialBayesMixedGLM) on the latent scale, so it does not depend on how long notes are."),
        ("Workers against their team", ((rep.get("culture") or {}).get("outlier_rule") or {}).get(
            "rule", "not run") + "."),
        ("Mirroring", "The correlation of teams' true supervision and visit balances, corrected for the noise in "
         f"each team's two figures (disattenuation), with a percentile bootstrap over teams ({m['bootstrap_resamples']}"
         " resamples). Note types are read as supervision or visit from a list of common names (Home Visit, Office "
         "Visit, HV, Supervision session, …) and --type-map."
         + _types_read(rep)),
        ("Milestone", "Before against after, all notes (workers as clusters), and within the same workers (each "
         "worker's after-minus-before balance, precision-weighted, t with workers−1 df). 'No clear change' means the "
         "95% interval includes zero." if ms else "No milestone date was given (--milestone)."),
        ("Small groups", f"Groups with fewer than {rep['min_notes']} notes are not shown on their own; when only "
         "one would be held back, the next smallest is held back too, so it cannot be worked out from the rest."),
        ("Caveats", "The model reads recording, not practice. It was trained on a synthetic sample corpus, so "
         "figures on real notes carry more error than its test scores suggest; compare teams within one "
         "organisation and one period rather than reading a single figure in isolation."),
    ]
    body = "".join(f"<div><dt>{escape(t)}</dt><dd>{escape(d)}</dd></div>" for t, d in items)
    return ("<section class=methods><h2>How these figures were made</h2><dl class=cols>" + body + "</dl>"
            "<details class=noprint><summary>The findings again, with the statistics behind them</summary>"
            "<ul class=muted>" + "".join(f"<li>{escape(x)}</li>" for x in technical) + "</ul></details></section>")


def _types_read(rep: dict[str, Any]) -> str:
    mir = (rep.get("culture") or {}).get("mirroring") or {}
    read = mir.get("types_read_as") or {}
    said = []
    for kind in ("supervision", "visit"):
        names = list(read.get(kind) or {})
        if names:
            said.append(f"{kind}: " + ", ".join(f"'{n}'" for n in names[:6]) + (" …" if len(names) > 6 else ""))
    return (" Read here as " + "; ".join(said) + ".") if said else ""


__all__ = ["report_html", "report_about", "methods_html", "points_range"]
