"""Golden reports: the JSON ``report`` gave before the note table went compact (issue 14).

``notes()`` writes a few thousand classify-output lines (several teams, workers, note types and
months; some notes with no worker, no date, a dd/mm/yyyy date or only neutral segments) from a
seeded ``random.Random``, so the file is the same on every machine. ``CASES`` are the report
runs whose JSON was saved in ``tests/data/report_golden`` by ``python -m tests.report_golden``
from the code before the change; ``test_report_golden.py`` checks the current code against them.
"""

from __future__ import annotations

import json
import random
import sys
from pathlib import Path

DATA = Path(__file__).parent / "data"
GOLDEN = DATA / "report_golden"

TEAMS = ["North", "South", "East", "West", "Harbour", "Valley", "Riverside", "Hill"]
TYPES = ["supervision", "Home Visit", "visit", "case note", "Supervision session"]
CASES: dict[str, list[str]] = {  # the mixed model takes seconds: the culture analysis runs in three cases
    "synthetic_team_milestone": ["--milestone", "2024-09-01"],
    "synthetic_supervision": ["--where", "type=supervision", "--by", "team", "--milestone", "2024-06-15"],
    "synthetic_team_worker": ["--by", "team", "--by", "worker", "--min-notes", "100", "--no-culture"],
    "synthetic_month": ["--by", "month", "--min-notes", "10", "--no-culture"],
    "synthetic_type": ["--by", "type", "--min-notes", "20", "--no-culture"],
    "synthetic_quarter_dayfirst": ["--by", "quarter", "--dayfirst", "--no-culture"],
    "fixture_default": ["@classified.jsonl"],
    "fixture_worker": ["@classified.jsonl", "--by", "worker", "--min-notes", "1"],
    "fixture_team_min1": ["@classified.jsonl", "--min-notes", "1", "--milestone", "2025-04-01"],
}
COMMON = ["--format", "json", "-q", "--bootstrap", "200", "--permutations", "199"]


def notes(path: Path, n: int = 4000, seed: int = 14) -> Path:
    """Write ``n`` classify-output lines to ``path`` (deterministic)."""
    rng = random.Random(seed)
    workers = {t: [f"{t[:2]}-{w}" for w in ("Asha", "Ben", "Cat", "Dev", "Eli", "Fay", "Gus")[: rng.randint(2, 7)]]
               for t in TEAMS}
    team_bias = {t: rng.uniform(-0.25, 0.25) for t in TEAMS}
    worker_bias = {w: rng.gauss(0, 0.12) for ws in workers.values() for w in ws}
    with open(path, "w", encoding="utf-8") as fh:
        for i in range(n):
            team = rng.choice(TEAMS)
            worker = rng.choice(workers[team])
            typ = rng.choice(TYPES)
            month = rng.randint(0, 14)
            day = rng.randint(1, 28)
            y, m = 2024 + month // 12, month % 12 + 1
            date = f"{y}-{m:02d}-{day:02d}" if rng.random() > 0.1 else f"{day:02d}/{m:02d}/{y}"
            share = min(0.95, max(0.05, 0.45 + team_bias[team] + worker_bias[worker] + (0.08 if month >= 8 else 0)
                                  + (0.1 if "upervision" in typ else 0)))
            t = rng.choice([0, 1, 2, 3, 4, 4, 5, 6, 8])
            c = sum(rng.random() < share for _ in range(t))
            rec = {"id": f"g{i}", "team": team, "worker": worker, "type": typ, "date": date,
                   "label": "change_focused" if 2 * c > t else "procedural" if t else "unclassified",
                   "counts": {"procedural": t - c, "change_focused": c, "neutral": rng.randint(0, 3)},
                   "segments": []}
            r = rng.random()
            if r < 0.02:
                del rec["worker"]
            elif r < 0.03:
                rec["date"] = None
            elif r < 0.035:
                rec["team"] = ""
            fh.write(json.dumps(rec) + "\n")
    return path


def args_for(case: str, synthetic: Path) -> list[str]:
    """The ``report`` arguments of one case."""
    extra = CASES[case]
    src = str(DATA / extra[0][1:]) if extra and extra[0].startswith("@") else str(synthetic)
    rest = extra[1:] if extra and extra[0].startswith("@") else extra
    return [src, *rest, *COMMON]


def comparable(rep: dict) -> dict:
    """The report without what depends on the day or the file's place ('about')."""
    return {k: v for k, v in rep.items() if k != "about"}


def main(out: Path = GOLDEN) -> None:
    import tempfile

    from click.testing import CliRunner

    from supervise_nlp.cli import main as cli

    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        synthetic = notes(Path(tmp) / "golden.jsonl")
        for case in (sys.argv[1:] or CASES):
            res = CliRunner().invoke(cli, ["report", *args_for(case, synthetic)])
            assert res.exit_code == 0, res.output
            rep = comparable(json.loads(res.stdout))
            (out / f"{case}.json").write_text(json.dumps(rep, indent=1, sort_keys=True) + "\n", encoding="utf-8")
            print(case, len(res.stdout))


if __name__ == "__main__":
    main()
