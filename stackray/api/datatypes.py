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


class ResourceType(str, Enum):
    """The kinds of resource held in the registry; each resource carries its kind in `type`."""

    model = "model"
    shield = "shield"
    vector_db = "vector_db"
    dataset = "dataset"
    scoring_function = "scoring_function"
    benchmark = "benchmark"
    tool = "tool"
    tool_group = "tool_group"
