"""`appliance bench search`: the figures behind "exact per-patient search, not HNSW".

Every retrieval query is scoped to one patient, who owns a few thousand chunks at most, so the
appliance reads that patient's rows through the B-tree on `patient_id` and sorts them by
distance: exact, and cheap. HNSW with the same filter is not: pgvector applies `WHERE` after the
graph scan has picked its `ef_search` candidates from *all* patients, so a question about blood
pressure finds other patients' blood-pressure chunks and few of this patient's; pgvector 0.8's
iterative scans walk on, but only up to `hnsw.max_scan_tuples`.

All three are measured on the same synthetic data and queries, in one run, in a throwaway
embedded PostgreSQL (never the appliance's own). The data is clustered as notes are: topics
shared by all patients, each patient a few centres near some of them, chunks around those.
Each patient's vectors come from a generator seeded for that patient, so a query's ground truth
is recomputed by brute force from that patient's rows alone, without 1 M vectors in memory.
Benchmarks are not tests: nothing here asserts a speed.
"""

from __future__ import annotations

import os
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np
    import psycopg
    from numpy.typing import NDArray

    Vectors = NDArray[np.float32]

GOAL = "p95 <= 10 ms with recall 1.0"
K = 10
SEED = 384
TOPICS = 64  # clinical topics shared by all patients (blood pressure, sleep, medication...)
CENTRES = (3, 6)  # topic centres per patient, inclusive
# how far a patient's centre sits from the shared topic (a unit vector): the larger, the more a
# patient's chunks stand out from other patients' on the same topic, and the better filtered
# HNSW fares (at 100 000 chunks / 1 000 patients, 0.3 puts ~10 of the query's patient's chunks
# in the global top 40, 0.1 only ~1)
SPREAD = 0.3
NOISE = 0.8  # how far a chunk (or a query) sits from its centre
SIZE_SIGMA = 0.75  # lognormal spread of chunks per patient: uneven, a few thousand at most
BATCH_ROWS = 20_000  # rows generated, shuffled and copied at a time
HNSW_M, HNSW_EF_CONSTRUCTION = 16, 64
BTREE, HNSW = "bench_chunks_patient_btree", "bench_chunks_embedding_hnsw"
NAMESPACE = uuid.UUID("6f1d8c4e-3b7a-4d2e-9c55-0a1b2c3d4e5f")
MIB = 1024 * 1024

EXACT = "SELECT id FROM bench_chunks WHERE patient_id = %(p)s ORDER BY embedding <=> %(q)s LIMIT 10"
# `+ 0` makes the ordering an expression the HNSW index cannot serve (used only if needed)
EXACT_GUARDED = EXACT.replace("embedding <=> %(q)s", "(embedding <=> %(q)s) + 0")
# the same filter, written so that the B-tree cannot serve it: the planner must use HNSW
FILTERED_HNSW = (
    "SELECT id FROM bench_chunks WHERE patient_id::text = %(p)s "
    "ORDER BY embedding <=> %(q)s LIMIT 10"
)
# relaxed order may return rows slightly out of order: re-sort, as pgvector's docs advise
ITERATIVE_HNSW = (
    "WITH relaxed AS MATERIALIZED (SELECT id, embedding <=> %(q)s AS distance "
    "FROM bench_chunks WHERE patient_id::text = %(p)s ORDER BY distance LIMIT 10) "
    "SELECT id FROM relaxed ORDER BY distance"
)


def unit(rows: NDArray[np.floating[Any]]) -> Vectors:
    import numpy as np

    normalised: Vectors = (rows / np.linalg.norm(rows, axis=-1, keepdims=True)).astype(np.float32)
    return normalised


@dataclass(frozen=True)
class Corpus:
    """Chunks per patient and the shared topics; any patient's vectors on demand."""

    dim: int
    counts: NDArray[np.int64]
    offsets: NDArray[np.int64]  # a patient's chunk ids are offsets[p] .. offsets[p]+counts[p]-1
    topics: Vectors

    @classmethod
    def make(cls, chunks: int, patients: int, dim: int) -> Corpus:
        import numpy as np

        rng = np.random.default_rng([SEED, 0])
        weights = rng.lognormal(0.0, SIZE_SIGMA, patients)
        counts = 1 + np.floor(weights / weights.sum() * (chunks - patients)).astype(np.int64)
        counts[rng.choice(patients, int(chunks - counts.sum()), replace=False)] += 1
        offsets = np.concatenate([[0], np.cumsum(counts)[:-1]]).astype(np.int64)
        return cls(dim, counts, offsets, unit(rng.standard_normal((TOPICS, dim))))

    @staticmethod
    def owner(patient: int) -> uuid.UUID:
        return uuid.uuid5(NAMESPACE, str(patient))

    def patient(self, patient: int) -> tuple[Vectors, Vectors]:
        """The patient's topic centres and chunk vectors, the same on every call."""
        import numpy as np

        rng = np.random.default_rng([SEED, 1, patient])
        k = int(rng.integers(CENTRES[0], CENTRES[1] + 1))
        picked = self.topics[rng.choice(TOPICS, size=min(k, TOPICS), replace=False)]
        centres = unit(picked + SPREAD * unit(rng.standard_normal(picked.shape)))
        n = int(self.counts[patient])
        which = rng.integers(len(centres), size=n)
        return centres, unit(centres[which] + NOISE * unit(rng.standard_normal((n, self.dim))))


@dataclass(frozen=True)
class Query:
    owner: uuid.UUID
    vector: Vectors
    truth: frozenset[int]  # ids of the patient's true 10 nearest chunks
    expected: int  # min(10, chunks the patient owns)


def make_queries(corpus: Corpus, count: int) -> list[Query]:
    """Random patients; each query near one of that patient's centres; brute-force truth."""
    import numpy as np

    rng = np.random.default_rng([SEED, 3])
    queries = []
    for patient in rng.integers(len(corpus.counts), size=count):
        centres, vectors = corpus.patient(int(patient))
        centre = centres[int(rng.integers(len(centres)))]
        vector = unit(centre + NOISE * unit(rng.standard_normal(corpus.dim)))
        rows = vectors.astype(np.float64)
        similarity = rows @ vector.astype(np.float64) / np.linalg.norm(rows, axis=1)
        nearest = np.argsort(-similarity, kind="stable")[:K] + corpus.offsets[patient]
        truth = frozenset(int(i) for i in nearest)
        queries.append(Query(corpus.owner(int(patient)), vector, truth, min(K, len(vectors))))
    return queries


def load(conn: psycopg.Connection[Any], corpus: Corpus) -> None:
    """Binary COPY, a batch of patients at a time, rows shuffled within the batch so that one
    patient's chunks are scattered over the table as notes arriving over months would be."""
    import numpy as np

    rng = np.random.default_rng([SEED, 2])
    sql = "COPY bench_chunks (id, patient_id, embedding) FROM STDIN WITH (FORMAT BINARY)"
    with conn.cursor() as cursor, cursor.copy(sql) as copy:
        copy.set_types(["int8", "uuid", "vector"])
        batch = np.cumsum(corpus.counts) // BATCH_ROWS  # consecutive patients, ~BATCH_ROWS rows
        for patients in np.split(np.arange(len(batch)), np.flatnonzero(np.diff(batch)) + 1):
            owners: list[uuid.UUID] = []
            ids: list[int] = []
            blocks: list[Vectors] = []
            for patient in map(int, patients):
                count = int(corpus.counts[patient])
                owners += [corpus.owner(patient)] * count
                ids += range(int(corpus.offsets[patient]), int(corpus.offsets[patient]) + count)
                blocks.append(corpus.patient(patient)[1])
            vectors = np.concatenate(blocks)
            for row in rng.permutation(len(ids)):
                copy.write_row((ids[row], owners[row], vectors[row]))


def ram_bytes() -> int:
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


def maintenance_memory(chunks: int, dim: int) -> int:
    """MiB for the HNSW build: the whole graph in memory if the machine allows (a build that
    spills is many times slower), never more than a quarter of RAM."""
    wanted = chunks * (dim * 4 + 8 * HNSW_M * 2 + 200) * 5 // 4
    return max(64, min(wanted, ram_bytes() // 4) // MIB)


def timed(conn: psycopg.Connection[Any], statement: str) -> float:
    started = time.perf_counter()
    conn.execute(statement)
    return round(time.perf_counter() - started, 2)


def size_mib(conn: psycopg.Connection[Any], relation: str) -> float:
    row = conn.execute("SELECT pg_relation_size(%s::regclass)", (relation,)).fetchone()
    return round(int(row[0]) / MIB, 1) if row else 0.0


@dataclass(frozen=True)
class Mode:
    name: str
    sql: str
    settings: dict[str, str]
    index: str  # the index the plan must use


# pgvector's defaults, stated; no sequential scan, so the plan has only the HNSW index left
ONE_PASS = {"enable_seqscan": "off", "hnsw.ef_search": "40", "hnsw.iterative_scan": "off"}
ITERATIVE = ONE_PASS | {"hnsw.iterative_scan": "relaxed_order", "hnsw.max_scan_tuples": "20000"}
MODES = (
    Mode("exact", EXACT, {}, BTREE),
    Mode("hnsw", FILTERED_HNSW, ONE_PASS, HNSW),
    Mode("hnsw_iterative", ITERATIVE_HNSW, ITERATIVE, HNSW),
)


def plan_indexes(node: Any) -> set[str]:
    """Every index named anywhere in an EXPLAIN (FORMAT JSON) plan."""
    if isinstance(node, list):
        return set().union(*(plan_indexes(item) for item in node))
    if isinstance(node, dict):
        found = {node["Index Name"]} if "Index Name" in node else set()
        return found.union(*(plan_indexes(value) for value in node.values()))
    return set()


def params(sql: str, query: Query) -> dict[str, Any]:
    owner = str(query.owner) if "patient_id::text" in sql else query.owner
    return {"p": owner, "q": query.vector}


def chosen_sql(conn: psycopg.Connection[Any], mode: Mode, queries: list[Query]) -> tuple[str, str]:
    """The mode's SQL and the indexes its plans use, checked for every query (plans are made
    per patient). The exact query falls back to a form HNSW cannot serve if the planner
    reaches for HNSW; an HNSW mode whose plans avoid HNSW is an error, not a figure."""
    candidates = [mode.sql, EXACT_GUARDED] if mode.name == "exact" else [mode.sql]
    used: set[str] = set()
    for sql in candidates:
        used = set()
        for query in queries:
            plan = conn.execute("EXPLAIN (FORMAT JSON) " + sql, params(sql, query)).fetchone()
            used |= plan_indexes(plan[0] if plan else [])
        if used == {mode.index}:
            return sql, mode.index
    raise ValueError(f"bench search: the {mode.name} plan used {sorted(used)}, not {mode.index}")


def measure(conn: psycopg.Connection[Any], mode: Mode, queries: list[Query]) -> dict[str, Any]:
    import numpy as np

    for name, value in mode.settings.items():
        conn.execute("SELECT set_config(%s, %s, false)", (name, value))
    sql, index = chosen_sql(conn, mode, queries)
    with conn.cursor() as cursor:
        for query in queries:  # warm-up: pages into cache, connection paths exercised
            cursor.execute(sql, params(sql, query)).fetchall()
        latencies, recalls, returned = [], [], []
        for query in queries:
            started = time.perf_counter()
            rows = cursor.execute(sql, params(sql, query)).fetchall()
            latencies.append((time.perf_counter() - started) * 1000)
            ids = {int(row[0]) for row in rows}
            recalls.append(len(ids & query.truth) / query.expected)
            returned.append(len(rows))
    conn.execute("RESET ALL")
    p50, p95 = np.percentile(latencies, [50, 95])
    return {
        "mode": mode.name,
        "p50_ms": round(float(p50), 3),
        "p95_ms": round(float(p95), 3),
        "recall_at_10": round(float(np.mean(recalls)), 4),
        "mean_rows": round(float(np.mean(returned)), 2),
        "index": index,
        "settings": dict(mode.settings),
        "guarded_order": sql == EXACT_GUARDED,
    }


def report(
    chunks: int, patients: int, queries: int, dim: int, folder: Path | None = None
) -> dict[str, Any]:
    """Build the scratch database, load it, index it, and measure every mode on one query set.
    `folder` holds the throwaway server (default: the system's temporary directory)."""
    import psycopg
    from pgvector.psycopg import register_vector

    from appliance.pgserver import embedded_server

    if not 1 <= patients <= chunks:
        raise ValueError("bench search needs at least one chunk per patient")
    corpus = Corpus.make(chunks, patients, dim)
    query_set = make_queries(corpus, queries)
    cpus = os.cpu_count() or 1
    memory = maintenance_memory(chunks, dim)
    with (
        tempfile.TemporaryDirectory(dir=folder) as tmp,
        embedded_server(Path(tmp) / "pgdata") as server,
        psycopg.connect(
            server.get_uri("postgres"), autocommit=True, prepare_threshold=None
        ) as conn,
    ):
        conn.execute("CREATE EXTENSION IF NOT EXISTS vector")
        register_vector(conn)
        conn.execute(
            f"CREATE TABLE bench_chunks (id bigint, patient_id uuid NOT NULL, "
            f"embedding vector({dim}) NOT NULL)"
        )
        started = time.perf_counter()
        load(conn, corpus)
        load_seconds = round(time.perf_counter() - started, 2)
        btree_seconds = timed(conn, f"CREATE INDEX {BTREE} ON bench_chunks (patient_id)")
        conn.execute(f"SET maintenance_work_mem = '{memory}MB'")
        conn.execute(f"SET max_parallel_maintenance_workers = {max(0, cpus - 1)}")
        hnsw_seconds = timed(
            conn,
            f"CREATE INDEX {HNSW} ON bench_chunks USING hnsw (embedding vector_cosine_ops) "
            f"WITH (m = {HNSW_M}, ef_construction = {HNSW_EF_CONSTRUCTION})",
        )
        conn.execute("RESET ALL")
        conn.execute("VACUUM ANALYZE bench_chunks")
        rows = [measure(conn, mode, query_set) for mode in MODES]
        versions = conn.execute(
            "SELECT current_setting('server_version'), "
            "(SELECT extversion FROM pg_extension WHERE extname = 'vector')"
        ).fetchone()
        relations = (("table_mib", "bench_chunks"), ("btree_mib", BTREE), ("hnsw_mib", HNSW))
        sizes = {name: size_mib(conn, relation) for name, relation in relations}
    return {
        "chunks": chunks,
        "patients": patients,
        "dim": dim,
        "queries": queries,
        "max_chunks_per_patient": int(corpus.counts.max()),
        "synthetic": {"topics": TOPICS, "centres": list(CENTRES), "spread": SPREAD, "noise": NOISE},
        "load_seconds": load_seconds,
        "btree_seconds": btree_seconds,
        "hnsw_seconds": hnsw_seconds,
        **sizes,
        "rows": rows,
        "goal": GOAL,
        "machine": {
            "cpus": cpus,
            "ram_gib": round(ram_bytes() / 2**30, 1),
            "postgres": versions[0] if versions else None,
            "pgvector": versions[1] if versions else None,
            "maintenance_work_mem_mib": memory,
        },
    }


def render(result: dict[str, Any]) -> str:
    """The figures side by side, then whether the exact search meets the goal."""
    machine = result["machine"]
    lines = [
        f"{result['chunks']:,} chunks over {result['patients']:,} patients "
        f"(at most {result['max_chunks_per_patient']:,} each), {result['dim']}-d, "
        f"{result['queries']} queries; {machine['cpus']} CPUs, {machine['ram_gib']} GiB, "
        f"PostgreSQL {machine['postgres']}, pgvector {machine['pgvector']}",
        f"load {result['load_seconds']} s ({result['table_mib']} MiB table), "
        f"B-tree {result['btree_seconds']} s ({result['btree_mib']} MiB), "
        f"HNSW {result['hnsw_seconds']} s ({result['hnsw_mib']} MiB)",
        "",
        f"{'mode':<16}{'index':<30}{'p50 ms':>9}{'p95 ms':>9}{'recall@10':>11}{'rows':>7}",
    ]
    for row in result["rows"]:
        lines.append(
            f"{row['mode']:<16}{row['index']:<30}{row['p50_ms']:>9.2f}{row['p95_ms']:>9.2f}"
            f"{row['recall_at_10']:>11.3f}{row['mean_rows']:>7.1f}"
        )
    exact = next(row for row in result["rows"] if row["mode"] == "exact")
    met = exact["p95_ms"] <= 10 and exact["recall_at_10"] == 1.0
    lines += ["", f"goal: {result['goal']}: exact search {'meets' if met else 'misses'} it"]
    return "\n".join(lines)
