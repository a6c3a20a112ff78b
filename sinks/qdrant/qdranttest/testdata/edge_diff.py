#!/usr/bin/env python3
"""Differential reference for the Qdrant stand-in.

Builds a seeded random data set and random filters, queries and scroll
pages, runs them through qdrant-edge-py (Qdrant's own storage and search
engine, embedded) and prints everything, results included, as JSON. The Go
test edge_test.go replays the same requests against the stand-in and
compares. Regenerate with

    pip install qdrant-edge-py==0.9.0
    go test ./sinks/qdrant/qdranttest/ -run TestEdgeDifferential -update-edge

Filters are written in Qdrant's REST JSON shape, which both sides convert.
"""
import json
import random
import sys
import tempfile
import uuid

import qdrant_edge as qe

SEED = 20261126
DIM = 8
rng = random.Random(SEED)

# ---------------------------------------------------------------- data set
WORDS = ["a", "b", "c", "A", "ab"]


def rand_scalar():
    r = rng.random()
    if r < 0.4:
        return rng.choice(WORDS)
    if r < 0.7:
        return rng.randint(0, 5)
    return rng.choice([0.5, 2.5, 5.0, 1.0, 3.25])


def rand_k():
    r = rng.random()
    if r < 0.10:
        return "MISSING"
    if r < 0.17:
        return None
    if r < 0.22:
        return []
    if r < 0.40:
        return [rand_scalar() if rng.random() > 0.1 else None for _ in range(rng.randint(1, 3))]
    return rand_scalar()


def rand_payload():
    p = {}
    k = rand_k()
    if k != "MISSING":
        p["k"] = k
    if rng.random() < 0.8:
        p["n"] = rng.randint(-3, 10)
    if rng.random() < 0.6:
        p["f"] = round(rng.uniform(-2, 2), 2)
    if rng.random() < 0.6:
        p["tags"] = rng.sample(WORDS, rng.randint(0, 3))
    if rng.random() < 0.5:
        p["d"] = [{"a": rng.randint(0, 3), "b": rng.choice(WORDS)} for _ in range(rng.randint(0, 3))]
    if rng.random() < 0.4:
        p["o"] = {"x": rng.randint(0, 3), "y": {"z": rng.choice(WORDS)}}
    return p


def rand_vec():
    return [round(rng.uniform(-1, 1), 4) for _ in range(DIM)]


ids = list(range(1, 121)) + [str(uuid.UUID(int=rng.getrandbits(128))) for _ in range(30)]
points = [{"id": i, "vector": rand_vec(), "payload": rand_payload()} for i in ids]

# ---------------------------------------------------------------- filters
KEYS = ["k", "n", "f", "tags", "o.x", "o.y.z", "d[].a", "d[].b", "missing"]


def rand_match(key):
    r = rng.random()
    str_key = key in ("tags", "d[].b", "o.y.z") or (key == "k" and rng.random() < 0.5)
    if r < 0.5:
        return {"value": rng.choice(WORDS) if str_key else rng.randint(0, 5)}
    vals = rng.sample(WORDS, 2) if str_key else rng.sample(range(0, 6), 2)
    return {"any": vals} if r < 0.75 else {"except": vals}


def rand_condition(depth):
    r = rng.random()
    key = rng.choice(KEYS)
    if r < 0.40:
        return {"key": key, "match": rand_match(key)}
    if r < 0.55:
        rg = {}
        for op in rng.sample(["gt", "gte", "lt", "lte"], rng.randint(1, 2)):
            rg[op] = rng.choice([-1, 0, 1, 2.5, 3, 5])
        return {"key": rng.choice(["k", "n", "f", "o.x", "d[].a"]), "range": rg}
    if r < 0.63:
        return {"is_empty": {"key": rng.choice(["k", "tags", "d", "missing", "o.x"])}}
    if r < 0.70:
        return {"is_null": {"key": rng.choice(["k", "tags", "missing"])}}
    if r < 0.76:
        return {"has_id": rng.sample(ids, 3) + [999]}
    if r < 0.82:
        return {"key": rng.choice(["k", "tags", "d"]), "values_count": {rng.choice(["gt", "gte", "lt", "lte"]): rng.randint(0, 3)}}
    if r < 0.90 and depth < 2:
        return {"nested": {"key": "d", "filter": {"must": [
            {"key": "a", "match": {"value": rng.randint(0, 3)}},
            {"key": "b", "match": {"value": rng.choice(WORDS)}}][: rng.randint(1, 2)]}}}
    if depth < 2:
        return rand_filter(depth + 1)
    return {"key": "n", "match": {"value": rng.randint(0, 5)}}


def rand_filter(depth=0):
    f = {}
    for clause in ["must", "should", "must_not"]:
        if rng.random() < 0.5:
            f[clause] = [rand_condition(depth) for _ in range(rng.randint(1, 2))]
    if rng.random() < 0.15:
        conds = [rand_condition(depth) for _ in range(3)]
        f["min_should"] = {"conditions": conds, "min_count": rng.randint(1, 2)}
    return f


def to_edge_condition(c):
    if "nested" in c:
        return qe.NestedCondition(c["nested"]["key"], to_edge_filter(c["nested"]["filter"]))
    if "is_empty" in c:
        return qe.IsEmptyCondition(c["is_empty"]["key"])
    if "is_null" in c:
        return qe.IsNullCondition(c["is_null"]["key"])
    if "has_id" in c:
        return qe.HasIdCondition(set(uuid.UUID(x) if isinstance(x, str) else x for x in c["has_id"]))
    if "key" in c:
        if "match" in c:
            m = c["match"]
            if "value" in m:
                return qe.FieldCondition(c["key"], match=qe.MatchValue(m["value"]))
            if "any" in m:
                return qe.FieldCondition(c["key"], match=qe.MatchAny(m["any"]))
            return qe.FieldCondition(c["key"], match=qe.MatchExcept(m["except"]))
        if "range" in c:
            return qe.FieldCondition(c["key"], range=qe.RangeFloat(**{k: float(v) for k, v in c["range"].items()}))
        if "values_count" in c:
            return qe.FieldCondition(c["key"], values_count=qe.ValuesCount(**c["values_count"]))
    return to_edge_filter(c)


def to_edge_filter(f):
    if f is None:
        return None
    kw = {}
    for clause in ["must", "should", "must_not"]:
        if clause in f:
            kw[clause] = [to_edge_condition(c) for c in f[clause]]
    if "min_should" in f:
        kw["min_should"] = qe.MinShould([to_edge_condition(c) for c in f["min_should"]["conditions"]], f["min_should"]["min_count"])
    return qe.Filter(**kw)


def edge_id(x):
    return x if isinstance(x, int) else str(x)


# ---------------------------------------------------------------- run
DISTANCES = {"Cosine": qe.Distance.Cosine, "Dot": qe.Distance.Dot, "Euclid": qe.Distance.Euclid, "Manhattan": qe.Distance.Manhattan}
shards = {}
for name, dist in DISTANCES.items():
    shard = qe.EdgeShard.create(tempfile.mkdtemp(), qe.EdgeConfig(vectors=qe.EdgeVectorParams(size=DIM, distance=dist)))
    shard.update(qe.UpdateOperation.upsert_points(
        [qe.Point(p["id"] if isinstance(p["id"], int) else uuid.UUID(p["id"]), p["vector"], p["payload"]) for p in points]))
    shards[name] = shard

filters = []
for _ in range(200):
    f = rand_filter()
    recs, _ = shards["Dot"].scroll(qe.ScrollRequest(limit=1000, filter=to_edge_filter(f)))
    filters.append({"filter": f, "ids": [edge_id(r.id) for r in recs]})

queries = []
for name in DISTANCES:
    for _ in range(25):
        q = {"distance": name, "vector": rand_vec(), "limit": rng.randint(1, 15), "offset": rng.choice([0, 0, 1, 3])}
        if rng.random() < 0.5:
            q["filter"] = rng.choice(filters)["filter"]
        if rng.random() < 0.3:
            q["score_threshold"] = {"Cosine": 0.2, "Dot": 0.5, "Euclid": 2.5, "Manhattan": 6.0}[name]
        res = shards[name].query(qe.QueryRequest(limit=q["limit"], offset=q["offset"], query=qe.Query.Nearest(q["vector"]),
                                                 filter=to_edge_filter(q.get("filter")), score_threshold=q.get("score_threshold")))
        q["ids"] = [edge_id(p.id) for p in res]
        q["scores"] = [p.score for p in res]
        queries.append(q)

scrolls = []
for _ in range(60):
    s = {"limit": rng.randint(1, 25)}
    if rng.random() < 0.6:
        s["offset"] = rng.choice(ids + [0, 121, 500])
    if rng.random() < 0.5:
        s["filter"] = rng.choice(filters)["filter"]
    off = s.get("offset")
    recs, nxt = shards["Dot"].scroll(qe.ScrollRequest(limit=s["limit"], filter=to_edge_filter(s.get("filter")),
                                                     offset=None if off is None else (off if isinstance(off, int) else uuid.UUID(off))))
    s["ids"] = [edge_id(r.id) for r in recs]
    s["next"] = None if nxt is None else edge_id(nxt)
    scrolls.append(s)

json.dump({"engine": "qdrant-edge-py " + getattr(qe, "__version__", "0.9.0"), "seed": SEED, "dim": DIM,
           "points": points, "filters": filters, "queries": queries, "scrolls": scrolls}, sys.stdout, indent=1)
