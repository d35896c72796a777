"""The "check it on your own notes" loop: sample, label, validate, corrected report, adapt."""

from __future__ import annotations

import csv
import json
import random
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from supervise_nlp.classify import LABELS
from supervise_nlp.cli import main

ROOT = Path(__file__).resolve().parents[1]
CHECK = ROOT / "corpora" / "checks" / "terse_real_world.jsonl"


def run(*args: str) -> str:
    result = CliRunner().invoke(main, [str(a) for a in args])
    assert result.exit_code == 0, result.output + str(result.exception)
    return result.output


@pytest.fixture(scope="module")
def sheet_csv(tmp_path_factory, mini_model_dir) -> Path:
    out = tmp_path_factory.mktemp("sample") / "sheet.csv"
    run("sample", CHECK, "-n", 40, "-o", out, "--model", mini_model_dir, "-q", "-j", 1)
    return out


def _rows(path: Path) -> list[dict[str, str]]:
    return list(csv.DictReader(path.open(encoding="utf-8-sig", newline="")))


def _truth() -> dict[tuple[str, str], str]:
    """The check set's own labels, by note id and segment text."""
    out = {}
    for line in CHECK.read_text("utf-8").splitlines():
        rec = json.loads(line)
        for s in rec["segments"]:
            out[(rec["id"], s["text"].strip())] = s["label"]
    return out


def _fill(rows: list[dict[str, str]], seed: int = 1) -> list[dict[str, str]]:
    """Coder 1 gives the true label; coder 2 agrees four times in five."""
    truth, rng = _truth(), random.Random(seed)
    for r in rows:
        t = truth.get((r["note_id"], r["segment"].strip()), "neutral")
        r["coder 1"] = t
        r["coder 2"] = t if rng.random() < 0.8 else rng.choice([x for x in LABELS if x != t])
    return rows


def _write(rows: list[dict[str, str]], path: Path) -> Path:
    with path.open("w", encoding="utf-8", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    return path


# --- sample --------------------------------------------------------------------------------------------


def test_inclusion_probabilities_are_what_the_draw_gives():
    from supervise_nlp.sample import allocate, inclusion_probabilities, systematic_pps

    a = np.array([1, 1, 4, 2, 1, 3, 1, 1.5, 10, 1])
    pi = inclusion_probabilities(a, 4)
    assert pi.sum() == pytest.approx(4) and pi.max() == 1.0  # the largest is taken with certainty
    rng = np.random.default_rng(0)
    hits = np.zeros(len(a))
    for _ in range(4000):
        drawn = systematic_pps(pi, rng)
        assert len(drawn) == 4 and len(set(drawn.tolist())) == 4
        hits[drawn] += 1
    assert np.allclose(hits / 4000, pi, atol=0.03)
    alloc = allocate(np.array([400, 100, 25, 3, 0]), 50)
    assert alloc.sum() == 50 and alloc[3] >= 1 and alloc[4] == 0 and alloc[0] > alloc[1] > alloc[2]


def test_sample_sheet_never_shows_the_models_label(sheet_csv, mini_model_dir, tmp_path):
    rows = _rows(sheet_csv)
    assert len(rows) == 40
    header = list(rows[0])
    assert header[:4] == ["row", "before", "segment", "after"]
    assert {"coder 1", "coder 2", "note_id", "start", "end", "inclusion_probability", "note_sha256"} <= set(header)
    assert not any(h in ("label", "predicted", "model") for h in header)
    text_cols = {"before", "segment", "after"}
    for r in rows:
        assert r["coder 1"] == r["coder 2"] == ""
        # no non-text cell holds a label name, and the stratum is an opaque number
        assert not any(v in LABELS for k, v in r.items() if k not in text_cols)
        assert r["stratum"].isdigit() and 0 < float(r["inclusion_probability"]) <= 1
    # the same seed gives the same sample; another seed another
    again = tmp_path / "again.csv"
    run("sample", CHECK, "-n", 40, "-o", again, "--model", mini_model_dir, "-q", "-j", 1)
    assert again.read_bytes() == sheet_csv.read_bytes()
    other = tmp_path / "other.csv"
    run("sample", CHECK, "-n", 40, "-o", other, "--model", mini_model_dir, "-q", "-j", 1, "--seed", 7)
    assert other.read_bytes() != sheet_csv.read_bytes()


def test_sample_reads_classify_output_only_with_its_text(mini_model_dir, tmp_path):
    with_text, without = tmp_path / "kept.jsonl", tmp_path / "plain.jsonl"
    run("classify", CHECK, "--model", mini_model_dir, "-q", "-j", 1, "--keep-text", "-o", with_text)
    run("classify", CHECK, "--model", mini_model_dir, "-q", "-j", 1, "-o", without)
    run("sample", with_text, "-n", 10, "-o", tmp_path / "s.csv", "-q")
    assert len(_rows(tmp_path / "s.csv")) == 10
    r = CliRunner().invoke(main, ["sample", str(without), "-o", str(tmp_path / "t.csv"), "-q"])
    assert r.exit_code != 0 and "--keep-text" in r.output and not (tmp_path / "t.csv").exists()


def test_sample_refuses_to_overwrite(sheet_csv, mini_model_dir, tmp_path):
    r = CliRunner().invoke(main, ["sample", str(CHECK), "-o", str(sheet_csv), "--model", str(mini_model_dir)])
    assert r.exit_code != 0 and "already exists" in r.output
    copy = tmp_path / "notes.csv"
    copy.write_text("id,text\n1,Mum said she wants to stop drinking. SW to book the review.\n", "utf-8")
    r = CliRunner().invoke(main, ["sample", str(copy), "-o", str(copy), "--force", "--model", str(mini_model_dir)])
    assert r.exit_code != 0 and "also an input" in r.output


def test_xlsx_sheet_has_dropdowns_codebook_and_hidden_columns(mini_model_dir, tmp_path):
    from openpyxl import load_workbook

    out = tmp_path / "sheet.xlsx"
    run("sample", CHECK, "-n", 25, "-o", out, "--model", mini_model_dir, "-q", "-j", 1, "--coders", 3)
    wb = load_workbook(out)
    ws = wb["segments"]
    header = [c.value for c in ws[1]]
    assert header.count("coder 3") == 1 and ws.max_row == 26
    lists = [dv for dv in ws.data_validations.dataValidation if "procedural" in (dv.formula1 or "")]
    assert len(lists) == 3
    hidden = {header[i] for i in range(len(header))
              if ws.column_dimensions[ws.cell(1, i + 1).column_letter].hidden}
    assert {"note_id", "inclusion_probability", "gap_before"} <= hidden
    assert "segment" not in hidden
    assert "codebook" in wb.sheetnames
    cells = {str(c.value) for row in ws.iter_rows(min_row=2) for c in row if c.value is not None}
    segs = {str(ws.cell(i, 3).value) for i in range(2, 27)}
    assert not (cells - segs) & set(LABELS)


# --- validate ------------------------------------------------------------------------------------------


def _corpus_with_coders(path: Path, coders: int, seed: int = 3) -> list[dict]:
    """The check set with simulated coders beside the original label (kept as the agreed label on half)."""
    rng = random.Random(seed)
    recs = [json.loads(x) for x in CHECK.read_text("utf-8").splitlines()][:16]
    for rec in recs:
        for s in rec["segments"]:
            true = s["label"]
            s["labels"] = {f"coder {k}": (true if rng.random() < 0.75 else rng.choice(LABELS)) for k in range(coders)}
            if rng.random() < 0.5:
                del s["label"]
    path.write_text("".join(json.dumps(r) + "\n" for r in recs), "utf-8")
    return recs


@pytest.mark.parametrize("coders", [2, 3])
def test_validate_figures_match_sklearn_statsmodels_and_krippendorff(coders, mini_model_dir, tmp_path):
    import krippendorff
    from sklearn.metrics import cohen_kappa_score, confusion_matrix, f1_score, precision_recall_fscore_support
    from statsmodels.stats.inter_rater import fleiss_kappa

    from supervise_nlp.classify import NoteLabeller
    from supervise_nlp.evaluate import align
    from supervise_nlp.modelio import load_model
    from supervise_nlp.read import corpus_text, gold_spans

    path = tmp_path / "labelled.jsonl"
    recs = _corpus_with_coders(path, coders)
    v = json.loads(run("validate", path, "--model", mini_model_dir, "--format", "json", "--bootstrap", 200))
    names = [f"coder {k}" for k in range(coders)]
    codes = [[LABELS.index(s["labels"][c]) for r in recs for s in r["segments"]] for c in names]
    ag = v["agreement"]
    alpha = krippendorff.alpha(reliability_data=np.array(codes, dtype=float), level_of_measurement="nominal")
    assert ag["krippendorff_alpha"] == pytest.approx(alpha)
    table = np.array([[sum(c[i] == k for c in codes) for k in range(3)] for i in range(len(codes[0]))])
    assert ag["fleiss_kappa"] == pytest.approx(fleiss_kappa(table))
    if coders == 2:
        assert ag["kappa"] == pytest.approx(cohen_kappa_score(codes[0], codes[1]))
        assert ag["kappa_ci"][0] < ag["kappa"] < ag["kappa_ci"][1]
    else:
        assert ag["kappa"] == pytest.approx(fleiss_kappa(table))
        assert ag["pairwise"][0]["kappa"] == pytest.approx(cohen_kappa_score(codes[0], codes[1]))
    # disagreements: by id and offsets, no text
    assert ag["disagreements"] and all("text" not in d for d in ag["disagreements"])

    # the model, independently: label each note, align, then sklearn on the reference labels
    labeller = NoteLabeller(load_model(mini_model_dir))
    y_true, y_pred = [], []
    for rec, out in zip(recs, labeller.label_texts(corpus_text(r) for r in recs)):
        spans = gold_spans({"segments": [{"text": s["text"], "label": ""} for s in rec["segments"]]})
        for seg, (lab, _p) in zip(rec["segments"], align(spans, out["segments"])):
            ref = seg.get("label")
            if ref is None:  # the coders' majority; a tie gives none
                (top, n1), *rest = Counter(seg["labels"].values()).most_common()
                ref = None if rest and rest[0][1] == n1 else top
            if ref:
                y_true.append(ref)
                y_pred.append(lab)
    m = v["model"]
    assert m["segments"] == len(y_true)
    assert m["macro_f1"] == pytest.approx(f1_score(y_true, y_pred, labels=list(LABELS), average="macro",
                                                   zero_division=0))
    assert m["kappa"] == pytest.approx(cohen_kappa_score(y_true, y_pred, labels=list(LABELS)))
    assert m["confusion"]["matrix"] == confusion_matrix(y_true, y_pred, labels=list(LABELS)).tolist()
    p, r, f, _ = precision_recall_fscore_support(y_true, y_pred, labels=list(LABELS), zero_division=0)
    for i, lab in enumerate(LABELS):
        assert m["per_class"][lab]["precision"] == pytest.approx(p[i])
        assert m["per_class"][lab]["recall"] == pytest.approx(r[i])
        lo, hi = m["per_class"][lab]["f1_ci"]
        assert lo <= f[i] + 1e-9 and f[i] <= hi + 1e-9
    assert m["population"]["kappa"] == pytest.approx(m["kappa"])  # no inclusion probabilities: the same
    assert v["verdict"]["summary"] and v["verdict"]["level"]


def test_validate_a_filled_sheet_weights_by_inclusion_probability(sheet_csv, mini_model_dir, tmp_path):
    from sklearn.metrics import cohen_kappa_score

    from supervise_nlp.parallel import labeller_for
    from supervise_nlp.validate import predict, read_labelled

    filled = _write(_fill(_rows(sheet_csv)), tmp_path / "filled.csv")
    v = json.loads(run("validate", filled, "--model", mini_model_dir, "--format", "json", "--bootstrap", 200))
    rows = _rows(filled)
    c1 = [r["coder 1"] for r in rows]
    c2 = [r["coder 2"] for r in rows]
    w = [1 / float(r["inclusion_probability"]) for r in rows]
    assert v["agreement"]["kappa"] == pytest.approx(cohen_kappa_score(c1, c2))
    assert v["agreement"]["pairwise"][0]["kappa_weighted"] == pytest.approx(cohen_kappa_score(c1, c2, sample_weight=w))
    items, units = read_labelled([str(filled)])
    predict(items, units, labeller_for(str(mini_model_dir)))
    scored = [(it.reference, it.predicted, it.weight) for it in items if it.reference]
    assert v["model"]["population"]["kappa"] == pytest.approx(cohen_kappa_score(
        [s[0] for s in scored], [s[1] for s in scored], labels=list(LABELS), sample_weight=[s[2] for s in scored]))
    assert v["weights"].startswith("inclusion")
    # two coders in separate files (as the labelling page downloads them) merge into the same figures
    one = [{k: val for k, val in r.items() if k not in ("coder 2", "coder 2 unsure")} for r in rows]
    two = [{("coder: B" if k == "coder 2" else k): val for k, val in r.items() if k not in ("coder 1",
                                                                                            "coder 1 unsure")}
           for r in rows]
    a, b = _write(one, tmp_path / "a.csv"), _write(two, tmp_path / "b.csv")
    v2 = json.loads(run("validate", a, b, "--model", mini_model_dir, "--format", "json", "--bootstrap", 200))
    assert v2["coders"] == 2 and v2["agreement"]["kappa"] == pytest.approx(v["agreement"]["kappa"])
    table = run("validate", filled, "--model", mini_model_dir, "--bootstrap", 200)
    assert "Cohen's kappa" in table and "Verdict" in table


def test_sheet_predictions_equal_the_whole_note_predictions(sheet_csv, mini_model_dir, tmp_path):
    from supervise_nlp.parallel import labeller_for
    from supervise_nlp.validate import predict, read_labelled

    filled = _write(_fill(_rows(sheet_csv)), tmp_path / "f.csv")
    items, units = read_labelled([str(filled)])
    predict(items, units, labeller_for(str(mini_model_dir)))
    out = [json.loads(x) for x in run("classify", CHECK, "--model", mini_model_dir, "-q", "-j", 1).splitlines()]
    full = {(o["id"], s["start"], s["end"]): s["label"] for o in out for s in o["segments"]}
    assert all(full[(it.note_id, it.start, it.end)] == it.predicted for it in items)


# --- the corrected report ----------------------------------------------------------------------------


def test_corrected_interval_covers_the_truth_and_the_raw_one_does_not():
    """Simulated notes with known balances and known misclassification rates."""
    from supervise_nlp.aggregate import bootstrap_balances, percentile_ci
    from supervise_nlp.quantify import corrected

    R = np.array([[0.75, 0.05, 0.20],  # rows: true label; columns: model's label
                  [0.10, 0.65, 0.25],
                  [0.15, 0.10, 0.75]])
    groups = {"A": np.array([0.30, 0.50, 0.20]), "B": np.array([0.25, 0.25, 0.50])}
    truth = {g: p[1] / (p[0] + p[1]) for g, p in groups.items()}
    rng = np.random.default_rng(11)

    def notes(p, n_notes, per_note=10):
        shares = rng.dirichlet(p * 20, size=n_notes)
        true = np.array([rng.choice(3, size=per_note, p=s) for s in shares])
        pred = np.array([[rng.choice(3, p=R[t]) for t in row] for row in true])
        return true, pred

    replicates, n_boot = 50, 400
    covered = {"corrected": 0, "raw": 0}
    total = 0
    for _ in range(replicates):
        vt, vp = notes(np.array([0.4, 0.3, 0.3]), 40)  # validation: 400 segments in 40 notes
        clusters = np.zeros((len(vt), 3, 3))
        for k in range(len(vt)):
            np.add.at(clusters[k], (vt[k], vp[k]), 1)
        counts = rng.multinomial(len(vt), np.full(len(vt), 1 / len(vt)), size=n_boot)
        vboot = np.einsum("bk,kij->bij", counts, clusters)
        for g, p in groups.items():
            _, pred = notes(p, 150)
            nc = np.stack([(pred == j).sum(axis=1) for j in range(3)], axis=1)
            c = corrected(nc, clusters, vboot, n_boot, rng)
            lo, hi = c["balance_ci"]
            covered["corrected"] += lo <= truth[g] <= hi
            raw_lo, raw_hi = percentile_ci(bootstrap_balances(nc[:, 1], nc[:, 0], n_boot, rng))
            covered["raw"] += raw_lo <= truth[g] <= raw_hi
            total += 1
    # (with 200 replicates: corrected 96% and 95%, raw 0% and 11%)
    assert covered["corrected"] / total >= 0.90, covered
    assert covered["raw"] / total <= 0.2, covered


def test_report_says_whether_and_how_it_was_validated(sheet_csv, mini_model_dir, tmp_path):
    filled = _write(_fill(_rows(sheet_csv)), tmp_path / "filled.csv")
    val = tmp_path / "validation.json"
    run("validate", filled, "--model", mini_model_dir, "--format", "json", "-o", val, "--bootstrap", 200)
    common = [CHECK, "--model", mini_model_dir, "--no-culture", "--bootstrap", 200, "--permutations", 99, "-q", "-j", 1]
    rep = json.loads(run("report", *common, "--format", "json", "--validation", val))
    assert rep["validation"]["validated"] and "checked against 40 segments labelled by 2 of your staff" in \
        rep["validation"]["statement"].lower()
    for g in rep["groups"] + [rep["overall"]]:
        c = g["corrected"]
        assert c["balance_ci"][0] <= c["balance"] <= c["balance_ci"][1]
    for fmt in ("table", "csv", "html"):
        out = run("report", *common, "--format", fmt, "--validation", val)
        assert "labelled by 2 of your staff" in out
        plain = run("report", *common, "--format", fmt)
        assert "unmeasured" in plain
    raw = json.loads(run("report", *common, "--format", "json"))
    assert raw["validation"] == {"validated": False, "statement": raw["validation"]["statement"]}
    # the sheet itself works as --validation; a validation of another model is refused
    direct = json.loads(run("report", *common, "--format", "json", "--validation", filled))
    assert direct["validation"]["validated"]
    r = CliRunner().invoke(main, ["report", str(CHECK), "--validation", str(val), "-q", "--no-culture"])
    assert r.exit_code != 0 and "another model" in r.output


# --- adapt from a filled sheet ---------------------------------------------------------------------------


def test_load_labelled_takes_agreed_labels_consensus_and_sheets(sheet_csv, tmp_path):
    from supervise_nlp.validate import load_labelled

    path = tmp_path / "c.jsonl"
    path.write_text(json.dumps({"id": "x", "segments": [
        {"text": "Mum said she wants to stop.", "labels": {"a": "change_focused", "b": "c", "c": "neutral"}},
        {"text": "Review booked.", "label": "procedural", "labels": {"a": "neutral"}}]}) + "\n" + json.dumps(
        {"id": "y", "segments": [{"text": "Tie.", "labels": {"a": "neutral", "b": "procedural"}}]}) + "\n", "utf-8")
    recs = load_labelled([str(path)])
    assert [r["id"] for r in recs] == ["x"]
    assert [s["label"] for s in recs[0]["segments"]] == ["change_focused", "procedural"]
    filled = _write(_fill(_rows(sheet_csv)), tmp_path / "filled.csv")
    recs = load_labelled([str(filled)])
    assert 20 <= len(recs) <= 40 and all(len(r["segments"]) == 1 and r["worker"] for r in recs)


@pytest.fixture(scope="module")
def small_base(tmp_path_factory, data) -> Path:
    """A base model of the default design, trained on the six-note corpus with a small feature space
    (so the dozen fits of adaptation's cross-validation take seconds, not minutes)."""
    from supervise_nlp.card import card_markdown
    from supervise_nlp.classify import build_pipeline
    from supervise_nlp.modelio import save_model
    from supervise_nlp.read import read_corpus
    from supervise_nlp.train import describe_training, fit

    files = [str(data / "mini_corpus.jsonl")]
    records = read_corpus(files)
    model = fit(records, build_pipeline(n_features=2**12, char_ngrams=None))
    card = describe_training(records, files, [], model, "six test notes")
    out = tmp_path_factory.mktemp("base") / "small"
    save_model(model, out, card, card_markdown(card))
    return out


def test_train_base_add_a_filled_sheet(sheet_csv, small_base, tmp_path):
    from supervise_nlp.modelio import load_card, load_model

    filled = _write(_fill(_rows(sheet_csv)), tmp_path / "filled.csv")
    out = tmp_path / "ours"
    from threadpoolctl import threadpool_limits

    with threadpool_limits(1):  # on a busy machine BLAS threads spin against each other in the tiny fits
        run("train", "--base", small_base, "--add", filled, "-o", out, "-q")
    card = load_card(out)
    ad = card["adaptation"]
    assert ad["added_segments"] >= 20 and ad["grouped_by"] == "worker" and "chosen_weight" in ad
    assert "base_model_scores" in ad and ad["cross_validation"]
    load_model(out)  # an ordinary model directory
    run("classify", CHECK, "--model", out, "-q", "-j", 1, "-o", tmp_path / "c.jsonl")


def test_report_validation_checks_the_model_that_classified_the_notes(tmp_path, data, mini_model_dir):
    """classify's summary names its model; report --validation checks the validation against it,
    not against the report's own (default) model."""
    import json

    from click.testing import CliRunner

    from supervise_nlp.cli import main

    runner = CliRunner()
    out = tmp_path / "c.jsonl"
    res = runner.invoke(main, ["classify", str(data / "mini_corpus.jsonl"), "--model", str(mini_model_dir),
                               "-o", str(out), "-q"])
    assert res.exit_code == 0, res.output
    summary = json.loads((tmp_path / "c.summary.json").read_text())
    assert summary["model"]["sha256"]
    val = tmp_path / "v.json"
    res = runner.invoke(main, ["validate", str(data / "mini_corpus.jsonl"), "--model", str(mini_model_dir),
                               "--format", "json", "-o", str(val)])
    assert res.exit_code == 0, res.output
    # the notes were labelled by the mini model, the validation measured the mini model: accepted,
    # though the report itself was given no --model
    res = runner.invoke(main, ["report", str(out), "--validation", str(val), "--format", "json", "-q",
                               "--min-notes", "1"])
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout)["validation"]["validated"] is True
