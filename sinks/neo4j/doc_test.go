package neo4j

import (
	"flag"
	"os"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite the statements section of docs/neo4j-model.md")

const modelDoc = "../../docs/neo4j-model.md"

// docStatements lists every statement of cypher.go under the name the
// document gives it.
func docStatements() []struct{ name, cypher string } {
	list := []struct{ name, cypher string }{}
	for i, q := range setupStatements {
		list = append(list, struct{ name, cypher string }{[]string{
			"Setup: Chunk key", "Setup: Entity key", "Setup: ChunkTombstone key",
			"Setup: ChunkTombstone deleted_at index", "Setup: wait for indexes",
		}[i], q})
	}
	list = append(list, []struct{ name, cypher string }{
		{"read key state", cypherReadKeys},
		{"withdraw entity assertions (lock and check)", cypherEntityWithdrawn},
		{"read entity assertions", cypherEntityAssertions},
		{"withdraw relationship assertions (per type)", cypherRelationWithdrawn},
		{"read relationship assertions", cypherChunkAssertions},
		{"delete chunks", cypherDeleteChunks},
		{"withdraw mentions", cypherUnmention},
		{"recompute entities", cypherEntityReplace},
		{"recompute relationships (per type)", cypherRelationReplace},
		{"write: merge entities (part)", entityMergePart},
		{"merge entities, general path", cypherEntityMergeGeneral},
		{"write: upsert chunks (part)", chunkUpsertPart},
		{"remove deletion markers", cypherUnmark},
		{"write: merge relationships (part, per type)", relationMergePart},
		{"merge relationships, general path (per type)", cypherRelationMergeGeneral},
		{"delete orphaned entities", cypherDropOrphans},
		{"sweep deletion markers", cypherSweep},
	}...)
	return list
}

func renderStatements() string {
	var b strings.Builder
	b.WriteString("<!-- statements:begin -->\n")
	for _, s := range docStatements() {
		b.WriteString("\n### " + s.name + "\n\n```cypher\n" + strings.TrimSpace(s.cypher) + "\n```\n")
	}
	b.WriteString("\n<!-- statements:end -->")
	return b.String()
}

// TestModelDocListsEveryStatement keeps docs/neo4j-model.md's statements
// section equal to the code's statements.
func TestModelDocListsEveryStatement(t *testing.T) {
	t.Parallel()
	raw, err := os.ReadFile(modelDoc)
	if err != nil {
		t.Fatal(err)
	}
	doc := string(raw)
	begin := strings.Index(doc, "<!-- statements:begin -->")
	end := strings.Index(doc, "<!-- statements:end -->")
	if begin < 0 || end < begin {
		t.Fatalf("%s has no statements section", modelDoc)
	}
	end += len("<!-- statements:end -->")
	want := renderStatements()
	if doc[begin:end] == want {
		return
	}
	if *update {
		if err := os.WriteFile(modelDoc, []byte(doc[:begin]+want+doc[end:]), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	t.Fatalf("%s lists other statements than cypher.go; run go test ./sinks/neo4j -run TestModelDocListsEveryStatement -update", modelDoc)
}
