"""Benchmark: ``python -m supervise_nlp.bench`` (``--quick`` for a smoke test).

Whole processes, as the user's clock sees them: every figure is a cold process started from
scratch (imports, model load, reading, writing included). From one run on this machine it prints

- ``classify -j 1`` against a cold *floor* process (imports spaCy, builds a blank English
  pipeline with the sentencizer and splits the same texts read from the same JSON Lines), on
  inputs of several shapes built from the corpus files: sample-corpus notes, register notes
  (``corpora/registers``), long prose and terse lines;
- ``-j N`` against ``-j 1`` on the sample-shaped input, and whether their outputs are identical;
- cold ``explain`` of one note against a bare ``import spacy, sklearn``;
- ``report`` on classified notes at two sizes (default 20,000 and 1,000,000);
- peak memory of ``classify`` at two input sizes.

Wall times are the best of ``--runs`` (the machine is shared and noisy; floor and classify runs
are interleaved so they see the same load); CPU times (user + system, children included) are
given beside them, as they move less with other people's jobs. Compare the ratios.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CORPORA = ROOT / "corpora"

FLOOR = """
import json, sys
import spacy
nlp = spacy.blank("en")
nlp.add_pipe("sentencizer")
texts = (json.loads(line)["text"] for line in open(sys.argv[1], encoding="utf-8") if line.strip())
n = 0
for doc in nlp.pipe(texts, batch_size=256):
    n += sum(1 for _ in doc.sents)
print(n)
"""
BARE_IMPORT = "import spacy, sklearn"
NOTE = ("Present: SW, Mum, Jayden (4). Core group invites sent and chronology updated. "
        "Mum said she wants to be the parent she never had.")


# --- inputs -------------------------------------------------------------------------------------


def _records(*globs: str) -> list[dict]:
    from .read import corpus_text

    out = []
    for pattern in globs:
        for f in sorted(CORPORA.glob(pattern)):
            for line in open(f, encoding="utf-8"):
                if line.strip():
                    rec = json.loads(line)
                    rec["text"] = corpus_text(rec)
                    out.append(rec)
    if not out:
        raise SystemExit(f"bench needs {', '.join(globs)} under {CORPORA} (run it from a source checkout)")
    return out


def shape_texts(shape: str, rng: random.Random, n: int) -> list[tuple[dict, str]]:
    """``n`` (record, text) pairs of one input shape."""
    if shape == "sample":
        base = _records("sample/*.jsonl")
        return [(r, r["text"]) for r in (rng.choice(base) for _ in range(n))]
    if shape == "registers":
        base = _records("registers/*.jsonl")
        return [(r, r["text"]) for r in (rng.choice(base) for _ in range(n))]
    if shape == "prose":  # long narrative: 4-8 prose notes run together as one report
        base = [r for r in _records("sample/*.jsonl", "registers/*.jsonl", "checks/*.jsonl")
                if r.get("layout") == "prose"]
        out = []
        for _ in range(n):
            parts = [rng.choice(base) for _ in range(rng.randint(4, 8))]
            out.append((parts[0], "\n\n".join(p["text"] for p in parts)))
        return out
    if shape == "terse":  # one to three short lines of a lines-layout note (case-log entries)
        base = [r for r in _records("sample/*.jsonl", "registers/*.jsonl", "checks/*.jsonl")
                if r.get("layout") == "lines"]
        lines = [(r, s["text"]) for r in base for s in r.get("segments", []) if len(s["text"].split()) <= 25]
        out = []
        for _ in range(n):
            picks = [rng.choice(lines) for _ in range(rng.randint(1, 3))]
            out.append((picks[0][0], "\n".join(t for _, t in picks)))
        return out
    raise ValueError(shape)


def make_input(path: Path, n: int, shape: str = "sample", seed: int = 7) -> tuple[int, int]:
    """Write ``n`` notes of one shape (ids made unique); return notes, words."""
    rng = random.Random(seed)
    words = 0
    with open(path, "w", encoding="utf-8") as fh:
        for i, (rec, text) in enumerate(shape_texts(shape, rng, n)):
            words += len(text.split())
            out = {"id": f"b{i}", "team": rec.get("team"), "worker": rec.get("worker"), "type": rec.get("type"),
                   "date": rec.get("date"), "text": text}
            fh.write(json.dumps(out, ensure_ascii=False) + "\n")
    return n, words


# --- processes ----------------------------------------------------------------------------------


def run(cmd: list[str], stdout=subprocess.DEVNULL) -> tuple[float, float, int]:
    """Wall seconds, CPU seconds (user + system of the process and its children) and peak RSS
    (KiB, largest process) of one cold command."""
    t = time.perf_counter()
    p = subprocess.Popen(cmd, stdout=stdout, stderr=subprocess.PIPE, cwd=ROOT)
    _, status, ru = os.wait4(p.pid, 0)
    wall = time.perf_counter() - t
    err = p.stderr.read().decode("utf-8", "replace") if p.stderr else ""
    p.stderr.close()
    p.returncode = os.waitstatus_to_exitcode(status)
    if p.returncode:
        raise SystemExit(f"bench: {' '.join(cmd)} failed:\n{err[-2000:]}")
    return wall, ru.ru_utime + ru.ru_stime, ru.ru_maxrss


def cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "supervise_nlp", *args]


def floor_cmd(path: Path) -> list[str]:
    return [sys.executable, "-c", FLOOR, str(path)]


def classify_cmd(path: Path, out: Path, jobs: int) -> list[str]:
    return cli("classify", "-q", "-j", str(jobs), str(path), "-o", str(out))


def best(runs: list[tuple[float, float, int]]) -> dict[str, float]:
    return {"wall_s": min(r[0] for r in runs), "cpu_s": min(r[1] for r in runs),
            "rss_mib": max(r[2] for r in runs) / 1024}


def interleaved(cmds: dict[str, list[str]], runs: int) -> dict[str, dict[str, float]]:
    """Each command ``runs`` times, taking turns, so they share the machine's load; best of each."""
    got: dict[str, list] = {k: [] for k in cmds}
    for _ in range(runs):
        for k, cmd in cmds.items():
            got[k].append(run(cmd))
    return {k: best(v) for k, v in got.items()}


def classified_copy(src: Path, dst: Path, n: int) -> None:
    """``n`` classify output lines made by repeating ``src`` with fresh ids."""
    lines = [json.loads(x) for x in open(src, encoding="utf-8") if x.strip()]
    with open(dst, "w", encoding="utf-8") as fh:
        for i in range(n):
            rec = dict(lines[i % len(lines)])
            rec["id"] = f"r{i}"
            fh.write(json.dumps(rec, ensure_ascii=False) + "\n")


# --- main ---------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="python -m supervise_nlp.bench", description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true",
                    help="smoke test: 1,000 notes, one run, report at 1,000 and 5,000 notes, no memory scaling")
    ap.add_argument("--notes", type=int, default=20_000, help="notes per input shape (default 20,000; "
                    "the long-prose input has an eighth as many, each several notes long)")
    ap.add_argument("--shapes", default="sample,registers,prose,terse", help="input shapes to time")
    ap.add_argument("--jobs", type=int, default=2, help="processes for the parallel run (default 2)")
    ap.add_argument("--runs", type=int, default=3, help="runs of each process; the best is kept (default 3)")
    ap.add_argument("--repeats", type=int, default=5, help="runs of the start-up timings (default 5)")
    ap.add_argument("--report-notes", default="20000,1000000",
                    help="classified-note counts to time `report` on ('' to skip; default 20000,1000000)")
    ap.add_argument("--memory-scale", type=int, default=5,
                    help="peak memory is also measured on this many times more notes (default 5; 0 to skip)")
    ap.add_argument("--json", action="store_true", help="print the figures as JSON too")
    args = ap.parse_args(argv)
    if args.quick:
        args.notes, args.runs, args.repeats, args.memory_scale = 1000, 1, 2, 0
        args.report_notes = "1000,5000"
    shapes = [s for s in args.shapes.split(",") if s]
    res: dict = {"cpu_cores": os.cpu_count(), "runs": args.runs, "shapes": {}}

    with tempfile.TemporaryDirectory() as tmp:
        tmpd = Path(tmp)
        print(f"supervise-nlp whole-process benchmark: {os.cpu_count()} cores, cold processes, "
              f"best of {args.runs} run(s) each (wall / CPU seconds)", flush=True)
        print(f"  {'input':<44} {'floor':>15} {'classify -j 1':>17} {'ratio wall':>10} {'ratio cpu':>9}")
        for shape in shapes:
            n = max(args.notes // 8, 1) if shape == "prose" else args.notes
            path = tmpd / f"{shape}.jsonl"
            n, words = make_input(path, n, shape)
            r = interleaved({"floor": floor_cmd(path),
                             "classify": classify_cmd(path, tmpd / f"{shape}.out.jsonl", 1)}, args.runs)
            f, c = r["floor"], r["classify"]
            entry = {"notes": n, "words": words, "floor": f, "classify_j1": c,
                     "ratio_wall": c["wall_s"] / f["wall_s"], "ratio_cpu": c["cpu_s"] / f["cpu_s"]}
            res["shapes"][shape] = entry
            label = f"{shape} ({n:,} notes, {words:,} words)"
            print(f"  {label:<44} {f['wall_s']:6.2f} / {f['cpu_s']:5.2f} {c['wall_s']:7.2f} / {c['cpu_s']:6.2f} "
                  f"{entry['ratio_wall']:9.2f}x {entry['ratio_cpu']:8.2f}x", flush=True)

        # -j N against -j 1 on the sample-shaped input
        sample = tmpd / "sample.jsonl"
        if not sample.exists():
            make_input(sample, args.notes, "sample")
        one, many = tmpd / "j1.jsonl", tmpd / "jn.jsonl"
        r = interleaved({"j1": classify_cmd(sample, one, 1), "jn": classify_cmd(sample, many, args.jobs)}, args.runs)
        identical = one.read_bytes() == many.read_bytes()
        res["parallel"] = {"jobs": args.jobs, "j1": r["j1"], "jn": r["jn"],
                           "speedup": r["j1"]["wall_s"] / r["jn"]["wall_s"], "output_identical": identical}
        print(f"  classify -j {args.jobs} on {args.notes:,} sample notes: {r['jn']['wall_s']:.2f} s against "
              f"{r['j1']['wall_s']:.2f} s for -j 1 = {res['parallel']['speedup']:.2f}x throughput "
              f"(output identical: {identical})", flush=True)

        # cold explain against a bare import of spaCy and scikit-learn
        r = interleaved({"bare": [sys.executable, "-c", BARE_IMPORT],
                         "explain": cli("explain", NOTE, "--format", "json"),
                         "help": cli("--help")}, args.repeats)
        res["startup"] = {k: v for k, v in r.items()}
        res["startup"]["explain_over_bare_import"] = r["explain"]["wall_s"] / r["bare"]["wall_s"]
        print(f"  cold explain of one note: {r['explain']['wall_s']:.2f} s against {r['bare']['wall_s']:.2f} s for "
              f"`import spacy, sklearn` = {res['startup']['explain_over_bare_import']:.2f}x "
              f"(`--help` {r['help']['wall_s']:.2f} s; best of {args.repeats})", flush=True)

        # peak memory at two sizes
        if args.memory_scale:
            big = tmpd / "big.jsonl"
            make_input(big, args.notes * args.memory_scale, "sample")
            _, _, rss_big = run(classify_cmd(big, tmpd / "big.out.jsonl", 1))
            rss_small = res["parallel"]["j1"]["rss_mib"]
            res["memory"] = {"rss_mib": rss_small, "rss_mib_scaled": rss_big / 1024,
                             "ratio": rss_big / 1024 / rss_small}
            print(f"  peak memory of classify -j 1: {rss_small:.0f} MiB for {args.notes:,} notes, "
                  f"{rss_big / 1024:.0f} MiB for {args.notes * args.memory_scale:,} "
                  f"(ratio {res['memory']['ratio']:.2f})", flush=True)

        # report on classified notes (one run each: these are long)
        res["report"] = {}
        for size in [int(x) for x in args.report_notes.split(",") if x.strip()]:
            classified = tmpd / f"classified_{size}.jsonl"
            classified_copy(one, classified, size)
            wall, cpu, rss = run(cli("report", "-q", str(classified), "--format", "json", "-o",
                                     str(tmpd / "report.json")))
            res["report"][size] = {"wall_s": wall, "cpu_s": cpu, "rss_mib": rss / 1024}
            print(f"  report on {size:,} classified notes: {wall:.1f} s wall, {cpu:.1f} s CPU, "
                  f"peak {rss / 1024:.0f} MiB", flush=True)
            classified.unlink()
    if args.json:
        print(json.dumps(res, indent=2))


if __name__ == "__main__":
    main()
