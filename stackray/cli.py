"""The `stackray` command."""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
import time
from typing import Any

from stackray import __version__
from stackray.api.errors import ConfigError

APP_NAME = "stackray"


def _fail(message: str, code: int = 2) -> int:
    print(f"stackray: {message}", file=sys.stderr)
    return code


def cmd_run(args: argparse.Namespace) -> int:
    from stackray.deployments.app import build_app_from_config, resolved_config

    try:
        stack, raw = resolved_config(
            {"config": args.config, "port": args.port, "data_dir": args.data_dir}
        )
    except ConfigError as e:
        return _fail(f"invalid config:\n{e}")
    if args.host:
        stack.server.host = args.host
        raw.setdefault("server", {})["host"] = args.host

    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    if args.log_level:
        # Replicas of a local instance inherit the environment (see deployments/logs.py).
        os.environ["STACKRAY_LOG_LEVEL"] = args.log_level
    if not os.environ.get("RAY_ADDRESS"):
        # Measured in bench/gateway_overhead.py: ~10-20% more requests/s through the stack.
        # Replicas of a local instance inherit it; on a cluster set it where Ray starts.
        os.environ.setdefault("RAY_SERVE_THROUGHPUT_OPTIMIZED", "1")
        # With it, every replica otherwise waits ~30 s for direct-ingress clients to drain
        # on shutdown; a local stack stops at Ctrl-C in a few seconds instead.
        os.environ.setdefault("RAY_SERVE_DIRECT_INGRESS_MIN_DRAINING_PERIOD_S", "1")
    import ray
    from ray import serve

    started = time.monotonic()
    address = os.environ.get("RAY_ADDRESS")
    ray.init(
        address=address or None,
        include_dashboard=args.dashboard,
        configure_logging=True,
        log_to_driver=True,
    )
    print(f"ray: {'joined ' + address if address else 'started a local instance'}", flush=True)
    serve.start(http_options={"host": stack.server.host, "port": stack.server.port})
    app = build_app_from_config(stack, raw)
    stop = threading.Event()

    def _on_signal(signum: int, frame: Any) -> None:
        stop.set()

    signal.signal(signal.SIGINT, _on_signal)
    signal.signal(signal.SIGTERM, _on_signal)
    try:
        serve.run(app, name=APP_NAME, route_prefix="/", blocking=False)
        elapsed = time.monotonic() - started
        host = "localhost" if stack.server.host in ("0.0.0.0", "::") else stack.server.host
        print(
            f"stackray {__version__}: distribution {stack.image_name!r} ready in {elapsed:.1f}s",
            flush=True,
        )
        status = serve.status().applications.get(APP_NAME)
        if status is not None:
            for name, dep in status.deployments.items():
                replicas = sum(dep.replica_states.values()) if dep.replica_states else 0
                print(
                    f"  deployment {name}: {dep.status.value} ({replicas} replica(s))", flush=True
                )
        print(
            f"serving http://{host}:{stack.server.port}  (APIs: {', '.join(a.value for a in stack.apis)})",
            flush=True,
        )
        print("press Ctrl-C to stop", flush=True)
        while not stop.wait(1.0):
            pass
        print("stopping ...", flush=True)
    finally:
        try:
            # Deleting the app drains its replicas. On our own instance, ray.shutdown()
            # then ends Serve's controller and proxies with everything else: serve.shutdown()
            # kills the controller while its graceful_shutdown task runs, which the raylet
            # reports as a failed task "with infinite retries remaining".
            serve.delete(APP_NAME)
        finally:
            ray.shutdown()
    return 0


def cmd_check(args: argparse.Namespace) -> int:
    from stackray.deployments.app import resolved_config

    try:
        stack, _ = resolved_config({"config": args.config})
    except ConfigError as e:
        return _fail(f"invalid config:\n{e}")
    if not args.skip_host_checks:
        from stackray.runtime.provider_config import check_hosts

        try:
            check_hosts(stack)
        except ConfigError as e:
            return _fail(f"cannot run here:\n{e}\n(--skip-host-checks validates the config alone)")
    print(f"{stack.image_name}: ok ({', '.join(a.value for a in stack.apis)})")
    return 0


def cmd_providers(args: argparse.Namespace) -> int:
    from stackray.providers.registry import BUILTIN_PROVIDERS

    print(f"{'API':<14} {'PROVIDER TYPE':<34} {'RUNS IN':<15} DESCRIPTION")
    for spec in BUILTIN_PROVIDERS:
        where = f"{spec.deployment}-<id>" if spec.deployment else "in-process"
        print(f"{spec.api.value:<14} {spec.provider_type:<34} {where:<15} {spec.description}")
    return 0


def cmd_serve_config(args: argparse.Namespace) -> int:
    import yaml

    from stackray.deployments.app import resolved_config

    try:
        stack, _ = resolved_config({"config": args.config})
    except ConfigError as e:
        return _fail(f"invalid config:\n{e}")
    doc = {
        "proxy_location": "EveryNode",
        "http_options": {"host": stack.server.host, "port": stack.server.port},
        "applications": [
            {
                "name": APP_NAME,
                "route_prefix": "/",
                "import_path": "stackray.deployments.app:build_app",
                "args": {"config": args.config},
            }
        ],
    }
    sys.stdout.write(yaml.safe_dump(doc, sort_keys=False))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="stackray",
        description="The Llama Stack APIs served on Ray Serve.",
    )
    parser.add_argument("--version", action="version", version=f"stackray {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    run = sub.add_parser(
        "run", help="start a stack on a local Ray instance (or the cluster at RAY_ADDRESS)"
    )
    run.add_argument(
        "config",
        nargs="?",
        default="local",
        help="run config file or distribution name (default: local)",
    )
    run.add_argument(
        "--port",
        type=int,
        default=None,
        help="HTTP port (default: server.port of the config, 8321)",
    )
    run.add_argument(
        "--host", default=None, help="address to bind (default: server.host of the config, 0.0.0.0)"
    )
    run.add_argument(
        "--data-dir", default=None, help="state directory (default: ~/.stackray/<image_name>)"
    )
    run.add_argument(
        "--log-level",
        choices=["debug", "info", "warning", "error"],
        default=None,
        help="level of stackray's log lines in every replica (default: STACKRAY_LOG_LEVEL, "
        "else the telemetry config's log_level, else info: one line per request error, with "
        "its status and trace id)",
    )
    run.add_argument(
        "--dashboard",
        action="store_true",
        help="also start the Ray dashboard (local instance only)",
    )
    run.set_defaults(func=cmd_run)

    check = sub.add_parser("check", help="validate a run config and exit")
    check.add_argument("config", help="run config file or distribution name")
    check.add_argument(
        "--skip-host-checks",
        action="store_true",
        help="do not check that this machine can run the providers (GPUs, packages)",
    )
    check.set_defaults(func=cmd_check)

    providers = sub.add_parser("providers", help="list the built-in providers")
    providers.set_defaults(func=cmd_providers)

    serve_config = sub.add_parser(
        "serve-config", help="print a Ray Serve config file for `serve deploy`"
    )
    serve_config.add_argument(
        "config", nargs="?", default="local", help="run config file or distribution name"
    )
    serve_config.set_defaults(func=cmd_serve_config)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 0
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())
