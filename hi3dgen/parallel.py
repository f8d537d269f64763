"""Fan-out of per-item work over Ray (local or a cluster) or local worker processes, and the resumable
stage loop.

`run_stage` is the one loop every per-asset stage uses: it claims its output folder (refusing one
that holds files it did not write), skips what the journal says is done under the same config and
code, runs the rest (Ray tasks or local processes, with bounded in-flight work and retries of lost
workers), turns any
failure of one item into a `rejected` row with the reason, and writes the sorted manifest. One bad
asset never fails the stage.
"""

from __future__ import annotations

import atexit
import collections
import contextlib
import dataclasses
import multiprocessing as mp
import os
import pickle
import sys
import time
import traceback
from collections.abc import Callable, Iterable, Iterator
from multiprocessing.connection import wait
from pathlib import Path
from typing import Annotated

from tqdm import tqdm

from hi3dgen import io, lineage
from hi3dgen import manifest as mf
from hi3dgen.config import flag

KINDS = ("ray", "process", "inline")


@dataclasses.dataclass(frozen=True)
class ExecutorConfig:
    """Where per-item work runs. `ray`: Ray tasks (a local Ray unless `address` names a cluster);
    `process`: a pool of local worker processes (machines without Ray, such as the GPU machine);
    `inline`: in this process, one item after another (debugging)."""

    kind: Annotated[str, flag("--executor")] = "ray"  # ray | process | inline
    address: Annotated[str | None, flag("--ray-address")] = None  # a Ray cluster; None = a local Ray
    workers: Annotated[int | None, flag("--workers")] = None  # local Ray CPUs or worker processes; None = all
    cpus_per_task: float = 1.0
    gpus_per_task: float = 0.0
    max_in_flight: int = 64
    retries: int = 2  # re-runs of an item whose worker died (OOM kill, lost node)
    start_method: str = "forkserver"  # of `process` workers: both are CUDA-safe, unlike fork
    # each `process` worker on one core of its own (round robin over this process's cores): the
    # native libraries that size their thread pools by the cores a process may use (manifold3d's
    # and Embree's TBB) then run one thread per worker instead of one per core in every worker
    pin_workers: bool = True

    def __post_init__(self):
        if self.kind not in KINDS:
            raise ValueError(f"executor kind must be one of {', '.join(KINDS)}, not {self.kind!r}")
        if self.start_method not in ("forkserver", "spawn"):
            raise ValueError(f"start_method must be 'forkserver' or 'spawn', not {self.start_method!r}")
        if self.max_in_flight < 1 or (self.workers is not None and self.workers < 1):
            raise ValueError("max_in_flight and workers must be at least 1")


def init_ray(cfg: ExecutorConfig, **init_kwargs):
    """Join the Ray cluster at `cfg.address` (or RAY_ADDRESS), else start a local Ray whose servers
    all listen on loopback only; `init_kwargs` go to `ray.init` (a runtime_env, say)."""
    import ray
    from ray._private import ray_constants

    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    os.environ.setdefault("RAY_ACCEL_ENV_VAR_OVERRIDE_ON_ZERO", "0")
    if not ray.is_initialized():
        address = cfg.address or os.environ.get("RAY_ADDRESS")
        kwargs = dict(ignore_reinit_error=True, include_dashboard=False, log_to_driver=True, **init_kwargs)
        if address:
            ray.init(address=address, **kwargs)
        else:
            # Ray's servers (GCS, raylet, workers, agents, metrics) bind to loopback only when the
            # node IP is loopback, else to all interfaces. On Linux `ray.init` turns a loopback
            # `_node_ip_address` back into the machine's IP (services.resolve_ip_for_localhost);
            # loopback is its choice only with clusters off, Ray's default on macOS and Windows
            # (RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0, read into this constant when ray is imported).
            ray_constants.ENABLE_RAY_CLUSTER = False
            ray.init(num_cpus=cfg.workers or os.cpu_count(), **kwargs)
    return ray


def _error_text(exc: BaseException) -> str:
    cause = getattr(exc, "cause", None) or exc  # RayTaskError wraps the item's own exception
    text = f"{type(cause).__name__}: {cause}".strip()
    return " ".join(text.split())[:500]


def progress(desc: str, total: int) -> tqdm:
    """A progress bar on stderr, refreshed at most once a second (log readers see one line per
    refresh: Python splits a pipe's text on the carriage returns tqdm writes)."""
    return tqdm(
        total=total, desc=f"[{desc}]", file=sys.stderr, mininterval=1.0, smoothing=0.1, dynamic_ncols=False, ncols=100
    )


def _apply(fn: Callable, item):
    """The Ray task: `ray.remote` takes plain functions only, `fn` may be a functools.partial."""
    return fn(item)


def fan_out(
    fn: Callable, items: Iterable, cfg: ExecutorConfig, desc: str = "work"
) -> Iterator[tuple[object, bool, object]]:
    """Yield `(item, ok, result_or_error_text)` as items finish, in completion order."""
    items = list(items)
    with progress(desc, len(items)) as bar:
        yield from _fan_out(fn, items, cfg, bar)


def _fan_out(fn: Callable, items: list, cfg: ExecutorConfig, bar: tqdm):
    if cfg.kind == "inline" or not items:
        for item in items:
            try:
                out = (item, True, fn(item))
            except Exception as exc:  # one bad item never fails the stage
                traceback.print_exc(file=sys.stderr)
                out = (item, False, _error_text(exc))
            bar.update()
            yield out
        return
    if cfg.kind == "process":
        yield from _fan_out_processes(fn, items, cfg, bar)
        return
    ray = init_ray(cfg)
    task = ray.remote(num_cpus=cfg.cpus_per_task, num_gpus=cfg.gpus_per_task, max_retries=cfg.retries)(_apply)
    fn_ref = ray.put(fn)
    pending: dict = {}
    queue = iter(items)
    while True:
        while len(pending) < cfg.max_in_flight:
            item = next(queue, None)
            if item is None:
                break
            pending[task.remote(fn_ref, item)] = item
        if not pending:
            return
        ready, _ = ray.wait(list(pending), num_returns=1)
        ref = ready[0]
        item = pending.pop(ref)
        try:
            out = (item, True, ray.get(ref))
        except Exception as exc:
            out = (item, False, _error_text(exc))
        bar.update()
        yield out


# One thread per worker process for the native libraries that read these (numpy's BLAS, OpenMP):
# the processes already fill the cores.
THREAD_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")


@contextlib.contextmanager
def _single_threaded_env():
    """THREAD_VARS at 1 (unless set) while a worker, or the forkserver it forks from, starts: they
    must be in the environment before the child imports numpy, which spawn and forkserver children
    do while loading the main module, before the worker function runs."""
    added = [var for var in THREAD_VARS if var not in os.environ]
    os.environ.update(dict.fromkeys(added, "1"))
    try:
        yield
    finally:
        for var in added:
            del os.environ[var]


def _process_worker(conn, core: int | None) -> None:
    """A `process` worker (on `core` alone, unless None): runs the function it is sent (pickled,
    unpickled again only when it changes) on each item until it is sent None."""
    if core is not None:
        os.sched_setaffinity(0, {core})
    fn_bytes, fn = None, None
    while (job := conn.recv()) is not None:
        index, job_fn, item = job
        if job_fn != fn_bytes:
            fn_bytes, fn = job_fn, pickle.loads(job_fn)
        try:
            out = (index, True, fn(item))
        except Exception as exc:  # one bad item never fails the stage
            traceback.print_exc(file=sys.stderr)
            out = (index, False, _error_text(exc))
        try:
            conn.send(out)
        except Exception as exc:  # a result that does not pickle
            conn.send((index, False, _error_text(exc)))


# Idle `process` workers (connection, process, core) by start method and pinning, kept for the
# life of this process: every fan-out (each stage of a run, the shard stage's two steps) reuses
# them, so a worker imports torch, builds its CUDA context and its cached render backend once per
# run instead of once per stage.
_IDLE: dict[tuple[str, bool], list] = {}


def _stop(workers: list, kill: bool = False) -> None:
    for conn, *_ in workers:
        if not kill:
            try:
                conn.send(None)
            except OSError:
                pass
    for conn, proc, *_ in workers:
        proc.join(timeout=0 if kill else 5)
        if proc.is_alive():
            proc.terminate()
            proc.join()
        conn.close()


@atexit.register
def _stop_idle() -> None:
    for method in list(_IDLE):
        _stop(_IDLE.pop(method))


def _fan_out_processes(fn: Callable, items: list, cfg: ExecutorConfig, bar: tqdm):
    """`items` over `cfg.workers` local processes, one item at a time each (so at most that many in
    flight, and a dead process names the item it held). That item is run again up to `cfg.retries`
    times in a fresh process, then yields an error naming the exit code. Workers left idle go back
    to `_IDLE`; a worker still busy when the caller stops listening is ended."""
    ctx = mp.get_context(cfg.start_method)
    fn_bytes = pickle.dumps(fn)
    queue = collections.deque(enumerate(items))
    attempts: collections.Counter = collections.Counter()
    busy: dict = {}  # connection -> (process, index of the item it runs, core)
    pool = _IDLE.setdefault((cfg.start_method, cfg.pin_workers), [])
    cores = sorted(os.sched_getaffinity(0))
    wanted = min(cfg.workers or len(cores), cfg.max_in_flight, len(items))
    idle = [w for w in pool[:wanted] if w[1].is_alive()]
    del pool[:wanted]

    def start():
        core = None
        if cfg.pin_workers:  # the core with the fewest of this fan-out's workers on it
            taken = collections.Counter(w[2] for w in [*idle, *busy.values()])
            core = min(cores, key=lambda c: (taken[c], c))
        parent, child = ctx.Pipe()
        proc = ctx.Process(target=_process_worker, args=(child, core), daemon=True)
        with _single_threaded_env():
            proc.start()
        child.close()
        return parent, proc, core

    try:
        while len(idle) < wanted:
            idle.append(start())
        while queue or busy:
            while queue and idle:
                conn, proc, core = idle.pop()
                index = queue[0][0]
                try:
                    conn.send((index, fn_bytes, items[index]))
                except OSError:  # a kept worker that died while idle
                    _stop([(conn, proc)], kill=True)
                    idle.append(start())
                    continue
                queue.popleft()
                busy[conn] = (proc, index, core)
            ready = set(wait([*busy, *(p.sentinel for p, *_ in busy.values())]))
            for conn, (proc, index, core) in list(busy.items()):
                dead = proc.sentinel in ready
                if conn in ready or conn.poll():
                    try:
                        done, ok, result = conn.recv()
                    except EOFError:  # died while sending
                        dead = True
                    else:
                        del busy[conn]
                        idle.append((conn, proc, core))
                        bar.update()
                        yield items[done], ok, result
                        continue
                if dead:
                    proc.join()
                    del busy[conn]
                    conn.close()
                    attempts[index] += 1
                    if attempts[index] > cfg.retries:
                        bar.update()
                        yield items[index], False, f"worker process died (exit code {proc.exitcode})"
                    else:
                        queue.appendleft((index, items[index]))
                    idle.append(start())
    finally:
        pool.extend(w for w in idle if w[1].is_alive())
        _stop([(c, p) for c, (p, *_) in busy.items()], kill=True)


# Rejections that may not happen again (a lost worker, the network): a rerun tries these items
# again instead of trusting the journal. A timeout or a crash under the loader's limits is final
# for the same code and limits (both are in the fingerprint): a rerun with other limits retries it.
TRANSIENT_REASONS = ("error", "download_failed")
OUTPUT_KEYS = ("path", "dir")  # row fields naming an item's output (a file, a folder) in OUT


def _transient(row: dict) -> bool:
    return row["status"] == "rejected" and row.get("reason", "").split(":")[0] in TRANSIENT_REASONS


def _outputs_exist(out_dir: Path, row: dict) -> bool:
    """An accepted row is trusted only while the outputs it names are there."""
    return row["status"] != "accepted" or all((out_dir / row[k]).exists() for k in OUTPUT_KEYS if row.get(k))


def _entry_id(name: str) -> str:
    return name.split(".")[0]


def run_stage(
    name: str,
    out_dir: str | os.PathLike,
    items: list[dict],
    work: Callable[[dict], dict],
    *,
    config: dict,
    executor: ExecutorConfig,
    output_dirs: tuple[str, ...] = (),
    extra_files: tuple[str, ...] = (),
    inputs: tuple[str | os.PathLike, ...] = (),
    finalize: Callable[[list[dict]], list[dict]] | None = None,
) -> list[dict]:
    """Run `work(item) -> manifest row` for each item (a JSON-able dict with at least `asset_id`,
    `source`, `input_path`), resuming from the journal, and write `out_dir/manifest.jsonl`.
    An item is redone when `config`, the code `work` runs (`hi3dgen.lineage.code_digest` of its
    module) or the item itself changed (put its input's hash in it), when its last rejection was
    transient (TRANSIENT_REASONS), or when an output its row names is gone.

    `out_dir` holds only what the stage writes: the manifest, its journal, `extra_files`, and in
    each of `output_dirs` one entry per asset named `<asset_id>` or `<asset_id>.*`; an `out_dir`
    that holds anything else or overlaps one of `inputs` is refused before anything is touched.
    `work` writes its outputs atomically before it returns its row; entries of the stage's own
    assets that no accepted row owns any more are removed. `finalize(rows) -> rows` sees all rows
    before that (decisions that need every asset, such as duplicates).
    """
    t0 = time.monotonic()
    ids = [it["asset_id"] for it in items]
    dupes = sorted(k for k, n in collections.Counter(ids).items() if n > 1)
    if dupes:
        raise ValueError(f"{name}: duplicate asset_id among inputs: {dupes[:5]}")
    out_dir = Path(out_dir)
    journal = mf.Journal(
        out_dir, mf.fingerprint({**config, "code": lineage.code_digest(lineage.function_module(work))})
    )
    previous = journal.rows()
    old_manifest = mf.read_jsonl(out_dir / mf.MANIFEST)
    known = set(ids) | {r["asset_id"] for r in previous} | {r["asset_id"] for r in old_manifest}
    bookkeeping = {mf.MANIFEST, mf.JOURNAL, *extra_files}

    def ours(rel: str) -> bool:
        parts = rel.split("/")
        return rel in bookkeeping or (len(parts) > 1 and parts[0] in output_dirs and _entry_id(parts[1]) in known)

    out_dir = io.claim_dir(out_dir, name, ours, inputs)
    io.remove_temp_files(out_dir)
    done = journal.done(previous)
    item_fps = {it["asset_id"]: mf.fingerprint(it) for it in items}
    rows = {
        k: done[k][1]
        for k in ids
        if k in done
        and done[k][0] == item_fps[k]
        and not _transient(done[k][1])
        and _outputs_exist(out_dir, done[k][1])
    }
    todo = [it for it in items if it["asset_id"] not in rows]
    if rows:
        print(f"[{name}] resuming: {len(rows)} done, {len(todo)} to go", file=sys.stderr)
    with journal:
        for item, ok, result in fan_out(work, todo, executor, desc=name):
            if ok:
                row = result
            else:
                row = {
                    "asset_id": item["asset_id"],
                    "source": item.get("source", "unknown"),
                    "input_path": item.get("input_path"),
                    "status": "rejected",
                    "reason": f"error: {result}",
                }
            mf.check_row(row)
            journal.append(row, item_fps[row["asset_id"]])
            rows[row["asset_id"]] = row
    ordered = [rows[k] for k in ids]
    if finalize is not None:
        ordered = finalize(ordered)
    keep = {r["asset_id"] for r in ordered if r["status"] == "accepted"}
    for sub in output_dirs:
        for p in (out_dir / sub).glob("*") if (out_dir / sub).exists() else []:
            if _entry_id(p.name) in known and _entry_id(p.name) not in keep:
                io.remove_tree(p)
    mf.write_manifest(out_dir, ordered)
    summary = mf.summarize(ordered)
    summary["seconds"] = round(time.monotonic() - t0, 2)
    print_summary(name, summary)
    return ordered


def print_summary(name: str, summary: dict) -> None:
    print(
        f"[{name}] {summary['total']} items: {summary['accepted']} accepted, "
        f"{summary['rejected']} rejected in {summary.get('seconds', 0):.1f}s",
        flush=True,
    )
    for reason, n in summary["rejected_by_reason"].items():
        print(f"[{name}]   rejected {n} x {reason}", flush=True)


def add_executor_args(parser) -> None:
    g = parser.add_argument_group("executor")
    g.add_argument(
        "--executor",
        choices=KINDS,
        default="ray",
        help="ray: fan out over Ray tasks (default); process: local worker processes; inline: one item after "
        "another here",
    )
    g.add_argument("--ray-address", default=None, help="a Ray cluster address (default: local Ray)")
    g.add_argument(
        "--workers", type=int, default=None, help="CPUs of the local Ray, or worker processes (default: all)"
    )


def executor_from_args(args, **overrides) -> ExecutorConfig:
    return ExecutorConfig(kind=args.executor, address=args.ray_address, workers=args.workers, **overrides)
