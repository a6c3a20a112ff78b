package neo4j

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
)

// Every statement the sink runs. Values always reach Neo4j as parameters.
// Entity labels do too, through Neo4j 5.26's dynamic labels (SET n:$(expr)).
// Relationship types do not: on a small or young database the planner turns a
// pattern with a dynamic (or no) type into a scan of every relationship, so
// the statements that match or merge typed relationships are templates whose
// <TYPE> relType fills with one allow-listed type, and their rows are grouped
// by type. Each statement UNWINDs a list of rows, so a batch costs a handful
// of round trips whatever its size, and a batch of new chunks four: the
// driver's BEGIN, the reading of its keys, one write statement
// (writeStatement) and the commit.
// docs/neo4j-model.md explains each one.

// setupStatements create the uniqueness constraints that back every MERGE on
// a key, and the index the tombstone sweep scans.
var setupStatements = []string{
	`CREATE CONSTRAINT ragstream_chunk_key IF NOT EXISTS FOR (c:Chunk) REQUIRE (c.tenant, c.id) IS UNIQUE`,
	`CREATE CONSTRAINT ragstream_entity_key IF NOT EXISTS FOR (e:Entity) REQUIRE (e.tenant, e.id) IS UNIQUE`,
	`CREATE CONSTRAINT ragstream_chunk_tombstone_key IF NOT EXISTS FOR (t:ChunkTombstone) REQUIRE (t.tenant, t.id) IS UNIQUE`,
	`CREATE INDEX ragstream_chunk_tombstone_deleted_at IF NOT EXISTS FOR (t:ChunkTombstone) ON (t.deleted_at)`,
	`CALL db.awaitIndexes(300)`,
}

// cypherReadKeys returns, for each key of the batch that has a chunk or a
// deletion marker, the chunk's version and assertions or the marker's
// version. Rows: {i, tenant, id}.
const cypherReadKeys = `
UNWIND $rows AS r
OPTIONAL MATCH (c:Chunk {tenant: r.tenant, id: r.id})
OPTIONAL MATCH (t:ChunkTombstone {tenant: r.tenant, id: r.id})
WITH r, c, t WHERE c IS NOT NULL OR t IS NOT NULL
RETURN r.i AS i, c.version AS version, c.assertions AS assertions, t.version AS deleted`

// cypherEntityWithdrawn locks each entity that loses assertions and returns
// those whose state one of them decided (it was the highest-ranked, so it set
// the name, the type and every key of that rank, or it set some other key):
// only those need recomputing from the assertions that remain, and for them
// it returns the property keys they have now. Rows: {i, tenant, id, ranks}.
const cypherEntityWithdrawn = `
UNWIND $rows AS r
MATCH (e:Entity {tenant: r.tenant, id: r.id})
SET e._rank = coalesce(e._rank, '')
WITH r, e WHERE e._rank IN r.ranks OR any(x IN coalesce(e._pr, []) WHERE x IN r.ranks)
RETURN r.i AS i, [k IN keys(e) WHERE NOT k IN ` + entityOwn + `] AS keys`

// cypherEntityAssertions returns the assertions of the chunks that still
// mention an entity, leaving out the chunks whose assertion about it this
// batch withdraws. Rows: {i, tenant, id, exclude}.
const cypherEntityAssertions = `
UNWIND $rows AS r
MATCH (:Entity {tenant: r.tenant, id: r.id})<-[:MENTIONS]-(c:Chunk)
WHERE NOT c.id IN r.exclude
RETURN r.i AS i, c.assertions AS assertions`

// cypherRelationWithdrawn removes the withdrawing chunks from each
// relationship's sources, deletes a relationship no chunk asserts any more,
// and returns the survivors whose properties a withdrawn assertion decided,
// with their remaining sources and property keys. Template (one type); rows:
// {i, tenant, from, to, srcs, ranks}.
const cypherRelationWithdrawn = `
UNWIND $rows AS r
MATCH (:Entity {tenant: r.tenant, id: r.from})-[x:<TYPE>]->(:Entity {tenant: r.tenant, id: r.to})
SET x.sources = [s IN x.sources WHERE NOT s IN r.srcs]
WITH r, x, x.sources AS sources, [k IN keys(x) WHERE NOT k IN ` + relationOwn + `] AS keys,
     x._rank IN r.ranks OR any(p IN coalesce(x._pr, []) WHERE p IN r.ranks) AS decided
FOREACH (_ IN CASE WHEN size(sources) = 0 THEN [1] ELSE [] END | DELETE x)
WITH r, sources, keys, decided WHERE size(sources) > 0 AND decided
RETURN r.i AS i, sources, keys`

// cypherChunkAssertions returns the assertions of the named chunks.
// Rows: {i, tenant, ids}.
const cypherChunkAssertions = `
UNWIND $rows AS r
UNWIND r.ids AS id
MATCH (c:Chunk {tenant: r.tenant, id: id})
RETURN r.i AS i, c.assertions AS assertions`

// cypherDeleteChunks removes deleted chunks with their MENTIONS and leaves a
// deletion marker remembering the version. deleted_at (the delete record's
// Kafka timestamp, else now) is set when the marker first appears or its
// version changes, so a replayed delete changes nothing. Rows: {tenant, id,
// version, deleted_at?}.
const cypherDeleteChunks = `
UNWIND $rows AS r
OPTIONAL MATCH (c:Chunk {tenant: r.tenant, id: r.id})
DETACH DELETE c
MERGE (t:ChunkTombstone {tenant: r.tenant, id: r.id})
ON CREATE SET t.version = r.version, t.deleted_at = coalesce(r.deleted_at, $now)
ON MATCH SET t.deleted_at = CASE WHEN t.version = r.version THEN t.deleted_at ELSE coalesce(r.deleted_at, $now) END,
             t.version = r.version`

// cypherUnmention removes the MENTIONS of entities a re-written chunk no
// longer names. Rows: {tenant, chunk, entity}.
const cypherUnmention = `
UNWIND $rows AS r
MATCH (:Chunk {tenant: r.tenant, id: r.chunk})-[m:MENTIONS]->(:Entity {tenant: r.tenant, id: r.entity})
DELETE m`

// cypherEntityReplace sets an entity to the merge of its remaining
// assertions: drop lists the keys no remaining assertion states; name and
// type are null when no assertion remains (the entity is then deleted at the
// end of the batch unless an incoming assertion revives it). Rows: {tenant,
// id, name, type, rank, props, pk, pr, drop}.
const cypherEntityReplace = `
UNWIND $rows AS r
MATCH (e:Entity {tenant: r.tenant, id: r.id})
FOREACH (k IN r.drop | REMOVE e[k])
SET e += r.props, e._rank = r.rank, e._pk = r.pk, e._pr = r.pr, e.name = coalesce(r.name, e.name)
WITH e, r, e.type AS old WHERE r.type IS NOT NULL AND old <> r.type
REMOVE e:$(old)
SET e:$(r.type), e.type = r.type`

// cypherRelationReplace sets a relationship's properties to the merge of its
// remaining assertions. Template (one type); rows: {tenant, from, to, rank,
// props, pk, pr, drop}.
const cypherRelationReplace = `
UNWIND $rows AS r
MATCH (:Entity {tenant: r.tenant, id: r.from})-[x:<TYPE>]->(:Entity {tenant: r.tenant, id: r.to})
FOREACH (k IN r.drop | REMOVE x[k])
SET x += r.props, x._rank = r.rank, x._pk = r.pk, x._pr = r.pr`

// Property keys of the model itself, which the merge rule leaves alone.
const (
	entityOwn   = `['tenant', 'id', 'name', 'type', '_rank', '_pk', '_pr']`
	relationOwn = `['sources', '_rank', '_pk', '_pr']`
)

// The merge rule's bookkeeping on an element n (entity or relationship):
// n._rank is the highest rank of n's assertions; _pk/_pr list the keys whose
// winning assertion ranks lower, and their ranks (absent when none), so a
// key's rank is its _pr entry, else _rank if n has the key, else none. A key
// takes an incoming value when the incoming rank is at least the key's.
//
// Each merge has two statements. The fast one merges every row and handles
// the two common cases of an n without exceptions: the row outranks n and
// restates every key n has, at one rank (a plain map SET); or the row ranks
// below n and names only keys n has (it loses every key, so nothing
// changes: the case of partitions delivering a shared entity's mentions out
// of timestamp order). It returns the rows it could not take (n has keys of
// lower rank, a row at or above n's rank leaves out some of n's keys, or a
// lower row brings a key n lacks). Only those go through the general one,
// which computes the winners key by key and the new exceptions. Rows carry, from the batch's
// assertions of n merged in Go: i, rank (the highest), keys, vals, ranks (per
// key), props (keys to vals) and uniform (every key at rank).

// mergeFast is the test and the SET of the fast path; n is locked by the
// statement's first SET before anything of it is read. It returns the
// indexes of the rows left for the general path as the list out.
func mergeFast(own, set, out string) string {
	return `
WITH n, r, coalesce(n._rank, '') AS top, n._pk IS NULL AS plain, [k IN keys(n) WHERE NOT k IN ` + own + `] AS uk, n.type AS old
WITH n, r, old, r.uniform AND r.rank >= top AND plain AND all(k IN uk WHERE k IN r.keys) AS fast,
     r.rank < top AND plain AND all(k IN r.keys WHERE k IN uk) AS lost
FOREACH (_ IN CASE WHEN fast THEN [1] ELSE [] END | ` + set + `)
WITH r, fast, lost WHERE NOT fast AND NOT lost
RETURN collect(r.i) AS ` + out
}

// mergeKeys is the general path for n, locked by the statement's first SET.
func mergeKeys(own string) string {
	return `
WITH n, r, coalesce(n._rank, '') AS top, coalesce(n._pk, []) AS pk, coalesce(n._pr, []) AS pr,
     [k IN keys(n) WHERE NOT k IN ` + own + `] AS uk
WITH n, r, top, pk, pr, uk, CASE WHEN r.rank > top THEN r.rank ELSE top END AS newTop,
     [i IN range(0, size(r.keys) - 1)
       WHERE r.ranks[i] >= coalesce(pr[[j IN range(0, size(pk) - 1) WHERE pk[j] = r.keys[i]][0]],
                                    CASE WHEN r.keys[i] IN uk THEN top ELSE '' END)] AS win
FOREACH (i IN win | SET n[r.keys[i]] = r.vals[i])
WITH n, r, top, newTop,
     [j IN range(0, size(pk) - 1) WHERE NOT pk[j] IN [i IN win | r.keys[i]] AND pr[j] <> newTop | [pk[j], pr[j]]] +
     CASE WHEN top = newTop THEN [] ELSE [k IN uk WHERE NOT k IN pk AND NOT k IN [i IN win | r.keys[i]] | [k, top]] END +
     [i IN win WHERE r.ranks[i] <> newTop | [r.keys[i], r.ranks[i]]] AS exc
SET n._rank = newTop,
    n._pk = CASE WHEN size(exc) = 0 THEN null ELSE [e IN exc | e[0]] END,
    n._pr = CASE WHEN size(exc) = 0 THEN null ELSE [e IN exc | e[1]] END`
}

// The batch's merges and upserts run as one statement, assembled by
// writeStatement from the parts below: each part is a CALL subquery over a
// parameter list of its own, so a batch that brings new chunks, entities and
// relationships of several types costs one round trip for all of them. The
// parts run in the order of the separate statements they replace (entities,
// chunks, then relationships type by type, in name order).

// entityMergePart merges the batch's incoming assertions into each entity
// (one row per entity, already merged among themselves), creating it when
// new; on the fast path the row also sets name, type and the type label.
// Rows are sorted by key, so concurrent batches lock shared entities in one
// order. Rows ($ents): {i, tenant, id, name, type, rank, keys, vals, ranks,
// props, uniform}; returns, as ents, the indexes of the rows left for
// cypherEntityMergeGeneral.
var entityMergePart = `
UNWIND $ents AS r
MERGE (n:Entity {tenant: r.tenant, id: r.id})
SET n._rank = coalesce(n._rank, '')` + mergeFast(entityOwn, `
  SET n += r.props, n._rank = r.rank, n.name = r.name, n.type = r.type, n:$(r.type)
  FOREACH (l IN CASE WHEN old IS NULL OR old = r.type THEN [] ELSE [old] END | REMOVE n:$(l))`, "ents")

// cypherEntityMergeGeneral merges the rows the fast path left, key by key;
// the highest rank also sets name, type and the type label.
var cypherEntityMergeGeneral = `
UNWIND $rows AS r
MATCH (n:Entity {tenant: r.tenant, id: r.id})
SET n._rank = coalesce(n._rank, '')` + mergeKeys(entityOwn) + `
WITH n, r, top WHERE r.rank >= top
SET n.name = r.name
WITH n, r, n.type AS old WHERE old IS NULL OR old <> r.type
FOREACH (l IN CASE WHEN old IS NULL THEN [] ELSE [old] END | REMOVE n:$(l))
SET n:$(r.type), n.type = r.type`

// chunkUpsertPart writes chunks and MENTIONS to the entities they newly
// name (the entities exist: entityMergePart ran first). props sets every
// stored field; a null removes a field the record no longer has.
// Rows ($chunks): {tenant, id, props, mentions}.
const chunkUpsertPart = `
UNWIND $chunks AS r
MERGE (c:Chunk {tenant: r.tenant, id: r.id})
SET c += r.props
WITH c, r
UNWIND r.mentions AS eid
MATCH (e:Entity {tenant: r.tenant, id: eid})
MERGE (c)-[:MENTIONS]->(e)`

// cypherUnmark removes the deletion markers of re-created chunks: the chunk's
// own version guards the key again. Rows: {tenant, id}.
const cypherUnmark = `
UNWIND $rows AS r
MATCH (t:ChunkTombstone {tenant: r.tenant, id: r.id})
DELETE t`

// relationMergePart merges the batch's incoming assertions into each
// relationship, creating it when new, and adds the asserting chunks to its
// sources. Template (one type, its rows in $<REL>); rows: {i, tenant, from,
// to, srcs, rank, keys, vals, ranks, props, uniform}; returns, as <REL>, the
// indexes of the rows left for cypherRelationMergeGeneral.
var relationMergePart = `
UNWIND $<REL> AS r
MATCH (a:Entity {tenant: r.tenant, id: r.from})
MATCH (b:Entity {tenant: r.tenant, id: r.to})
MERGE (a)-[n:<TYPE>]->(b)
SET n.sources = coalesce(n.sources, []) + [s IN r.srcs WHERE NOT s IN coalesce(n.sources, [])]` +
	mergeFast(relationOwn, `SET n += r.props, n._rank = r.rank`, "<REL>")

// writeStatement assembles the batch's write from the parts that have rows:
// ents and chunks, and rels grouped by type in name order (so the
// statement's text depends only on which parts it has, and Neo4j plans each
// variant once). It returns the statement and its parameters, or an empty
// statement when there is nothing to write. The statement returns one
// record: ents and rels, the indexes of the rows left for the general paths.
func writeStatement(ents, chunks, rels []any) (string, map[string]any, error) {
	groups := byType(rels)
	slices.SortFunc(groups, func(a, b typeGroup) int { return strings.Compare(a.typ, b.typ) })
	var b strings.Builder
	params := map[string]any{}
	part := func(cypher string) { b.WriteString("CALL () {" + cypher + "\n}\n") }
	entsOut, relsOut := "[]", "[]"
	if len(ents) > 0 {
		part(entityMergePart)
		params["ents"] = ents
		entsOut = "ents"
	}
	if len(chunks) > 0 {
		part(chunkUpsertPart)
		params["chunks"] = chunks
	}
	for i, g := range groups {
		q, err := relType(relationMergePart, g.typ)
		if err != nil {
			return "", nil, err
		}
		name := "rels" + strconv.Itoa(i)
		part(strings.ReplaceAll(q, "<REL>", name))
		params[name] = g.rows
		relsOut += " + " + name
	}
	if len(params) == 0 {
		return "", nil, nil
	}
	b.WriteString("RETURN " + entsOut + " AS ents, " + relsOut + " AS rels")
	return b.String(), params, nil
}

// cypherRelationMergeGeneral merges the rows the fast path left, key by key.
// Template (one type).
var cypherRelationMergeGeneral = `
UNWIND $rows AS r
MATCH (:Entity {tenant: r.tenant, id: r.from})-[n:<TYPE>]->(:Entity {tenant: r.tenant, id: r.to})
SET n._rank = coalesce(n._rank, '')` + mergeKeys(relationOwn)

// cypherDropOrphans deletes entities that lost assertions in this batch and
// that no chunk mentions any more. Rows: {tenant, id}.
const cypherDropOrphans = `
UNWIND $rows AS r
MATCH (e:Entity {tenant: r.tenant, id: r.id})
WHERE NOT EXISTS { (e)<-[:MENTIONS]-(:Chunk) }
DETACH DELETE e`

// relType fills a relationship template's <TYPE> with typ, quoted, after
// checking it against the allow-list once more: this is the one place where
// a string from an event becomes part of a statement.
func relType(tmpl, typ string) (string, error) {
	if !validLabel(typ) || reservedRelationTypes[typ] {
		return "", &internalError{fmt.Errorf("relationship type %q is not allowed", typ)}
	}
	return strings.ReplaceAll(tmpl, "<TYPE>", "`"+typ+"`"), nil
}

// cypherSweep deletes up to $limit deletion markers older than $cutoff and
// returns how many it deleted.
const cypherSweep = `
MATCH (t:ChunkTombstone) WHERE t.deleted_at < $cutoff
WITH t LIMIT $limit
DELETE t
RETURN count(*) AS n`
