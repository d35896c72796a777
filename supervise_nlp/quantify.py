"""Correcting team balances for the misclassification measured in validation.

A group's raw balance counts the model's labels, so the model's errors bias it: if the model calls
a fifth of change-focused sentences neutral, every balance comes out too low, and groups whose
recording the model reads less well come out lower still. Validation measured how the model errs
on the organisation's own notes: ``M[j, i] = P(model says j | the segment is truly i)`` (estimated
with the sample's ``1/pi`` weights, so it describes all the notes the sample came from). If those
rates are the same in every group ("label shift": groups differ in what they write, not in how the
model reads a given kind of sentence), a group's label shares ``q`` as the model counts them
satisfy ``q = M p``, where ``p`` are its true shares. Solving for ``p`` is adjusted classify-and-
count generalised to three labels (Saerens et al. 2002; Forman 2008; Lipton et al. 2018 call it
black-box shift estimation). We solve it as least squares over the simplex (shares cannot be
negative and add to one), which is the plain inverse ``M^-1 q`` whenever that is a valid set of
shares. The corrected balance is ``p_change / (p_change + p_procedural)``.

QuaPy, the field's reference library, implements ACC for a classifier it fits and cross-validates
itself; here the classifier is fixed and its errors are measured on a separate, unequally weighted
validation sample, bootstrapped by note. That takes a few lines of numpy, so we do not depend on it.

**Intervals** carry both sources of uncertainty: each bootstrap replicate resamples the
validation notes (giving ``M*``) and, independently, the group's notes (giving ``q*``), and
solves again; the interval is the 2.5th to 97.5th percentile of the replicates' balances.
"""

from __future__ import annotations

from collections.abc import Sequence
from itertools import combinations
from typing import Any

import numpy as np

from .classify import LABELS
from .validate import _ci as percentile_ci  # one percentile interval for validation and its correction

K = len(LABELS)
P_, C_, N_ = (LABELS.index(x) for x in ("procedural", "change_focused", "neutral"))
SUPPORTS = [s for r in range(1, K + 1) for s in combinations(range(K), r)]
METHOD = ("adjusted classify-and-count over three labels, with misclassification rates from validation "
          "weighted 1/pi and shares solved by least squares on the simplex; 95% percentile bootstrap resampling "
          "both the validation notes and the group's notes")
UNMEASURED = ("The accuracy of these labels on these notes is unmeasured: the model's scores come from its "
              "own test notes, not from yours. Measure it with supervise-nlp sample, validate, and report "
              "--validation.")


def misclassification(weighted_confusion: np.ndarray) -> np.ndarray:
    """``M[..., j, i] = P(model j | true i)`` from (..., true, model) weighted counts.

    NaN where a true label is absent from the validation.
    """
    w = np.asarray(weighted_confusion, dtype=float)
    rows = w.sum(axis=-1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        rates = np.where(rows > 0, w / np.where(rows > 0, rows, 1), np.nan)
    return np.swapaxes(rates, -1, -2)


def adjust(M: np.ndarray, q: np.ndarray) -> np.ndarray:
    """True shares ``p`` (on the simplex) minimising ``|M p - q|`` for stacks of ``M`` (B,K,K) and ``q`` (B,K).

    Enumerates the faces of the simplex (seven for three labels), solving the equality-constrained
    least squares on each and keeping the best feasible one: exact, and vectorised over replicates.
    Rows with an undefined ``M`` give NaN.
    """
    M = np.asarray(M, dtype=float)
    q = np.asarray(q, dtype=float)
    single = M.ndim == 2
    if single:
        M, q = M[None], q[None]
    B = len(M)
    bad = np.isnan(M).any(axis=(1, 2)) | np.isnan(q).any(axis=1)
    Ms = np.where(bad[:, None, None], np.eye(K), M)
    qs = np.where(bad[:, None], 1.0 / K, q)
    best = np.full((B, K), np.nan)
    best_r = np.full(B, np.inf)
    for s in SUPPORTS:
        idx = list(s)
        A = Ms[:, :, idx]  # (B, K, m)
        m = len(idx)
        kkt = np.zeros((B, m + 1, m + 1))
        kkt[:, :m, :m] = 2 * np.einsum("bki,bkj->bij", A, A)
        kkt[:, :m, m] = 1.0
        kkt[:, m, :m] = 1.0
        rhs = np.zeros((B, m + 1))
        rhs[:, :m] = 2 * np.einsum("bki,bk->bi", A, qs)
        rhs[:, m] = 1.0
        sol = np.einsum("bij,bj->bi", np.linalg.pinv(kkt), rhs)[:, :m]
        p = np.zeros((B, K))
        p[:, idx] = sol
        feasible = (sol >= -1e-9).all(axis=1) & np.isfinite(sol).all(axis=1)
        resid = np.sum((np.einsum("bkj,bj->bk", Ms, p) - qs) ** 2, axis=1)
        better = feasible & (resid < best_r - 1e-15)
        best[better] = np.clip(p[better], 0, None)
        best_r[better] = resid[better]
    best /= best.sum(axis=1, keepdims=True)
    best[bad] = np.nan
    return best[0] if single else best


def balance_of(p: np.ndarray) -> np.ndarray:
    p = np.asarray(p, dtype=float)
    denom = p[..., P_] + p[..., C_]
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(denom > 0, p[..., C_] / np.where(denom > 0, denom, 1), np.nan)


def _rng(seed: int, label: str) -> np.random.Generator:
    from .aggregate import _rng as report_rng

    return report_rng(seed, "corrected|" + label)  # its own stream, beside the report's


def _resampled_sums(values: np.ndarray, n_boot: int, rng: np.random.Generator, chunk: int = 256) -> np.ndarray:
    """Sums of ``values`` (n, d) over ``n_boot`` resamples of its rows with replacement: (n_boot, d)."""
    n = len(values)
    out = np.empty((n_boot, values.shape[1]))
    for s in range(0, n_boot, chunk):
        b = min(chunk, n_boot - s)
        counts = rng.multinomial(n, np.full(n, 1.0 / n), size=b) if n else np.zeros((b, 0))
        out[s:s + b] = counts @ values
    return out


def corrected(note_counts: np.ndarray, clusters: np.ndarray, val_boot: np.ndarray, n_boot: int,
              rng: np.random.Generator) -> dict[str, Any]:
    """The corrected balance of one group, from its notes' (P, C, N) counts and the validation."""
    note_counts = np.asarray(note_counts, dtype=float)
    total = note_counts.sum(axis=0)
    if total.sum() == 0:
        return {"balance": None, "balance_ci": [None, None], "shares": None}
    q = total / total.sum()
    M = misclassification(clusters.sum(axis=0))
    p = adjust(M, q)
    qb = _resampled_sums(note_counts, n_boot, rng)
    with np.errstate(invalid="ignore", divide="ignore"):
        qb = qb / qb.sum(axis=1, keepdims=True)
    pb = adjust(misclassification(val_boot), qb)
    bal = balance_of(pb)
    point = balance_of(p)
    return {
        "balance": None if np.isnan(point) else float(point),
        "balance_ci": percentile_ci(bal),
        "shares": None if np.isnan(p).any() else {lab: float(p[i]) for i, lab in enumerate(LABELS)},
        "failed_resamples": int(np.isnan(bal).sum()),
    }


def _group_rows(table, by: Sequence[str], key: dict[str, str]) -> np.ndarray:
    mask = np.ones(len(table), dtype=bool)
    for k in by:
        mask &= table.column(k) == key.get(k)
    return np.flatnonzero(mask)


def validation_additions(rep: dict[str, Any], validation: dict[str, Any] | None, table=None,
                         n_boot: int | None = None, seed: int | None = None) -> dict[str, Any]:
    """What ``report --validation`` adds to a report: a ``validation`` block, and ``corrected`` per group.

    ``table`` (the report's note table) lets the intervals resample workers (notes within a
    worker); without it, a group's segments are resampled as if independent (too narrow: pass it).
    """
    if validation is None:
        return {"validation": {"validated": False, "statement": UNMEASURED}, "groups": [], "overall": None}
    from .validate import statement

    n_boot = n_boot or rep.get("method", {}).get("bootstrap_resamples", 2000)
    seed = seed if seed is not None else rep.get("method", {}).get("seed", 20260301)
    clusters = np.asarray(validation["for_report"]["clusters"], dtype=float).reshape(-1, K, K)
    vb = _resampled_sums(clusters.reshape(len(clusters), -1), n_boot, _rng(seed, "validation")).reshape(-1, K, K)
    M = misclassification(clusters.sum(axis=0))
    block = {
        "validated": True,
        "statement": statement(validation)[0].upper() + statement(validation)[1:] + ".",
        "segments": validation["model"]["segments"],
        "coders": validation["coders"],
        "coder_kappa": validation["agreement"].get("kappa"),
        "model_kappa": validation["model"]["population"]["kappa"],
        "model_macro_f1": validation["model"]["population"]["macro_f1"],
        "verdict": validation["verdict"]["level"],
        "misclassification": {"rows": "model's label", "columns": "true label", "labels": list(LABELS),
                              "rates": [[None if np.isnan(x) else float(x) for x in r] for r in M]},
        "method": METHOD,
        "assumption": "the model errs at the same rates in every group (label shift)",
    }

    def counts_for(g: dict[str, Any], rows: np.ndarray | None) -> np.ndarray:
        if table is not None and rows is not None:
            # resample workers, as the report's own intervals do: a group's figure is about its
            # workers in general (notes with no worker named are their own units)
            notes = np.column_stack([table.P[rows], table.C[rows], table.N[rows]]).astype(float)
            workers = np.asarray(table.column("worker"), dtype=object)[rows]
            known = workers != UNKNOWN
            if "worker" in rep["by"] or not known.any():
                return notes
            units = np.where(known, workers, np.array([f"\x00{i}" for i in range(len(rows))], dtype=object))
            _, inv = np.unique(units.astype(str), return_inverse=True)
            sums = np.zeros((inv.max() + 1, K))
            np.add.at(sums, inv, notes)
            return sums
        # without the table: one 'note' per segment (ignores clustering)
        return np.repeat(np.eye(K)[[P_, C_, N_]], [g["procedural"], g["change_focused"], g["neutral"]], axis=0)

    from .aggregate import UNKNOWN

    groups = []
    for g in rep.get("groups", []):
        rows = _group_rows(table, rep["by"], g["key"]) if table is not None else None
        label = "|".join(str(v) for v in g["key"].values())
        groups.append(_no_narrower(corrected(counts_for(g, rows), clusters, vb, n_boot, _rng(seed, label)), g))
    overall = None
    if rep.get("overall"):
        rows = np.arange(len(table)) if table is not None else None
        overall = _no_narrower(corrected(counts_for(rep["overall"], rows), clusters, vb, n_boot,
                                         _rng(seed, "overall")), rep["overall"])
    return {"validation": block, "groups": groups, "overall": overall}


def _no_narrower(corr: dict[str, Any], g: dict[str, Any]) -> dict[str, Any]:
    """A corrected interval carries the group's own uncertainty too: it is never narrower than the
    group's headline interval (moved by the correction), which with few workers is a t interval a
    percentile bootstrap over those few workers cannot match; no interval where the group has none."""
    lo, hi = g.get("balance_ci") or [None, None]
    if lo is None or hi is None:
        return {**corr, "balance_ci": [None, None]}
    clo, chi = corr["balance_ci"]
    if corr["balance"] is None or clo is None or g.get("balance") is None:
        return corr
    shift = corr["balance"] - g["balance"]
    return {**corr, "balance_ci": [max(0.0, min(clo, lo + shift)), min(1.0, max(chi, hi + shift))]}


def apply_additions(rep: dict[str, Any], add: dict[str, Any]) -> dict[str, Any]:
    rep["validation"] = add["validation"]
    for g, c in zip(rep.get("groups", []), add["groups"]):
        g["corrected"] = c
    if add.get("overall") and rep.get("overall"):
        rep["overall"]["corrected"] = add["overall"]
    return rep
