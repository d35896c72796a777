"""Benchmark: ``python -m supervise_nlp.bench``.

Prints, from one run on this machine: notes/s and words/s for the bare segmentation floor (a
blank English spaCy pipeline with the sentencizer over the same texts) and for ``classify`` end to
end (read JSON Lines, segment, label, write JSON Lines), their ratio, throughput with ``-j 2``,
peak memory at two input sizes, and the cold start-up of the command line. Ratios are the
figures to compare: this machine's absolute speed varies from run to run.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def make_input(path: Path, n: int, seed: int = 7) -> tuple[int, int]:
    """Write ``n`` notes drawn from the sample corpus (shuffled, ids made unique); return notes, words."""
    from .read import corpus_text

    root = Path(__file__).resolve().parent.parent / "corpora" / "sample"
    files = sorted(root.glob("*.jsonl"))
    if not files:
        raise SystemExit("bench needs corpora/sample/ (run it from a source checkout)")
    base = [json.loads(line) for f in files for line in open(f, encoding="utf-8") if line.strip()]
    rng = random.Random(seed)
    words = 0
    with open(path, "w", encoding="utf-8") as fh:
        for i in range(n):
            rec = rng.choice(base)
            text = corpus_text(rec)
            words += len(text.split())
            out = {"id": f"b{i}", "team": rec["team"], "worker": rec["worker"], "type": rec["type"],
                   "date": rec["date"], "text": text}
            fh.write(json.dumps(out, ensure_ascii=False) + "\n")
    return n, words


def floor(path: Path, runs: int) -> float:
    """Best-of-``runs`` seconds for the bare floor: blank English + sentencizer over the texts."""
    import spacy

    texts = [json.loads(line)["text"] for line in open(path, encoding="utf-8")]
    best = float("inf")
    for _ in range(runs):
        nlp = spacy.blank("en")  # a fresh pipeline each run, as classify starts cold
        nlp.add_pipe("sentencizer")
        t = time.perf_counter()
        for doc in nlp.pipe(texts, batch_size=256):
            sum(1 for _ in doc.sents)
        best = min(best, time.perf_counter() - t)
    return best


def run_cli(args: list[str]) -> tuple[float, int]:
    """Wall seconds and peak RSS (KiB) of one command-line run in a fresh process."""
    code = ("import resource, sys, time\n"
            "from supervise_nlp.cli import main\n"
            "t = time.perf_counter()\n"
            "try:\n    main(sys.argv[1:])\nexcept SystemExit as e:\n    assert not e.code, e.code\n"
            "print('BENCH', time.perf_counter() - t, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,"
            " file=sys.stderr)\n")
    p = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True)
    if p.returncode:
        raise SystemExit(f"bench: {' '.join(args)} failed:\n{p.stderr[-2000:]}")
    line = [ln for ln in p.stderr.splitlines() if ln.startswith("BENCH")][-1].split()
    children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return float(line[1]), max(int(line[2]), 0) or children


def classify_seconds(path: Path, out: Path, jobs: int) -> tuple[float, int]:
    """Seconds spent reading, labelling and writing (as ``classify`` does; the model load is
    start-up, measured separately) and peak RSS."""
    code = ("import resource, sys, time, json\n"
            "from supervise_nlp.cli import _load_labeller\n"
            "from supervise_nlp.parallel import label_records\n"
            "from supervise_nlp.read import read_records, Reject\n"
            "lab = _load_labeller(None)\n"
            f"t = time.perf_counter()\n"
            f"with open({str(out)!r}, 'w', encoding='utf-8') as fh:\n"
            f"    for item, res in label_records(read_records([{str(path)!r}]), lab, None, jobs={jobs},"
            " serialize=True):\n"
            "        if res is not None:\n"
            "            fh.write(res + '\\n')\n"
            "dt = time.perf_counter() - t\n"
            "ru = max(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,"
            " resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)\n"
            "print('BENCH', dt, ru, file=sys.stderr)\n")
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    if p.returncode:
        raise SystemExit(f"bench: classify -j {jobs} failed:\n{p.stderr[-2000:]}")
    line = [ln for ln in p.stderr.splitlines() if ln.startswith("BENCH")][-1].split()
    return float(line[1]), int(line[2])


def startup(repeats: int) -> dict[str, float]:
    """Cold start-up: ``--help``, and explaining one note (imports + model load + labelling)."""
    def timed(args: list[str]) -> float:
        runs = []
        for _ in range(repeats):
            t = time.perf_counter()
            subprocess.run([sys.executable, "-m", "supervise_nlp", *args], capture_output=True, check=True)
            runs.append(time.perf_counter() - t)
        return statistics.median(runs)

    note = ("Present: SW, Mum, Jayden (4). Core group invites sent and chronology updated. "
            "Mum said she wants to be the parent she never had.")
    return {"help_s": timed(["--help"]), "explain_one_note_s": timed(["explain", note, "--format", "json"]),
            "python_bare_s": statistics.median(
                [_time([sys.executable, "-c", "pass"]) for _ in range(repeats)])}


def _time(cmd: list[str]) -> float:
    t = time.perf_counter()
    subprocess.run(cmd, capture_output=True, check=True)
    return time.perf_counter() - t


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="python -m supervise_nlp.bench", description=__doc__.splitlines()[0])
    ap.add_argument("--notes", type=int, default=20_000, help="notes in the main run (default 20,000)")
    ap.add_argument("--memory-scale", type=int, default=10,
                    help="memory is also measured on this many times more notes (default 10; 0 to skip)")
    ap.add_argument("--jobs", type=int, default=2, help="processes for the parallel run (default 2)")
    ap.add_argument("--repeats", type=int, default=5, help="repeats for start-up timings")
    ap.add_argument("--runs", type=int, default=3,
                    help="throughput runs; the best of each is kept, as this machine is noisy (default 3)")
    ap.add_argument("--json", action="store_true", help="print the figures as JSON too")
    args = ap.parse_args(argv)

    with tempfile.TemporaryDirectory() as tmp:
        tmpd = Path(tmp)
        small = tmpd / "notes.jsonl"
        n, words = make_input(small, args.notes)
        fl = floor(small, args.runs)
        one_runs = [classify_seconds(small, tmpd / "out1.jsonl", 1) for _ in range(args.runs)]
        many = min(classify_seconds(small, tmpd / "outj.jsonl", args.jobs)[0] for _ in range(args.runs))
        one, rss_small = min(r[0] for r in one_runs), max(r[1] for r in one_runs)
        identical = (tmpd / "out1.jsonl").read_bytes() == (tmpd / "outj.jsonl").read_bytes()
        big_rss = None
        if args.memory_scale:
            big = tmpd / "big.jsonl"
            make_input(big, args.notes * args.memory_scale)
            _, big_rss = classify_seconds(big, tmpd / "outbig.jsonl", 1)
        st = startup(args.repeats)
    res = {
        "notes": n, "words": words, "cpu_cores": os.cpu_count(),
        "floor_notes_per_s": n / fl, "floor_words_per_s": words / fl,
        "classify_notes_per_s": n / one, "classify_words_per_s": words / one,
        "classify_over_floor": one / fl,
        f"classify_j{args.jobs}_notes_per_s": n / many, "speedup_j": one / many, "j_output_identical": identical,
        "peak_rss_mib": rss_small / 1024,
        "peak_rss_mib_scaled": None if big_rss is None else big_rss / 1024,
        "memory_ratio": None if big_rss is None else big_rss / rss_small,
        **st,
    }
    print(f"supervise-nlp benchmark: {n:,} notes, {words:,} words, {os.cpu_count()} cores, "
          f"best of {args.runs} runs each")
    print(f"  floor (blank spaCy + sentencizer): {res['floor_notes_per_s']:>9,.0f} notes/s "
          f"{res['floor_words_per_s']:>11,.0f} words/s")
    print(f"  classify -j 1 (read, segment, label, write): {res['classify_notes_per_s']:>9,.0f} notes/s "
          f"{res['classify_words_per_s']:>11,.0f} words/s  = {res['classify_over_floor']:.2f} x the floor's time")
    print(f"  classify -j {args.jobs}: {res[f'classify_j{args.jobs}_notes_per_s']:>9,.0f} notes/s = "
          f"{res['speedup_j']:.2f} x -j 1 (output identical: {identical})")
    if big_rss is not None:
        print(f"  peak memory: {res['peak_rss_mib']:.0f} MiB for {n:,} notes, {res['peak_rss_mib_scaled']:.0f} MiB "
              f"for {n * args.memory_scale:,} (ratio {res['memory_ratio']:.2f})")
    print(f"  cold start-up (median of {args.repeats}): `--help` {st['help_s']:.2f} s "
          f"(bare python {st['python_bare_s']:.2f} s); `explain` one note {st['explain_one_note_s']:.2f} s")
    if args.json:
        print(json.dumps(res, indent=2))


if __name__ == "__main__":
    main()
