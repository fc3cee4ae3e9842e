"""Datatypes shared by every API: the API names, provider specs and resources."""

from __future__ import annotations

from enum import Enum


class Api(str, Enum):
    """The APIs of the stack. Each one is served by its own Ray Serve deployment."""

    inference = "inference"
    models = "models"
    vector_io = "vector_io"
    vector_dbs = "vector_dbs"
    safety = "safety"
    shields = "shields"
    agents = "agents"
    tool_runtime = "tool_runtime"
    tool_groups = "tool_groups"
    datasetio = "datasetio"
    datasets = "datasets"
    scoring = "scoring"
    scoring_functions = "scoring_functions"
    eval = "eval"
    benchmarks = "benchmarks"
    post_training = "post_training"
    telemetry = "telemetry"
    files = "files"
    inspect = "inspect"
    providers = "providers"
