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

from .classify import NoteLabeller, classify_stream, output_record
from .read import Labelled, Note

CHUNK = 256
_WORKER: dict[str, Any] = {}


def _chunks(items: Iterable[Any], size: int) -> Iterator[list[Any]]:
    chunk: list[Any] = []
    notes = 0
    for item in items:
        chunk.append(item)
        notes += isinstance(item, Note)
        if notes >= size:
            yield chunk
            chunk, notes = [], 0
    if chunk:
        yield chunk


@lru_cache(maxsize=4)
def _labeller_for(model_path: str | None) -> NoteLabeller:
    from .modelio import load_model

    return NoteLabeller(load_model(model_path))


def _init(model_path: str | None) -> None:
    _WORKER.setdefault("model_path", model_path)


def _label_texts(texts: list[str]) -> list[dict[str, Any]]:
    labeller = _WORKER.get("labeller") or _labeller_for(_WORKER.get("model_path"))
    return list(labeller.label_texts(texts))


def _merge(chunk: list[Any], results: list[dict[str, Any]], keep_text: bool):
    it = iter(results)
    for x in chunk:
        if isinstance(x, Note):
            yield x, output_record(x, next(it), keep_text)
        elif isinstance(x, Labelled):
            yield x, x.fields
        else:
            yield x, None


def label_records(items: Iterable[Any], labeller: NoteLabeller | None, model_path: str | None, jobs: int = 1,
                  keep_text: bool = False, chunk: int = CHUNK) -> Iterator[tuple[Any, dict[str, Any] | None]]:
    """(item, output) for every record, in input order, on ``jobs`` processes."""
    if jobs <= 1:
        yield from classify_stream(items, labeller or _labeller_for(model_path), keep_text, batch_size=chunk)
        return
    methods = mp.get_all_start_methods()
    ctx = mp.get_context("fork" if "fork" in methods else "spawn")
    if ctx.get_start_method() == "fork" and labeller is not None:
        _WORKER["labeller"] = labeller  # inherited by the forked workers: no reload, no shipping
    try:
        with ctx.Pool(jobs, initializer=_init, initargs=(model_path,)) as pool:
            window: deque = deque()
            for part in _chunks(items, chunk):
                texts = [x.text for x in part if isinstance(x, Note)]
                window.append((part, pool.apply_async(_label_texts, (texts,)) if texts else None))
                while len(window) > 2 * jobs:
                    yield from _drain(window.popleft(), keep_text)
            while window:
                yield from _drain(window.popleft(), keep_text)
    finally:
        _WORKER.pop("labeller", None)


def _drain(entry, keep_text: bool):
    part, pending = entry
    yield from _merge(part, pending.get() if pending is not None else [], keep_text)


# --- Dask -------------------------------------------------------------------------------------


def label_partition(records: Iterable[dict[str, Any]], model_path: str | None = None,
                    keep_text: bool = False) -> list[dict[str, Any]]:
    """Label one partition of note records (dicts with ``text``) on a Dask worker.

    The model is loaded once per worker process and cached there; only the path travels.
    """
    from .read import ReadOptions, Reject, make_note

    recs = list(records)
    notes = [make_note(dict(r), "<dask>", i + 1, ReadOptions()) for i, r in enumerate(recs)]
    texts = [n.text for n in notes if isinstance(n, Note)]
    results = iter(_labeller_for(model_path).label_texts(texts)) if texts else iter(())
    out = []
    for n in notes:
        if isinstance(n, Note):
            out.append(output_record(n, next(results), keep_text))
        elif isinstance(n, Labelled):
            out.append(n.fields)
        elif isinstance(n, Reject):
            out.append({"rejected": n.reason, **{k: v for k, v in n.to_dict().items() if k != "reason"}})
    return out


def label_bag(bag, model_path: str | None = None, keep_text: bool = False):
    """The documented Dask entry point: a ``dask.bag`` of note dicts -> a bag of classify outputs.

    >>> import dask.bag as db                                          # doctest: +SKIP
    >>> out = label_bag(db.read_text("notes-*.jsonl").map(json.loads))  # doctest: +SKIP
    """
    return bag.map_partitions(label_partition, model_path=model_path, keep_text=keep_text)


def label_records_dask(items: Iterable[Any], model_path: str | None, scheduler: str | None,
                       keep_text: bool = False, chunk: int = CHUNK, window: int = 8):
    """The ``--engine dask`` path: reading stays here (so rejects and order are exact), labelling
    runs on the cluster's workers, and a bounded window of chunks is in flight."""
    from dask.distributed import Client, LocalCluster

    cluster = None
    if scheduler:
        client = Client(scheduler)
    else:
        cluster = LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None)
        client = Client(cluster)
    try:
        pending: deque = deque()
        for part in _chunks(items, chunk):
            texts = [x.text for x in part if isinstance(x, Note)]
            fut = client.submit(_dask_label_texts, texts, model_path, pure=False) if texts else None
            pending.append((part, fut))
            while len(pending) > window:
                part0, fut0 = pending.popleft()
                yield from _merge(part0, fut0.result() if fut0 is not None else [], keep_text)
        while pending:
            part0, fut0 = pending.popleft()
            yield from _merge(part0, fut0.result() if fut0 is not None else [], keep_text)
    finally:
        client.close()
        if cluster is not None:
            cluster.close()


def _dask_label_texts(texts: list[str], model_path: str | None) -> list[dict[str, Any]]:
    return list(_labeller_for(model_path).label_texts(texts))
