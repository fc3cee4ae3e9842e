"""The Ray connection of a batch job (`stackray.jobs.ingest`, `stackray.jobs.eval`)."""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable
from typing import Any


def run_on_ray(args: argparse.Namespace, job: Callable[[argparse.Namespace], Any]) -> Any:
    """`job(args)` with Ray connected: the stack's cluster in handle mode (`auto`), or any
    (a new local one) with `--url`. A connection this call made is closed afterwards."""
    import ray

    owns_ray = False
    if not ray.is_initialized():
        address = args.ray_address or os.environ.get("RAY_ADDRESS")
        if address is None and not args.url:
            address = "auto"
        ray.init(address=address, log_to_driver=False)
        owns_ray = True
    try:
        return job(args)
    finally:
        if owns_ray:
            ray.shutdown()
