"""How much weight the register material gets, and the learning curve, decided on held-out scores.

Run from a checkout: ``python scripts/register_experiments.py --weights 1 2 3 -o results.json``.
For each weight W: the sample corpus at weight 1 plus every register file at weight W;
leave-one-register-out cross-validation (each register labelled by a model that never saw it)
and the independent check sets scored by a model fitted on everything. Then the learning curve:
check-set scores as register files are added (in a fixed shuffled order), at the chosen weight.
Uses only the package's own training and scoring code.
"""

from __future__ import annotations

import argparse
import glob
import json
import random
import time

from supervise_nlp.classify import NoteLabeller
from supervise_nlp.evaluate import evaluate_records
from supervise_nlp.read import read_corpus
from supervise_nlp.train import WEIGHT_KEY, cross_validate, fit, read_weighted

KEYS = ("segments", "macro_f1", "kappa", "team_balance_mae")


def _short(s: dict) -> dict:
    return {k: s.get(k) for k in KEYS}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--weights", type=float, nargs="+", default=[1.0, 2.0, 3.0])
    ap.add_argument("--curve-weight", type=float, default=None, help="weight for the learning curve (default: best)")
    ap.add_argument("--no-curve", action="store_true")
    ap.add_argument("-o", "--output", required=True)
    args = ap.parse_args()
    sample = read_weighted(sorted(glob.glob("corpora/sample/train_*.jsonl")))
    reg_files = sorted(glob.glob("corpora/registers/train_*.jsonl"))
    registers = {f: read_weighted([f]) for f in reg_files}
    checks = {f: read_corpus([f]) for f in sorted(glob.glob("corpora/checks/*.jsonl"))}
    out: dict = {"weights": {}, "registers": [f.split("/")[-1] for f in reg_files]}
    for w in args.weights:
        t = time.time()
        recs = sample + [{**r, WEIGHT_KEY: w} for f in reg_files for r in registers[f]]
        cv = cross_validate(recs, "register")
        labeller = NoteLabeller(fit(recs))
        out["weights"][f"{w:g}"] = {
            "register_cv": _short(cv),
            "per_register": {k: v["macro_f1"] for k, v in cv["per_group"].items()},
            "checks": {f.split("/")[-1]: _short(evaluate_records(labeller, recs_c)) for f, recs_c in checks.items()},
            "seconds": round(time.time() - t),
        }
        print(json.dumps({w: out["weights"][f"{w:g}"]}, indent=1), flush=True)

    def score(w: str) -> float:
        r = out["weights"][w]
        return r["register_cv"]["macro_f1"] + sum(c["macro_f1"] for c in r["checks"].values()) / len(r["checks"])

    best = max(out["weights"], key=score)
    out["chosen_weight"] = float(best)
    if not args.no_curve:
        w = args.curve_weight or float(best)
        order = list(reg_files)
        random.Random(11).shuffle(order)
        curve = []
        for k in range(0, len(order) + 1, 2):
            recs = sample + [{**r, WEIGHT_KEY: w} for f in order[:k] for r in registers[f]]
            labeller = NoteLabeller(fit(recs))
            added = sum(len(r["segments"]) for f in order[:k] for r in registers[f])
            row = {"registers_added": k, "segments_added": added,
                   "checks": {f.split("/")[-1]: evaluate_records(labeller, c)["macro_f1"] for f, c in checks.items()}}
            curve.append(row)
            print(json.dumps(row), flush=True)
        out["learning_curve"] = {"weight": w, "order": [f.split("/")[-1] for f in order], "points": curve}
    with open(args.output, "w", encoding="utf-8") as fh:
        json.dump(out, fh, indent=2)


if __name__ == "__main__":
    main()
