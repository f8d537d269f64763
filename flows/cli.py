"""`hi3dgen run` (an end-to-end rerun) and `hi3dgen deploy` (the scheduled dataset refresh)."""

from __future__ import annotations

import os
import sys


def register(sub) -> None:
    p = sub.add_parser("run", help="run the pipeline end to end (DVC skips what did not change)")
    p.add_argument("--preset", default=None, help="apply presets/<name>.yaml to params.yaml first")
    p.add_argument("--until", default=None, help="stop after this stage")
    p.add_argument(
        "--set",
        dest="sets",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="change a parameter in params.yaml, e.g. --set render.views=4 (repeatable)",
    )
    p.add_argument("--no-push", action="store_true", help="skip the final `dvc push`")
    p.set_defaults(func=_run)

    d = sub.add_parser("deploy", help="serve dataset_refresh on a cron schedule (needs PREFECT_API_URL)")
    d.add_argument("--cron", default="0 3 * * *")
    d.add_argument("--name", default="dataset-refresh")
    d.set_defaults(func=_deploy)

    r = sub.add_parser("runs", help="look at MLflow runs")
    rsub = r.add_subparsers(dest="runs_command", required=True)
    c = rsub.add_parser("compare", help="params that differ and key metrics of runs")
    c.add_argument("run_ids", nargs="*", help="run ids (default: the latest top-level runs)")
    c.add_argument(
        "--last", type=int, default=None, help="latest runs when none are given (2; all with --group-by; 0: all)"
    )
    c.add_argument("--experiment", default="hi3dgen", help="the MLflow experiment (default: the pipeline's)")
    c.add_argument(
        "--group-by",
        nargs="+",
        default=(),
        metavar="PARAM",
        help="pool finished runs by these params (e.g. model.noise.enabled): mean ± std of each group",
    )
    c.set_defaults(func=_compare)

    u = sub.add_parser("ui", help="start the MLflow UI on localhost, on the training runs")
    u.add_argument("--port", type=int, default=5000)
    u.add_argument("--host", default="127.0.0.1", help="the address to listen on (default: loopback only)")
    u.set_defaults(func=_ui)


def _enter_project() -> None:
    """Export the embedded defaults before Prefect is imported (it reads its settings then)."""
    from flows import project

    os.environ.update(project.environment())
    os.chdir(project.root())


def _run(args) -> int:
    from flows import params, project

    project.preflight(project.environment())
    with project.run_lock():
        changes = params.apply(args.preset, args.sets)
        for key, value in changes.items():
            print(f"params.yaml: {key} = {value}")
        from hi3dgen import lineage

        for stage, (added, removed) in lineage.sync_dvc_deps(project.root() / "dvc.yaml", write=True).items():
            print(f"dvc.yaml: {stage} deps follow its imports: +{added or '[]'} -{removed or '[]'}")
        _enter_project()
        from flows.pipeline import end_to_end

        results = end_to_end(until=args.until, push_at_end=not args.no_push)
    print("\nstage            ran      seconds")
    for r in results:
        print(f"{r['stage']:<16} {'skipped' if r['skipped'] else 'yes':<8} {r['seconds']:>7.1f}")
    root = project.root()
    print(
        "\nWhere to look:\n"
        f"  shards:       {root / 'outputs' / 'shards'}\n"
        f"  models:       {root / 'outputs' / 'models'}\n"
        f"  metrics:      dvc metrics show   ({root / 'metrics'})\n"
        f"  MLflow UI:    hi3dgen ui   (MLFLOW_TRACKING_URI={os.environ['MLFLOW_TRACKING_URI']})"
    )
    if results and "norld" in {r["stage"] for r in results}:
        print(f"  image->mesh:  hi3dgen generate --from-run {results[0]['parent_run_id']} --out mesh.glb IMAGE")
    print(
        "  record it:    git add params.yaml dvc.lock metrics && git commit -m 'run: ...'\n"
        "                then `dvc metrics diff HEAD~1` and `dvc params diff HEAD~1` compare it with the last one"
    )
    return 0


def _deploy(args) -> int:
    if not os.environ.get("PREFECT_API_URL"):
        print(
            "hi3dgen deploy: PREFECT_API_URL is not set. Start a server with `prefect server start` "
            "and export PREFECT_API_URL=http://127.0.0.1:4200/api",
            file=sys.stderr,
        )
        return 2
    from flows import project

    project.preflight(project.environment())
    _enter_project()
    from flows.pipeline import dataset_refresh

    print(f"serving deployment 'dataset_refresh/{args.name}' on cron {args.cron!r}", flush=True)
    dataset_refresh.serve(name=args.name, cron=args.cron)
    return 0


def _compare(args) -> int:
    _enter_project()
    from hi3dgen import tracking

    print(tracking.compare(args.run_ids, args.last, args.experiment, tuple(args.group_by)))
    return 0


def _ui(args) -> int:
    """`mlflow ui` on the project's store. MLflow 3 opens on its GenAI view unless the page's URL
    asks for `workflowType=machine_learning` (the "Model training" toggle): print that URL."""
    import socket

    try:  # mlflow ui exits 0 when it cannot listen: check the address first
        socket.create_server((args.host, args.port)).close()
    except OSError as exc:
        print(
            f"hi3dgen ui: cannot listen on {args.host}:{args.port} ({exc.strerror}); is another UI "
            "running there? Choose another port with --port",
            file=sys.stderr,
        )
        return 2
    _enter_project()
    from hi3dgen import tracking

    uri = tracking.tracking_uri()
    url = f"http://{args.host}:{args.port}/#/experiments/{tracking.setup()}?workflowType=machine_learning"
    print(f"MLflow UI for {uri}: the training runs are at {url}", flush=True)
    # Its job runner (a dozen processes) only runs GenAI judges and scorers: off unless asked for.
    os.environ.setdefault("MLFLOW_SERVER_ENABLE_JOB_EXECUTION", "false")
    os.execvp(
        sys.executable,
        [
            sys.executable,
            "-m",
            "mlflow",
            "ui",
            "--backend-store-uri",
            uri,
            "--host",
            args.host,
            "--port",
            str(args.port),
            "--workers",
            "1",
        ],
    )
