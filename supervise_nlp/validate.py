"""Checking the model on an organisation's own labelled notes.

Input: a filled sample sheet (``.xlsx``, ``.csv``, or the labelling page's CSV download; several
files of one sample are merged, one coder per column), or labelled notes in the corpus format,
where a segment may carry several coders' labels as ``"labels": {"coder": "label", ...}`` beside
an adjudicated ``"label"``.

**Reference label** (what the model is scored against): the adjudicated ``label`` where there is
one; otherwise the coders' consensus, the label most of them chose. Where the coders tie (two
coders who disagree, say) there is no reference: the segment counts in the agreement figures but
is left out of the model's scores, and the number left out is reported (add an agreed ``label`` to
include them). A single coder's label is the reference.

**Scoring**: the model segments and labels each note itself (for a sheet, the segment rebuilt
between its neighbours, which is all the context the model reads), and each labelled segment takes
the label of the model's segment that overlaps it most (``evaluate.align``), so segmentation errors
count against the model.

**Weights**: a sheet drawn by ``sample`` over-represents some segments (rare labels, uncertain
ones); each row carries its inclusion probability ``pi``. The scores under ``model`` and
``agreement`` are plain scores on the segments labelled (what sklearn gives on these rows); the
scores under ``model.population`` weight each segment by ``1 / pi`` and so estimate the scores on
all the notes the sample was drawn from. The verdict and the report's correction use the
population figures. Without inclusion probabilities (corpus files) the two are the same.

**Intervals**: 95% percentile bootstrap over notes (segments of one note are not independent).
"""

from __future__ import annotations

import csv
import io
import json
import re
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .classify import LABELS
from .read import InputError, corpus_text, gold_spans

K = len(LABELS)
ALIASES = {"p": "procedural", "procedural": "procedural", "proc": "procedural",
           "c": "change_focused", "change_focused": "change_focused", "change-focused": "change_focused",
           "change focused": "change_focused", "change": "change_focused", "cf": "change_focused",
           "n": "neutral", "neutral": "neutral"}
ADJUDICATED_COLUMNS = ("label", "agreed label", "agreed", "adjudicated label", "adjudicated")


def normalise_label(value: Any, where: str) -> str | None:
    if value is None:
        return None
    v = str(value).strip().lower()
    if not v:
        return None
    if v not in ALIASES:
        raise InputError(f"{where}: {value!r} is not a label (procedural, change_focused or neutral)")
    return ALIASES[v]


@dataclass
class Item:
    """One labelled segment."""

    cluster: str  # the note it belongs to (bootstrap unit)
    note_id: str
    start: int
    end: int
    coders: dict[str, str] = field(default_factory=dict)
    unsure: dict[str, bool] = field(default_factory=dict)
    adjudicated: str | None = None
    weight: float = 1.0
    row: str | None = None
    text: str = ""
    team: str = ""
    worker: str = ""
    reference: str | None = None
    predicted: str | None = None


@dataclass
class Unit:
    """A text the model labels, and which of its spans are labelled items."""

    text: str
    spans: list[tuple[int, int]]
    items: list[int]


# --- reading -------------------------------------------------------------------------------------


def _is_sheet(path: str) -> bool:
    return Path(path).suffix.lower() in (".xlsx", ".xlsm", ".csv", ".tsv")


def read_sheet_rows(path: str) -> list[dict[str, Any]]:
    p = Path(path)
    if p.suffix.lower() in (".xlsx", ".xlsm"):
        from openpyxl import load_workbook

        wb = load_workbook(p, read_only=True, data_only=True)
        ws = wb["segments"] if "segments" in wb.sheetnames else wb.worksheets[0]
        it = ws.iter_rows(values_only=True)
        header = [str(h).strip() if h is not None else "" for h in next(it, [])]
        rows = [dict(zip(header, r)) for r in it if any(v not in (None, "") for v in r)]
        wb.close()
        return rows
    text = p.read_bytes().decode("utf-8-sig", errors="replace")
    first = text.splitlines()[0] if text else ""
    delimiter = max(",;\t", key=lambda d: (first.count(d), d == ","))
    reader = csv.DictReader(io.StringIO(text, newline=""), delimiter=delimiter)
    if reader.fieldnames:
        reader.fieldnames = [f.strip() for f in reader.fieldnames]
    return [r for r in reader if any((v or "").strip() for v in r.values() if isinstance(v, str))]


def _coder_columns(header: Sequence[str]) -> list[str]:
    return [h for h in header if re.match(r"(?i)^coder\b", h) and not h.lower().endswith("unsure")]


def _yes(v: Any) -> bool:
    return str(v or "").strip().lower() in ("yes", "y", "true", "1", "x", "unsure")


def _num(v: Any, default: float | None = None) -> float | None:
    try:
        return float(v)
    except (TypeError, ValueError):
        return default


def _gap(v: Any) -> str:
    if v in (None, ""):
        return ""
    try:
        g = json.loads(str(v))
        return g if isinstance(g, str) else " "
    except json.JSONDecodeError:
        return str(v)


def read_sheets(paths: Sequence[str]) -> tuple[list[Item], list[Unit]]:
    """Items from filled sheets; rows of one sample in several files (one per coder) are merged."""
    items: list[Item] = []
    units: list[Unit] = []
    index: dict[tuple, int] = {}
    seen_coders: set[str] = set()
    for path in paths:
        rows = read_sheet_rows(path)
        if not rows:
            continue
        header = list(rows[0].keys())
        if "segment" not in header:
            raise InputError(f"{path}: not a sample sheet (no 'segment' column)")
        coder_cols = _coder_columns(header)
        adj_col = next((h for h in header if h.lower() in ADJUDICATED_COLUMNS), None)
        names = {}
        for c in coder_cols:
            name = c
            if name in seen_coders:  # the same column name in another file: another person
                name = f"{c} [{Path(path).name}]"
            names[c] = name
        seen_coders.update(names.values())
        for n, r in enumerate(rows, 2):
            where = f"{path}, row {r.get('row') or n}"
            labels = {names[c]: lab for c in coder_cols if (lab := normalise_label(r.get(c), where))}
            unsure = {names[c]: _yes(r.get(f"{c} unsure")) for c in coder_cols if names[c] in labels}
            adjudicated = normalise_label(r.get(adj_col), where) if adj_col else None
            segment = str(r.get("segment") or "")
            start = int(_num(r.get("start"), 0) or 0)
            end = int(_num(r.get("end"), start + len(segment)) or 0)
            sha = str(r.get("note_sha256") or "")
            note_id = str(r.get("note_id") or r.get("row") or f"{Path(path).name}:{n}")
            key = (note_id, sha, start, end, segment)
            if key in index:
                it = items[index[key]]
                it.coders.update(labels)
                it.unsure.update(unsure)
                it.adjudicated = it.adjudicated or adjudicated
                continue
            pi = _num(r.get("inclusion_probability"))
            before, after = str(r.get("before") or ""), str(r.get("after") or "")
            gb = _gap(r.get("gap_before")) if before else ""
            ga = _gap(r.get("gap_after")) if after else ""
            if before and not gb:
                gb = " "
            if after and not ga:
                ga = " "
            text = before + gb + segment + ga + after
            s0 = len(before) + len(gb)
            index[key] = len(items)
            items.append(Item(cluster=f"{note_id}|{sha}", note_id=note_id, start=start, end=end, coders=labels,
                              unsure=unsure, adjudicated=adjudicated,
                              weight=1.0 / pi if pi and 0 < pi <= 1 else 1.0, row=str(r.get("row") or n),
                              text=segment, team=str(r.get("team") or ""), worker=str(r.get("worker") or "")))
            units.append(Unit(text, [(s0, s0 + len(segment))], [len(items) - 1]))
    return items, units


def _jsonl_records(path: str) -> list[dict[str, Any]]:
    out = []
    with open(path, encoding="utf-8-sig") as fh:
        for n, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                rec = json.loads(line)
            except json.JSONDecodeError as e:
                raise InputError(f"{path}:{n}: malformed JSON ({e.msg})") from None
            segs = rec.get("segments") if isinstance(rec, dict) else None
            if not isinstance(segs, list) or not segs or not all(isinstance(s, dict) and isinstance(
                    s.get("text"), str) for s in segs):
                raise InputError(f"{path}:{n}: not a labelled corpus record (needs 'segments' with 'text')")
            rec["_where"] = f"{path}:{n}"
            out.append(rec)
    return out


def read_corpus_labels(paths: Sequence[str]) -> tuple[list[Item], list[Unit]]:
    items: list[Item] = []
    units: list[Unit] = []
    for path in paths:
        for rec in _jsonl_records(path):
            where = rec.pop("_where")
            text = corpus_text(rec)
            spans = gold_spans({"segments": [{"text": x["text"], "label": ""} for x in rec["segments"]]})
            nid = str(rec.get("id") or where)
            unit = Unit(text, [], [])
            for k, (seg, (s, e, _)) in enumerate(zip(rec["segments"], spans)):
                labels = {}
                for coder, lab in (seg.get("labels") or {}).items():
                    if (v := normalise_label(lab, f"{where}, segment {k}")):
                        labels[str(coder)] = v
                adjudicated = normalise_label(seg.get("label"), f"{where}, segment {k}")
                if not labels and not adjudicated:
                    continue
                unit.spans.append((s, e))
                unit.items.append(len(items))
                items.append(Item(cluster=f"{where.rsplit(':', 1)[0]}|{nid}", note_id=nid, start=s, end=e,
                                  coders=labels, adjudicated=adjudicated, row=None, text=seg["text"],
                                  team=str(rec.get("team") or ""), worker=str(rec.get("worker") or "")))
            if unit.items:
                units.append(unit)
    return items, units


def read_labelled(paths: Sequence[str]) -> tuple[list[Item], list[Unit]]:
    sheets = [p for p in paths if _is_sheet(p)]
    corpora = [p for p in paths if not _is_sheet(p)]
    for p in paths:
        if not Path(p).is_file():
            raise InputError(f"{p}: no such file")
    a_items, a_units = read_sheets(sheets) if sheets else ([], [])
    b_items, b_units = read_corpus_labels(corpora) if corpora else ([], [])
    shift = len(a_items)
    for u in b_units:
        u.items = [i + shift for i in u.items]
    items, units = a_items + b_items, a_units + b_units
    # rows nobody labelled (yet) are not part of the validation
    keep = [bool(it.coders or it.adjudicated) for it in items]
    new_index = np.cumsum(keep) - 1
    items = [it for it, k in zip(items, keep) if k]
    for u in units:
        pairs = [(sp, int(new_index[i])) for sp, i in zip(u.spans, u.items) if keep[i]]
        u.spans, u.items = [sp for sp, _ in pairs], [i for _, i in pairs]
    units = [u for u in units if u.items]
    for it in items:
        it.reference = reference_label(it)
    if not items:
        raise InputError("no labelled segments in " + ", ".join(paths))
    return items, units


def reference_label(it: Item) -> str | None:
    """The adjudicated label, else the label most coders chose; a tie gives none."""
    if it.adjudicated:
        return it.adjudicated
    if not it.coders:
        return None
    counts = Counter(it.coders.values()).most_common()
    if len(counts) > 1 and counts[0][1] == counts[1][1]:
        return None
    return counts[0][0]


def load_labelled(paths: Sequence[str]) -> list[dict[str, Any]]:
    """Labelled notes in the corpus format, from corpus JSON Lines or filled sample sheets (for training).

    Each segment takes its reference label (adjudicated, else the coders' majority); a corpus note
    with a segment whose coders tie is left out whole. A sheet row becomes a one-segment note with
    the row's note id, team and worker (so cross-validation keeps a note's rows together).
    """
    out: list[dict[str, Any]] = []
    sheets = [path for path in paths if _is_sheet(path)]
    if sheets:
        # one sample's sheets (one coder per file) are merged, as validate merges them, so a segment
        # is one training example with its reference label, never one per coder
        items, _ = read_sheets(sheets)
        for it in items:
            ref = reference_label(it)
            if ref and it.text.strip():
                rec = {"id": it.note_id, "segments": [{"text": it.text, "label": ref}], "layout": "prose"}
                if it.team:
                    rec["team"] = it.team
                if it.worker:
                    rec["worker"] = it.worker
                out.append(rec)
    for path in paths:
        if not _is_sheet(path):
            for rec in _jsonl_records(path):
                rec.pop("_where")
                segs = []
                for s in rec["segments"]:
                    labels = {str(k): v for k, lab in (s.get("labels") or {}).items()
                              if (v := normalise_label(lab, path))}
                    ref = reference_label(Item("", "", 0, 0, coders=labels,
                                               adjudicated=normalise_label(s.get("label"), path)))
                    if ref is None:
                        break
                    segs.append({**{k: v for k, v in s.items() if k != "labels"}, "label": ref})
                else:
                    out.append({**rec, "segments": segs})
    if not out:
        raise InputError("no labelled segments in " + ", ".join(map(str, paths)))
    return out


# --- the model's labels --------------------------------------------------------------------------


def predict(items: list[Item], units: list[Unit], labeller) -> None:
    """Each item's predicted label: the model's own segmentation, aligned to the labelled spans."""
    from .evaluate import align

    outputs = labeller.label_texts(u.text for u in units)
    for unit, out in zip(units, outputs):
        order = sorted(range(len(unit.spans)), key=lambda j: unit.spans[j])
        gold = [(unit.spans[j][0], unit.spans[j][1], "") for j in order]
        for j, (lab, _) in zip(order, align(gold, out["segments"])):
            items[unit.items[j]].predicted = lab


# --- measures from confusion matrices --------------------------------------------------------------


def scores_from_confusion(conf: np.ndarray) -> dict[str, np.ndarray]:
    """Accuracy, kappa, per-class precision/recall/F1 and macro-F1 of (..., K, K) matrices (rows: reference).

    The same definitions as sklearn's (``zero_division=0``; macro-F1 over all three labels).
    """
    conf = np.asarray(conf, dtype=float)
    total = conf.sum(axis=(-2, -1))
    diag = np.diagonal(conf, axis1=-2, axis2=-1)
    rows, cols = conf.sum(axis=-1), conf.sum(axis=-2)
    with np.errstate(invalid="ignore", divide="ignore"):
        precision = np.where(cols > 0, diag / np.where(cols > 0, cols, 1), 0.0)
        recall = np.where(rows > 0, diag / np.where(rows > 0, rows, 1), 0.0)
        f1 = np.where(precision + recall > 0, 2 * precision * recall / np.where(
            precision + recall > 0, precision + recall, 1), 0.0)
        po = diag.sum(axis=-1) / total
        pe = (rows * cols).sum(axis=-1) / total ** 2
        kappa = np.where(pe < 1, (po - pe) / np.where(pe < 1, 1 - pe, 1), np.nan)
    return {"accuracy": po, "kappa": kappa, "precision": precision, "recall": recall, "f1": f1,
            "macro_f1": f1.mean(axis=-1)}


def cluster_confusions(items: list[Item], a: str, b: str, weighted: bool) -> tuple[np.ndarray, list[str]]:
    """Per-note (K x K) matrices of label pairs (rows: ``a``, columns: ``b``), for items with both."""
    clusters: dict[str, np.ndarray] = defaultdict(lambda: np.zeros((K, K)))
    for it in items:
        x, y = _get(it, a), _get(it, b)
        if x and y:
            clusters[it.cluster][LABELS.index(x), LABELS.index(y)] += it.weight if weighted else 1.0
    names = sorted(clusters)
    return (np.array([clusters[n] for n in names]) if names else np.zeros((0, K, K))), names


def _get(it: Item, who: str) -> str | None:
    if who == "reference":
        return it.reference
    if who == "model":
        return it.predicted
    return it.coders.get(who)


def bootstrap_counts(n_clusters: int, n_boot: int, rng: np.random.Generator) -> np.ndarray:
    """How often each note is drawn in each of ``n_boot`` resamples of the notes."""
    if n_clusters == 0:
        return np.zeros((n_boot, 0))
    return rng.multinomial(n_clusters, np.full(n_clusters, 1.0 / n_clusters), size=n_boot).astype(float)


def _ci(boot: np.ndarray) -> list[float | None]:
    b = boot[~np.isnan(boot)]
    if not len(b):
        return [None, None]
    return [float(np.quantile(b, 0.025)), float(np.quantile(b, 0.975))]


def _f(x: Any) -> float | None:
    x = float(x)
    return None if np.isnan(x) else x


def score_block(mats: np.ndarray, counts: np.ndarray) -> dict[str, Any]:
    """Scores of the summed matrices with bootstrap intervals (``counts``: resample weights per note)."""
    conf = mats.sum(axis=0)
    point = scores_from_confusion(conf)
    boot = scores_from_confusion(np.einsum("bk,kij->bij", counts, mats))
    with np.errstate(invalid="ignore", divide="ignore"):
        rates = conf / conf.sum(axis=1, keepdims=True)
        bconf = np.einsum("bk,kij->bij", counts, mats)
        brates = bconf / bconf.sum(axis=2, keepdims=True)
    out: dict[str, Any] = {
        "segments": round(float(conf.sum()), 6),
        "notes": int(len(mats)),
        "accuracy": _f(point["accuracy"]), "accuracy_ci": _ci(boot["accuracy"]),
        "macro_f1": _f(point["macro_f1"]), "macro_f1_ci": _ci(boot["macro_f1"]),
        "kappa": _f(point["kappa"]), "kappa_ci": _ci(boot["kappa"]),
        "per_class": {
            lab: {"precision": _f(point["precision"][i]), "precision_ci": _ci(boot["precision"][:, i]),
                  "recall": _f(point["recall"][i]), "recall_ci": _ci(boot["recall"][:, i]),
                  "f1": _f(point["f1"][i]), "f1_ci": _ci(boot["f1"][:, i]),
                  "support": round(float(conf[i].sum()), 6)}
            for i, lab in enumerate(LABELS)},
        "confusion": {
            "labels": list(LABELS), "rows": "reference label", "columns": "model's label",
            "matrix": np.round(conf, 6).tolist(),
            "rates": [[_f(v) for v in r] for r in rates],
            "rates_ci": [[_ci(brates[:, i, j]) for j in range(K)] for i in range(K)],
        },
    }
    return out


# --- agreement between coders -----------------------------------------------------------------------


def fleiss_kappa(table: np.ndarray) -> float | None:
    """Fleiss' kappa of an items x categories table of counts (every item rated by the same number)."""
    table = np.asarray(table, dtype=float)
    if not len(table):
        return None
    n = table.sum(axis=1)[0]
    if n < 2:
        return None
    p_j = table.sum(axis=0) / table.sum()
    P_i = (np.sum(table ** 2, axis=1) - n) / (n * (n - 1))
    P_bar, P_e = P_i.mean(), np.sum(p_j ** 2)
    return None if P_e >= 1 else float((P_bar - P_e) / (1 - P_e))


def specific_agreement(items: list[Item], coders: list[str]) -> dict[str, float | None]:
    """Per label: of the times a coder chose it, how often another coder chose it too (pairwise)."""
    agree = np.zeros(K)
    total = np.zeros(K)
    for it in items:
        labs = [it.coders[c] for c in coders if c in it.coders]
        m = len(labs)
        if m < 2:
            continue
        cnt = np.array([labs.count(lab) for lab in LABELS], dtype=float)
        agree += cnt * (cnt - 1)
        total += cnt * (m - 1)
    return {lab: (float(agree[i] / total[i]) if total[i] else None) for i, lab in enumerate(LABELS)}


def agreement(items: list[Item], coders: list[str], n_boot: int, rng: np.random.Generator,
              include_text: bool) -> dict[str, Any]:
    out: dict[str, Any] = {"coders": coders, "segments_with_two_or_more": 0}
    multi = [it for it in items if sum(c in it.coders for c in coders) >= 2]
    out["segments_with_two_or_more"] = len(multi)
    out["unsure"] = {c: sum(bool(it.unsure.get(c)) for it in items) for c in coders}
    if len(coders) < 2 or not multi:
        out["note"] = "one coder: no agreement to measure" if len(coders) < 2 else "no segment has two coders"
        out["kappa"] = None
        return out
    pairs = []
    for i, a in enumerate(coders):
        for b in coders[i + 1:]:
            mats, _ = cluster_confusions(items, a, b, weighted=False)
            if not len(mats):
                continue
            counts = bootstrap_counts(len(mats), n_boot, rng)
            point = scores_from_confusion(mats.sum(axis=0))
            boot = scores_from_confusion(np.einsum("bk,kij->bij", counts, mats))
            wm, _ = cluster_confusions(items, a, b, weighted=True)
            pairs.append({"coders": [a, b], "segments": int(mats.sum()), "kappa": _f(point["kappa"]),
                          "kappa_ci": _ci(boot["kappa"]), "observed_agreement": _f(point["accuracy"]),
                          "kappa_weighted": _f(scores_from_confusion(wm.sum(axis=0))["kappa"])})
    out["pairwise"] = pairs
    # Krippendorff's alpha (nominal), any number of coders, missing labels allowed
    import krippendorff

    data = np.full((len(coders), len(items)), np.nan)
    for j, it in enumerate(items):
        for i, c in enumerate(coders):
            if c in it.coders:
                data[i, j] = LABELS.index(it.coders[c])
    try:
        out["krippendorff_alpha"] = float(krippendorff.alpha(reliability_data=data, level_of_measurement="nominal",
                                                             value_domain=list(range(K))))
    except (ValueError, ZeroDivisionError):
        out["krippendorff_alpha"] = None
    complete = [it for it in items if all(c in it.coders for c in coders)]
    table = np.array([[sum(it.coders[c] == lab for c in coders) for lab in LABELS] for it in complete])
    out["fleiss_kappa"] = fleiss_kappa(table) if len(complete) else None
    out["fleiss_segments"] = len(complete)
    if len(coders) == 2 and pairs:
        out["kappa"], out["kappa_ci"] = pairs[0]["kappa"], pairs[0]["kappa_ci"]
        out["kappa_type"] = "Cohen's kappa"
        out["observed_agreement"] = pairs[0]["observed_agreement"]
    else:
        out["kappa"], out["kappa_type"] = out["fleiss_kappa"], "Fleiss' kappa (segments every coder labelled)"
        out["mean_pairwise_cohen_kappa"] = (float(np.mean([p["kappa"] for p in pairs if p["kappa"] is not None]))
                                            if pairs else None)
        out["observed_agreement"] = (float(np.mean([len(set(it.coders[c] for c in coders)) == 1 for it in complete]))
                                     if complete else None)
    out["per_class"] = specific_agreement(items, coders)
    out["per_class_measure"] = "specific agreement: of the times a coder chose the label, how often another did"
    dis = []
    for it in multi:
        if len(set(it.coders.values())) > 1:
            d = {"note_id": it.note_id, "start": it.start, "end": it.end, "labels": dict(it.coders)}
            if it.row:
                d["row"] = it.row
            if include_text:
                d["text"] = it.text
            dis.append(d)
    out["disagreements"] = dis
    return out


# --- everything -------------------------------------------------------------------------------------------


def validate(items: list[Item], units: list[Unit], labeller, model_name: str, model_sha: str | None,
             n_boot: int = 1000, seed: int = 20260301, include_text: bool = False) -> dict[str, Any]:
    predict(items, units, labeller)
    rng = np.random.default_rng(seed)
    coders = sorted({c for it in items for c in it.coders})
    weighted = any(abs(it.weight - 1.0) > 1e-12 for it in items)
    scored = [it for it in items if it.reference and it.predicted]
    ties = sum(1 for it in items if it.reference is None)
    result: dict[str, Any] = {
        "kind": "supervise-nlp validation",
        "model_name": model_name,
        "model_sha256": model_sha,
        "labelled_segments": len(items),
        "notes": len({it.cluster for it in items}),
        "coders": len(coders),
        "reference": {
            "adjudicated": sum(1 for it in items if it.adjudicated),
            "consensus": sum(1 for it in items if not it.adjudicated and it.reference),
            "ties_left_out": ties,
            "rule": "adjudicated 'label' where present, else the label most coders chose; ties are left out",
        },
        "weights": ("inclusion probabilities from the sample design: 'model.population' and the report's "
                    "correction weight each segment by 1/pi" if weighted else
                    "none (every segment weighs the same; 'model.population' equals 'model')"),
        "bootstrap": {"resamples": n_boot, "over": "notes", "seed": seed, "interval": "95% percentile"},
    }
    result["agreement"] = agreement(items, coders, n_boot, rng, include_text)
    mats, _ = cluster_confusions(scored, "reference", "model", weighted=False)
    if not len(mats):
        raise InputError("no labelled segment has a reference label to score the model against")
    counts = bootstrap_counts(len(mats), n_boot, rng)
    model = score_block(mats, counts)
    wmats, _ = cluster_confusions(scored, "reference", "model", weighted=True)
    pop = score_block(wmats, counts)
    pop["segments_represented"] = pop.pop("segments")
    model["population"] = pop
    model["against_each_coder"] = {}
    for c in coders:
        m, _ = cluster_confusions(items, c, "model", weighted=False)
        if len(m):
            model["against_each_coder"][c] = {"segments": int(m.sum()),
                                              "kappa": _f(scores_from_confusion(m.sum(axis=0))["kappa"])}
    result["model"] = model
    result["verdict"] = verdict(result)
    # what `report --validation` needs: per-note weighted confusion matrices, no text, no ids
    result["for_report"] = {"clusters": np.round(wmats.reshape(len(wmats), -1), 6).tolist(),
                            "labels": list(LABELS), "rows": "reference", "columns": "model"}
    return result


def verdict(v: dict[str, Any]) -> dict[str, Any]:
    """Plain words: can team balances be reported from this model, and what caps it."""
    m = v["model"]["population"]
    ag = v["agreement"]
    n = v["model"]["segments"]
    kappa, f1 = m["kappa"], m["macro_f1"]
    lines = []
    rates = np.array([[x if x is not None else np.nan for x in r] for r in m["confusion"]["rates"]])
    # how well the model keeps procedural and change-focused apart: what the balance is made of
    sep = None
    if not np.isnan(rates[:2, :2]).any():
        sep = float(rates[0, 0] + rates[1, 1] - rates[0, 1] - rates[1, 0]) / 2
    if n < 100:
        level = "too_few"
        lines.append(f"Only {n} segments could be scored: too few to judge the model (aim for 300).")
    elif kappa is not None and kappa >= 0.6 and f1 >= 0.7:
        level = "good"
        lines.append(f"The model agrees well with your staff (kappa {kappa:.2f}, macro-F1 {f1:.2f}): team "
                     "balances can be reported, corrected for the remaining errors with report --validation.")
    elif kappa is not None and kappa >= 0.4:
        level = "usable_with_correction"
        lines.append(f"The model agrees only moderately with your staff (kappa {kappa:.2f}, macro-F1 {f1:.2f}): "
                     "report team balances only corrected (report --validation), whose wider intervals carry "
                     "this error; adapting the model to your notes (train --base default --add) should help.")
    else:
        level = "not_good_enough"
        lines.append(f"The model does not agree well enough with your staff to report team balances (kappa "
                     f"{kappa if kappa is None else round(kappa, 2)}, macro-F1 {f1:.2f}). Adapt it to your notes "
                     "(train --base default --add) and validate again on a fresh sample.")
    if sep is not None and sep < 0.3 and level != "too_few":
        lines.append("It barely tells procedural from change-focused segments, so a correction would be very "
                     "uncertain: the corrected intervals will say so.")
    ck = ag.get("kappa")
    if ck is not None:
        vs = [x["kappa"] for x in v["model"]["against_each_coder"].values() if x["kappa"] is not None]
        lines.append(f"Your coders agree with each other at kappa {ck:.2f}; no model can be expected to agree with "
                     f"them much better than they agree with each other. The model agrees with each coder at "
                     f"kappa {np.mean(vs):.2f} on average" + (f", {np.mean(vs) / ck:.0%} of that ceiling." if ck > 0
                                                               else "."))
        if ck < 0.6:  # the human ceiling is itself low
            lines.append("The coders' agreement is itself low: discuss the disagreements against the codebook and "
                         "agree labels (a 'label' column) before relying on the model's scores.")
    else:
        lines.append("With one coder, the ceiling set by human agreement is unknown: a second coder on the same "
                     "sheet would measure it.")
    if v["reference"]["ties_left_out"]:
        lines.append(f"{v['reference']['ties_left_out']} segment(s) where the coders tied were left out of the "
                     "model's scores; agree a label for them to include them.")
    return {"level": level, "summary": " ".join(lines), "separation_procedural_change": sep}


def statement(v: dict[str, Any]) -> str:
    """The one line a report prints about how its figures were validated."""
    ag = v["agreement"]
    who = {0: "your staff (agreed labels, one per segment)", 1: "one of your staff"}.get(
        v["coders"], f"{v['coders']} of your staff")
    parts = [f"checked against {v['labelled_segments']} segments labelled by {who}"]
    if ag.get("kappa") is not None:
        parts.append(f"agreement between them kappa {ag['kappa']:.2f}")
    m = v["model"]["population"]
    scored = v["model"]["segments"]
    parts.append(f"the model's kappa {_n(m['kappa'])} and macro-F1 {_n(m['macro_f1'])} against them"
                 + (f" (on the {scored:g} segments with an agreed or majority label)"
                    if scored != v["labelled_segments"] else ""))
    return ": ".join(parts[:1]) + ("; " + "; ".join(parts[1:]) if len(parts) > 1 else "")


# --- rendering ----------------------------------------------------------------------------------------------


def _n(x: Any, nd: int = 2) -> str:
    return "n/a" if x is None else f"{x:.{nd}f}"


def _ci_s(ci: Any) -> str:
    return "" if not ci or ci[0] is None else f" ({ci[0]:.2f}–{ci[1]:.2f})"


def validation_text(v: dict[str, Any]) -> str:
    ag, m = v["agreement"], v["model"]
    lines = [f"Validation of {v['model_name']} on {v['labelled_segments']} labelled segments in {v['notes']} notes, "
             + (f"{v['coders']} coder(s)." if v["coders"] else "one agreed label per segment."), ""]
    lines.append("Agreement between coders")
    if ag.get("kappa") is None:
        lines.append(f"  {ag.get('note', 'not measured')}")
    else:
        lines.append(f"  {ag['kappa_type']}: {_n(ag['kappa'])}{_ci_s(ag.get('kappa_ci'))}; observed agreement "
                     f"{_n(ag.get('observed_agreement'))}; Krippendorff's alpha {_n(ag.get('krippendorff_alpha'))}")
        if ag.get("fleiss_kappa") is not None and v["coders"] > 2:
            lines.append(f"  Fleiss' kappa {_n(ag['fleiss_kappa'])} on {ag['fleiss_segments']} segments")
        lines.append("  per label (specific agreement): " + ", ".join(
            f"{lab} {_n(x)}" for lab, x in ag["per_class"].items()))
        lines.append(f"  {len(ag['disagreements'])} segment(s) disagreed on (listed in --format json)")
    lines.append("")
    lines.append(f"The model against the reference labels ({m['segments']:g} segments, 95% intervals over notes)")
    lines.append(f"  macro-F1 {_n(m['macro_f1'])}{_ci_s(m['macro_f1_ci'])}, kappa {_n(m['kappa'])}"
                 f"{_ci_s(m['kappa_ci'])}, accuracy {_n(m['accuracy'])}{_ci_s(m['accuracy_ci'])}")
    lines.append(f"  {'label':<16}{'precision':>20}{'recall':>20}{'F1':>20}{'support':>9}")
    for lab, s in m["per_class"].items():
        lines.append(f"  {lab:<16}" + "".join(f"{_n(s[k]) + _ci_s(s[k + '_ci']):>20}" for k in
                                             ("precision", "recall", "f1")) + f"{s['support']:>9g}")
    lines.append("  confusion (rows: reference; columns: model's label " + "/".join(LABELS) + ")")
    for lab, row in zip(LABELS, m["confusion"]["matrix"]):
        lines.append(f"    {lab:<16}" + "".join(f"{x:>8g}" for x in row))
    p = m["population"]
    if v["weights"].startswith("inclusion"):
        lines.append("  weighted to all the notes sampled (1/pi): macro-F1 "
                     f"{_n(p['macro_f1'])}{_ci_s(p['macro_f1_ci'])}"
                     f", kappa {_n(p['kappa'])}{_ci_s(p['kappa_ci'])}")
    if m["against_each_coder"]:
        lines.append("  against each coder: " + ", ".join(f"{c} kappa {_n(x['kappa'])}"
                                                          for c, x in m["against_each_coder"].items()))
    lines += ["", "Verdict", "  " + v["verdict"]["summary"], ""]
    return "\n".join(lines)


def validation_html(v: dict[str, Any]) -> str:
    from html import escape

    body = escape(validation_text(v))
    return ("<!doctype html><html lang=en><head><meta charset=utf-8><title>Validation</title>"
            "<style>body{font:15px/1.5 system-ui,sans-serif;max-width:62rem;margin:1rem auto}"
            "pre{white-space:pre-wrap}</style></head><body><h1>How well the model labels your notes</h1>"
            f"<p><b>{escape(v['verdict']['summary'])}</b></p><pre>{body}</pre></body></html>\n")
