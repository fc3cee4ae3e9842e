"""Vector IO providers in-process: insert throughput, query latency/QPS and recall@10.

For each size N (default 10,000 and 50,000) and each provider config (faiss flat, the
baseline; faiss HNSW; faiss IVF; sqlite-vec), in one process and one run:
- insert N pre-embedded 384-d chunks in batches of 100 (`insert_chunks`, durable: each
  batch is committed to disk before it returns); chunks/s, and the mean time of the first
  and the last ten batches (is the cost linear in the batch, not in the collection?);
- 200 vector queries (k=10), one at a time: p50/p99 latency, QPS, and recall@10 against
  exact search (numpy);
- 50 keyword (BM25) queries: p50.
Then the router path as a client sees it: `query_chunks` with a text query through the
VectorIO router, embedding the query with the real all-MiniLM-L6-v2 (sentence-transformers
in-process), over faiss flat and HNSW at the largest N.

Vectors are unit-normalized Gaussian noise around 1,000 random centres (clustered, as
text embeddings are; uniform noise in 384 dimensions is harder for ANN indexes than any
real data). Ratios are against faiss flat measured in the same run.

    python bench/vector_io.py [--quick] [--json PATH] [--sizes 10000 50000] [--queries 200]
"""

from __future__ import annotations

import asyncio
import tempfile
import time
from pathlib import Path
from typing import Any

import _common as c
import numpy as np

DIM = 384
BATCH = 100
K = 10
CONFIGS: dict[str, tuple[str, dict[str, Any]]] = {
    "faiss flat": ("inline::faiss", {}),
    "faiss hnsw": ("inline::faiss", {"index_type": "hnsw"}),
    "faiss ivf": ("inline::faiss", {"index_type": "ivf"}),
    "sqlite-vec": ("inline::sqlite-vec", {}),
}
WORDS = "ray serve faiss vector index query chunk model cluster replica gpu text search".split()


def make_vectors(n: int, rng: np.random.Generator, centres: np.ndarray) -> np.ndarray:
    picks = rng.integers(0, len(centres), size=n)
    # Noise of norm ~0.7 around unit centres.
    noise = rng.normal(scale=0.7 / np.sqrt(DIM), size=(n, DIM))
    vectors = (centres[picks] + noise).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors


def make_chunks(vectors: np.ndarray, rng: np.random.Generator) -> list[Any]:
    from stackray.api.vector_io import Chunk

    return [
        Chunk(
            content=f"chunk {i}: " + " ".join(rng.choice(WORDS, size=12)),
            metadata={"chunk_id": f"c{i}", "document_id": f"d{i // 10}"},
            embedding=v.tolist(),
        )
        for i, v in enumerate(vectors)
    ]


async def build_provider(provider_type: str, config: dict[str, Any], data_dir: Path) -> Any:
    from stackray.api.datatypes import Api
    from stackray.runtime.config import Provider, parse_config
    from stackray.runtime.resolver import instantiate_provider

    entry = {"provider_id": "p", "provider_type": provider_type, "config": config}
    stack = parse_config(
        {
            "version": 2,
            "image_name": "bench",
            "apis": ["vector_io", "inference"],
            "providers": {"vector_io": [entry]},
            "storage": {"data_dir": str(data_dir)},
        }
    )
    return await instantiate_provider(Api.vector_io, Provider(**entry), stack)


async def measure_provider(
    name: str,
    chunks: list[Any],
    vectors: np.ndarray,
    queries: np.ndarray,
    exact: np.ndarray,
    data_dir: Path,
) -> dict[str, Any]:
    from stackray.api.vector_io import VectorDB

    provider_type, config = CONFIGS[name]
    provider = await build_provider(provider_type, config, data_dir)
    vdb = VectorDB(
        identifier="bench",
        provider_resource_id="bench",
        provider_id="p",
        embedding_model="m",
        embedding_dimension=DIM,
    )
    await provider.register_vector_db(vdb)
    batch_s: list[float] = []
    started = time.perf_counter()
    for i in range(0, len(chunks), BATCH):
        t = time.perf_counter()
        await provider.insert_chunks(vdb, chunks[i : i + BATCH])
        batch_s.append(time.perf_counter() - t)
    insert_s = time.perf_counter() - started

    latencies: list[float] = []
    recalls: list[float] = []
    for q, truth in zip(queries, exact, strict=True):
        t = time.perf_counter()
        hits = await provider.query_vector(vdb, q.tolist(), K, -1.0)
        latencies.append(time.perf_counter() - t)
        got = {int(h.chunk.metadata["chunk_id"][1:]) for h in hits}
        recalls.append(len(got & set(truth.tolist())) / K)
    kw: list[float] = []
    rng = np.random.default_rng(3)
    await provider.query_keyword(vdb, "warm up", K, 0.0)  # faiss builds its BM25 index here
    for _ in range(50):
        text = " ".join(rng.choice(WORDS, size=3))
        t = time.perf_counter()
        await provider.query_keyword(vdb, text, K, 0.0)
        kw.append(time.perf_counter() - t)
    await provider.shutdown()
    return {
        "insert_chunks_per_s": len(chunks) / insert_s,
        "insert_total_s": insert_s,
        "first_batches_ms": float(np.mean(batch_s[:10]) * 1000),
        "last_batches_ms": float(np.mean(batch_s[-10:]) * 1000),
        "query_p50_ms": c.percentile(latencies, 50) * 1000,
        "query_p99_ms": c.percentile(latencies, 99) * 1000,
        "qps": len(latencies) / sum(latencies),
        "recall_at_10": float(np.mean(recalls)),
        "keyword_p50_ms": c.percentile(kw, 50) * 1000,
    }


async def measure_router(
    n: int, chunks: list[Any], index_type: str, data_dir: Path, queries: int
) -> dict[str, Any]:
    """`query_chunks` with text queries through the router, embedding each query."""
    from stackray.api.vector_io import (
        InsertChunksRequest,
        QueryChunksRequest,
        RegisterVectorDbRequest,
    )
    from stackray.runtime.config import parse_config
    from stackray.runtime.graph import build_local_stack

    stack = parse_config(
        {
            "version": 2,
            "image_name": "bench",
            "apis": ["inference", "vector_io"],
            "providers": {
                "inference": [
                    {
                        "provider_id": "sentence-transformers",
                        "provider_type": "inline::sentence-transformers",
                        "config": {"num_threads": 2},
                    }
                ],
                "vector_io": [
                    {
                        "provider_id": "faiss",
                        "provider_type": "inline::faiss",
                        "config": {"index_type": index_type},
                    }
                ],
            },
            "models": c.local_models("sentence-transformers"),
            "storage": {"data_dir": str(data_dir)},
        }
    )
    routers = await build_local_stack(stack)
    router = routers["vector_io"]
    await router.register_vector_db(
        RegisterVectorDbRequest(vector_db_id="bench", embedding_model="all-MiniLM-L6-v2")
    )
    for i in range(0, n, 1000):
        await router.insert_chunks(
            InsertChunksRequest(vector_db_id="bench", chunks=chunks[i : i + 1000])
        )
    rng = np.random.default_rng(5)
    texts = [" ".join(rng.choice(WORDS, size=6)) + f" {i}" for i in range(queries + 5)]
    for text in texts[:5]:  # warm up the model
        await router.query_chunks(QueryChunksRequest(vector_db_id="bench", query=text))
    latencies = []
    for text in texts[5:]:
        t = time.perf_counter()
        await router.query_chunks(
            QueryChunksRequest(vector_db_id="bench", query=text, params={"max_chunks": K})
        )
        latencies.append(time.perf_counter() - t)
    # The embedding alone, for the split.
    from stackray.api.inference import EmbeddingsRequest

    embed = []
    for text in texts[5:]:
        t = time.perf_counter()
        await routers["inference"].embeddings(
            EmbeddingsRequest(model_id="all-MiniLM-L6-v2", contents=[text])
        )
        embed.append(time.perf_counter() - t)
    for task in asyncio.all_tasks():
        if task is not asyncio.current_task():
            task.cancel()
    return {
        "p50_ms": c.percentile(latencies, 50) * 1000,
        "p99_ms": c.percentile(latencies, 99) * 1000,
        "embed_p50_ms": c.percentile(embed, 50) * 1000,
    }


def measure_hop(n: int, chunks: list[Any], queries: np.ndarray, rounds: int) -> dict[str, Any]:
    """faiss flat queried in this process vs through a Serve handle to the real
    `ProviderDeployment` hosting it (what running in its own deployment costs per call on
    CPU)."""
    import ray
    from ray import serve

    from stackray.api.vector_io import VectorDB
    from stackray.deployments.provider import ProviderDeployment

    vdb = VectorDB(
        identifier="bench",
        provider_resource_id="bench",
        provider_id="faiss",
        embedding_model="m",
        embedding_dimension=DIM,
    )
    results: dict[str, list[float]] = {"in-process": [], "serve handle": []}
    with tempfile.TemporaryDirectory(prefix="stackray-bench-vio-") as tmp:
        local = asyncio.run(build_provider("inline::faiss", {}, Path(tmp) / "local"))
        config = {
            "version": 2,
            "image_name": "bench",
            "apis": ["vector_io", "inference"],
            "providers": {
                "vector_io": [{"provider_id": "faiss", "provider_type": "inline::faiss"}]
            },
            "storage": {"data_dir": str(Path(tmp) / "served")},
        }
        ray.init(include_dashboard=False, num_cpus=2, log_to_driver=False, logging_level="WARNING")
        try:
            app = serve.deployment(name="index-faiss", ray_actor_options={"num_cpus": 0})(
                ProviderDeployment
            ).bind(config, "vector_io", "faiss", "index-faiss")
            handle = serve.run(app, name="hop", route_prefix=None)

            async def main() -> None:
                await local.register_vector_db(vdb)
                await handle.call_api.remote(None, "register_vector_db", vdb)
                for i in range(0, n, 1000):
                    await local.insert_chunks(vdb, chunks[i : i + 1000])
                    await handle.call_api.remote(None, "insert_chunks", vdb, chunks[i : i + 1000])
                for _ in range(rounds):
                    for q in queries:
                        emb = q.tolist()
                        t = time.perf_counter()
                        await local.query_vector(vdb, emb, K, -1.0)
                        results["in-process"].append(time.perf_counter() - t)
                        t = time.perf_counter()
                        await handle.call_api.remote(None, "query_vector", vdb, emb, K, -1.0)
                        results["serve handle"].append(time.perf_counter() - t)

            asyncio.run(main())
        finally:
            serve.shutdown()
            ray.shutdown()
    return {
        k: {"p50_ms": c.percentile(v, 50) * 1000, "p99_ms": c.percentile(v, 99) * 1000}
        for k, v in results.items()
    }


def main(argv: list[str] | None = None) -> int:
    parser = c.base_parser(__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=None, help="collection sizes")
    parser.add_argument("--queries", type=int, default=None, help="vector queries per config")
    parser.add_argument("--configs", nargs="+", choices=list(CONFIGS), default=list(CONFIGS))
    parser.add_argument("--no-router", action="store_true", help="skip the router measurement")
    parser.add_argument(
        "--serve-hop",
        action="store_true",
        help="only measure faiss in-process vs behind a Serve handle (starts Ray)",
    )
    args = parser.parse_args(argv)
    print(c.describe_environment(), flush=True)
    c.quiet_environment()
    sizes = args.sizes or ([2000] if args.quick else [10_000, 50_000])
    n_queries = args.queries or (50 if args.quick else 200)
    rng = np.random.default_rng(11)
    centres = rng.normal(size=(1000, DIM)).astype(np.float32)
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    results: dict[str, Any] = {"sizes": {}}
    if args.serve_hop:
        n = max(sizes)
        hop = measure_hop(
            n, make_chunks(make_vectors(n, rng, centres), rng), make_vectors(100, rng, centres), 3
        )
        print(
            c.format_table(
                ["faiss flat query_vector (k=10)", "p50 ms", "p99 ms", "vs in-process p50"],
                [
                    [
                        k,
                        c.fmt(v["p50_ms"], 2),
                        c.fmt(v["p99_ms"], 2),
                        c.fmt_ratio(c.ratio(v["p50_ms"], hop["in-process"]["p50_ms"])),
                    ]
                    for k, v in hop.items()
                ],
                title=f"{n:,} chunks: the cost of faiss in its own deployment (one handle hop)",
            )
        )
        c.write_json(args.json, {"serve_hop": hop})
        return 0
    for n in sizes:
        vectors = make_vectors(n, rng, centres)
        queries = make_vectors(n_queries, rng, centres)
        exact = np.argsort(-(queries @ vectors.T), axis=1)[:, :K]
        chunks = make_chunks(vectors, rng)
        per: dict[str, Any] = {}
        for name in args.configs:
            with tempfile.TemporaryDirectory(prefix="stackray-bench-vio-") as tmp:
                per[name] = asyncio.run(
                    measure_provider(name, chunks, vectors, queries, exact, Path(tmp))
                )
            m = per[name]
            print(
                f"  {n:,} {name}: insert {m['insert_chunks_per_s']:,.0f} chunks/s, "
                f"query p50 {m['query_p50_ms']:.2f} ms, recall {m['recall_at_10']:.3f}",
                flush=True,
            )
        base = per.get("faiss flat")
        rows = []
        for name, m in per.items():
            rows.append(
                [
                    name,
                    m["insert_chunks_per_s"],
                    c.fmt_ratio(c.ratio(m["insert_chunks_per_s"], base["insert_chunks_per_s"]))
                    if base
                    else "-",
                    c.fmt(m["first_batches_ms"], 1),
                    c.fmt(m["last_batches_ms"], 1),
                    c.fmt(m["query_p50_ms"], 2),
                    c.fmt(m["query_p99_ms"], 2),
                    m["qps"],
                    c.fmt_ratio(c.ratio(m["qps"], base["qps"])) if base else "-",
                    c.fmt(m["recall_at_10"], 3),
                    c.fmt(m["keyword_p50_ms"], 2),
                ]
            )
        print()
        print(
            c.format_table(
                [
                    "provider",
                    "insert/s",
                    "vs flat",
                    "first 10 batches ms",
                    "last 10 batches ms",
                    "p50 ms",
                    "p99 ms",
                    "QPS",
                    "vs flat",
                    "recall@10",
                    "keyword p50 ms",
                ],
                rows,
                title=f"{n:,} chunks of {DIM} dims, batches of {BATCH}; {n_queries} queries, k={K}",
            )
        )
        print()
        results["sizes"][str(n)] = per
    if not args.no_router:
        n = max(sizes)
        vectors = make_vectors(n, rng, centres)
        chunks = make_chunks(vectors, rng)
        router: dict[str, Any] = {}
        for index_type in ("flat", "hnsw"):
            with tempfile.TemporaryDirectory(prefix="stackray-bench-vio-") as tmp:
                router[index_type] = asyncio.run(
                    measure_router(n, chunks, index_type, Path(tmp), min(n_queries, 100))
                )
        rows = [
            [
                f"faiss {k}",
                c.fmt(v["p50_ms"], 2),
                c.fmt(v["p99_ms"], 2),
                c.fmt(v["embed_p50_ms"], 2),
            ]
            for k, v in router.items()
        ]
        print(
            c.format_table(
                ["query_chunks (router, text query)", "p50 ms", "p99 ms", "embedding alone p50 ms"],
                rows,
                title=f"Through the router at {n:,} chunks, query embedded by all-MiniLM-L6-v2 on CPU",
            )
        )
        results["router"] = router
    c.write_json(args.json, results)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
