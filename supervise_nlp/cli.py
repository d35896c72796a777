"""The ``supervise-nlp`` command: parses arguments and calls the library, nothing more.

Heavy libraries (spaCy, scikit-learn) are imported inside the commands, so ``--help`` answers
at once.
"""

from __future__ import annotations

import json
import os
import re
import sys
from array import array
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import click

from . import __version__

FIELD_NAMES = ("text", "id", "team", "worker", "type", "date")


def _err(message: str) -> None:
    from .textsafe import clean

    click.echo(clean(message), err=True)  # names and file names can hold terminal escapes


def input_options(f: Callable) -> Callable:
    """Options shared by every command that reads notes."""
    opts = [
        click.option("--encoding", default="auto", show_default=True,
                     help="Input encoding; 'auto' reads UTF-8 and detects Windows-1252 exports."),
        click.option("--input-format", type=click.Choice(["auto", "jsonl", "csv", "txt"]), default="auto",
                     show_default=True, help="Input format; 'auto' goes by file extension."),
        click.option("--max-chars", type=int, default=2_000_000, show_default=True,
                     help="Reject notes longer than this (characters)."),
        click.option("--max-lines", type=click.IntRange(2), default=100_000, show_default=True,
                     help="A quoted CSV field running on for more lines than this is taken as an unclosed "
                          "quote: its row is rejected and the file read on from the next line."),
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
        max_lines=kw["max_lines"],
    )


@contextmanager
def friendly_errors() -> Iterator[None]:
    """Known failures become one clear line and a non-zero exit, never a traceback."""
    from .read import InputError
    from .runio import PathClash, Stopped, WriteFailed, exit_status
    from .textsafe import clean, safe_name

    try:
        yield
    except (InputError, PathClash, WriteFailed) as e:
        raise click.ClickException(clean(str(e))) from None
    except OSError as e:
        where = f"{safe_name(e.filename)}: " if getattr(e, "filename", None) else ""
        raise click.ClickException(clean(f"{where}{e.strerror or e}")) from None
    except (KeyboardInterrupt, Stopped) as e:
        _err(f"stopped ({'interrupted' if isinstance(e, KeyboardInterrupt) else e}): nothing was written")
        sys.exit(exit_status(e))
    except Exception as e:  # the model layer's own error type, imported lazily
        if type(e).__name__ == "ModelError":
            raise click.ClickException(clean(str(e))) from None
        raise


def _load_labeller(model_path: str | None):
    from .parallel import labeller_for

    return labeller_for(model_path)


class Tally:
    """Per-file counts of read, labelled and rejected records; they must reconcile."""

    def __init__(self, files: dict[str, dict[str, int]] | None = None) -> None:
        self.files: dict[str, dict[str, int]] = {k: dict(v) for k, v in (files or {}).items()}
        # one 64-bit hash per id (8 bytes a record, not a Python string in a set): duplicates are
        # counted at the end; a false duplicate needs a hash collision (about 1 in 10^7 at 10^6 ids)
        self._id_hashes = array("q")

    def snapshot(self) -> dict[str, dict[str, int]]:
        return {k: dict(v) for k, v in self.files.items()}

    def add(self, source: str, labelled: bool, note_id: Any = None) -> None:
        c = self.files.setdefault(source, {"read": 0, "labelled": 0, "rejected": 0})
        c["read"] += 1
        c["labelled" if labelled else "rejected"] += 1
        if note_id is not None:
            self._id_hashes.append(hash(str(note_id)))

    @property
    def duplicates(self) -> dict[int, int]:
        """{id hash: records} for each id that appears more than once."""
        import numpy as np

        ids, n = np.unique(np.frombuffer(self._id_hashes, dtype=np.int64), return_counts=True)
        return {int(i): int(k) for i, k in zip(ids[n > 1], n[n > 1])}

    @property
    def total(self) -> dict[str, int]:
        keys = ("read", "labelled", "rejected")
        return {k: sum(c[k] for c in self.files.values()) for k in keys}

    def summary(self) -> str:
        from .textsafe import safe_name

        # a file name is shown as one line: a newline in it cannot forge a line of the summary
        lines = [f"  {safe_name(src)}: read {c['read']}, labelled {c['labelled']}, rejected {c['rejected']}"
                 for src, c in self.files.items()]
        t = self.total
        assert t["read"] == t["labelled"] + t["rejected"]
        lines.append(f"total: read {t['read']} = labelled {t['labelled']} + rejected {t['rejected']}")
        duplicates = self.duplicates if self._id_hashes else {}
        if duplicates:
            # a count, not the ids: ids taken from file names can be people's names
            extra = sum(duplicates.values()) - len(duplicates)
            lines.append(f"{len(duplicates)} id(s) appear more than once ({extra} extra record(s)); "
                         "every record was kept")
        return "\n".join(lines)


def input_size(inputs: tuple[str, ...]) -> int | None:
    """Total bytes of the inputs when every one is a file or a folder of files (not standard input)."""
    total = 0
    for item in inputs:
        p = Path(item)
        if item == "-" or not p.exists():
            return None
        total += sum(f.stat().st_size for f in p.glob("*.txt")) if p.is_dir() else p.stat().st_size
    return total or None


def record_size(item: Any) -> int:
    """About how many input bytes one record took (its text and fields), for progress by bytes."""
    fields = getattr(item, "fields", None) or {}
    size = len(getattr(item, "text", "") or "") + 2
    for k, v in fields.items():
        size += len(str(k)) + len(str(v)) + 4 if not isinstance(v, (dict, list)) else len(json.dumps(v)) + 4
    return size


@contextmanager
def progress_bar(quiet: bool, description: str, total: int | None = None):
    """Progress on standard error for long runs, nothing when piped or quiet.

    With a known input size (bytes) it shows how far through, the rate and the time left; the
    callback takes the bytes a record took, and the item's count of notes.
    """
    if quiet or not sys.stderr.isatty():
        yield lambda n=1: None
        return
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        SpinnerColumn,
        TaskProgressColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
        TransferSpeedColumn,
    )

    if total:
        columns = [SpinnerColumn(), "[progress.description]{task.description}", BarColumn(), TaskProgressColumn(),
                   TransferSpeedColumn(), "eta", TimeRemainingColumn(), "[dim]{task.fields[notes]} notes"]
    else:
        columns = [SpinnerColumn(), "[progress.description]{task.description}", MofNCompleteColumn(),
                   "notes", TimeElapsedColumn()]
    with Progress(*columns, console=Console(stderr=True), transient=True) as p:
        task = p.add_task(description, total=total, notes=0)
        count = 0

        def advance(n: int = 1) -> None:
            nonlocal count
            count += 1
            if total:
                p.update(task, advance=n, notes=count)
            else:
                p.advance(task, 1)

        yield advance


def default_rejects_path(output: str | None, command: str = "classify") -> Path:
    """Beside the output: OUT.rejects.jsonl for classify's OUT.jsonl; REPORT.html.rejects.jsonl for a
    report (never the name of a classify run's rejects, which a report of its output would clobber)."""
    if output and output != "-":
        out = Path(output)
        stem = out.name.removesuffix(".jsonl") if command == "classify" else out.name
        return out.with_name(stem + ".rejects.jsonl")
    return Path("rejects.jsonl")


def _check_paths(inputs: tuple[str, ...], writes: list[tuple[str, str | None]]) -> None:
    """Every path the command will write, checked against every input and each other."""
    from .runio import check_paths

    check_paths(inputs, writes)


def _reject_line(reject, keep_raw: bool) -> str:
    from .textsafe import dumps

    return dumps(reject.to_dict(keep_raw)) + "\n"


def _refuse_overwriting_inputs(inputs: tuple[str, ...], outputs: list[str | None]) -> None:
    """Writing over an input while reading it would destroy it: refuse before anything is opened
    (the same file by any name, link or hard link; see runio.check_paths)."""
    _check_paths(inputs, [("output", out) for out in outputs])


class RejectsWriter:
    """Rejected records, in whole records, to a file written beside its target and renamed into
    place (runio.RecordFile): created only when the first reject is committed, and a rejects file
    from an earlier run is never removed, only replaced by this run's. The reasons are counted for
    the hints at the end of a run."""

    def __init__(self, path: Path | str, keep_raw: bool, resume_bytes: int = 0,
                 reasons: dict[str, int] | None = None) -> None:
        from collections import Counter

        from .runio import RecordFile

        self.file = RecordFile(str(path), lazy=True, resume_bytes=resume_bytes)
        self.path, self.keep_raw = path, keep_raw
        self.reasons: Counter[str] = Counter(reasons or {})
        self.count = 0  # this run's

    def write(self, reject) -> None:
        self.file.add(_reject_line(reject, self.keep_raw))
        self.count += 1
        self.reasons[reject.reason] += 1

    def commonest(self, n: int = 3) -> list[tuple[str, int]]:
        return self.reasons.most_common(n)

    @property
    def opened(self) -> bool:
        return self.file.opened

    def commit(self) -> None:
        self.file.commit()

    def close(self) -> None:
        self.file.finish()

    def discard(self) -> None:
        self.file.discard()


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="supervise-nlp")
def main() -> None:
    """Label social-work recording as procedural or change-focused, and report the balance.

    Start with `explain "a note"` for one note, `classify` for an export, then `report`.
    Each command's --help lists its options.
    """


@main.command(short_help="Label every segment of every note (JSON Lines out).")
@click.argument("inputs", nargs=-1, required=True)
@click.option("-o", "--output", default="-", show_default=True, help="Output JSON Lines file ('-' for stdout).")
@click.option("--model", "model_path", type=click.Path(), help="Model directory (default: the shipped model).")
@click.option("--keep-text", is_flag=True, help="Copy each note's text into the output.")
@click.option("--resume", is_flag=True, help="Continue an interrupted run (same inputs and -o) from its last "
              "whole record; the counts cover both runs.")
@engine_options
@input_options
def classify(inputs: tuple[str, ...], output: str, model_path: str | None, keep_text: bool, resume: bool,
             **kw: Any) -> None:
    """Label every segment of every note in INPUTS (.jsonl, .csv, .txt, .xlsx, .gz, .zip, folders, '-')."""
    with friendly_errors():
        from itertools import islice

        from .read import Reject, read_records
        from .runio import Pair, RecordFile

        opts = _read_options(kw)
        notice = None if kw["quiet"] else _err
        rejects_path = kw["rejects_path"] or str(default_rejects_path(output))
        _check_paths(inputs, [("output", output), ("rejects file", rejects_path),
                              ("summary", str(summary_path(output)) if output != "-" else None)])
        state = _resume_state(inputs, output, rejects_path) if resume else None
        items = read_records(inputs, opts, notice=notice)
        if state:
            items = islice(items, state["records"], None)  # read again, not labelled again
        first = next(items, None)  # surfaces a bad path before any output file is created
        tally = Tally(state["tally"] if state else None)
        rejects = RejectsWriter(rejects_path, kw["rejects_keep_raw"],
                                resume_bytes=state["rejects_bytes"] if state else 0,
                                reasons=state.get("reject_reasons") if state else None)
        pair = Pair(RecordFile(output, resume_bytes=state["output_bytes"] if state else 0), rejects.file)
        committed = tally.snapshot()
        reasons_committed = dict(rejects.reasons)
        stream = None
        try:
            stream = _labelled_stream(_prepend(first, items), model_path, kw, keep_text, serialize=True)
            with _stoppable(), progress_bar(kw["quiet"], "labelling notes", input_size(inputs)) as advance:
                for item, result in stream:
                    if isinstance(item, Reject):
                        rejects.write(item)
                        tally.add(item.source, False)
                        advance(len(item.raw or "") + 40)
                    else:
                        pair.out.add(result + "\n")
                        tally.add(item.source, True, _id_of(item))
                        advance(record_size(item))
                    if tally.total["read"] % 256 == 0:
                        pair.commit()
                        committed = tally.snapshot()
                        reasons_committed = dict(rejects.reasons)
                pair.finish()
        except BaseException as e:
            from collections import Counter

            from .runio import Stopped, WriteFailed

            if not isinstance(e, (KeyboardInterrupt, Stopped, WriteFailed)):
                pair.discard()
                raise
            _close(stream)
            if committed != tally.snapshot() or isinstance(e, WriteFailed):
                rejects.reasons = Counter(reasons_committed)  # what the files hold, not what was pending
            committed = _stop_classify(e, pair, tally, committed, inputs, output, kw,
                                       {"reject_reasons": dict(rejects.reasons)})
            if output != "-":
                _try_summary(output, inputs, Tally(committed), rejects, opts, complete=False,
                             model_path=model_path)
            _stopped(e, Tally(committed), pair, output, kw)
        _close(stream)
        if state or output != "-":
            _drop_resume_marker(output)
        if output != "-":
            write_summary(output, inputs, tally, rejects, opts, model_path=model_path)
        _finish(tally, rejects, kw, nothing_is_an_error=True)


def _stoppable():
    from .runio import stop_on_signals

    return stop_on_signals()


def _close(stream) -> None:
    close = getattr(stream, "close", None)
    if close:
        try:
            close()
        except Exception:  # a pool torn down while stopping has nothing more to say
            pass


def _stop_classify(stop: BaseException, pair, tally: Tally, committed: dict, inputs, output: str,
                   kw: dict[str, Any], extra: dict[str, Any] | None = None) -> dict:
    """Close both files on a whole record, and leave what --resume needs. Returns the counts held."""
    from .runio import WriteFailed, signals_held

    with signals_held():
        if isinstance(stop, WriteFailed):
            pair.drop_pending()  # whatever could not be written is read again by --resume
        else:
            try:
                pair.commit()
                committed = tally.snapshot()
            except WriteFailed:
                pair.drop_pending()
        try:
            pair.out.finish()
            pair.rejects.finish()
        except WriteFailed:
            pair.discard()
            return committed
        if output != "-":
            from .runio import write_resume

            write_resume(output, {
                "version": 1, "inputs": _input_ids(inputs), "records": sum(c["read"] for c in committed.values()),
                "output": os.path.realpath(output), "output_bytes": pair.out.committed,
                "output_sha256": pair.out.hash.hexdigest(),
                "rejects": os.path.realpath(pair.rejects.path), "rejects_bytes": pair.rejects.committed,
                "rejects_sha256": pair.rejects.hash.hexdigest(), "tally": committed, **(extra or {})})
    return committed


def _stopped(stop: BaseException, held: Tally, pair, output: str, kw: dict[str, Any]) -> None:
    """Say what happened and what the files hold, then exit non-zero."""
    from .runio import WriteFailed, exit_status

    if isinstance(stop, WriteFailed) and stop.path == "-" and getattr(stop.error, "errno", None) == 32:
        sys.exit(141)  # standard output closed (| head): nothing to say, and nowhere to say it
    why = str(stop) if isinstance(stop, WriteFailed) else (
        "interrupted" if isinstance(stop, KeyboardInterrupt) else f"stopped by {stop}")
    _err(f"{why}: the files hold whole records only, up to the same input record; counts so far:")
    _err(held.summary())
    if pair.rejects.records or pair.rejects.committed:
        _err(f"rejected record(s) so far are in {pair.rejects.path}")
    if output != "-":
        _err(f"continue with the same command and --resume (state in {output}{'.resume.json'})")
    sys.exit(1 if isinstance(stop, WriteFailed) else exit_status(stop))


def _input_ids(inputs) -> list[str]:
    return [i if i == "-" else os.path.realpath(i) for i in inputs]


def _resume_state(inputs: tuple[str, ...], output: str, rejects_path: str) -> dict[str, Any]:
    """What the interrupted run left, checked: same inputs, and its files as it left them."""
    from .runio import prefix_sha256, read_resume, resume_path

    if output == "-":
        raise click.UsageError("--resume needs -o FILE (the output of the interrupted run)")
    if "-" in inputs:
        raise click.UsageError("--resume cannot read standard input again; give the input as a file")
    state = read_resume(output)
    if not state:
        raise click.ClickException(f"{output}: no interrupted run to resume ({resume_path(output)} not found)")
    if state.get("inputs") != _input_ids(inputs):
        raise click.ClickException("--resume: the inputs are not those of the interrupted run")
    if state.get("rejects") != os.path.realpath(rejects_path):
        raise click.ClickException(f"--resume: the interrupted run wrote its rejects to {state.get('rejects')}")
    for key, path in (("output", output), ("rejects", rejects_path)):
        size = int(state.get(f"{key}_bytes", 0))
        if size and prefix_sha256(path, size) != state.get(f"{key}_sha256"):
            raise click.ClickException(f"{path}: changed since the run was interrupted; run it again without --resume")
    return state


def _drop_resume_marker(output: str) -> None:
    """The marker of an interrupted run of this output: wrong once the output is complete."""
    from .runio import read_resume, resume_path

    state = read_resume(output)
    if state and state.get("output") == os.path.realpath(output):
        resume_path(output).unlink(missing_ok=True)


def summary_path(output: str | Path) -> Path:
    """The sidecar beside a classify output: OUT.jsonl -> OUT.summary.json."""
    out = Path(output)
    return out.with_name(out.name.removesuffix(".jsonl") + ".summary.json")


def write_summary(output: str, inputs: tuple[str, ...], tally: Tally, rejects: RejectsWriter, opts,
                  complete: bool = True, model_path: str | None = None) -> None:
    """What classify read and rejected, beside its output, so a later report can say so (written
    beside the target and renamed, like every output; an interrupted run's says how far it got)."""
    from .runio import RecordFile
    from .textsafe import dumps

    t = tally.total
    summary = {
        "written_by": f"supervise-nlp {__version__} classify",
        "inputs": list(inputs),
        "records": t["read"], "labelled": t["labelled"], "rejected": t["rejected"],
        "rejects_file": str(rejects.path) if t["rejected"] else None,
        "reject_reasons": dict(rejects.commonest(10)),
        "field_map": {k: v for k, v in opts.field_map.items() if k != v},
        "files": tally.files,
    }
    try:  # which model made these labels, so report --validation can check it measured that model
        name, sha = _model_identity(model_path)
        summary["model"] = {"name": name, "sha256": sha}
    except Exception:  # a summary never fails for want of it
        pass
    if not complete:
        summary["complete"] = False  # interrupted: --resume continues it
    out = RecordFile(str(summary_path(output)))
    try:
        out.add(dumps(summary, indent=2) + "\n")
        out.finish()
    finally:
        out.discard()


def _try_summary(*args: Any, **kw: Any) -> None:
    """The summary of a stopped run: written if it can be, never in the way of saying what happened."""
    from .runio import WriteFailed

    try:
        write_summary(*args, **kw)
    except (OSError, WriteFailed):
        pass


def read_summaries(inputs: tuple[str, ...]) -> list[dict[str, Any]]:
    """The classify summaries beside any classify outputs given to report."""
    out = []
    for item in inputs:
        if item == "-" or not item.endswith(".jsonl"):
            continue
        p = summary_path(item)
        try:
            data = json.loads(p.read_text("utf-8"))
        except (OSError, ValueError):
            continue
        if isinstance(data, dict) and isinstance(data.get("records"), int) and isinstance(data.get("rejected"), int):
            out.append(data)
    return out


def _hint(reason: str) -> str:
    """What to try for one kind of reject, so the advice fits the problem."""
    r = reason.lower()
    if "no '" in r and ("field" in r or "column" in r):
        return ("the note text is under another name: give it with --text-field (the record's fields or "
                "columns are listed in the reason)")
    if "not valid" in r or "bytes" in r or "decode" in r:
        return "the file is in another encoding: Excel on Windows writes Windows-1252 (--encoding cp1252)"
    if "--max-chars" in r:
        return "raise --max-chars if these really are single notes"
    if r.startswith("text is"):
        return "these records hold no note text; nothing to fix unless text was expected"
    if "json" in r:
        return "the file is not JSON Lines throughout; check --input-format"
    return "see the rejects file for each record"


def _id_of(item: Any) -> Any:
    return item.fields.get("id")


def _prepend(first, rest):
    if first is not None:
        yield first
    yield from rest


def _finish(tally: Tally, rejects: RejectsWriter, kw: dict[str, Any], nothing_is_an_error: bool = False) -> None:
    nothing = tally.total["labelled"] == 0
    count = tally.total["rejected"]  # with --resume, the interrupted run's too
    if not kw["quiet"] or (nothing and nothing_is_an_error):
        _err(tally.summary())
        if count:
            _err(f"{count} rejected record(s) written to {rejects.path}; the commonest reasons:")
            for reason, n in rejects.commonest(3):
                _err(f"  {n:>6} × {reason}")
            hints = list(dict.fromkeys(_hint(r) for r, _ in rejects.commonest(3)))
            for h in hints:
                _err(f"hint: {h}")
        elif not rejects.opened and Path(rejects.path).exists():
            _err(f"note: {rejects.path} is from an earlier run (this run rejected nothing); it was left as it was")
    if nothing and nothing_is_an_error:
        read = tally.total["read"]
        raise click.ClickException("nothing was labelled" + (
            f": all {read} record(s) were rejected" if read else ": no records in the input"))
    if kw["strict"] and count:
        raise click.ClickException(f"--strict: {count} record(s) rejected (see {rejects.path})")


@main.command(short_help="Train a model on a labelled corpus and write its card.")
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
        from .card import card_markdown
        from .modelio import save_model

        _check_paths((*corpus, *test_paths, *check_paths, *add_paths),
                     [(f"model's {name}", str(Path(output_dir) / name))
                      for name in ("model.skops", "card.json", "card.md", "manifest.json")])

        progress = None if quiet else _timed(_err)
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
            _check_cv_groups(corpus, groups, cv_groups)
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


def _timed(say: Callable[[str], None]) -> Callable[[str], None]:
    """Training's step messages with the time since the start, and the folds' pace once known."""
    import time

    start = time.monotonic()
    folds: list[float] = []

    def progress(message: str) -> None:
        now = time.monotonic() - start
        pace = ""
        if message.startswith("fold"):
            folds.append(now)
            if len(folds) > 1:
                pace = f" (last fold took {folds[-1] - folds[-2]:.0f}s)"
        say(f"[{int(now) // 60}:{int(now) % 60:02d}] {message}{pace}")

    return progress


def _check_cv_groups(corpus: tuple[str, ...], groups: list[str], given: tuple[str, ...]) -> None:
    """The first --cv-group needs two or more values in the corpus: say so plainly before training."""
    if not groups:
        return
    from .read import read_corpus

    records = read_corpus(corpus)
    values = {str(r[groups[0]]) for r in records if r.get(groups[0]) not in (None, "")}
    if len(values) >= 2:
        return
    fields = sorted({k for r in records for k in r if k not in ("segments", "text")})
    have = "no note has it" if not values else f"every note has the same value ({next(iter(values))!r})"
    default = tuple(given) == ("authority", "register")
    raise click.ClickException(
        f"cannot cross-validate by '{groups[0]}': {have}, and leaving one group out needs at least two. "
        f"Use --cv-group none to train without cross-validation, or --cv-group FIELD with a field that "
        f"varies across your notes (fields in this corpus: {', '.join(fields) or 'none besides segments'})"
        + ("." if not default else "; 'authority' is the default because notes from different organisations "
           "give an honest estimate for a new one."))


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


@main.command(short_help="Score models against labelled notes, with intervals.")
@click.argument("corpus", nargs=-1, required=True)
@click.option("--model", "model_paths", multiple=True, type=click.Path(),
              help="Model directory; repeat to compare models (default: the shipped model).")
@click.option("--format", "fmt", type=click.Choice(["table", "json", "csv"]), default="table", show_default=True,
              help="table: the terminal; json: every measure as data; csv: one row per measure, model and team.")
@click.option("-o", "--output", default="-", show_default=True, help="Write here instead of standard output.")
@click.option("--bootstrap", "n_boot", type=click.IntRange(100), default=2000, show_default=True,
              help="Bootstrap resamples of notes for the intervals and the paired comparison.")
@click.option("--seed", type=int, default=20260301, show_default=True,
              help="Random seed for the bootstrap (same seed, same intervals).")
def evaluate(corpus: tuple[str, ...], model_paths: tuple[str, ...], fmt: str, output: str, n_boot: int,
             seed: int) -> None:
    """Score models against labelled CORPUS notes (segments aligned by character overlap).

    Macro-F1 and kappa come with 95% bootstrap intervals over notes; with two or more --model,
    each is compared with the first on the same notes (paired bootstrap of the difference).
    """
    with friendly_errors():
        from .evaluate import bootstrap_weights, evaluate_records, intervals, paired_comparison, trained_on_these
        from .modelio import default_model_dir, load_card
        from .read import read_corpus
        from .render import evaluation_csv, evaluation_table

        _check_paths(corpus, [("output", output)])
        records = read_corpus(corpus)
        if not records:
            raise click.ClickException("no labelled notes in the corpus")
        weights = bootstrap_weights(len(records), n_boot, seed)
        results: dict[str, dict[str, Any]] = {}
        confusions = {}
        for path in model_paths or (None,):
            name = path or "default"
            if name in results:
                name = f"{name} ({len(results) + 1})"
            card = load_card(Path(path) if path else default_model_dir())
            own = trained_on_these(card, corpus)
            r = evaluate_records(_load_labeller(path), records, keep_note_confusions=True)
            confusions[name] = r.pop("_note_confusions")
            r["intervals"] = intervals(confusions[name], weights)
            r["scored_on_its_own_training_files"] = own
            if own:
                _err(f"warning: model {name} was trained on {', '.join(own)} (same SHA-256 as a training file): "
                     "its scores here are not an estimate for new notes; evaluate on notes it never saw")
            results[name] = r
        names = list(results)
        comparisons = {f"{n} - {names[0]}": paired_comparison(confusions[n], confusions[names[0]], weights)
                       for n in names[1:]}
        if fmt == "json":
            doc: dict[str, Any] = results if len(results) > 1 else dict(next(iter(results.values())))
            if comparisons:
                doc = {"models": results, "paired_comparisons": comparisons}
            text = json.dumps(doc, indent=2) + "\n"
        elif fmt == "csv":
            text = evaluation_csv(results, comparisons)
        else:
            text = evaluation_table(results, comparisons)
        _write_text(text, output)


def _write_text(text: str, output: str, colour: bool | None = None) -> None:
    """Standard output, or a file written beside the target and renamed into place whole."""
    if output == "-":
        click.echo(text, nl=False, color=colour)
        return
    from .runio import RecordFile

    out = RecordFile(output)
    try:
        out.add(text)
        out.finish()
    finally:
        out.discard()


def _where(values: tuple[str, ...]) -> list[tuple[str, str]]:
    out = []
    for v in values:
        if "=" not in v:
            raise click.BadParameter(f"{v!r}: use KEY=VALUE", param_hint="--where")
        k, val = v.split("=", 1)
        out.append((k.strip(), val.strip()))
    return out


def _key_path(key_file: str | None, output: str) -> Path:
    return Path(key_file) if key_file else (
        Path(output).with_name("supervise-nlp.key") if output != "-" else Path("supervise-nlp.key"))


MAX_KEY_BYTES = 4096


def _pseudonym_keys(enabled: bool, teams_too: bool, key_file: str | None, output: str) -> dict[str, bytes] | None:
    """The pseudonym key: the user's file, or one created beside the output (kept for next time)."""
    if not (enabled or teams_too):
        return None
    import secrets
    import stat

    path = _key_path(key_file, output)
    if path.exists():
        st = path.stat()
        if not stat.S_ISREG(st.st_mode):  # /dev/zero would never end, a pipe would be used up
            raise click.ClickException(f"{path}: a pseudonym key must be a regular file")
        with open(path, "rb") as fh:
            key = fh.read(MAX_KEY_BYTES + 1).strip()
        if len(key) > MAX_KEY_BYTES:
            raise click.ClickException(f"{path}: over {MAX_KEY_BYTES} bytes: not a pseudonym key file")
        if len(key) < 32:
            raise click.ClickException(f"{path}: a pseudonym key must hold at least 32 bytes (this one has "
                                       f"{len(key)}); delete it to have a new one made")
        if st.st_mode & 0o004:
            _err(f"warning: {path} can be read by every user of this machine; anyone with the key can "
                 f"test names against the codes (chmod 600 {path})")
        if len(set(key)) == 1:
            _err(f"warning: {path} is one character repeated; such a key is guessable, so the codes hide "
                 "little (delete it to have a random one made)")
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


class MilestoneDate(click.ParamType):
    """YYYY-MM-DD always; dd/mm/yyyy too, read day first (the report's --dayfirst says so for the notes)."""

    name = "DATE"

    def convert(self, value, param, ctx):
        import datetime as dt

        if isinstance(value, dt.date):
            return value
        text = str(value).strip()
        for fmt in ("%Y-%m-%d", "%d/%m/%Y", "%d-%m-%Y", "%d.%m.%Y"):
            try:
                return dt.datetime.strptime(text, fmt).date()
            except ValueError:
                continue
        self.fail(f"{value!r} is not a date: use YYYY-MM-DD or dd/mm/yyyy (day first, as in the UK)", param, ctx)


def _resolve_field(name: str, field_map: dict[str, str]) -> tuple[str, str | None]:
    """One field vocabulary everywhere: a mapped column name or any capitalisation of a standard
    name becomes the standard name. Returns (name, notice or None)."""
    low = name.strip().lower()
    for std, col in field_map.items():
        if col.lower() == low and std != name:
            return std, f"'{name}' is the {std} field (--{std}-field {col!r}): read as {std}"
    from .aggregate import DERIVED

    for std in (*FIELD_NAMES, *DERIVED):
        if std == low and std != name:
            return std, None
    return name.strip(), None


class FieldMatcher:
    """--by and --where keys and values, matched to each record ignoring capitals (with a notice)."""

    def __init__(self, keys: list[str], where: list[tuple[str, str]]) -> None:
        from .aggregate import normalise_name

        # names compared as the table groups them: NFC, one space for any run of spaces, no controls
        self.keys, self.where = keys, [(k, normalise_name(v)) for k, v in where]
        self.seen: dict[str, set[str]] = {k: set() for k in keys}
        self.fields_seen: set[str] = set()
        self.loose_keys: dict[str, str] = {}
        self.loose_values: dict[tuple[str, str], set[str]] = {}
        self.filtered = 0

    def prepare(self, fields: dict[str, Any]) -> bool:
        """Fill requested keys from differently capitalised fields; False when --where leaves the note out."""
        from .aggregate import DERIVED, normalise_name

        if len(self.fields_seen) < 200:
            self.fields_seen.update(map(str, fields))
        lower = None
        for k in dict.fromkeys([*self.keys, *(w[0] for w in self.where)]):
            if k in fields or k in DERIVED:
                if k in self.seen:
                    self.seen[k].add(k)
                continue
            lower = lower or {str(f).lower(): f for f in fields}
            real = lower.get(k.lower())
            if real is not None:
                fields[k] = fields[real]
                self.loose_keys[k] = real
                if k in self.seen:
                    self.seen[k].add(real)
        for k, want in self.where:
            if k in DERIVED:
                continue  # month/quarter/year are compared by the table, from the parsed date
            have = fields.get(k)
            have = "" if have is None else normalise_name(str(have))
            if have == want:
                continue
            if have.lower() == want.lower():
                self.loose_values.setdefault((k, want), set()).add(have)
                continue
            self.filtered += 1
            return False
        return True

    def notices(self) -> list[str]:
        out = [f"--by/--where '{k}' matched the field '{real}' (capitals ignored)"
               for k, real in self.loose_keys.items()]
        for (k, want), found in self.loose_values.items():
            values = ", ".join(sorted(map(repr, found)))[:200]
            out.append(f"--where {k}={want} also matched {values} (capitals ignored)")
        return out

    def absent(self) -> list[str]:
        """--by fields that no record held."""
        from .aggregate import DERIVED

        return [k for k in self.keys if k not in DERIVED and not self.seen[k]]


@main.command(short_help="Balance per team, worker, type, month, quarter or year.")
@click.argument("inputs", nargs=-1, required=True)
@click.option("--by", "by", multiple=True, help="Field to group by (repeatable): team, worker, type, any other "
              "field of the input (a --X-field column name works too), or month, quarter or year (from the "
              "date). Default: team.")
@click.option("--where", "where", multiple=True, metavar="KEY=VALUE",
              help="Keep only notes whose KEY is VALUE (repeatable; capitals ignored, with a notice).")
@click.option("--format", "fmt", type=click.Choice(["table", "json", "csv", "html"]), default="table",
              show_default=True, help="table: the terminal; json: everything as data; csv: the group rows; "
              "html: a self-contained page to share.")
@click.option("-o", "--output", default="-", show_default=True, help="Write here instead of standard output.")
@click.option("--model", "model_path", type=click.Path(), help="Model for raw notes (default: the shipped model).")
@click.option("--min-notes", type=int, default=5, show_default=True,
              help="Groups with fewer notes are not shown on their own.")
@click.option("--pseudonymise", is_flag=True, help="Replace worker names with stable keyed codes.")
@click.option("--pseudonymise-teams", is_flag=True, help="Replace team names too (implies --pseudonymise).")
@click.option("--key-file", type=click.Path(dir_okay=False), help="Pseudonym key file (created if missing).")
@click.option("--include-examples", type=int, default=0, show_default=True,
              help="Show the N most clearly procedural and change-focused sentences per group (note text!). "
                   "Needs the note text: raw notes, or classify --keep-text output.")
@click.option("--milestone", type=MilestoneDate(), metavar="DATE",
              help="Compare balance before and after this date (YYYY-MM-DD or dd/mm/yyyy).")
@click.option("--dayfirst", is_flag=True, help="Read dd/mm/yyyy dates in the notes (otherwise only YYYY-MM-DD).")
@click.option("--merge-case", is_flag=True, help="Treat names that differ only by upper/lower case as one "
              "(by default they are kept apart and the report says how many there are).")
@click.option("--no-culture", is_flag=True, help="Skip the culture analysis (variance, mirroring, trend).")
@click.option("--type-map", "type_map", multiple=True, metavar="NAME=KIND",
              help="Read the note type NAME as visit or supervision for the mirroring analysis (repeatable), e.g. "
                   "--type-map 'Home Visit=visit'; KIND other leaves it out. Common names (Home Visit, Office "
                   "Visit, HV, Supervision session) are recognised without it. --by type keeps types as recorded.")
@click.option("--bootstrap", "n_boot", type=click.IntRange(100), default=2000, show_default=True,
              help="Bootstrap resamples for intervals.")
@click.option("--permutations", "n_perm", type=click.IntRange(99), default=2000, show_default=True,
              help="Permutations for the tests of difference.")
@click.option("--seed", type=int, default=20260301, show_default=True,
              help="Random seed for the bootstrap and permutations (same seed, same figures).")
@click.option("--validation", "validation_path", type=click.Path(exists=True, dir_okay=False),
              help="Correct balances for the errors measured on your own labelled notes: the JSON written by "
                   "`validate --format json`, or the filled sample sheet itself.")
@engine_options
@input_options
def report(inputs: tuple[str, ...], by: tuple[str, ...], where: tuple[str, ...], fmt: str, output: str,
           model_path: str | None, min_notes: int, pseudonymise: bool, pseudonymise_teams: bool,
           key_file: str | None, include_examples: int, milestone, dayfirst: bool, merge_case: bool,
           no_culture: bool, type_map: tuple[str, ...], n_boot: int, n_perm: int, seed: int,
           validation_path: str | None, **kw: Any) -> None:
    """Balance per team (or any --by) from raw notes or from classify output."""
    with friendly_errors():
        from .aggregate import build_report, build_table
        from .classify import labelled_notes
        from .modelio import load_card
        from .note_types import parse_type_map
        from .read import Labelled, read_records
        from .render import report_csv, report_table
        from .report_html import report_about, report_html
        from .runio import Stopped, WriteFailed

        try:
            types = parse_type_map(type_map)
        except ValueError as e:
            raise click.BadParameter(str(e), param_hint="--type-map") from None

        opts = _read_options(kw)
        upstream = read_summaries(inputs)
        # classify's field mapping carries through: its column names mean the same fields here
        field_map = {k: v for k, v in opts.field_map.items() if k != v}
        for sm in upstream:
            for std, col in (sm.get("field_map") or {}).items():
                field_map.setdefault(std, col)
        say = (lambda m: None) if kw["quiet"] else _err
        by_keys = []
        for k in by or ("team",):
            name, note = _resolve_field(k, field_map)
            if note:
                say(note)
            by_keys.append(name)
        conditions = []
        for k, v in _where(where):
            name, note = _resolve_field(k, field_map)
            if note:
                say(note)
            conditions.append((name, v.upper() if name == "quarter" else v))
        matcher = FieldMatcher(by_keys, conditions)
        rejects_path = kw["rejects_path"] or str(default_rejects_path(output, "report"))
        keyed = pseudonymise or pseudonymise_teams
        _check_paths((*inputs, *([validation_path] if validation_path else [])),
                     [("output", output), ("rejects file", rejects_path),
                      ("pseudonym key", str(_key_path(key_file, output)) if keyed else None)])
        keys = _pseudonym_keys(pseudonymise, pseudonymise_teams, key_file, output)
        items = read_records(inputs, opts, notice=None if kw["quiet"] else _err)
        tally = Tally()
        rejects = RejectsWriter(rejects_path, kw["rejects_keep_raw"])
        committed = tally.snapshot()
        text_seen = False
        from_classify = 0

        def counted():
            nonlocal text_seen, from_classify, committed
            with progress_bar(kw["quiet"], "reading and labelling notes", input_size(inputs)) as advance:
                for item, out in _report_stream(items, model_path, kw, include_examples > 0):
                    tally.add(item.source, out is not None, out.get("id") if out else None)
                    from_classify += isinstance(item, Labelled)
                    advance(record_size(item) if out is not None else len(getattr(item, "raw", "") or "") + 40)
                    if out is None:
                        rejects.write(item)
                    if tally.total["read"] % 256 == 0:
                        rejects.commit()
                        committed = tally.snapshot()
                    if out is None:
                        continue
                    text_seen = text_seen or isinstance(getattr(item, "text", None), str) or "text" in out
                    if matcher.prepare(out):
                        yield item, out

        try:
            with _stoppable():
                table = build_table(labelled_notes(counted(), examples=include_examples > 0), by_keys,
                                    [c for c in conditions if c[0] in _derived()], dayfirst=dayfirst,
                                    pseudonymise=keys, merge_case=merge_case)
                rejects.close()
        except (KeyboardInterrupt, Stopped, WriteFailed) as e:
            try:
                rejects.close()  # the rejects found so far are kept, whole
                if not isinstance(e, WriteFailed):
                    committed = tally.snapshot()
            except WriteFailed:
                rejects.discard()
            _err(f"{e if isinstance(e, WriteFailed) else 'stopped'}: no report was written; counts so far:")
            _err(Tally(committed).summary())
            from .runio import exit_status

            sys.exit(1 if isinstance(e, WriteFailed) else exit_status(e))
        except BaseException:
            rejects.discard()  # only this run's temporary file
            raise
        if matcher.filtered:
            table.quality["filtered out by --where"] += matcher.filtered
        for line in matcher.notices():
            say(line)
        for k in matcher.absent():
            seen = ", ".join(sorted(matcher.fields_seen)[:15])
            _err(f"warning: --by '{k}': no record has this field, so every note is 'unknown' (fields: {seen})")
        if include_examples and (fmt == "table" or not text_seen):
            _err("note: --include-examples " + (
                "shows nothing: the notes' text is not in the input (run classify with --keep-text, or report "
                "on the raw notes)" if not text_seen else
                "examples are in the json and html formats; the table below leaves them out to stay readable"))
        if not len(table):
            raise click.ClickException("no labelled notes to report on" + (" after --where" if where else ""))
        inp = {"records": tally.total["read"], "labelled": tally.total["labelled"], "rejected": tally.total["rejected"]}
        if upstream:
            inp["classify"] = {"records": sum(u["records"] for u in upstream),
                               "rejected": sum(u["rejected"] for u in upstream),
                               "rejects_files": [u["rejects_file"] for u in upstream if u.get("rejects_file")]}
        with _report_mapper(kw) as mapper:
            rep = build_report(table, by_keys, inp,
                               min_notes=min_notes, n_boot=n_boot, n_perm=n_perm, seed=seed,
                               milestone=milestone,
                               include_examples=include_examples, culture=not no_culture, type_map=types,
                               mapper=mapper)
        from .quantify import apply_additions, validation_additions

        labelled_by = {(u["model"]["name"], u["model"]["sha256"]) for u in upstream if u.get("model")}
        made_by = next(iter(labelled_by)) if len(labelled_by) == 1 and all(u.get("model") for u in upstream) \
            and upstream and from_classify else None
        validation = _load_validation(validation_path, model_path, made_by) if validation_path else None
        apply_additions(rep, validation_additions(rep, validation, table=table, n_boot=n_boot, seed=seed))
        card = load_card(model_path)
        rep["about"] = report_about(inputs, tally.files, card, model_path, from_classify,
                                    "teams too" if pseudonymise_teams else "workers" if pseudonymise else None,
                                    type_map)
        if fmt == "json":
            from .textsafe import dumps

            text = dumps(rep, indent=2, default=_jsonable) + "\n"
        elif fmt == "csv":
            text = report_csv(rep)
        elif fmt == "html":
            text = report_html(rep, card)
        else:
            text = report_table(rep)
        _write_text(text, output)
        if upstream and not kw["quiet"]:
            c = inp["classify"]
            _err(f"{c['records']} record(s) read by classify, {c['rejected']} rejected there"
                 + (f" (see {', '.join(c['rejects_files'])})" if c["rejects_files"] else ""))
        _finish(tally, rejects, kw)


@contextmanager
def _report_mapper(kw: dict[str, Any]) -> Iterator[Any]:
    """Where the report's per-group work runs: here, or on Dask with --engine dask / --scheduler."""
    from .report_dask import DaskMap, local_map

    if not (kw["engine"] == "dask" or kw["scheduler"]):
        yield local_map
        return
    try:
        import dask.distributed  # noqa: F401
    except ImportError:
        raise click.ClickException("--engine dask needs Dask: pip install 'supervise-nlp[dask]'") from None
    with DaskMap(kw["scheduler"]) as mapper:
        yield mapper


def _derived() -> tuple[str, ...]:
    from .aggregate import DERIVED

    return DERIVED


@main.command(short_help="Draw segments of your notes for your staff to label (xlsx, csv or a page).")
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
        rejects_path = kw["rejects_path"] or str(default_rejects_path(str(out.with_suffix(".jsonl"))))
        _check_paths(inputs, [("output", output), ("rejects file", rejects_path)])
        if out.exists() and not force:
            raise click.ClickException(f"{output}: already exists; choose another name, or --force to replace it")
        opts = _read_options(kw)
        items = read_records(inputs, opts, notice=None if kw["quiet"] else _err)
        tally = Tally()
        rejects = RejectsWriter(rejects_path, kw["rejects_keep_raw"])

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


@main.command(short_help="How well the model labels your notes, from a labelled sample.")
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
            from .textsafe import dumps

            text = dumps(result, indent=2, default=_jsonable) + "\n"
        elif fmt == "html":
            text = validation_html(result)
        else:
            text = validation_text(result)
        _write_text(text, output)


def _load_validation(path: str, model_path: str | None,
                     made_by: tuple[str, str] | None = None) -> dict[str, Any]:
    """A validation for the model that labelled the notes: validate's JSON, or a labelled sheet
    validated here. For classify output that is the model its summary names (``made_by``), else
    the report's own --model."""
    name, sha = made_by or _model_identity(model_path)
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
    name, sha = _model_identity(model_path)  # a sheet is validated here, with the report's model
    return validate(items, units, _load_labeller(model_path), name, sha)


def _jsonable(x: Any) -> Any:
    import numpy as np

    if isinstance(x, np.generic):
        return x.item()
    if isinstance(x, np.ndarray):
        return x.tolist()
    raise TypeError(f"not JSON serialisable: {type(x).__name__}")


@main.command(short_help="One note, each sentence marked, and why.")
@click.argument("source", required=False, default="-")
@click.option("--format", "fmt", type=click.Choice(["text", "json", "html"]), default="text", show_default=True,
              help="text: the note marked in the terminal; json: everything as data; html: a small page.")
@click.option("-o", "--output", default="-", show_default=True, help="Write here instead of standard output.")
@click.option("--model", "model_path", type=click.Path(), help="Model directory (default: the shipped model).")
@click.option("--top", type=int, default=5, show_default=True, help="How many reasons to show per sentence.")
@click.option("--encoding", default="auto", show_default=True,
              help="Encoding of the file or standard input; 'auto' reads UTF-8 and detects Windows-1252.")
@click.option("--color/--no-color", "colour", default=None, help="Colour (default: when writing to a terminal).")
@click.option("--watch", is_flag=True, help="Keep reading notes from standard input, each ended by a line "
              "holding only the --separator, and explain each as it arrives (the model loads once).")
@click.option("--separator", default="---", show_default=True,
              help="With --watch: the line that ends a note ('' for a blank line).")
@click.option("--serve", is_flag=True, help="Open a small page on this machine to paste notes into "
              "(the model loads once; nothing leaves the machine). Stop with Ctrl-C.")
@click.option("--host", default="127.0.0.1", show_default=True,
              help="With --serve: the loopback address to listen on (127.0.0.1, localhost or ::1 only).")
@click.option("--port", type=click.IntRange(0, 65535), default=8765, show_default=True,
              help="With --serve: the port (0 picks a free one).")
def explain(source: str, fmt: str, output: str, model_path: str | None, top: int, encoding: str,
            colour: bool | None, watch: bool, separator: str, serve: bool, host: str, port: int) -> None:
    """Show one note with each sentence marked procedural / change-focused / neutral, and why.

    SOURCE is the note itself, a file holding it, or '-' (the default) for standard input.
    Nothing is written anywhere except where -o says. For many notes, --watch reads them one
    after another, and --serve opens a local page, so only the first waits for the model.
    """
    with friendly_errors():
        if serve:
            from .explain import LOOPBACK

            if host not in LOOPBACK:
                raise click.BadParameter(f"{host!r}: explain --serve listens on this machine only "
                                         "(127.0.0.1, localhost or ::1)", param_hint="--host")
            _serve(model_path, host, port, top)
            return
        _check_paths((source,) if source != "-" and _is_file(source) else (), [("output", output)])
        if watch:
            _watch(model_path, fmt, output, top, colour, separator, encoding)
            return
        text = _note_text(source, encoding)
        out, use_colour = _explained(text, _load_labeller(model_path), fmt, top, colour, output)
        _write_text(out, output, colour=use_colour)


def _explained(text: str, labeller, fmt: str, top: int, colour: bool | None, output: str) -> tuple[str, bool]:
    from .explain import explain_text

    ex = explain_text(text, labeller, top=top)
    use_colour = fmt == "text" and (colour if colour is not None else (output == "-" and sys.stdout.isatty()))
    if fmt == "json":
        from .textsafe import dumps

        return dumps(ex, indent=2) + "\n", use_colour
    if fmt == "html":
        from .render import explain_html

        return explain_html(ex), use_colour
    from .render import explain_terminal

    return explain_terminal(ex, use_colour), use_colour


def _serve(model_path: str | None, host: str, port: int, top: int) -> None:
    from .explain import make_server

    labeller = _load_labeller(model_path)
    try:
        server = make_server(labeller, host, port, top)
    except OSError as e:
        raise click.ClickException(f"cannot listen on {host}:{port}: {e.strerror or e} (try --port 0)") from None
    h, p = server.server_address[:2]
    shown = f"[{h}]" if ":" in h else h
    _err(f"explain page: http://{shown}:{p}/ (this machine only; notes are not kept). Ctrl-C to stop.")
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


def _watch(model_path: str | None, fmt: str, output: str, top: int, colour: bool | None, separator: str,
           encoding: str) -> None:
    """Notes from standard input, one after another, each explained as soon as its separator arrives."""
    labeller = _load_labeller(model_path)
    tty = _stdin_is_tty()
    sep = separator.strip()
    where = "an empty line" if not sep else f"a line holding only {sep}"
    if tty:
        _err(f"Paste a note and end it with {where}; Ctrl-D (Ctrl-Z then Enter on Windows) to finish.")
    sink = sys.stdout if output == "-" else open(output, "w", encoding="utf-8")
    try:
        for n, text in enumerate(_notes_from(sys.stdin.buffer, sep, encoding), 1):
            out, use_colour = _explained(text, labeller, fmt, top, colour, output)
            if sink is sys.stdout:
                click.echo(out, nl=False, color=use_colour)
            else:
                sink.write(out)
            sink.flush()
            if tty:
                _err(f"(note {n} explained; paste the next, or Ctrl-D to finish)")
    finally:
        if sink is not sys.stdout:
            sink.close()


def _notes_from(stream, sep: str, encoding: str) -> Iterator[str]:
    lines: list[str] = []
    for raw in stream:
        line = _decode(raw, encoding)[0]
        if line.strip() == sep and (sep or any(x.strip() for x in lines)):
            text = "".join(lines)
            lines = []
            if text.strip():
                yield text.rstrip("\r\n")
            continue
        lines.append(line)
    if "".join(lines).strip():
        yield "".join(lines).rstrip("\r\n")


def _stdin_is_tty() -> bool:
    try:
        return sys.stdin.isatty()
    except (AttributeError, ValueError):
        return False


def _decode(data: bytes, encoding: str) -> tuple[str, str | None]:
    """Bytes to text the way classify reads files: UTF-8, or Windows-1252 when that is what it is."""
    if encoding != "auto":
        return data.decode(encoding, errors="replace").removeprefix("\ufeff"), None
    try:
        return data.decode("utf-8-sig"), None
    except UnicodeDecodeError:
        pass
    if not re.search(rb"[\xc2-\xf4][\x80-\xbf]+", data):
        try:
            return data.decode("cp1252"), "not valid UTF-8; read as Windows-1252 (set --encoding to override)"
        except UnicodeDecodeError:
            pass
    return data.decode("utf-8", errors="replace"), "not valid UTF-8 throughout; undecodable bytes shown as \ufffd"


_LOOKS_LIKE_FILE = (".txt", ".text", ".csv", ".jsonl", ".json", ".md", ".doc", ".docx", ".rtf", ".log", ".xlsx")


def _is_file(source: str) -> bool:
    """Is the argument a path? A note pasted as the argument is not, however it looks."""
    if "\n" in source or len(source) > 1024:
        return False
    try:
        return Path(source).is_file()
    except OSError:  # e.g. a name too long for the file system: it is the note itself
        return False


def _is_dir(source: str) -> bool:
    try:
        return "\n" not in source and len(source) < 1024 and Path(source).is_dir()
    except OSError:
        return False


def _looks_like_a_path(source: str) -> bool:
    """A mistyped file name, not a note: a short name ending like a document, or a path with folders."""
    s = source.strip().strip("'\"")
    if not s or "\n" in s or len(s) > 260:
        return False
    if s.lower().endswith(_LOOKS_LIKE_FILE) and len(s.split()) <= 3:
        return True
    return not any(c.isspace() for c in s) and (s.startswith(("/", "./", "../", "~", ".\\")) or
                                                 bool(re.match(r"^[A-Za-z]:[\\/]", s)))


def _note_text(source: str, encoding: str = "auto") -> str:
    if source == "-":
        if _stdin_is_tty():
            _err("Paste the note, then press Ctrl-D on a new line (Ctrl-Z then Enter on Windows):")
        text, message = _decode(sys.stdin.buffer.read(), encoding)
        if message:
            _err(f"standard input: {message}")
    elif _is_file(source):
        from .read import detect_encoding

        enc, message = detect_encoding(Path(source), encoding)
        if message:
            _err(message)
        text = Path(source).read_bytes().decode(enc, errors="replace").removeprefix("\ufeff")
    elif _is_dir(source):
        raise click.ClickException(f"{source}: is a folder; explain takes one note (use classify for many)")
    elif _looks_like_a_path(source):
        raise click.ClickException(f"{source}: no such file (to explain a note typed on the command line, "
                                   "put the whole note in quotes; for a file, check the name)")
    else:
        text = source
    if not text.strip():
        raise click.ClickException("the note is empty")
    return text
