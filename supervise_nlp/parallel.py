"""Labelling on several processes (``-j``), or on a Dask cluster, with output in input order.

Work is cut into chunks of notes; a bounded window of chunks is in flight at once, so memory
stays flat however large the input, and results are written in input order as they complete.
Each worker holds one model for its whole life: forked workers inherit the parent's (loaded
once, shared copy-on-write); spawned workers and Dask workers load it once on first use.
"""

from __future__ import annotations

import multiprocessing as mp
from collections import deque
from collections.abc import Iterable, Iterator
from functools import lru_cache
from typing import Any

from .classify import NoteLabeller, input_fields, output_record
from .read import Labelled, Note
from .textsafe import dumps  # JSON with C1 controls and bidi overrides escaped

CHUNK = 1024  # notes per unit of work on one process (the labeller batches within it by size)
POOL_CHUNK = 256  # notes per task on a pool (-j 2 and more)
_WORKER: dict[str, Any] = {}


def _chunks(items: Iterable[Any], size: int) -> Iterator[list[Any]]:
    """Chunks of ``size`` notes; rejects and passed-through records count too (up to 4x), so a
    file of bad lines cannot pile up in memory."""
    chunk: list[Any] = []
    notes = 0
    for item in items:
        chunk.append(item)
        notes += isinstance(item, Note)
        if notes >= size or len(chunk) >= 4 * size:
            yield chunk
            chunk, notes = [], 0
    if chunk:
        yield chunk


@lru_cache(maxsize=4)
def labeller_for(model_path: str | None) -> NoteLabeller:
    """The labeller for a model, loaded once per process (the CLI, a pool or a Dask worker)."""
    import gc

    from .modelio import load_model

    labeller = NoteLabeller(load_model(model_path, light=True))
    # everything alive now (modules, the model, the segmenter) lives as long as the process: keep
    # it out of the cyclic collector's passes (fewer, cheaper full collections while labelling) and
    # untouched by it in forked workers, so their copy-on-write pages stay shared
    gc.freeze()
    return labeller


def _quiet_worker() -> None:
    """A pool worker leaves stopping to the parent: Ctrl-C (sent to the whole process group) is
    ignored here, and SIGTERM (the pool's own way to end a worker) ends it at once, without the
    "Process ForkPoolWorker-1:" traceback or the parent's stop handler (inherited by fork)."""
    import signal

    signal.signal(signal.SIGINT, signal.SIG_IGN)
    for name in ("SIGTERM", "SIGHUP"):
        if hasattr(signal, name):
            signal.signal(getattr(signal, name), signal.SIG_DFL)
    if hasattr(signal, "SIGPIPE"):
        signal.signal(signal.SIGPIPE, signal.SIG_DFL)  # a closed pipe ends a worker quietly


def _init(model_path: str | None) -> None:
    _quiet_worker()
    _WORKER.setdefault("model_path", model_path)


def _worker_labeller() -> NoteLabeller:
    return _WORKER.get("labeller") or labeller_for(_WORKER.get("model_path"))


def label_notes(labeller: NoteLabeller, notes: list[Note], keep_text: bool, serialize: bool) -> list[Any]:
    """Outputs for a chunk of notes: contract dicts, or their JSON lines (cheaper to send back)."""
    texts = [x.text for x in notes]
    if not serialize:
        return [output_record(x, r, keep_text) for x, r in zip(notes, labeller.label_texts(texts))]
    # the note's fields through the safe encoder, the labels (numbers and fixed words) appended
    # as written by label_texts_json: the same line as dumps(output_record(...)), made faster
    out = []
    for x, tail in zip(notes, labeller.label_texts_json(texts)):
        head = dumps(input_fields(x, keep_text))
        out.append(f"{head[:-1]}, {tail}}}" if len(head) > 2 else f"{{{tail}}}")
    return out


def _label_in_worker(notes: list[Note], keep_text: bool, serialize: bool) -> list[Any]:
    return label_notes(_worker_labeller(), notes, keep_text, serialize)


def _merge(chunk: list[Any], results: list[Any], serialize: bool, keep_text: bool = False):
    it = iter(results)
    for x in chunk:
        if isinstance(x, Note):
            yield x, next(it)
        elif isinstance(x, Labelled):
            # already classify output: passed through, never labelled again; its text stays out
            # unless --keep-text asks for it, as for any note
            fields = x.fields if keep_text else {k: v for k, v in x.fields.items() if k != "text"}
            yield x, dumps(fields) if serialize else fields
        else:
            yield x, None


def _in_order(parts: Iterable[list[Any]], submit, window: int, serialize: bool, keep_text: bool):
    """Submit each chunk's notes, keep at most ``window`` chunks waiting, yield in input order.

    ``submit(notes)`` returns a zero-argument callable that gives the chunk's outputs.
    """
    pending: deque = deque()
    for part in parts:
        notes = [x for x in part if isinstance(x, Note)]
        pending.append((part, submit(notes) if notes else list))
        while len(pending) > window:
            part0, result = pending.popleft()
            yield from _merge(part0, result(), serialize, keep_text)
    while pending:
        part0, result = pending.popleft()
        yield from _merge(part0, result(), serialize, keep_text)


def label_records(items: Iterable[Any], labeller: NoteLabeller | None, model_path: str | None, jobs: int = 1,
                  keep_text: bool = False, chunk: int = CHUNK,
                  serialize: bool = False) -> Iterator[tuple[Any, Any]]:
    """(item, output) for every record, in input order, on ``jobs`` processes.

    The output is the contract dict (or, with ``serialize``, its JSON line), ``None`` for a reject.
    """
    lab = labeller or labeller_for(model_path)

    def here(notes: list[Note]):
        results = label_notes(lab, notes, keep_text, serialize)
        return lambda: results

    # on a pool, smaller tasks: the first is labelled here before the pool starts (to warm the
    # caches every forked worker inherits), and the last leaves the other workers idle
    parts = _chunks(items, chunk if jobs <= 1 else min(chunk, POOL_CHUNK))
    if jobs <= 1:
        yield from _in_order(parts, here, 0, serialize, keep_text)
        return
    import threading

    methods = mp.get_all_start_methods()
    # fork shares the loaded model for free, but only a single-threaded process forks safely: a lock
    # another thread holds at the fork (a server, a scheduler, a test runner's helper) stays locked
    # forever in the child. With other threads alive, workers start clean and load the model.
    single = threading.active_count() == 1
    ctx = mp.get_context("fork" if "fork" in methods and single else "spawn")
    if ctx.get_start_method() == "fork":
        _WORKER["labeller"] = lab  # inherited by the forked workers: no reload, no shipping
        # label the first chunk here: the common words' caches are then warm in every worker
        first = next(parts, None)
        if first is None:
            return
        yield from _in_order([first], here, 0, serialize, keep_text)
    try:
        with ctx.Pool(jobs, initializer=_init, initargs=(model_path,)) as pool:
            def in_pool(notes: list[Note]):
                return pool.apply_async(_label_in_worker, (notes, keep_text, serialize)).get

            yield from _in_order(parts, in_pool, 2 * jobs, serialize, keep_text)
    finally:
        _WORKER.pop("labeller", None)


# --- Dask -------------------------------------------------------------------------------------


def label_partition(records: Iterable[dict[str, Any]], model_path: str | None = None,
                    keep_text: bool = False) -> list[dict[str, Any]]:
    """Label one partition of note records (dicts with ``text``) on a Dask worker.

    The model is loaded once per worker process and cached there; only the path travels. A
    record that cannot be labelled comes back as ``{"rejected": reason, "file", "line"}``.
    """
    from .read import ReadOptions, make_note

    items = [make_note(dict(r), "<dask>", i + 1, ReadOptions()) for i, r in enumerate(records)]
    notes = [x for x in items if isinstance(x, Note)]
    results = label_notes(labeller_for(model_path), notes, keep_text, False) if notes else []
    return [out if out is not None else {"rejected": item.reason, "file": item.source, "line": item.line}
            for item, out in _merge(items, results, False, keep_text)]


def label_bag(bag, model_path: str | None = None, keep_text: bool = False):
    """The documented Dask entry point: a ``dask.bag`` of note dicts -> a bag of classify outputs.

    >>> import dask.bag as db                                          # doctest: +SKIP
    >>> out = label_bag(db.read_text("notes-*.jsonl").map(json.loads))  # doctest: +SKIP
    """
    return bag.map_partitions(label_partition, model_path=model_path, keep_text=keep_text)


def label_records_dask(items: Iterable[Any], model_path: str | None, scheduler: str | None,
                       keep_text: bool = False, chunk: int = CHUNK, window: int = 8, serialize: bool = False):
    """The ``--engine dask`` path: reading stays here (so rejects and order are exact), labelling
    runs on the cluster's workers, and a bounded window of chunks is in flight."""
    from .report_dask import DaskMap  # the one place a Dask client (or a local cluster) is made

    with DaskMap(scheduler) as cluster:
        def on_cluster(notes: list[Note]):
            return cluster.client.submit(_dask_label_notes, notes, model_path, keep_text, serialize,
                                         pure=False).result

        yield from _in_order(_chunks(items, chunk), on_cluster, window, serialize, keep_text)


def _dask_label_notes(notes: list[Note], model_path: str | None, keep_text: bool, serialize: bool) -> list[Any]:
    """Runs on a Dask worker: the model is loaded there once (cached per process) and reused."""
    return label_notes(labeller_for(model_path), notes, keep_text, serialize)
