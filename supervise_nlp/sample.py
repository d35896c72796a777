"""Drawing a sample of segments for an organisation's own staff to label.

The design, so that every estimate made from the labels can be reweighted to the notes sampled:

1. **Strata**: team x the model's predicted label. Stratifying by predicted label makes sure the
   rarer labels are checked at all; stratifying by team makes sure no team is left out.
2. **Allocation**: the ``n`` segments are shared between strata in proportion to the square root
   of each stratum's size (a compromise between proportional and equal allocation), at least one
   per stratum when ``n`` allows, never more than the stratum holds.
3. **Within a stratum**: segments the model is unsure of are over-represented. Each segment's size
   measure is ``1 + 3u``, where ``u = 1.5 (1 - p_max)`` runs from 0 (the model is certain) to 1
   (all three labels equally likely): the least certain segment is four times as likely to be drawn
   as a certain one. The draw is systematic probability-proportional-to-size sampling over the
   stratum in random order, which gives each segment exactly the inclusion probability
   ``pi = n_h a_i / sum(a)`` (segments whose ``pi`` would exceed 1 are taken with certainty, and the
   rest re-allocated).
4. The sampled rows are shuffled, so nothing in their order betrays the predicted label.

Each row stores its inclusion probability, so validation can weight it by ``1 / pi``. The model's
label is never written anywhere a coder can see it (not even a hidden column): what validation
needs (note id, offsets, an opaque stratum number, inclusion probability, a hash of the note
text, and the exact text between the segment and its neighbours) sits in secondary columns.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .classify import LABELS

UNCERTAINTY_BOOST = 3.0
DESIGN = ("stratified by team and predicted label (square-root allocation); within each stratum, systematic "
          "PPS sampling with size 1 + 3u, u = 1.5(1 - top probability), so the least certain segments are 4x as "
          "likely to be drawn; rows carry their inclusion probability")

CODER_LABELS = ("procedural", "change_focused", "neutral")
SECONDARY = ("note_id", "start", "end", "team", "worker", "stratum", "inclusion_probability", "note_sha256",
             "gap_before", "gap_after")

CODEBOOK_SUMMARY = [
    ("The unit", "One sentence of a note, or one line / bullet of a form. Label each segment on its own, "
                 "using the sentences before and after only to understand it."),
    ("procedural", "Oriented to the organisation's or statutory system's needs: tasks, actions and deadlines; "
                   "forms, recording, audits; arranging or reporting meetings (strategy, core group, CIN, CPA, "
                   "LAC reviews, panels); statutory steps and timescales; risk checked, monitored or managed; "
                   "checks of home conditions and of the person (injuries, child seen alone); professional "
                   "judgements of risk, need or thresholds; allocation, transfer, closure, funding; management "
                   "direction; instructions and advice given to the person; placement, contact and service "
                   "arrangements."),
    ("change_focused", "Oriented to change in the person's or family's life, or the reflective and relational "
                       "work behind it: their motivation, hopes, goals and values in their own words; open "
                       "questions, reflections, affirmations; strengths, interests, achievements and progress; "
                       "direct and therapeutic work; building the person's own skills with them; community "
                       "connections; reflective supervision (the worker's feelings, hypotheses about what drives "
                       "the family's difficulties and what would help)."),
    ("neutral", "Neither: who was present, greetings, headings and field names on their own, dates, "
                "signatures, narrative of the contact (what people did, said, looked like), plain personal "
                "facts and history, a third party's account of events."),
    ("Hard cases", "A sentence that mixes both takes the label of its main clause. Negation counts: 'we did "
                   "not have time to talk about her goals, as the visit was taken up with the assessment form' "
                   "is procedural. Plans are procedural when they list agency tasks, change-focused when they "
                   "record the person's own goals. Reported speech takes the label of its content."),
    ("unsure", "Mark a segment unsure when you had to guess; still choose the label you think most likely."),
]


@dataclass
class Population:
    """Every segment of the input notes, compactly: what the design needs, and the texts to show."""

    texts: list[str] = field(default_factory=list)  # per note
    note_ids: list[str] = field(default_factory=list)
    teams: list[str] = field(default_factory=list)
    workers: list[str] = field(default_factory=list)
    spans: list[list[tuple[int, int]]] = field(default_factory=list)  # per note, every segment
    note: list[int] = field(default_factory=list)  # per unit
    pos: list[int] = field(default_factory=list)  # per unit: index of the segment in its note
    label: list[int] = field(default_factory=list)
    pmax: list[float] = field(default_factory=list)

    def add(self, fields: dict[str, Any], text: str, segments: list[dict[str, Any]], fallback_id: str) -> None:
        k = len(self.texts)
        self.texts.append(text)
        nid = fields.get("id")
        self.note_ids.append(str(nid) if nid not in (None, "") else fallback_id)
        self.teams.append(str(fields.get("team") or "unknown"))
        self.workers.append(str(fields.get("worker") or ""))
        spans = []
        for i, s in enumerate(segments):
            spans.append((int(s["start"]), int(s["end"])))
            if not text[s["start"]:s["end"]].strip():
                continue
            p = s.get("p") or {}
            lab = s.get("label")
            self.note.append(k)
            self.pos.append(i)
            self.label.append(LABELS.index(lab) if lab in LABELS else 2)
            self.pmax.append(float(max(p.values())) if p else 1.0)
        self.spans.append(spans)

    def __len__(self) -> int:
        return len(self.note)


def allocate(sizes: np.ndarray, n: int) -> np.ndarray:
    """Square-root allocation of ``n`` over strata of ``sizes``, at least 1 each when possible, capped."""
    sizes = np.asarray(sizes, dtype=int)
    n = int(min(n, sizes.sum()))
    alloc = np.zeros(len(sizes), dtype=int)
    if n <= 0:
        return alloc
    if n >= (sizes > 0).sum():
        alloc[sizes > 0] = 1
    open_ = alloc < sizes
    while alloc.sum() < n and open_.any():
        left = n - alloc.sum()
        w = np.sqrt(sizes) * open_
        target = w / w.sum() * left
        add = np.floor(target).astype(int)
        if add.sum() == 0:  # hand out the remainder by largest fractional part
            order = np.argsort(-(target - add), kind="stable")
            for j in order[:left]:
                if open_[j]:
                    add[j] = 1
        alloc = np.minimum(alloc + add, sizes)
        open_ = alloc < sizes
    return alloc


def inclusion_probabilities(a: np.ndarray, n: int) -> np.ndarray:
    """pi_i = n a_i / sum(a), with units whose pi would pass 1 taken with certainty."""
    a = np.asarray(a, dtype=float)
    pi = np.zeros(len(a))
    certain = np.zeros(len(a), dtype=bool)
    n = min(n, len(a))
    while True:
        rest = ~certain
        m = n - certain.sum()
        if m <= 0:
            break
        pi[rest] = m * a[rest] / a[rest].sum()
        over = rest & (pi >= 1.0)
        if not over.any():
            break
        certain |= over
    pi[certain] = 1.0
    return pi


def systematic_pps(pi: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Indices drawn by systematic sampling over a random order: unit i is drawn with probability pi_i."""
    order = rng.permutation(len(pi))
    cum = np.concatenate([[0.0], np.cumsum(pi[order])])
    n = int(round(cum[-1]))
    if n == 0:
        return np.array([], dtype=int)
    points = rng.uniform() + np.arange(n)
    hit = np.searchsorted(cum, points, side="right") - 1
    return order[np.clip(hit, 0, len(pi) - 1)]


def draw(pop: Population, n: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, dict[str, Any]]:
    """Sampled unit indices (shuffled), their inclusion probabilities and opaque stratum numbers."""
    rng = np.random.default_rng(seed)
    teams = np.array([pop.teams[k] for k in pop.note], dtype=object)
    labels = np.array(pop.label)
    keys = sorted({(t, int(lab)) for t, lab in zip(teams.tolist(), labels.tolist())})
    index = {k: i for i, k in enumerate(keys)}
    stratum = np.array([index[(t, int(lab))] for t, lab in zip(teams.tolist(), labels.tolist())], dtype=int)
    sizes = np.bincount(stratum, minlength=len(keys))
    alloc = allocate(sizes, n)
    u = np.clip(1.5 * (1.0 - np.array(pop.pmax)), 0.0, 1.0)
    a = 1.0 + UNCERTAINTY_BOOST * u
    pi_all = np.zeros(len(pop))
    chosen = []
    for h in range(len(keys)):
        members = np.flatnonzero(stratum == h)
        if alloc[h] == 0:
            continue
        pi = inclusion_probabilities(a[members], int(alloc[h]))
        pi_all[members] = pi
        chosen.append(members[systematic_pps(pi, rng)])
    picked = np.concatenate(chosen) if chosen else np.array([], dtype=int)
    picked = picked[rng.permutation(len(picked))]
    # stratum numbers are opaque: a random relabelling, so a number cannot be read as a label
    code = rng.permutation(len(keys)) + 1
    design = {"strata": len(keys), "population_segments": int(len(pop)), "notes": len(pop.texts),
              "sampled": int(len(picked)), "description": DESIGN, "seed": seed}
    return picked, pi_all[picked], code[stratum[picked]], design


def note_hash(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


def coder_columns(coders: int) -> list[str]:
    cols = []
    for k in range(1, coders + 1):
        cols += [f"coder {k}", f"coder {k} unsure"]
    return cols


def sample_rows(pop: Population, picked: np.ndarray, pi: np.ndarray, strata: np.ndarray,
                coders: int = 2) -> list[dict[str, Any]]:
    """One row per sampled segment: what the coder sees, then the secondary columns."""
    rows = []
    width = max(3, len(str(len(picked))))
    for r, (u, p, h) in enumerate(zip(picked.tolist(), pi.tolist(), strata.tolist()), 1):
        k, i = pop.note[u], pop.pos[u]
        text, spans = pop.texts[k], pop.spans[k]
        s, e = spans[i]
        ps, pe = spans[i - 1] if i > 0 else (s, s)
        ns, ne = spans[i + 1] if i + 1 < len(spans) else (e, e)
        row: dict[str, Any] = {
            "row": f"S{r:0{width}d}",
            "before": text[ps:pe] if i > 0 else "",
            "segment": text[s:e],
            "after": text[ns:ne] if i + 1 < len(spans) else "",
        }
        row.update({c: "" for c in coder_columns(coders)})
        row["comment"] = ""
        row.update({
            "note_id": pop.note_ids[k], "start": s, "end": e, "team": pop.teams[k], "worker": pop.workers[k],
            "stratum": int(h), "inclusion_probability": round(float(p), 6), "note_sha256": note_hash(text),
            # the exact text between the neighbours and the segment (JSON-quoted: it is often only
            # whitespace, which spreadsheets trim), so validation can rebuild the segment in context
            "gap_before": json.dumps(text[pe:s] if i > 0 else ""),
            "gap_after": json.dumps(text[e:ns] if i + 1 < len(spans) else ""),
        })
        rows.append(row)
    return rows


def columns(coders: int) -> list[str]:
    return ["row", "before", "segment", "after", *coder_columns(coders), "comment", *SECONDARY]


# --- writers -------------------------------------------------------------------------------------


def write_csv(rows: list[dict[str, Any]], path: Path, coders: int) -> None:
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=columns(coders), dialect=csv.excel)
    w.writeheader()
    w.writerows(rows)
    path.write_text("\ufeff" + buf.getvalue(), encoding="utf-8", newline="")  # BOM: Excel reads UTF-8


def write_xlsx(rows: list[dict[str, Any]], path: Path, coders: int, design: dict[str, Any]) -> None:
    from openpyxl import Workbook
    from openpyxl.styles import Alignment, Font, PatternFill
    from openpyxl.utils import get_column_letter
    from openpyxl.worksheet.datavalidation import DataValidation

    cols = columns(coders)
    wb = Workbook()
    ws = wb.active
    ws.title = "segments"
    ws.append(cols)
    for row in rows:
        ws.append([row[c] for c in cols])
    n = len(rows) + 1
    wrap = Alignment(wrap_text=True, vertical="top")
    widths = {"row": 7, "before": 40, "segment": 55, "after": 40, "comment": 25}
    for j, c in enumerate(cols, 1):
        letter = get_column_letter(j)
        ws.cell(1, j).font = Font(bold=True)
        ws.column_dimensions[letter].width = widths.get(c, 16 if c.startswith("coder") else 12)
        if c in ("before", "segment", "after"):
            for i in range(2, n + 1):
                ws.cell(i, j).alignment = wrap
        if c == "segment":
            for i in range(2, n + 1):
                ws.cell(i, j).font = Font(bold=True)
        if c.startswith("coder") and not c.endswith("unsure"):
            dv = DataValidation(type="list", formula1='"' + ",".join(CODER_LABELS) + '"', allow_blank=True,
                                showErrorMessage=True, errorTitle="Label",
                                error="Choose procedural, change_focused or neutral")
            ws.add_data_validation(dv)
            dv.add(f"{letter}2:{letter}{max(n, 2)}")
            for i in range(1, n + 1):
                ws.cell(i, j).fill = PatternFill("solid", fgColor="FFF7D6")
        elif c.endswith("unsure"):
            dv = DataValidation(type="list", formula1='"yes"', allow_blank=True)
            ws.add_data_validation(dv)
            dv.add(f"{letter}2:{letter}{max(n, 2)}")
        if c in SECONDARY:
            ws.column_dimensions[letter].hidden = True
    ws.freeze_panes = "C2"
    cb = wb.create_sheet("codebook")
    cb.column_dimensions["A"].width = 18
    cb.column_dimensions["B"].width = 110
    cb.append(["Label", "What it means (summary of the project's codebook)"])
    cb["A1"].font = cb["B1"].font = Font(bold=True)
    for name, text in CODEBOOK_SUMMARY:
        cb.append([name, text])
    for r in cb.iter_rows(min_row=2):
        for c in r:
            c.alignment = wrap
    about = wb.create_sheet("about")
    about.column_dimensions["A"].width = 120
    for line in about_lines(design, coders):
        about.append([line])
    wb.save(path)


def about_lines(design: dict[str, Any], coders: int) -> list[str]:
    return [
        "How to fill this sheet",
        f"Each row is one segment of a note, shown with the segment before and after it. Each of the {coders} "
        "coders chooses a label from the drop-down in their own column, without looking at the other coder's "
        "column; mark 'unsure' when you had to guess.",
        "The codebook sheet summarises the labels. Leave the columns to the right of 'comment' as they are "
        "(hidden): validation needs them to find each segment again.",
        "You may rename 'coder 1' to 'coder: <name>'. A column 'label' (the agreed label after discussing "
        "disagreements) may be added; validation then scores the model against it.",
        f"Sample: {design['sampled']} of {design['population_segments']} segments in {design['notes']} notes; "
        f"{design['description']}; seed {design['seed']}.",
    ]


def write_sample(rows: list[dict[str, Any]], path: Path, coders: int, design: dict[str, Any]) -> None:
    suffix = path.suffix.lower()
    if suffix == ".xlsx":
        write_xlsx(rows, path, coders, design)
    elif suffix == ".csv":
        write_csv(rows, path, coders)
    elif suffix in (".html", ".htm"):
        from .labelpage import render_page

        path.write_text(render_page(rows, design), encoding="utf-8")
    else:
        raise ValueError(f"{path}: the sample is written as .xlsx, .csv or .html")


def population_from(results: Iterable[tuple[Any, dict[str, Any] | None]]) -> tuple[Population, int]:
    """Build the population from (item, classify output with text) pairs; returns it and the skipped count."""
    pop = Population()
    missing_text = 0
    for item, out in results:
        if out is None:
            continue
        text = out.get("text")
        if not isinstance(text, str):
            missing_text += 1
            continue
        src = getattr(item, "source", "?")
        line = getattr(item, "line", 0)
        pop.add(out, text, out.get("segments") or [], f"{src}:{line}")
    return pop, missing_text
