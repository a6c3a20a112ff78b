package e2e

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/ragstream/ragstream/pipeline"
)

// TestMalformedInputStopsThePartitionLoudly: bad JSON, a vector of the
// wrong size and a bad entity label, each in a partition of its own between
// good records, are written to neither store and not silently dropped.
// Without a dead-letter queue (the failure-handling issue adds it) the
// partition stops with an error naming topic, partition and offset, logged
// at error level; the good records before the bad one are written and
// committed, nothing at or after it is written or committed, a restarted
// worker stops at the same record, and the other partitions complete.
func TestMalformedInputStopsThePartitionLoudly(t *testing.T) {
	e := newEnv(t, envOptions{partitions: 4})
	tenant := e.tenants[0]
	good := func(p int32, tag string, n int) []*kgo.Record {
		var out []*kgo.Record
		for i := range n {
			id := fmt.Sprintf("p%d-%s-%03d", p, tag, i)
			out = append(out, upsert(tenant, id, 1, "good "+id,
				[]ent{{ID: "org:shared", Type: "Organization", Name: "Shared"}, {ID: "topic:" + id, Type: "Topic", Name: id}}, nil))
		}
		return toPartition(p, out...)
	}
	badVector := upsert(tenant, "bad-vector", 1, "three floats", nil, nil)
	var ev map[string]any
	if err := json.Unmarshal(badVector.Value, &ev); err != nil {
		t.Fatal(err)
	}
	ev["vector"] = []float64{0.1, 0.2, 0.3}
	badVector = record(tenant, "bad-vector", ev)
	cases := []struct {
		name       string
		partition  int32
		before     int
		bad        *kgo.Record
		stage      string
		errMention string
	}{
		{"bad JSON", 0, 20, &kgo.Record{Key: []byte(tenant + "/bad-json"),
			Value: []byte(`{"op":"upsert","id":"bad-json","tenant":"` + tenant + `","text":"unterminated}`)}, pipeline.StageDecode, ""},
		{"wrong vector size", 1, 15, badVector, pipeline.StageValidate, "vector"},
		{"bad label", 2, 10, upsert(tenant, "bad-label", 1, "a lowercase label",
			[]ent{{ID: "x:bad", Type: "not a label", Name: "Bad"}}, nil), pipeline.StageValidate, "entities[0].type"},
	}
	var recs []*kgo.Record
	badAt := map[int32]int64{}
	for _, c := range cases {
		recs = append(recs, good(c.partition, "before", c.before)...)
		recs = append(recs, toPartition(c.partition, c.bad)...)
		recs = append(recs, good(c.partition, "after", 5)...)
		badAt[c.partition] = int64(c.before)
	}
	recs = append(recs, good(3, "clean", 30)...)
	produced := e.produceManual(recs)
	for _, r := range produced {
		if off, ok := badAt[r.Partition]; ok && r.Offset == off && !strings.Contains(string(r.Key), "bad-") {
			t.Fatalf("record at %d/%d is %s, not the bad one", r.Partition, r.Offset, r.Key)
		}
	}
	// What must be stored: partition 3 whole, the others up to their bad
	// record.
	var storable []*kgo.Record
	for _, r := range produced {
		if off, ok := badAt[r.Partition]; !ok || r.Offset < off {
			storable = append(storable, r)
		}
	}
	want := foldWant(t, storable)
	collection := e.collectionName("bad")
	group := e.name("bad")

	for _, run := range []string{"first", "restarted"} {
		w := e.startWorker(workerConfig{name: run, group: group, collection: collection})
		stopped := e.waitStopped(w, len(cases))
		ends := e.endOffsets()
		committed := e.waitCommits(group, map[int32]int64{0: badAt[0], 1: badAt[1], 2: badAt[2], 3: ends[3]})
		for _, c := range cases {
			se := stopped[c.partition]
			switch {
			case se == nil:
				t.Errorf("%s, %s: partition %d did not stop", run, c.name, c.partition)
				continue
			case se.Topic != e.topic || se.Offset != badAt[c.partition]:
				t.Errorf("%s, %s: stopped at %s/%d@%d, want %s/%d@%d", run, c.name, se.Topic, se.Partition, se.Offset, e.topic, c.partition, badAt[c.partition])
			case se.Stage != c.stage || !strings.Contains(se.Error(), c.errMention):
				t.Errorf("%s, %s: stage %q, error %q; want stage %q naming %q", run, c.name, se.Stage, se.Error(), c.stage, c.errMention)
			}
			if !strings.Contains(se.Error(), fmt.Sprintf("%s/%d stopped at offset %d", e.topic, c.partition, badAt[c.partition])) {
				t.Errorf("%s, %s: the error %q does not name the record's coordinates", run, c.name, se.Error())
			}
			if !loggedStop(w.logs.String(), c.partition, badAt[c.partition]) {
				t.Errorf("%s, %s: no error-level log line for partition %d offset %d", run, c.name, c.partition, badAt[c.partition])
			}
		}
		for p, off := range committed {
			if off != map[int32]int64{0: badAt[0], 1: badAt[1], 2: badAt[2], 3: ends[3]}[p] {
				t.Errorf("%s: partition %d committed at %d", run, p, off)
			}
		}
		// The stores hold exactly the good records before each bad one: not
		// the bad record, not its entities, nothing after it.
		e.mustMatch(collection, want)
		for _, id := range []string{"bad-json", "bad-vector", "bad-label"} {
			e.requireNoChunk(collection, tenant, id)
		}
		if recs := e.query(`MATCH (x:Entity {tenant: $t, id: 'x:bad'}) RETURN x.id`, map[string]any{"t": tenant}); len(recs) != 0 {
			t.Errorf("%s: the bad record's entity is in Neo4j", run)
		}
		w.stop(t)
		if t.Failed() {
			return
		}
	}
}

// waitStopped waits until n partitions of w have stopped and returns their
// errors by partition, checking that Err joins them.
func (e *env) waitStopped(w *worker, n int) map[int32]*pipeline.StoppedError {
	e.t.Helper()
	deadline := time.Now().Add(commitWait)
	for {
		out := map[int32]*pipeline.StoppedError{}
		for _, s := range w.c.Status() {
			var se *pipeline.StoppedError
			if s.Err != nil && errors.As(s.Err, &se) {
				out[s.Partition] = se
				if s.Paused&pipeline.PauseStopped == 0 {
					e.t.Errorf("partition %d stopped but its fetching is not paused (%s)", s.Partition, s.Paused)
				}
			}
		}
		if len(out) >= n {
			err := w.c.Err()
			for p, se := range out {
				if err == nil || !strings.Contains(err.Error(), se.Error()) {
					e.t.Errorf("Err() = %v; it does not report partition %d", err, p)
				}
			}
			return out
		}
		if time.Now().After(deadline) {
			e.t.Fatalf("%d partitions stopped within %s, want %d", len(out), commitWait, n)
		}
		time.Sleep(pollEvery)
	}
}

// waitCommits waits until the group's commits reach want (they must not go
// beyond), and returns them.
func (e *env) waitCommits(group string, want map[int32]int64) map[int32]int64 {
	e.t.Helper()
	deadline := time.Now().Add(commitWait)
	for {
		c, err := e.committed(group)
		ok := err == nil
		for p, off := range want {
			if c[p] > off {
				e.t.Fatalf("partition %d committed at %d, beyond %d", p, c[p], off)
			}
			ok = ok && c[p] == off
		}
		if ok {
			return c
		}
		if time.Now().After(deadline) {
			e.t.Fatalf("commits %v within %s, want %v (last error %v)", c, commitWait, want, err)
		}
		time.Sleep(pollEvery)
	}
}

// loggedStop reports whether logs hold an error-level line about the
// partition stopping at offset.
func loggedStop(logs string, partition int32, offset int64) bool {
	for _, line := range strings.Split(logs, "\n") {
		var l struct {
			Level     string `json:"level"`
			Partition *int32 `json:"partition"`
			Offset    *int64 `json:"offset"`
		}
		if json.Unmarshal([]byte(line), &l) != nil || l.Partition == nil || l.Offset == nil {
			continue
		}
		if l.Level == "error" && *l.Partition == partition && *l.Offset == offset {
			return true
		}
	}
	return false
}
