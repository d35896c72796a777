"""The ``supervise-nlp`` command: parses arguments and calls the library, nothing more.

Heavy libraries (spaCy, scikit-learn) are imported inside the commands, so ``--help`` answers
at once.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import click

from . import __version__

FIELD_NAMES = ("text", "id", "team", "worker", "type", "date")


def _err(message: str) -> None:
    click.echo(message, err=True)


def input_options(f: Callable) -> Callable:
    """Options shared by every command that reads notes."""
    opts = [
        click.option("--encoding", default="auto", show_default=True,
                     help="Input encoding; 'auto' reads UTF-8 and detects Windows-1252 exports."),
        click.option("--input-format", type=click.Choice(["auto", "jsonl", "csv", "txt"]), default="auto",
                     show_default=True, help="Input format; 'auto' goes by file extension."),
        click.option("--max-chars", type=int, default=2_000_000, show_default=True,
                     help="Reject notes longer than this (characters)."),
        click.option("--rejects", "rejects_path", type=click.Path(dir_okay=False),
                     help="Where rejected records go (JSON Lines: file, line, reason). "
                          "Default: beside the output, or ./rejects.jsonl."),
        click.option("--rejects-keep-raw", is_flag=True, help="Copy the raw record into the rejects file."),
        click.option("--strict", is_flag=True, help="Exit with status 1 if any record is rejected."),
        click.option("-q", "--quiet", is_flag=True, help="No progress or summary on standard error."),
    ]
    for name in reversed(FIELD_NAMES):
        opts.append(click.option(f"--{name}-field", f"{name}_field", default=name, show_default=True,
                                 help=f"Input field or CSV column holding the note's {name}."))
    for opt in reversed(opts):
        f = opt(f)
    return f


def engine_options(f: Callable) -> Callable:
    """How labelling is spread: processes on this machine, or a Dask cluster."""
    f = click.option("--scheduler", help="Dask scheduler address (implies --engine dask); "
                     "without it, --engine dask starts a local cluster.")(f)
    f = click.option("--engine", type=click.Choice(["local", "dask"]), default="local", show_default=True,
                     help="'dask' needs: pip install '.[dask]'.")(f)
    f = click.option("-j", "--jobs", type=click.IntRange(1), default=os.cpu_count() or 1, show_default=True,
                     help="Processes to label with (output stays in input order).")(f)
    return f


def _labelled_stream(items, model_path: str | None, kw: dict[str, Any], keep_text: bool = False,
                     serialize: bool = False):
    """(item, output) pairs in input order, on the engine the options chose."""
    from .parallel import label_records, label_records_dask

    if kw["engine"] == "dask" or kw["scheduler"]:
        try:
            import dask.distributed  # noqa: F401
        except ImportError:
            raise click.ClickException("--engine dask needs Dask: pip install 'supervise-nlp[dask]'") from None
        return label_records_dask(items, model_path, kw["scheduler"], keep_text=keep_text, serialize=serialize)
    labeller = _load_labeller(model_path)
    return label_records(items, labeller, model_path, jobs=kw["jobs"], keep_text=keep_text, serialize=serialize)


def _read_options(kw: dict[str, Any]):
    from .read import ReadOptions

    return ReadOptions(
        field_map={name: kw[f"{name}_field"] for name in FIELD_NAMES},
        encoding=kw["encoding"],
        input_format=kw["input_format"],
        max_chars=kw["max_chars"],
        keep_raw=kw["rejects_keep_raw"],
    )


@contextmanager
def friendly_errors() -> Iterator[None]:
    """Known failures become one clear line and a non-zero exit, never a traceback."""
    from .read import InputError

    try:
        yield
    except InputError as e:
        raise click.ClickException(str(e)) from None
    except OSError as e:
        where = f"{e.filename}: " if getattr(e, "filename", None) else ""
        raise click.ClickException(f"{where}{e.strerror or e}") from None
    except KeyboardInterrupt:
        _err("interrupted: output written so far is complete up to the last finished batch")
        sys.exit(130)
    except Exception as e:  # the model layer's own error type, imported lazily
        if type(e).__name__ == "ModelError":
            raise click.ClickException(str(e)) from None
        raise


def _load_labeller(model_path: str | None):
    from .parallel import labeller_for

    return labeller_for(model_path)


class Tally:
    """Per-file counts of read, labelled and rejected records; they must reconcile."""

    def __init__(self) -> None:
        self.files: dict[str, dict[str, int]] = {}
        self.ids: set[str] = set()
        self.duplicates: dict[str, int] = {}

    def add(self, source: str, labelled: bool, note_id: Any = None) -> None:
        c = self.files.setdefault(source, {"read": 0, "labelled": 0, "rejected": 0})
        c["read"] += 1
        c["labelled" if labelled else "rejected"] += 1
        if note_id is not None:
            key = str(note_id)
            if key in self.ids:
                self.duplicates[key] = self.duplicates.get(key, 1) + 1
            self.ids.add(key)

    @property
    def total(self) -> dict[str, int]:
        keys = ("read", "labelled", "rejected")
        return {k: sum(c[k] for c in self.files.values()) for k in keys}

    def summary(self) -> str:
        lines = [f"  {src}: read {c['read']}, labelled {c['labelled']}, rejected {c['rejected']}"
                 for src, c in self.files.items()]
        t = self.total
        assert t["read"] == t["labelled"] + t["rejected"]
        lines.append(f"total: read {t['read']} = labelled {t['labelled']} + rejected {t['rejected']}")
        if self.duplicates:
            # a count, not the ids: ids taken from file names can be people's names
            extra = sum(self.duplicates.values()) - len(self.duplicates)
            lines.append(f"{len(self.duplicates)} id(s) appear more than once ({extra} extra record(s)); "
                         "every record was kept")
        return "\n".join(lines)


@contextmanager
def progress_bar(quiet: bool, description: str):
    """A live count on standard error for long runs; nothing when piped or quiet."""
    if quiet or not sys.stderr.isatty():
        yield lambda n=1: None
        return
    from rich.console import Console
    from rich.progress import MofNCompleteColumn, Progress, SpinnerColumn, TimeElapsedColumn

    with Progress(SpinnerColumn(), "[progress.description]{task.description}", MofNCompleteColumn(),
                  TimeElapsedColumn(), console=Console(stderr=True), transient=True) as p:
        task = p.add_task(description, total=None)
        yield lambda n=1: p.advance(task, n)


def default_rejects_path(output: str | None) -> Path:
    if output and output != "-":
        out = Path(output)
        return out.with_name(out.name.removesuffix(".jsonl") + ".rejects.jsonl")
    return Path("rejects.jsonl")


def _refuse_overwriting_inputs(inputs: tuple[str, ...], outputs: list[str | None]) -> None:
    """Writing over an input while reading it would destroy it: refuse before anything is opened."""
    for out in outputs:
        if not out or out == "-" or not Path(out).exists():
            continue
        for inp in inputs:
            if inp != "-" and Path(inp).exists() and os.path.samefile(inp, out):
                raise click.ClickException(f"{out}: is also an input; write the output to another file")


class RejectsWriter:
    """Opens the rejects file only when the first reject arrives; a stale one from an earlier run
    is removed at the start, so the file beside an output always belongs to that output."""

    def __init__(self, path: Path, keep_raw: bool) -> None:
        self.path, self.keep_raw, self.fh, self.count = path, keep_raw, None, 0
        if path.exists() and path.is_file():
            path.unlink()

    def write(self, reject) -> None:
        if self.fh is None:
            self.fh = open(self.path, "w", encoding="utf-8")
        self.fh.write(json.dumps(reject.to_dict(self.keep_raw), ensure_ascii=False) + "\n")
        self.count += 1

    def close(self) -> None:
        if self.fh:
            self.fh.close()


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="supervise-nlp")
def main() -> None:
    """Label social-work recording as procedural or change-focused, and report the balance.

    \b
    classify   label every segment of every note (JSON Lines out)
    report     balance per team / worker / type / month, with intervals and culture analysis
    explain    one note, each sentence marked, and why
    train      train a model on a labelled corpus and write its card (or adapt one: --base/--add)
    evaluate   score models against labelled notes
    sample     draw segments of your notes for your staff to label (xlsx, csv, or an offline page)
    validate   how well the model labels your notes, from the labelled sample
    """


@main.command()
@click.argument("inputs", nargs=-1, required=True)
@click.option("-o", "--output", default="-", show_default=True, help="Output JSON Lines file ('-' for stdout).")
@click.option("--model", "model_path", type=click.Path(), help="Model directory (default: the shipped model).")
@click.option("--keep-text", is_flag=True, help="Copy each note's text into the output.")
@engine_options
@input_options
def classify(inputs: tuple[str, ...], output: str, model_path: str | None, keep_text: bool, **kw: Any) -> None:
    """Label every segment of every note in INPUTS (.jsonl, .csv, .txt, folders, '-')."""
    with friendly_errors():
        from .read import Reject, read_records

        opts = _read_options(kw)
        notice = None if kw["quiet"] else _err
        _refuse_overwriting_inputs(inputs, [output, kw["rejects_path"]])
        items = read_records(inputs, opts, notice=notice)
        first = next(items, None)  # surfaces a bad path before any output file is created
        tally = Tally()
        rejects = RejectsWriter(Path(kw["rejects_path"]) if kw["rejects_path"] else default_rejects_path(output),
                                kw["rejects_keep_raw"])
        out = sys.stdout if output == "-" else open(output, "w", encoding="utf-8")
        try:
            stream = _labelled_stream(_prepend(first, items), model_path, kw, keep_text, serialize=True)
            with progress_bar(kw["quiet"], "labelling notes") as advance:
                for item, result in stream:
                    if isinstance(item, Reject):
                        rejects.write(item)
                        tally.add(item.source, False)
                    else:
                        out.write(result + "\n")
                        tally.add(item.source, True, _id_of(item))
                        advance()
                    if tally.total["read"] % 256 == 0:
                        out.flush()
        finally:
            if out is not sys.stdout:
                out.close()
            else:
                out.flush()
            rejects.close()
        _finish(tally, rejects, kw)


def _id_of(item: Any) -> Any:
    return item.fields.get("id")


def _prepend(first, rest):
    if first is not None:
        yield first
    yield from rest


def _finish(tally: Tally, rejects: RejectsWriter, kw: dict[str, Any]) -> None:
    if not kw["quiet"]:
        _err(tally.summary())
        if rejects.count:
            _err(f"{rejects.count} rejected record(s) written to {rejects.path}")
    if kw["strict"] and rejects.count:
        raise click.ClickException(f"--strict: {rejects.count} record(s) rejected (see {rejects.path})")


@main.command()
@click.argument("corpus", nargs=-1)
@click.option("-o", "--output", "output_dir", required=True, type=click.Path(file_okay=False),
              help="Directory to write the model and its card to.")
@click.option("--cv-group", "cv_groups", multiple=True, default=("authority", "register"), show_default=True,
              help="Field to cross-validate by, leaving one group out (repeatable; 'none' to skip). Notes "
                   "without the field always train.")
@click.option("--weight", "weights", multiple=True, metavar="PATTERN=W",
              help="Weight the segments of files matching PATTERN (a glob on path or name) by W (repeatable).")
@click.option("--test", "test_paths", multiple=True, help="Held-out labelled notes scored by the final model.")
@click.option("--check", "check_paths", multiple=True,
              help="Extra labelled sets (e.g. differently written notes) scored and reported on the card.")
@click.option("--base", default=None, metavar="default|DIR",
              help="Adapt this model (its design and the corpus it was trained on, which ships with the "
                   "package) to the notes given with --add.")
@click.option("--add", "add_paths", multiple=True, help="Your own labelled notes to adapt the --base model to "
              "(repeatable; corpus JSON Lines, or a filled sample sheet).")
@click.option("--add-weight", type=click.FloatRange(min=0, min_open=True), default=None,
              help="Weight of the added notes (default: chosen by cross-validation over them).")
@click.option("--describe", "description", default=None,
              help="What the corpus is, in a sentence, for the model card (e.g. 'our 2025 CIN recording').")
@click.option("--no-baseline", is_flag=True, help="Skip the TF-IDF baseline comparison.")
@click.option("-q", "--quiet", is_flag=True)
def train(corpus: tuple[str, ...], output_dir: str, cv_groups: tuple[str, ...], weights: tuple[str, ...],
          test_paths: tuple[str, ...], check_paths: tuple[str, ...], base: str | None, add_paths: tuple[str, ...],
          add_weight: float | None, description: str | None, no_baseline: bool, quiet: bool) -> None:
    """Train a segment classifier on labelled CORPUS files and write it with its model card.

    With --base and --add, adapt an existing model to your own labelled notes instead.
    """
    with friendly_errors():
        from .modelio import save_model
        from .render import card_markdown

        progress = None if quiet else _err
        if add_paths or base:
            if corpus:
                raise click.UsageError("give either CORPUS files to train from scratch, or --base with --add")
            if not add_paths:
                raise click.UsageError("--base needs at least one --add file of your own labelled notes")
            model, card = _adapt(base or "default", add_paths, add_weight, check_paths, description, progress)
        else:
            if not corpus:
                raise click.UsageError("give the labelled CORPUS files to train on (or --base with --add)")
            from .train import parse_weights, train_model

            groups = [g for g in cv_groups if g.lower() != "none"]
            model, card = train_model(corpus, test=test_paths, checks=check_paths, cv_group=groups,
                                      baseline=not no_baseline, progress=progress,
                                      weights=parse_weights(weights), description=description)
            card["command"] = "supervise-nlp train " + " ".join(
                [*corpus, "-o", output_dir] + [f"--weight {w}" for w in weights]
                + [f"--test {t}" for t in test_paths] + [f"--check {c}" for c in check_paths]
                + ([f"--cv-group {g}" for g in cv_groups] if tuple(cv_groups) != ("authority", "register") else []))
        save_model(model, output_dir, card, card_markdown(card))
        if not quiet:
            for key, value in card.items():
                if key.startswith("cross_validation") and value:
                    _err(f"cross-validated by {value['group']} ({value['folds']} folds): macro-F1 "
                         f"{value['macro_f1']:.3f}, kappa {value['kappa']:.3f}, team balance MAE "
                         f"{value['team_balance_mae']:.3f}")
            if "test" in card:
                t = card["test"]
                _err(f"held-out test: macro-F1 {t['macro_f1']:.3f}, kappa {t['kappa']:.3f}, "
                     f"team balance MAE {t['team_balance_mae']:.3f}")
            ad = card.get("adaptation")
            if ad and "cross_validation" in ad:
                chosen = ad["cross_validation"][f"{ad['chosen_weight']:g}"]
                _err(f"on your notes ({ad['folds']} folds by {ad['grouped_by']}): base model macro-F1 "
                     f"{ad['base_model_scores']['macro_f1']:.3f}, adapted {chosen['macro_f1']:.3f} "
                     f"(added notes weighted {ad['chosen_weight']:g})")
            _err(f"model and card written to {output_dir}")


def _adapt(base: str, add_paths: tuple[str, ...], add_weight: float | None, check_paths: tuple[str, ...],
           description: str | None, progress) -> tuple[Any, dict[str, Any]]:
    from .adapt import adapt, base_corpus
    from .classify import NoteLabeller
    from .evaluate import evaluate_records
    from .read import read_corpus
    from .train import WEIGHT_KEY, describe_training, read_weighted
    from .validate import load_labelled

    model, section = adapt(base, add_paths, weight=add_weight, progress=progress)
    files, base_weights, _ = base_corpus(base)
    added = [str(Path(p).resolve()) for p in add_paths]
    weights = base_weights + [(p, section["chosen_weight"]) for p in added]
    records = read_weighted(files, base_weights) + [
        {**r, WEIGHT_KEY: section["chosen_weight"]} for r in load_labelled(added)]
    card = describe_training(records, files + added, weights, model,
                             description or f"the {base} model's corpus plus {len(add_paths)} file(s) of added notes")
    # base files are named as the base card names them, so a further adaptation can find them again
    card["trained_on"]["files"] = [*_base_names(base), *added]
    card["adaptation"] = section
    for path in check_paths:
        card.setdefault("checks", {})[Path(path).name] = evaluate_records(NoteLabeller(model), read_corpus([path]))
    card["command"] = "supervise-nlp train --base " + base + " " + " ".join(f"--add {p}" for p in add_paths)
    return model, card


def _base_names(base: str) -> list[str]:
    from .modelio import default_model_dir, load_card

    card = load_card(default_model_dir() if base == "default" else Path(base))
    return list(card["trained_on"]["files"])


@main.command()
@click.argument("corpus", nargs=-1, required=True)
@click.option("--model", "model_paths", multiple=True, type=click.Path(),
              help="Model directory; repeat to compare models (default: the shipped model).")
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table", show_default=True)
@click.option("-o", "--output", default="-", show_default=True)
def evaluate(corpus: tuple[str, ...], model_paths: tuple[str, ...], fmt: str, output: str) -> None:
    """Score models against labelled CORPUS notes (segments aligned by character overlap)."""
    with friendly_errors():
        from .evaluate import evaluate_records
        from .read import read_corpus
        from .render import evaluation_table

        records = read_corpus(corpus)
        results = {}
        for path in model_paths or (None,):
            results[path or "default"] = evaluate_records(_load_labeller(path), records)
        if fmt == "json":
            text = json.dumps(results if len(results) > 1 else next(iter(results.values())), indent=2) + "\n"
        else:
            text = evaluation_table(results)
        _write_text(text, output)


def _write_text(text: str, output: str, colour: bool | None = None) -> None:
    if output == "-":
        click.echo(text, nl=False, color=colour)
    else:
        Path(output).write_text(text, encoding="utf-8")


def _where(values: tuple[str, ...]) -> list[tuple[str, str]]:
    out = []
    for v in values:
        if "=" not in v:
            raise click.BadParameter(f"{v!r}: use KEY=VALUE", param_hint="--where")
        k, val = v.split("=", 1)
        out.append((k.strip(), val.strip()))
    return out


def _pseudonym_keys(enabled: bool, teams_too: bool, key_file: str | None, output: str) -> dict[str, bytes] | None:
    """The pseudonym key: the user's file, or one created beside the output (kept for next time)."""
    if not (enabled or teams_too):
        return None
    import secrets

    path = Path(key_file) if key_file else (
        Path(output).with_name("supervise-nlp.key") if output != "-" else Path("supervise-nlp.key"))
    if path.exists():
        key = path.read_bytes().strip()
        if len(key) < 32:
            raise click.ClickException(f"{path}: a pseudonym key must hold at least 32 bytes (this one has "
                                       f"{len(key)}); delete it to have a new one made")
    else:
        key = secrets.token_hex(32).encode()
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)  # private from the first byte
        with os.fdopen(fd, "wb") as fh:
            fh.write(key + b"\n")
        _err(f"pseudonym key created in {path}: keep it private, and reuse it for codes that match across reports")
    keys = {"worker": key}
    if teams_too:
        keys["team"] = key
    return keys


def _report_stream(items, model_path: str | None, kw: dict[str, Any], keep_text: bool):
    """Classify output passes straight through; the model is loaded only when a raw note arrives."""
    from .read import Labelled, Note

    items = iter(items)
    for item in items:
        if isinstance(item, Note):
            yield from _labelled_stream(_prepend(item, items), model_path, kw, keep_text)
            return
        yield item, item.fields if isinstance(item, Labelled) else None


@main.command()
@click.argument("inputs", nargs=-1, required=True)
@click.option("--by", "by", multiple=True, help="Field to group by (repeatable); 'month' and 'quarter' come "
              "from the date. Default: team.")
@click.option("--where", "where", multiple=True, help="Keep only notes with KEY=VALUE (repeatable).")
@click.option("--format", "fmt", type=click.Choice(["table", "json", "csv", "html"]), default="table",
              show_default=True)
@click.option("-o", "--output", default="-", show_default=True)
@click.option("--model", "model_path", type=click.Path(), help="Model for raw notes (default: the shipped model).")
@click.option("--min-notes", type=int, default=5, show_default=True,
              help="Groups with fewer notes are not shown on their own.")
@click.option("--pseudonymise", is_flag=True, help="Replace worker names with stable keyed codes.")
@click.option("--pseudonymise-teams", is_flag=True, help="Replace team names too (implies --pseudonymise).")
@click.option("--key-file", type=click.Path(dir_okay=False), help="Pseudonym key file (created if missing).")
@click.option("--include-examples", type=int, default=0, show_default=True,
              help="Show the N most clearly procedural and change-focused sentences per group (note text!).")
@click.option("--milestone", type=click.DateTime(["%Y-%m-%d"]), help="Compare balance before and after this date.")
@click.option("--dayfirst", is_flag=True, help="Read dd/mm/yyyy dates (otherwise only YYYY-MM-DD is read).")
@click.option("--no-culture", is_flag=True, help="Skip the culture analysis (variance, mirroring, trend).")
@click.option("--bootstrap", "n_boot", type=click.IntRange(100), default=2000, show_default=True,
              help="Bootstrap resamples for intervals.")
@click.option("--permutations", "n_perm", type=click.IntRange(99), default=2000, show_default=True,
              help="Permutations for the tests of difference.")
@click.option("--seed", type=int, default=20260301, show_default=True)
@click.option("--validation", "validation_path", type=click.Path(exists=True, dir_okay=False),
              help="Correct balances for the errors measured on your own labelled notes: the JSON written by "
                   "`validate --format json`, or the filled sample sheet itself.")
@engine_options
@input_options
def report(inputs: tuple[str, ...], by: tuple[str, ...], where: tuple[str, ...], fmt: str, output: str,
           model_path: str | None, min_notes: int, pseudonymise: bool, pseudonymise_teams: bool,
           key_file: str | None, include_examples: int, milestone, dayfirst: bool, no_culture: bool,
           n_boot: int, n_perm: int, seed: int, validation_path: str | None, **kw: Any) -> None:
    """Balance per team (or any --by) from raw notes or from classify output."""
    with friendly_errors():
        from .aggregate import build_report, build_table
        from .classify import labelled_notes
        from .modelio import load_card
        from .read import read_records
        from .render import report_csv, report_html, report_table

        opts = _read_options(kw)
        conditions = _where(where)
        by = by or ("team",)
        keys = _pseudonym_keys(pseudonymise, pseudonymise_teams, key_file, output)
        items = read_records(inputs, opts, notice=None if kw["quiet"] else _err)
        tally = Tally()
        rejects = RejectsWriter(Path(kw["rejects_path"]) if kw["rejects_path"] else default_rejects_path(
            None if output == "-" else str(Path(output).with_suffix(".jsonl"))), kw["rejects_keep_raw"])

        def counted():
            with progress_bar(kw["quiet"], "labelling notes") as advance:
                for item, out in _report_stream(items, model_path, kw, include_examples > 0):
                    tally.add(item.source, out is not None, out.get("id") if out else None)
                    if out is None:
                        rejects.write(item)
                    else:
                        advance()
                    yield item, out

        try:
            table = build_table(labelled_notes(counted(), examples=include_examples > 0), by, conditions,
                                dayfirst=dayfirst, pseudonymise=keys)
        finally:
            rejects.close()
        if not len(table):
            raise click.ClickException("no labelled notes to report on" + (" after --where" if where else ""))
        rep = build_report(table, by, {"records": tally.total["read"], "labelled": tally.total["labelled"],
                                       "rejected": tally.total["rejected"]},
                           min_notes=min_notes, n_boot=n_boot, n_perm=n_perm, seed=seed,
                           milestone=milestone.date() if milestone else None,
                           include_examples=include_examples, culture=not no_culture)
        from .quantify import apply_additions, validation_additions

        validation = _load_validation(validation_path, model_path) if validation_path else None
        apply_additions(rep, validation_additions(rep, validation, table=table, n_boot=n_boot, seed=seed))
        if fmt == "json":
            text = json.dumps(rep, indent=2, ensure_ascii=False, default=_jsonable) + "\n"
        elif fmt == "csv":
            text = report_csv(rep)
        elif fmt == "html":
            text = report_html(rep, load_card(model_path))
        else:
            text = report_table(rep)
        _write_text(text, output)
        _finish(tally, rejects, kw)


@main.command()
@click.argument("inputs", nargs=-1, required=True)
@click.option("-n", "size", type=click.IntRange(1), default=300, show_default=True, help="Segments to sample.")
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False),
              help="The sheet to write: .xlsx (Excel, with drop-downs), .csv, or .html (an offline labelling page).")
@click.option("--coders", type=click.IntRange(1, 10), default=2, show_default=True,
              help="Coder columns in the sheet (the .html page is one coder per copy).")
@click.option("--model", "model_path", type=click.Path(), help="Model for raw notes (default: the shipped model).")
@click.option("--seed", type=int, default=20260301, show_default=True, help="Same seed, same inputs: same sample.")
@click.option("--force", is_flag=True, help="Replace the output file if it exists (never an input).")
@engine_options
@input_options
def sample(inputs: tuple[str, ...], size: int, output: str, coders: int, model_path: str | None, seed: int,
           force: bool, **kw: Any) -> None:
    """Draw segments from INPUTS (raw notes, or classify --keep-text output) for your staff to label.

    Stratified by team and by the model's label, with uncertain segments over-represented and each
    row's inclusion probability kept; the model's label is never shown. Label the sheet, then run
    `supervise-nlp validate` on it.
    """
    with friendly_errors():
        from .read import read_records
        from .sample import draw, population_from, sample_rows, write_sample

        out = Path(output)
        if out.suffix.lower() not in (".xlsx", ".csv", ".html", ".htm"):
            raise click.UsageError("-o must end in .xlsx, .csv or .html")
        _refuse_overwriting_inputs(inputs, [output])
        if out.exists() and not force:
            raise click.ClickException(f"{output}: already exists; choose another name, or --force to replace it")
        opts = _read_options(kw)
        items = read_records(inputs, opts, notice=None if kw["quiet"] else _err)
        tally = Tally()
        rejects = RejectsWriter(Path(kw["rejects_path"]) if kw["rejects_path"] else default_rejects_path(
            str(out.with_suffix(".jsonl"))), kw["rejects_keep_raw"])

        def counted():
            for item, result in _report_stream(items, model_path, kw, keep_text=True):
                tally.add(item.source, result is not None, result.get("id") if result else None)
                if result is None:
                    rejects.write(item)
                yield item, result

        try:
            pop, missing = population_from(counted())
        finally:
            rejects.close()
        if missing:
            raise click.ClickException(f"{missing} classified record(s) carry no note text: the sheet needs it. "
                                       "Give the raw notes, or classify output made with --keep-text")
        if not len(pop):
            raise click.ClickException("no segments to sample")
        picked, pi, strata, design = draw(pop, size, seed)
        rows = sample_rows(pop, picked, pi, strata, coders)
        write_sample(rows, out, coders, design)
        if not kw["quiet"]:
            _err(f"{len(rows)} of {len(pop)} segments ({len(pop.texts)} notes, {design['strata']} strata) "
                 f"written to {output}; label them, then: supervise-nlp validate {output}")
        _finish(tally, rejects, kw)


def _model_identity(model_path: str | None) -> tuple[str, str | None]:
    """A model's name for people and the checksum of its weights (to match validation to report)."""
    from .modelio import MODEL_FILE, default_model_dir, read_manifest

    directory = Path(model_path) if model_path else default_model_dir()
    manifest = read_manifest(directory)
    return (model_path or "the default model"), manifest.get("files", {}).get(MODEL_FILE)


@main.command()
@click.argument("labelled", nargs=-1, required=True)
@click.option("--model", "model_path", type=click.Path(), help="Model to check (default: the shipped model).")
@click.option("--format", "fmt", type=click.Choice(["table", "json", "html"]), default="table", show_default=True)
@click.option("-o", "--output", default="-", show_default=True,
              help="Where to write; the JSON is what `report --validation` reads.")
@click.option("--include-text", is_flag=True, help="Show the text of disagreed segments (otherwise ids and offsets).")
@click.option("--bootstrap", "n_boot", type=click.IntRange(100), default=1000, show_default=True,
              help="Bootstrap resamples (over notes) for intervals.")
@click.option("--seed", type=int, default=20260301, show_default=True)
def validate(labelled: tuple[str, ...], model_path: str | None, fmt: str, output: str, include_text: bool,
             n_boot: int, seed: int) -> None:
    """How well the model labels your notes: coders' agreement, the model's scores, and a verdict.

    LABELLED: filled sample sheets (.xlsx/.csv, or the labelling page's downloads; one sample's files
    are merged) or labelled notes in the corpus format (JSON Lines), where a segment may carry
    "labels": {"coder": "label", ...} beside an agreed "label".
    """
    with friendly_errors():
        from .validate import read_labelled, validation_html, validation_text
        from .validate import validate as run

        _refuse_overwriting_inputs(labelled, [output])
        items, units = read_labelled(labelled)
        name, sha = _model_identity(model_path)
        result = run(items, units, _load_labeller(model_path), name, sha, n_boot=n_boot, seed=seed,
                     include_text=include_text)
        if fmt == "json":
            text = json.dumps(result, indent=2, ensure_ascii=False, default=_jsonable) + "\n"
        elif fmt == "html":
            text = validation_html(result)
        else:
            text = validation_text(result)
        _write_text(text, output)


def _load_validation(path: str, model_path: str | None) -> dict[str, Any]:
    """A validation for the report's model: validate's JSON, or a labelled sheet validated here."""
    name, sha = _model_identity(model_path)
    if Path(path).suffix.lower() == ".json":
        try:
            v = json.loads(Path(path).read_text("utf-8-sig"))
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            raise click.ClickException(f"{path}: not readable JSON ({e})") from None
        if not isinstance(v, dict) or v.get("kind") != "supervise-nlp validation" or "for_report" not in v:
            raise click.ClickException(f"{path}: not the output of `supervise-nlp validate --format json`")
        if v.get("model_sha256") and sha and v["model_sha256"] != sha:
            raise click.ClickException(
                f"{path} measured another model ({v.get('model_name')}) than this report uses ({name}); the "
                "correction only holds for the model validated: give the report that model with --model")
        return v
    from .validate import read_labelled, validate

    items, units = read_labelled([path])
    return validate(items, units, _load_labeller(model_path), name, sha)


def _jsonable(x: Any) -> Any:
    import numpy as np

    if isinstance(x, np.generic):
        return x.item()
    if isinstance(x, np.ndarray):
        return x.tolist()
    raise TypeError(f"not JSON serialisable: {type(x).__name__}")


@main.command()
@click.argument("source", required=False, default="-")
@click.option("--format", "fmt", type=click.Choice(["text", "json", "html"]), default="text", show_default=True)
@click.option("-o", "--output", default="-", show_default=True, help="Write here instead of standard output.")
@click.option("--model", "model_path", type=click.Path(), help="Model directory (default: the shipped model).")
@click.option("--top", type=int, default=5, show_default=True, help="How many reasons to show per segment.")
@click.option("--color/--no-color", "colour", default=None, help="Colour (default: when writing to a terminal).")
def explain(source: str, fmt: str, output: str, model_path: str | None, top: int, colour: bool | None) -> None:
    """Show one note with each sentence marked procedural / change-focused / neutral, and why.

    SOURCE is the note itself, a file holding it, or '-' (the default) for standard input.
    Nothing is written anywhere except where -o says.
    """
    with friendly_errors():
        text = _note_text(source)
        from .explain import explain_text

        ex = explain_text(text, _load_labeller(model_path), top=top)
        use_colour = fmt == "text" and (colour if colour is not None else (output == "-" and sys.stdout.isatty()))
        if fmt == "json":
            out = json.dumps(ex, indent=2, ensure_ascii=False) + "\n"
        elif fmt == "html":
            from .render import explain_html

            out = explain_html(ex)
        else:  # text
            from .render import explain_terminal

            out = explain_terminal(ex, use_colour)
        _write_text(out, output, colour=use_colour)


def _is_file(source: str) -> bool:
    """Is the argument a path? A note pasted as the argument is not, however it looks."""
    if "\n" in source or len(source) > 1024:
        return False
    try:
        return Path(source).is_file()
    except OSError:  # e.g. a name too long for the file system: it is the note itself
        return False


def _note_text(source: str) -> str:
    if source == "-":
        data = sys.stdin.buffer.read()
        text = data.decode("utf-8-sig", errors="replace")
    elif _is_file(source):
        text = Path(source).read_bytes().decode("utf-8-sig", errors="replace")
    else:
        text = source
    if not text.strip():
        raise click.ClickException("the note is empty")
    return text
