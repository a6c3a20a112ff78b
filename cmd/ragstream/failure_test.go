package main

// Acceptance tests of failure handling (DESIGN.md §4–§5), run through the
// real worker (newWorker + run) on real Kafka and real Neo4j, with the
// Qdrant stand-in where a Qdrant fault is injected and qdranttest.Target
// elsewhere: poison records of every kind, a stopped, a frozen and a
// credential-refusing Neo4j, an unavailable Qdrant, updates one store
// refuses, and deadlocks between partitions. The outage tests stop, freeze
// or reconfigure a private Neo4j of their own, never the shared one.
//
// The machine is small and shared: waits are generous and no assertion is
// about speed, only about order and outcome. TestFailurePoison also logs the
// throughput figures of docs/failure-figures.md. They take about 8 minutes
// (`go test -run TestFailure ./cmd/ragstream/`).

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"os"
	"runtime"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	neo4jdrv "github.com/neo4j/neo4j-go-driver/v5/neo4j"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	qc "github.com/qdrant/go-client/qdrant"
	"github.com/rs/zerolog"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"google.golang.org/grpc/codes"

	"github.com/ragstream/ragstream/config"
	"github.com/ragstream/ragstream/dlq"
	"github.com/ragstream/ragstream/internal/metrics/metricstest"
	"github.com/ragstream/ragstream/internal/sample"
	"github.com/ragstream/ragstream/internal/testenv"
	"github.com/ragstream/ragstream/pipeline"
	"github.com/ragstream/ragstream/sinks/neo4j/neo4jtest"
	"github.com/ragstream/ragstream/sinks/qdrant"
)

// Bounds of the failure tests. None is about speed: each is several times
// what the step takes on an idle machine.
const (
	catchUpWait   = 10 * time.Minute // a stream (or the rest of it) committed
	recoveryWait  = 3 * time.Minute  // caught up after a store is back
	downWait      = 30 * time.Second
	kafkaCallWait = 30 * time.Second
)

// ---------------------------------------------------------------------------
// Poison records

// Poison kinds: DESIGN.md §5's permanent record errors.
const (
	poisonJSON     = "bad_json"     // truncated value: not JSON
	poisonSchema   = "schema"       // tenant "Bad Tenant"
	poisonVector   = "vector_size"  // one float short
	poisonLabel    = "bad_label"    // entity type "person"
	poisonNeo4j    = "neo4j_refuse" // violates a uniqueness constraint of the test
	poisonQdrant   = "qdrant_refuse"
	poisonHeader   = "x-poison" // names the kind on the record itself
	refusedSerial  = "taken"    // the value the constraint's blocker node holds
	refusedProp    = "serial"
	poisonVersions = 1000 // refused updates are this far above the stored version
)

// wantDLQ is what ragstream.error.class and .stage must say for each kind,
// and a word the message must contain.
var wantDLQ = map[string]struct{ class, stage, says string }{
	poisonJSON:   {pipeline.ErrorClassDecode, pipeline.StageDecode, ""},
	poisonSchema: {pipeline.ErrorClassSchema, pipeline.StageValidate, "tenant"},
	poisonVector: {pipeline.ErrorClassSchema, pipeline.StageValidate, "vector"},
	poisonLabel:  {pipeline.ErrorClassSchema, pipeline.StageValidate, "type"},
	poisonNeo4j:  {pipeline.ErrorClassStoreRejected, "sink.neo4j", "ConstraintValidationFailed"},
	poisonQdrant: {pipeline.ErrorClassStoreRejected, "sink.qdrant", "InvalidArgument"},
}

// stream is a test's input: the records in produce order, which of them are
// poison (by kind), and the state the good ones fold to.
type stream struct {
	records []*kgo.Record
	poison  map[*kgo.Record]string
	good    []sample.Record
	// rejectPoints are the Qdrant point ids the stand-in must refuse.
	rejectPoints []any
	// refusedUpdates are the keys of live chunks a refused update targets.
	refusedUpdates []string
}

// refusal is a Neo4j constraint that refuses records by content: a
// uniqueness constraint on a property of a label only this test uses, and a
// node that already holds the value every refused entity carries.
type refusal struct {
	label, constraint string
}

// newRefusal creates the constraint and its blocker node on the Neo4j at
// drv, and removes both when the test ends.
func newRefusal(t *testing.T, drv neo4jdrv.DriverWithContext) refusal {
	t.Helper()
	suffix := strings.ToUpper(unique(""))
	r := refusal{label: "Refused" + suffix, constraint: "ragstream_test_refused_" + strings.ToLower(suffix)}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for _, q := range []string{
		// Test-only names (hex), so building them into the statement is safe.
		"CREATE CONSTRAINT " + r.constraint + " IF NOT EXISTS FOR (n:" + r.label + ") REQUIRE n." + refusedProp + " IS UNIQUE",
		"CALL db.awaitIndexes(300)",
		"CREATE (:" + r.label + " {" + refusedProp + ": $v})",
	} {
		if _, err := neo4jExec(ctx, drv, q, map[string]any{"v": refusedSerial}); err != nil {
			t.Fatalf("set up the refusing constraint: %s: %v", q, err)
		}
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		for _, q := range []string{
			"DROP CONSTRAINT " + r.constraint + " IF EXISTS",
			"MATCH (n:" + r.label + ") DETACH DELETE n",
		} {
			if _, err := neo4jExec(ctx, drv, q, nil); err != nil {
				t.Logf("clean up the refusing constraint: %s: %v", q, err)
			}
		}
	})
	return r
}

// mutable is an event value as a JSON object that a test can change.
type mutable map[string]any

func parseEvent(t *testing.T, value []byte) mutable {
	t.Helper()
	d := json.NewDecoder(bytes.NewReader(value))
	d.UseNumber()
	var m mutable
	if err := d.Decode(&m); err != nil {
		t.Fatalf("sample value is not JSON: %v", err)
	}
	return m
}

func (m mutable) bytes(t *testing.T) []byte {
	t.Helper()
	b, err := json.Marshal(map[string]any(m))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// makePoison turns a donor upsert (a fresh chunk of the test's tenants) into
// a poison record of kind with id, and returns its key and value.
func makePoison(t *testing.T, donor []byte, kind, id string, ref refusal, n int) (key, value []byte) {
	t.Helper()
	m := parseEvent(t, donor)
	m["id"] = id
	tenant, _ := m["tenant"].(string)
	switch kind {
	case poisonJSON:
		b := m.bytes(t)
		return []byte(tenant + "/" + id), b[:len(b)/2]
	case poisonSchema:
		tenant = "Bad Tenant"
		m["tenant"] = tenant
	case poisonVector:
		v := m["vector"].([]any)
		m["vector"] = v[:len(v)-1]
	case poisonLabel:
		ents := m["entities"].([]any)
		ents[0].(map[string]any)["type"] = "person"
	case poisonNeo4j:
		ents, _ := m["entities"].([]any)
		m["entities"] = append(ents, map[string]any{
			"id": "refused:" + strconv.Itoa(n), "type": ref.label, "name": "Refused " + strconv.Itoa(n),
			"props": map[string]any{refusedProp: refusedSerial},
		})
	case poisonQdrant:
	default:
		t.Fatalf("unknown poison kind %q", kind)
	}
	return []byte(tenant + "/" + id), m.bytes(t)
}

// buildStream returns n records of the test's tenants: sample.DefaultOptions
// events with poison (a fraction of n, the same number of each kind; the
// store-refused fifth half for Neo4j, half for Qdrant, and half of Neo4j's
// are updates of live chunks) at random positions.
func buildStream(t *testing.T, n int, poisonFrac float64, tenants []string, ref refusal, seed uint64) *stream {
	t.Helper()
	nPoison := int(float64(n)*poisonFrac + 0.5)
	perKind := nPoison / 5
	nPoison = perKind * 5
	opt := sample.DefaultOptions()
	opt.Seed, opt.Tenants = seed, tenants
	good := sample.Generate(n-nPoison, opt)
	s := &stream{poison: map[*kgo.Record]string{}, good: good}
	rng := rand.New(rand.NewPCG(seed, 99))

	// Where each poison record goes: before good record i (len(good): at the end).
	at := map[int][]*kgo.Record{}
	donors := sample.Generate(max(nPoison, 1), sample.Options{Seed: seed + 1, Tenants: tenants})
	kinds := []string{poisonJSON, poisonSchema, poisonVector, poisonLabel}
	var plan []string
	for _, k := range kinds {
		for range perKind {
			plan = append(plan, k)
		}
	}
	for i := range perKind {
		if i < perKind/2 {
			plan = append(plan, poisonNeo4j)
		} else {
			plan = append(plan, poisonQdrant)
		}
	}

	// Live chunks and the index of their last good record, for the refused
	// updates (which must come after it to be updates).
	state, err := sample.Fold(dimsDefault, good)
	if err != nil {
		t.Fatal(err)
	}
	last := map[string]int{}
	for i, r := range good {
		if r.Key != nil {
			last[string(r.Key)] = i
		}
	}
	var live []string
	for k := range state.Chunks {
		if _, keyed := last[k]; keyed {
			live = append(live, k)
		}
	}
	sort.Strings(live)
	rng.Shuffle(len(live), func(i, j int) { live[i], live[j] = live[j], live[i] })

	neo4jUpdates := 0
	for i, kind := range plan {
		id := fmt.Sprintf("poison-%s-%d", kind, i)
		key, value := makePoison(t, donors[i].Value, kind, id, ref, i)
		pos := rng.IntN(len(good) + 1)
		if kind == poisonNeo4j && neo4jUpdates < perKind/4+1 && len(live) > neo4jUpdates {
			// An update of a live chunk, at a version above the stored one:
			// refused, so the previous version must stay in both stores.
			k := live[neo4jUpdates]
			neo4jUpdates++
			ev := state.Chunks[k]
			m := parseEvent(t, value)
			m["id"], m["tenant"], m["version"] = ev.ID, ev.Tenant, ev.Version+poisonVersions
			key, value = []byte(k), m.bytes(t)
			pos = last[k] + 1 + rng.IntN(len(good)-last[k])
			s.refusedUpdates = append(s.refusedUpdates, k)
		}
		if kind == poisonQdrant {
			m := parseEvent(t, value)
			s.rejectPoints = append(s.rejectPoints, qdrant.PointID(m["tenant"].(string), m["id"].(string)))
		}
		kr := &kgo.Record{Key: key, Value: value, Headers: []kgo.RecordHeader{
			{Key: poisonHeader, Value: []byte(kind)},
		}}
		if i%3 != 0 {
			kr.Headers = append(kr.Headers, kgo.RecordHeader{Key: sample.CorrelationHeader, Value: []byte("poison-" + strconv.Itoa(i))})
		}
		s.poison[kr] = kind
		at[pos] = append(at[pos], kr)
	}
	for i := 0; i <= len(good); i++ {
		s.records = append(s.records, at[i]...)
		if i < len(good) {
			s.records = append(s.records, toKafka(good[i]))
		}
	}
	return s
}

const dimsDefault = 384 // config.Default().Qdrant.VectorSize

// poisonBatch is pipeline.batch.max_records of the poison runs.
const poisonBatch = 250

func toKafka(r sample.Record) *kgo.Record {
	kr := &kgo.Record{Key: r.Key, Value: r.Value}
	for _, h := range r.Headers {
		kr.Headers = append(kr.Headers, kgo.RecordHeader(h))
	}
	return kr
}

func toKafkaAll(recs []sample.Record) []*kgo.Record {
	out := make([]*kgo.Record, len(recs))
	for i, r := range recs {
		out[i] = toKafka(r)
	}
	return out
}

// foldGood is the state the good records of a stream must leave.
func foldGood(t *testing.T, good []sample.Record) *sample.State {
	t.Helper()
	s, err := sample.Fold(dimsDefault, good)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// ---------------------------------------------------------------------------
// Kafka

// admin returns a kadm client on the env's brokers, closed when the test ends.
func (e *workerEnv) admin() *kadm.Client {
	e.t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(e.brokers...))
	if err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(cl.Close)
	return kadm.NewClient(cl)
}

// produce writes recs to the env's topic in order and waits for every
// acknowledgement; afterwards each record carries its partition and offset.
func (e *workerEnv) produce(recs []*kgo.Record) {
	e.t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(e.brokers...), kgo.DefaultProduceTopic(e.topic),
		kgo.ProducerLinger(5*time.Millisecond), kgo.MaxBufferedRecords(len(recs)+1))
	if err != nil {
		e.t.Fatal(err)
	}
	defer cl.Close()
	for _, r := range recs {
		r.Topic = e.topic
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	if err := cl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		e.t.Fatalf("produce %d records: %v", len(recs), err)
	}
}

// offsets returns the topic's end offsets and the group's committed offsets
// by partition (a partition without a commit is absent).
func (e *workerEnv) offsets(adm *kadm.Client) (ends, committed map[int32]int64, err error) {
	ctx, cancel := context.WithTimeout(context.Background(), kafkaCallWait)
	defer cancel()
	lo, err := adm.ListEndOffsets(ctx, e.topic)
	if err != nil {
		return nil, nil, err
	}
	ends = map[int32]int64{}
	lo.Each(func(o kadm.ListedOffset) { ends[o.Partition] = o.Offset })
	committed = map[int32]int64{}
	os, err := adm.FetchOffsetsForTopics(ctx, e.group, e.topic)
	if errors.Is(err, kerr.GroupIDNotFound) {
		return ends, committed, nil
	}
	if err != nil {
		return nil, nil, err
	}
	for p, o := range os[e.topic] {
		if o.Err == nil && o.At >= 0 {
			committed[p] = o.At
		}
	}
	return ends, committed, nil
}

// lag is the records of the topic the group has not committed.
func (e *workerEnv) lag(adm *kadm.Client) (int64, error) {
	ends, committed, err := e.offsets(adm)
	if err != nil {
		return 0, err
	}
	var lag int64
	for p, end := range ends {
		lag += end - committed[p]
	}
	return lag, nil
}

// waitCaughtUp waits until the group has committed every record of the
// topic, and returns how long that took. It fails at once when a partition
// of tw stopped (a record it could neither write nor dead-letter).
func (e *workerEnv) waitCaughtUp(adm *kadm.Client, within time.Duration, tw *testWorker) time.Duration {
	e.t.Helper()
	start := time.Now()
	var lag int64
	var err error
	deadline := start.Add(within)
	for {
		if lag, err = e.lag(adm); err == nil && lag == 0 {
			return time.Since(start)
		}
		if perr := tw.consumer.Err(); perr != nil {
			e.t.Fatalf("the worker stopped a partition (%d records not committed): %v", lag, perr)
		}
		if time.Now().After(deadline) {
			e.t.Fatalf("the group has %d records not committed after %s (last error %v)", lag, within, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// dlqEntries reads the env's DLQ topic; a DLQ topic that does not exist
// holds nothing.
func (e *workerEnv) dlqEntries() []dlq.Entry {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var out []dlq.Entry
	err := dlq.Inspect(ctx, []kgo.Opt{kgo.SeedBrokers(e.brokers...)}, dlq.TopicFor("", e.topic), dlq.Filter{},
		func(en dlq.Entry) error { out = append(out, en); return nil })
	if err != nil && strings.Contains(err.Error(), "does not exist") {
		return nil
	}
	if err != nil {
		e.t.Fatalf("read the DLQ: %v", err)
	}
	return out
}

// expectEmptyDLQ fails the test when anything was dead-lettered.
func (e *workerEnv) expectEmptyDLQ(when string) {
	e.t.Helper()
	if got := e.dlqEntries(); len(got) > 0 {
		en := got[0]
		e.t.Errorf("%s: %d records dead-lettered, want none; first: %s/%d@%d class %s stage %s: %s",
			when, len(got), en.SourceTopic, en.SourcePartition, en.SourceOffset, en.Class, en.Stage, en.Message)
	}
}

// ---------------------------------------------------------------------------
// Stores

// stored is what the stores hold for a test: each chunk key's version in
// Qdrant (the whole collection) and in Neo4j (the test's tenants), and the
// graph's counts for those tenants.
type stored struct {
	qdrant, neo4j map[string]int64
	graph         sample.Counts
	qdrantText    map[string]string
	neo4jText     map[string]string
}

func (e *workerEnv) readStores(cfg config.Config, tenants []string) stored {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	s := stored{qdrant: map[string]int64{}, neo4j: map[string]int64{}, qdrantText: map[string]string{}, neo4jText: map[string]string{}}

	qcl, err := qc.NewClient(e.qdrant.Config())
	if err != nil {
		e.t.Fatal(err)
	}
	defer qcl.Close()
	var offset *qc.PointId
	for {
		pts, next, err := qcl.ScrollAndOffset(ctx, &qc.ScrollPoints{
			CollectionName: cfg.Qdrant.Collection, Limit: qc.PtrOf(uint32(1000)), Offset: offset,
			WithPayload: qc.NewWithPayloadInclude(qdrant.FieldTenant, qdrant.FieldID, qdrant.FieldVersion, qdrant.FieldText),
		})
		if err != nil {
			e.t.Fatalf("scroll qdrant: %v", err)
		}
		for _, p := range pts {
			pl := p.GetPayload()
			k := pl[qdrant.FieldTenant].GetStringValue() + "/" + pl[qdrant.FieldID].GetStringValue()
			if _, dup := s.qdrant[k]; dup {
				e.t.Errorf("qdrant holds key %s twice", k)
			}
			s.qdrant[k] = pl[qdrant.FieldVersion].GetIntegerValue()
			s.qdrantText[k] = pl[qdrant.FieldText].GetStringValue()
		}
		if next == nil {
			break
		}
		offset = next
	}

	auth := neo4jdrv.NoAuth()
	if p := cfg.Neo4j.Password.Reveal(); p != "" {
		auth = neo4jdrv.BasicAuth(cfg.Neo4j.User, p, "")
	}
	drv, err := neo4jdrv.NewDriverWithContext(cfg.Neo4j.URI, auth)
	if err != nil {
		e.t.Fatal(err)
	}
	defer drv.Close(ctx)
	params := map[string]any{"tenants": tenants}
	res, err := neo4jExec(ctx, drv, "MATCH (c:Chunk) WHERE c.tenant IN $tenants RETURN c.tenant, c.id, c.version, c.text", params)
	if err != nil {
		e.t.Fatalf("read neo4j chunks: %v", err)
	}
	for _, r := range res.Records {
		tn, _ := r.Values[0].(string)
		id, _ := r.Values[1].(string)
		v, _ := r.Values[2].(int64)
		text, _ := r.Values[3].(string)
		k := tn + "/" + id
		if _, dup := s.neo4j[k]; dup {
			e.t.Errorf("neo4j holds chunk %s twice", k)
		}
		s.neo4j[k], s.neo4jText[k] = v, text
	}
	for _, c := range []struct {
		dst *int
		q   string
	}{
		{&s.graph.Chunks, "MATCH (c:Chunk) WHERE c.tenant IN $tenants RETURN count(c)"},
		{&s.graph.Entities, "MATCH (e:Entity) WHERE e.tenant IN $tenants RETURN count(e)"},
		{&s.graph.MentionEdges, "MATCH (c:Chunk)-[m:MENTIONS]->(:Entity) WHERE c.tenant IN $tenants RETURN count(m)"},
		{&s.graph.Relationships, "MATCH (a:Entity)-[r]->(:Entity) WHERE a.tenant IN $tenants RETURN count(r)"},
	} {
		res, err := neo4jExec(ctx, drv, c.q, params)
		if err != nil {
			e.t.Fatalf("%s: %v", c.q, err)
		}
		n, _ := res.Records[0].Values[0].(int64)
		*c.dst = int(n)
	}
	return s
}

// checkStores asserts that both stores hold exactly want's chunks at want's
// versions (so they agree on every key), no key twice, and the graph want
// implies.
func (e *workerEnv) checkStores(cfg config.Config, tenants []string, want *sample.State) stored {
	e.t.Helper()
	got := e.readStores(cfg, tenants)
	wantV := make(map[string]int64, len(want.Chunks))
	for k, ev := range want.Chunks {
		wantV[k] = ev.Version
	}
	for _, st := range []struct {
		name string
		m    map[string]int64
	}{{"qdrant", got.qdrant}, {"neo4j", got.neo4j}} {
		var problems []string
		for k, v := range wantV {
			if gv, ok := st.m[k]; !ok {
				problems = append(problems, fmt.Sprintf("%s missing (version %d)", k, v))
			} else if gv != v {
				problems = append(problems, fmt.Sprintf("%s at version %d, want %d", k, gv, v))
			}
		}
		for k, v := range st.m {
			if _, ok := wantV[k]; !ok {
				problems = append(problems, fmt.Sprintf("%s (version %d) should not be there", k, v))
			}
		}
		if len(problems) > 0 {
			sort.Strings(problems)
			e.t.Errorf("%s holds %d chunks, want %d; %d problems:\n  %s", st.name, len(st.m), len(wantV),
				len(problems), strings.Join(problems[:min(len(problems), 15)], "\n  "))
		}
	}
	if wc := want.Counts(); got.graph != wc {
		e.t.Errorf("neo4j graph of the test's tenants: %+v, want %+v", got.graph, wc)
	}
	return got
}

// deleteGraph removes the tenants' nodes from a Neo4j the test shares.
func deleteGraph(t *testing.T, drv neo4jdrv.DriverWithContext, tenants []string) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	sess := drv.NewSession(ctx, neo4jdrv.SessionConfig{})
	defer sess.Close(ctx)
	res, err := sess.Run(ctx, `
MATCH (n) WHERE (n:Chunk OR n:Entity OR n:ChunkTombstone) AND n.tenant IN $tenants
CALL { WITH n DETACH DELETE n } IN TRANSACTIONS OF 2000 ROWS`, map[string]any{"tenants": tenants})
	if err == nil {
		_, err = res.Consume(ctx)
	}
	if err != nil {
		t.Logf("clean up tenants %v: %v", tenants, err)
	}
}

// testTenants returns n tenants unique to the test, removed from the shared
// Neo4j when it ends when shared is set.
func testTenants(t *testing.T, n int, shared bool) []string {
	var out []string
	for i := range n {
		out = append(out, unique("f")+"-"+strconv.Itoa(i))
	}
	if shared {
		drv := neo4jtest.Connect(t)
		t.Cleanup(func() { deleteGraph(t, drv, out) })
	}
	return out
}

// ---------------------------------------------------------------------------
// Worker observations

func (tw *testWorker) scrape(t *testing.T) metricstest.Families {
	t.Helper()
	return metricstest.ScrapeURL(t, http.DefaultClient, tw.base+"/metrics")
}

func metricValue(f metricstest.Families, name string, labels map[string]string) float64 {
	v, _ := f.Value(name, labels)
	return v
}

// downChecks returns the readiness checks that fail, with their errors.
func downChecks(b readyBody) map[string]string {
	out := map[string]string{}
	for name, c := range b.Checks {
		if !c.OK {
			out[name] = c.Error
		}
	}
	return out
}

// namesStore reports whether a failing readiness check names store.
func namesStore(b readyBody, store string) bool {
	for name, msg := range downChecks(b) {
		if strings.Contains(name, store) && msg != "" {
			return true
		}
	}
	return false
}

// outage is what a test sees of the worker while a store is down.
type outage struct {
	readiness503 bool    // readiness answered 503 naming the store
	maxPaused    float64 // most partitions paused at once for a store being down
	maxBreaker   float64 // highest breaker state of the store (2 = open)
	why          string  // the store's readiness error
}

// watch polls readiness and /metrics until stop is closed. It runs on its
// own goroutine, so it skips a failed poll instead of failing the test.
func (tw *testWorker) watch(store string, stop <-chan struct{}) *outage {
	o := &outage{}
	topic := tw.cfg.Kafka.Topics[0]
	for {
		select {
		case <-stop:
			return o
		case <-time.After(200 * time.Millisecond):
		}
		if code, body, err := tw.readyQuiet(); err == nil && code == http.StatusServiceUnavailable && namesStore(body, store) {
			o.readiness503 = true
			for name, msg := range downChecks(body) {
				if strings.Contains(name, store) {
					o.why = msg
				}
			}
		}
		if f, err := tw.scrapeQuiet(); err == nil {
			o.maxPaused = max(o.maxPaused, metricValue(f, "ragstream_partitions_paused", map[string]string{"topic": topic}))
			o.maxBreaker = max(o.maxBreaker, metricValue(f, "ragstream_breaker_state", map[string]string{"sink": store}))
		}
	}
}

// readyQuiet is ready without a *testing.T.
func (tw *testWorker) readyQuiet() (int, readyBody, error) {
	var body readyBody
	resp, err := http.Get(tw.base + "/health/ready")
	if err != nil {
		return 0, body, err
	}
	defer resp.Body.Close()
	err = json.NewDecoder(resp.Body).Decode(&body)
	return resp.StatusCode, body, err
}

// scrapeQuiet is scrape without a *testing.T.
func (tw *testWorker) scrapeQuiet() (metricstest.Families, error) {
	resp, err := http.Get(tw.base + "/metrics")
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	p := expfmt.NewTextParser(model.UTF8Validation)
	return p.TextToMetricFamilies(resp.Body)
}

// watchDuring runs tw.watch while fn runs.
func (tw *testWorker) watchDuring(t *testing.T, store string, fn func()) *outage {
	stop := make(chan struct{})
	res := make(chan *outage, 1)
	go func() { res <- tw.watch(store, stop) }()
	fn()
	close(stop)
	return <-res
}

// shaped returns a configuration change for a shared 2-core machine whose
// load average can reach 15: batches of batch records and a Neo4j call
// timeout a batch's transaction fits in under that load. (With the
// defaults, 1,000 records and 5 s, a batch's transaction outlasts the
// timeout at such a load, every retry times out again, and the worker makes
// almost no progress.) more changes the configuration further.
func shaped(batch int, neo4jTimeout time.Duration, more ...func(*config.Config)) func(*config.Config) {
	return func(c *config.Config) {
		c.Pipeline.Batch.MaxRecords = batch
		c.Neo4j.Timeout = config.Duration(neo4jTimeout)
		for _, m := range more {
			m(c)
		}
	}
}

// loadavg returns the 1-minute load average (for figures), or "?".
func loadavg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	return strings.Fields(string(b))[0]
}

// ---------------------------------------------------------------------------
// Tests

// TestFailurePoison streams 10,000 events with 1 % poison of five kinds —
// bad JSON, a schema violation, a wrong vector size, a bad label, and records
// a store refuses for their content (a uniqueness constraint of the test in
// Neo4j, the stand-in's per-point rejection in Qdrant) — through a worker on
// real Kafka and the shared Neo4j. Exactly the poison records are in the DLQ,
// byte-identical with DESIGN.md §5's headers; every good record is in both
// stores and the stores agree on every key; refused updates leave the
// previous version in both; every offset is committed. Before it, the same
// number of clean events runs through another worker: the two rates are the
// throughput figures of docs/failure-figures.md.
func TestFailurePoison(t *testing.T) {
	n := 10_000
	if v, err := strconv.Atoi(os.Getenv("RAGSTREAM_TEST_FAILURE_EVENTS")); err == nil && v >= 500 {
		n = v
	}
	// RAGSTREAM_TEST_FAILURE_NEO4J_TXS sets neo4j.max_concurrent_transactions
	// of both runs (for the figures; default: the configuration default).
	txs, _ := strconv.Atoi(os.Getenv("RAGSTREAM_TEST_FAILURE_NEO4J_TXS"))
	cfg := shaped(poisonBatch, 30*time.Second, func(c *config.Config) {
		if txs > 0 {
			c.Neo4j.MaxConcurrentTransactions = txs
		}
	})
	drv := neo4jtest.Connect(t)
	uri := testenv.Neo4jURI(t)
	ref := newRefusal(t, drv)

	type run struct {
		took    time.Duration
		records int
		load    string
	}
	measure := func(t *testing.T, e *workerEnv, tw *testWorker, adm *kadm.Client, records int) run {
		t.Helper()
		topic := e.topic
		var first time.Time
		waitFor(t, time.Minute, "the worker to consume", func() bool {
			if metricValue(tw.scrape(t), "ragstream_records_consumed_total", map[string]string{"topic": topic}) > 0 {
				first = time.Now()
				return true
			}
			return false
		})
		e.waitCaughtUp(adm, catchUpWait, tw)
		r := run{took: time.Since(first), records: records, load: loadavg()}
		t.Logf("store calls: %s", sinkCalls(tw.scrape(t)))
		return r
	}

	// Clean: the same shape of stream without poison.
	runClean := func(t *testing.T) run {
		e := newWorkerEnv(t, uri, envOptions{realKafka: true, partitions: 6})
		tenants := testTenants(t, 4, true)
		s := buildStream(t, n, 0, tenants, ref, 11)
		e.produce(s.records)
		adm := e.admin()
		tw := e.start(cfg)
		r := measure(t, e, tw, adm, len(s.records))
		e.checkStores(*tw.cfg, tenants, foldGood(t, s.good))
		e.expectEmptyDLQ("clean stream")
		return r
	}

	runPoisoned := func(t *testing.T) run {
		e := newWorkerEnv(t, uri, envOptions{realKafka: true, partitions: 6})
		tenants := testTenants(t, 4, true)
		s := buildStream(t, n, 0.01, tenants, ref, 12)
		e.standIn.Faults().RejectPoints(s.rejectPoints...)
		e.produce(s.records)
		adm := e.admin()
		tw := e.start(cfg)
		r := measure(t, e, tw, adm, len(s.records))

		// Offsets: every record committed (waitCaughtUp), and nothing past
		// the end.
		ends, committed, err := e.offsets(adm)
		if err != nil {
			t.Fatal(err)
		}
		for p, end := range ends {
			if committed[p] != end {
				t.Errorf("partition %d: committed %d, end %d", p, committed[p], end)
			}
		}

		// The DLQ holds exactly the poison records, byte for byte.
		byCoord := map[[2]int64]*kgo.Record{}
		for r := range s.poison {
			byCoord[[2]int64{int64(r.Partition), r.Offset}] = r
		}
		entries := e.dlqEntries()
		seen := map[[2]int64]bool{}
		perKind := map[string]int{}
		for _, en := range entries {
			c := [2]int64{int64(en.SourcePartition), en.SourceOffset}
			src, ok := byCoord[c]
			if !ok {
				t.Errorf("DLQ holds %s/%d@%d (class %s, stage %s: %s), which is not poison", en.SourceTopic,
					en.SourcePartition, en.SourceOffset, en.Class, en.Stage, en.Message)
				continue
			}
			if seen[c] {
				t.Errorf("DLQ holds %d@%d twice", c[0], c[1])
			}
			seen[c] = true
			kind := s.poison[src]
			perKind[kind]++
			checkDLQEntry(t, e.topic, src, kind, en)
		}
		for c, r := range byCoord {
			if !seen[c] {
				t.Errorf("poison record %s (%s, partition %d offset %d) is not in the DLQ", r.Key, s.poison[r], c[0], c[1])
			}
		}
		t.Logf("DLQ: %d records by kind %v", len(entries), perKind)

		// Every good record in both stores; the stores agree; refused
		// updates left the previous version (the fold of the good records
		// keeps it) in both.
		got := e.checkStores(*tw.cfg, tenants, foldGood(t, s.good))
		want := foldGood(t, s.good)
		for _, k := range s.refusedUpdates {
			if got.qdrantText[k] != want.Chunks[k].Text || got.neo4jText[k] != want.Chunks[k].Text {
				t.Errorf("refused update of %s: the stores' text is not the previous version's", k)
			}
		}
		if len(s.refusedUpdates) == 0 {
			t.Error("the stream has no refused update: the test proves nothing about updates")
		}

		f := tw.scrape(t)
		for _, c := range []struct{ class, stage string }{
			{"decode", "decode"}, {"schema", "validate"}, {"store_rejected", "sink.neo4j"}, {"store_rejected", "sink.qdrant"},
		} {
			want := 0
			for _, k := range []string{poisonJSON, poisonSchema, poisonVector, poisonLabel, poisonNeo4j, poisonQdrant} {
				if wantDLQ[k].class == c.class && wantDLQ[k].stage == c.stage {
					want += perKindCount(s, k)
				}
			}
			if got := metricValue(f, "ragstream_dlq_records_total", map[string]string{"class": c.class, "stage": c.stage}); got != float64(want) {
				t.Errorf("ragstream_dlq_records_total{class=%q,stage=%q} = %v, want %d", c.class, c.stage, got, want)
			}
		}
		return r
	}

	// RAGSTREAM_TEST_FAILURE_ROUNDS runs both streams that many times, the
	// order alternating (clean first, then poisoned first), so a busy
	// machine's swings and a warming Neo4j weigh on both alike.
	rounds := 1
	if v, err := strconv.Atoi(os.Getenv("RAGSTREAM_TEST_FAILURE_ROUNDS")); err == nil && v > 1 {
		rounds = v
	}
	var clean, poisoned run
	var ratios []float64 // each round's poisoned/clean rate
	add := func(sum *run, r run) {
		sum.took += r.took
		sum.records += r.records
		sum.load += " " + r.load
	}
	for i := range rounds {
		name := func(s string) string {
			if rounds == 1 {
				return s
			}
			return fmt.Sprintf("%s#%d", s, i+1)
		}
		var c, p run
		steps := []func(){
			func() { t.Run(name("clean"), func(t *testing.T) { c = runClean(t) }) },
			func() { t.Run(name("poisoned"), func(t *testing.T) { p = runPoisoned(t) }) },
		}
		if i%2 == 1 {
			steps[0], steps[1] = steps[1], steps[0]
		}
		for _, step := range steps {
			step()
		}
		if c.took > 0 && p.took > 0 {
			add(&clean, c)
			add(&poisoned, p)
			if rounds > 1 {
				cr, pr := float64(c.records)/c.took.Seconds(), float64(p.records)/p.took.Seconds()
				ratios = append(ratios, pr/cr)
				t.Logf("round %d: clean %.0f events/s (load %s), poisoned %.0f events/s (load %s): %.0f%%", i+1, cr, c.load, pr, p.load, 100*pr/cr)
			}
		}
	}

	if clean.took > 0 && poisoned.took > 0 {
		cr := float64(clean.records) / clean.took.Seconds()
		pr := float64(poisoned.records) / poisoned.took.Seconds()
		t.Logf("FIGURE throughput: clean %d events in %s = %.0f events/s (load%s); 1%% poison %d events in %s = %.0f events/s (load%s); ratio %.0f%% (target >= 80%%); %d round(s), batch %d, neo4j.max_concurrent_transactions %s; GOMAXPROCS %d",
			clean.records, clean.took.Round(time.Millisecond), cr, clean.load,
			poisoned.records, poisoned.took.Round(time.Millisecond), pr, poisoned.load, 100*pr/cr, rounds, poisonBatch, txsName(txs), runtime.GOMAXPROCS(0))
	}
	if len(ratios) > 1 {
		// A load spike on one stream of a round weighs on the summed
		// ratio; the median of the rounds' own ratios is robust to one.
		slices.Sort(ratios)
		med := ratios[len(ratios)/2]
		if len(ratios)%2 == 0 {
			med = (ratios[len(ratios)/2-1] + med) / 2
		}
		t.Logf("FIGURE median of the %d rounds' ratios: %.0f%% (lowest %.0f%%, highest %.0f%%)", len(ratios), 100*med, 100*ratios[0], 100*ratios[len(ratios)-1])
	}
}

// sinkCalls summarises ragstream_sink_duration_seconds: calls and seconds
// by sink, operation and result.
func sinkCalls(f metricstest.Families) string {
	var parts []string
	for _, m := range f["ragstream_sink_duration_seconds"].GetMetric() {
		l := map[string]string{}
		for _, lp := range m.GetLabel() {
			l[lp.GetName()] = lp.GetValue()
		}
		if h := m.GetHistogram(); h.GetSampleCount() > 0 {
			parts = append(parts, fmt.Sprintf("%s %s %s: %d calls, %.1f s", l["sink"], l["op"], l["result"], h.GetSampleCount(), h.GetSampleSum()))
		}
	}
	sort.Strings(parts)
	return strings.Join(parts, "; ")
}

func txsName(n int) string {
	if n <= 0 {
		return "default (" + strconv.Itoa(config.Default().Neo4j.MaxConcurrentTransactions) + ")"
	}
	return strconv.Itoa(n)
}

func perKindCount(s *stream, kind string) int {
	n := 0
	for _, k := range s.poison {
		if k == kind {
			n++
		}
	}
	return n
}

// checkDLQEntry asserts that en is src dead-lettered as DESIGN.md §5 says:
// key, value and original headers byte-identical, then the ragstream.*
// headers, then Kafka Connect's.
func checkDLQEntry(t *testing.T, topic string, src *kgo.Record, kind string, en dlq.Entry) {
	t.Helper()
	where := fmt.Sprintf("DLQ record of %s (%s)", src.Key, kind)
	if !bytes.Equal(en.Key, src.Key) {
		t.Errorf("%s: key %q, want %q", where, en.Key, src.Key)
	}
	if !bytes.Equal(en.Value, src.Value) {
		t.Errorf("%s: value differs from the source record's (%d vs %d bytes)", where, len(en.Value), len(src.Value))
	}
	if len(en.Headers) < len(src.Headers) {
		t.Errorf("%s: %d headers, fewer than the source's %d", where, len(en.Headers), len(src.Headers))
		return
	}
	for i, h := range src.Headers {
		if en.Headers[i].Key != h.Key || !bytes.Equal(en.Headers[i].Value, h.Value) {
			t.Errorf("%s: header %d is %s=%q, want the source's %s=%q", where, i, en.Headers[i].Key, en.Headers[i].Value, h.Key, h.Value)
		}
	}
	corr := pipeline.CorrelationID(src)
	w := wantDLQ[kind]
	want := []struct{ key, value string }{
		{dlq.HeaderErrorClass, w.class},
		{dlq.HeaderErrorStage, w.stage},
		{dlq.HeaderErrorMessage, ""},
		{dlq.HeaderSourceTopic, topic},
		{dlq.HeaderSourcePartition, strconv.Itoa(int(src.Partition))},
		{dlq.HeaderSourceOffset, strconv.FormatInt(src.Offset, 10)},
		{dlq.HeaderAttempts, ""},
		{dlq.HeaderFailedAt, ""},
		{dlq.HeaderReplayCount, "0"},
		{dlq.HeaderCorrelationID, corr},
		{dlq.ConnectHeaderTopic, topic},
		{dlq.ConnectHeaderPartition, strconv.Itoa(int(src.Partition))},
		{dlq.ConnectHeaderOffset, strconv.FormatInt(src.Offset, 10)},
		{dlq.ConnectHeaderStage, ""},
		{dlq.ConnectHeaderExceptionClass, ""},
		{dlq.ConnectHeaderExceptionMessage, ""},
	}
	added := en.Headers[len(src.Headers):]
	if len(added) != len(want) {
		t.Errorf("%s: %d headers added, want %d: %v", where, len(added), len(want), added)
		return
	}
	for i, h := range want {
		got := added[i]
		if got.Key != h.key || (h.value != "" && string(got.Value) != h.value) || len(got.Value) == 0 {
			t.Errorf("%s: added header %d is %s=%q, want %s=%q", where, i, got.Key, got.Value, h.key, h.value)
		}
	}
	if _, err := time.Parse(time.RFC3339, string(added[7].Value)); err != nil {
		t.Errorf("%s: %s=%q is not RFC 3339: %v", where, dlq.HeaderFailedAt, added[7].Value, err)
	}
	if n, err := strconv.Atoi(string(added[6].Value)); err != nil || n < 1 {
		t.Errorf("%s: %s=%q, want a count of at least 1", where, dlq.HeaderAttempts, added[6].Value)
	}
	if w.says != "" && !strings.Contains(en.Message, w.says) {
		t.Errorf("%s: message %q does not mention %q", where, en.Message, w.says)
	}
}

// outageRun is the common course of the outage tests: a stream is half
// ingested, the store goes down (down), the rest is produced, the store stays
// down until holdFor has passed since down began, then comes back (up).
// While down: no record is dead-lettered, readiness is 503 naming the store,
// its circuit breaker opens, the partitions with a batch in delivery are
// paused for it and the others stop fetching, committed offsets do not
// advance. After up: the
// worker catches up by itself and both stores hold exactly the stream.
type outageRun struct {
	store    string
	holdFor  time.Duration
	down, up func()
	// upReturns is when up returned, the start of the recovery figure.
	upReturns time.Time
}

func runOutage(t *testing.T, e *workerEnv, tw *testWorker, tenants []string, o *outageRun) {
	t.Helper()
	adm := e.admin()
	opt := sample.DefaultOptions()
	opt.Seed, opt.Tenants = 21, tenants
	recs := sample.Generate(2400, opt)
	half := len(recs) / 2

	e.produce(toKafkaAll(recs[:half]))
	// Mid-stream: the worker is busy with the first half when the store goes.
	waitFor(t, catchUpWait, "some of the first half committed", func() bool {
		ends, committed, err := e.offsets(adm)
		if err != nil {
			return false
		}
		var done, total int64
		for p, end := range ends {
			done, total = done+committed[p], total+end
		}
		return done >= total/5
	})

	var atDown, atEnd map[int32]int64
	var consumedAtDown, consumedAtEnd float64
	topic := e.topic
	seen := tw.watchDuring(t, o.store, func() {
		start := time.Now()
		o.down()
		e.produce(toKafkaAll(recs[half:]))
		// In-flight work fails within the store's timeout; then nothing may
		// be committed until the store is back.
		time.Sleep(time.Until(start.Add(min(o.holdFor/2, 12*time.Second))))
		var err error
		if _, atDown, err = e.offsets(adm); err != nil {
			t.Fatal(err)
		}
		consumedAtDown = metricValue(tw.scrape(t), "ragstream_records_consumed_total", map[string]string{"topic": topic})
		time.Sleep(time.Until(start.Add(o.holdFor)))
		if _, atEnd, err = e.offsets(adm); err != nil {
			t.Fatal(err)
		}
		consumedAtEnd = metricValue(tw.scrape(t), "ragstream_records_consumed_total", map[string]string{"topic": topic})
		e.expectEmptyDLQ(o.store + " down")
		o.up()
		o.upReturns = time.Now()
	})
	for p, c := range atEnd {
		if c != atDown[p] {
			t.Errorf("partition %d: committed offset moved from %d to %d while %s was down", p, atDown[p], c, o.store)
		}
	}
	if consumedAtEnd != consumedAtDown {
		t.Errorf("records consumed while %s was down went from %v to %v: consumption was not paused", o.store, consumedAtDown, consumedAtEnd)
	}
	if !seen.readiness503 {
		t.Errorf("readiness never answered 503 naming %s while it was down", o.store)
	}
	// A partition pauses for a store being down while its batch is in
	// delivery; the others wait for a place (pipeline.max_active_batches),
	// their fetching paused by backpressure (the consumed count above).
	if want := min(int(e.partitions), tw.cfg.Pipeline.ActiveBatches(tw.cfg.Neo4j.MaxConcurrentTransactions)); seen.maxPaused < float64(want) {
		t.Errorf("at most %v of %d partitions were paused for a store being down while %s was down, want %d (one per active batch)",
			seen.maxPaused, e.partitions, o.store, want)
	}
	if seen.maxBreaker != 2 {
		t.Errorf("the %s circuit breaker never opened while it was down (highest state %v)", o.store, seen.maxBreaker)
	}
	t.Logf("while %s was down: readiness 503 (%q), up to %v partitions paused, breaker state up to %v",
		o.store, seen.why, seen.maxPaused, seen.maxBreaker)

	// The recovery figures: from the store being back to the first commit
	// (the worker noticed) and to lag 0 (the backlog written too).
	var resumed time.Duration
	waitFor(t, recoveryWait, "a commit after recovery", func() bool {
		_, c, err := e.offsets(adm)
		if err != nil {
			return false
		}
		for p, off := range c {
			if off > atEnd[p] {
				resumed = time.Since(o.upReturns)
				return true
			}
		}
		return false
	})
	e.waitCaughtUp(adm, recoveryWait, tw)
	took := time.Since(o.upReturns)
	t.Logf("FIGURE recovery: %s back -> first commit in %s, caught up (lag 0) in %s (backlog %d records; load %s)",
		o.store, resumed.Round(100*time.Millisecond), took.Round(100*time.Millisecond), backlog(atEnd, recs, half), loadavg())
	e.expectEmptyDLQ("after " + o.store + " came back")
	e.checkStores(*tw.cfg, tenants, foldGood(t, recs))
	waitFor(t, time.Minute, "readiness 200 after recovery", func() bool { code, _ := tw.ready(t); return code == http.StatusOK })
	f := tw.scrape(t)
	if v := metricValue(f, "ragstream_partitions_paused", map[string]string{"topic": topic}); v != 0 {
		t.Errorf("after recovery %v partitions are still paused", v)
	}
	if v := metricValue(f, "ragstream_breaker_state", map[string]string{"sink": o.store}); v != 0 {
		t.Errorf("after recovery the %s breaker is in state %v, want 0 (closed)", o.store, v)
	}
}

// backlog is how many records were not committed when the store came back:
// all of the stream minus what was committed by then.
func backlog(committed map[int32]int64, recs []sample.Record, _ int) int64 {
	n := int64(len(recs))
	for _, c := range committed {
		n -= c
	}
	return n
}

// TestFailureNeo4jStopped stops a private Neo4j for 30 s in the middle of a
// stream: nothing is dead-lettered, consumption pauses, readiness is 503
// naming neo4j, no offset is committed while it is down, and after it is
// back everything lands exactly once.
func TestFailureNeo4jStopped(t *testing.T) {
	srv := neo4jtest.StartPrivate(t, neo4jtest.Options{})
	e := newWorkerEnv(t, srv.URI(), envOptions{realKafka: true, partitions: 6, qdrantTarget: true})
	tw := e.start(shaped(200, 10*time.Second))
	runOutage(t, e, tw, testTenants(t, 4, false), &outageRun{
		store: "neo4j", holdFor: 30 * time.Second, down: srv.Stop, up: srv.Start,
	})
}

// TestFailureQdrantUnavailable makes the Qdrant stand-in answer every call
// with Unavailable for 30 s in the middle of a stream: the same outcome as
// for Neo4j.
func TestFailureQdrantUnavailable(t *testing.T) {
	e := newWorkerEnv(t, testenv.Neo4jURI(t), envOptions{realKafka: true, partitions: 6})
	tw := e.start(shaped(200, 30*time.Second))
	faults := e.standIn.Faults()
	runOutage(t, e, tw, testTenants(t, 4, true), &outageRun{
		store: "qdrant", holdFor: 30 * time.Second,
		down: func() { faults.FailFor("", codes.Unavailable, time.Hour) },
		up:   faults.Reset,
	})
}

// TestFailureNeo4jFrozen freezes a private Neo4j (SIGSTOP) for 20 s in the
// middle of a stream: every call returns within neo4j.timeout plus slack
// (none hangs), the breaker opens, every partition pauses, nothing is
// dead-lettered or lost, and the worker recovers by itself after SIGCONT.
//
// It runs with the default neo4j.max_concurrent_transactions (1), where a
// call first waits for its turn, and with one transaction per partition,
// where nothing waits: the second case bounds the store calls themselves,
// the first what a worker with the defaults does.
func TestFailureNeo4jFrozen(t *testing.T) {
	for _, tc := range []struct {
		name string
		txs  int
	}{
		{"default_transactions", 0},
		{"transaction_per_partition", 6},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := neo4jtest.StartPrivate(t, neo4jtest.Options{})
			e := newWorkerEnv(t, srv.URI(), envOptions{realKafka: true, partitions: 6, qdrantTarget: true})
			timeout := 5 * time.Second
			tw := e.start(shaped(100, timeout, func(c *config.Config) {
				if tc.txs > 0 {
					c.Neo4j.MaxConcurrentTransactions = tc.txs
				}
			}))
			o := &outageRun{store: "neo4j", holdFor: 20 * time.Second, down: srv.Freeze, up: srv.Thaw}
			runOutage(t, e, tw, testTenants(t, 4, false), o)
			checkCallsBounded(t, tw, timeout)
		})
	}
}

// checkCallsBounded asserts that every Neo4j call of the worker returned
// within twice timeout: a call that hung on the frozen server would have
// returned only after SIGCONT, some 20 s later, above the bound. And some
// call failed while the server was frozen.
func checkCallsBounded(t *testing.T, tw *testWorker, timeout time.Duration) {
	t.Helper()
	slack := 2 * timeout
	var calls, within, failed uint64
	for _, m := range tw.scrape(t)["ragstream_sink_duration_seconds"].GetMetric() {
		labels := map[string]string{}
		for _, lp := range m.GetLabel() {
			labels[lp.GetName()] = lp.GetValue()
		}
		if labels["sink"] != "neo4j" {
			continue
		}
		h := m.GetHistogram()
		calls += h.GetSampleCount()
		if labels["result"] == "transient" || labels["result"] == "down" {
			failed += h.GetSampleCount()
		}
		for _, b := range h.GetBucket() {
			if b.GetUpperBound() == slack.Seconds() {
				within += b.GetCumulativeCount()
			}
		}
	}
	if calls == 0 || within != calls {
		t.Errorf("%d of %d neo4j calls took longer than %s (neo4j.timeout %s)", calls-within, calls, slack, timeout)
	}
	if failed == 0 {
		t.Error("no neo4j call failed while the server was frozen")
	}
}

// TestFailureNeo4jRefusesPassword runs a worker on a private Neo4j with
// authentication as user ragstream, then changes that user's password and
// restarts Neo4j, so every new connection is refused: the sink is down,
// nothing is dead-lettered or committed, readiness says why. A worker
// restarted with the new password ingests everything.
func TestFailureNeo4jRefusesPassword(t *testing.T) {
	srv := neo4jtest.StartPrivate(t, neo4jtest.Options{Auth: true, Password: "admin-" + unique("")})
	admin := srv.Connect(t)
	oldPass, newPass := "first-"+unique(""), "second-"+unique("")
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	sys := neo4jdrv.ExecuteQueryWithDatabase("system")
	if _, err := neo4jdrv.ExecuteQuery(ctx, admin, "CREATE USER ragstream SET PASSWORD $p CHANGE NOT REQUIRED",
		map[string]any{"p": oldPass}, neo4jdrv.EagerResultTransformer, sys); err != nil {
		t.Fatalf("create user ragstream: %v", err)
	}

	e := newWorkerEnv(t, srv.URI(), envOptions{realKafka: true, partitions: 3, qdrantTarget: true})
	withPass := func(p string) func(*config.Config) {
		return shaped(200, 10*time.Second, func(c *config.Config) { c.Neo4j.User, c.Neo4j.Password = "ragstream", config.Secret(p) })
	}
	tw := e.start(withPass(oldPass))
	adm := e.admin()
	tenants := testTenants(t, 2, false)
	opt := sample.DefaultOptions()
	opt.Seed, opt.Tenants = 31, tenants
	recs := sample.Generate(1500, opt)
	e.produce(toKafkaAll(recs[:500]))
	e.waitCaughtUp(adm, catchUpWait, tw)

	// The password changes and Neo4j restarts, so no connection of the
	// worker's pool survives.
	if _, err := neo4jdrv.ExecuteQuery(ctx, admin, "ALTER USER ragstream SET PASSWORD $p CHANGE NOT REQUIRED",
		map[string]any{"p": newPass}, neo4jdrv.EagerResultTransformer, sys); err != nil {
		t.Fatalf("alter user ragstream: %v", err)
	}
	srv.Stop()
	srv.Start()
	_, before, err := e.offsets(adm)
	if err != nil {
		t.Fatal(err)
	}
	e.produce(toKafkaAll(recs[500:]))

	var why string
	waitFor(t, downWait, "readiness 503 naming neo4j", func() bool {
		code, body := tw.ready(t)
		if code != http.StatusServiceUnavailable || !namesStore(body, "neo4j") {
			return false
		}
		for name, msg := range downChecks(body) {
			if strings.Contains(name, "neo4j") {
				why = msg
			}
		}
		return true
	})
	if l := strings.ToLower(why); !strings.Contains(l, "auth") && !strings.Contains(l, "unauthorized") && !strings.Contains(l, "credentials") {
		t.Errorf("readiness says neo4j is down because %q, which does not say that authentication failed", why)
	}
	time.Sleep(10 * time.Second)
	_, after, err := e.offsets(adm)
	if err != nil {
		t.Fatal(err)
	}
	for p, c := range after {
		if c != before[p] {
			t.Errorf("partition %d: committed offset moved from %d to %d while Neo4j refused the password", p, before[p], c)
		}
	}
	if code, body := tw.ready(t); code != http.StatusServiceUnavailable || !namesStore(body, "neo4j") {
		t.Errorf("readiness is %d %+v while Neo4j refuses the password, want 503 naming neo4j", code, body)
	}
	e.expectEmptyDLQ("neo4j refusing the password")
	t.Logf("readiness while the password was refused: %q", why)

	// A worker started with the refused password does not start: it exits
	// at once with an error naming the cause (ragstream run exits 1).
	tw.stop(t)
	cfg := e.config()
	withPass(oldPass)(&cfg)
	sctx, scancel := context.WithTimeout(context.Background(), downWait)
	defer scancel()
	panicked := false
	w, err := func() (w *worker, err error) {
		defer func() {
			if p := recover(); p != nil {
				panicked, err = true, fmt.Errorf("newWorker panicked: %v", p)
			}
		}()
		return newWorker(sctx, &cfg, zerolog.Nop())
	}()
	switch {
	case panicked:
		t.Errorf("a worker started with the refused password: %v, want an error naming neo4j authentication", err)
	case err == nil:
		w.close()
		t.Error("a worker started with the refused password: want an error")
	case sctx.Err() != nil || !strings.Contains(strings.ToLower(err.Error()), "neo4j") || !strings.Contains(strings.ToLower(err.Error()), "auth"):
		t.Errorf("a worker started with the refused password failed with %q, want at once and naming neo4j authentication", err)
	default:
		t.Logf("a worker started with the refused password fails: %v", err)
	}

	// The operator fixes the password and restarts the worker.
	// Neo4j locks an account for a few seconds after repeated failed
	// logins (dbms.security.auth_lock_time, 5 s); the operator's restart
	// takes longer than that.
	time.Sleep(6 * time.Second)
	tw = e.start(withPass(newPass))
	e.waitCaughtUp(adm, recoveryWait, tw)
	e.expectEmptyDLQ("after the password was fixed")
	e.checkStores(*tw.cfg, tenants, foldGood(t, recs))
}

// TestFailureRefusedUpdateKeepsPreviousVersion updates every chunk of a
// stream in one go, with some updates refused by Neo4j (the constraint) and
// some by Qdrant (the stand-in's per-point rejection), in the same batches as
// good updates: the refused ones are dead-lettered and their chunks keep the
// previous version and text in both stores; the good ones are applied.
func TestFailureRefusedUpdateKeepsPreviousVersion(t *testing.T) {
	drv := neo4jtest.Connect(t)
	ref := newRefusal(t, drv)
	e := newWorkerEnv(t, testenv.Neo4jURI(t), envOptions{realKafka: true, partitions: 3})
	tenants := testTenants(t, 2, true)
	tw := e.start(shaped(poisonBatch, 30*time.Second))
	adm := e.admin()

	v1 := sample.Generate(300, sample.Options{Seed: 41, Tenants: tenants})
	e.produce(toKafkaAll(v1))
	e.waitCaughtUp(adm, catchUpWait, tw)
	e.checkStores(*tw.cfg, tenants, foldGood(t, v1))

	// Version 2 of every chunk: every 20th refused by Neo4j, every 20th
	// (offset by 10) by Qdrant.
	donors := sample.Generate(len(v1), sample.Options{Seed: 42, Tenants: tenants})
	var v2 []*kgo.Record
	kinds := map[*kgo.Record]string{}
	good := append([]sample.Record(nil), v1...)
	for i, r := range v1 {
		m := parseEvent(t, r.Value)
		d := parseEvent(t, donors[i].Value)
		d["id"], d["tenant"], d["doc_id"], d["version"] = m["id"], m["tenant"], m["doc_id"], 2
		d["text"] = fmt.Sprintf("version 2 of %s", r.Key)
		kind := ""
		switch i % 20 {
		case 0:
			kind = poisonNeo4j
			ents, _ := d["entities"].([]any)
			d["entities"] = append(ents, map[string]any{"id": "refused:" + strconv.Itoa(i), "type": ref.label,
				"name": "Refused", "props": map[string]any{refusedProp: refusedSerial}})
		case 10:
			kind = poisonQdrant
			e.standIn.Faults().RejectPoints(qdrant.PointID(m["tenant"].(string), m["id"].(string)))
		}
		kr := &kgo.Record{Key: r.Key, Value: d.bytes(t), Headers: []kgo.RecordHeader{{Key: sample.CorrelationHeader, Value: []byte("v2-" + strconv.Itoa(i))}}}
		v2 = append(v2, kr)
		if kind != "" {
			kinds[kr] = kind
		} else {
			good = append(good, sample.Record{Key: kr.Key, Value: kr.Value})
		}
	}
	e.produce(v2)
	e.waitCaughtUp(adm, catchUpWait, tw)

	entries := e.dlqEntries()
	byCoord := map[[2]int64]*kgo.Record{}
	for r := range kinds {
		byCoord[[2]int64{int64(r.Partition), r.Offset}] = r
	}
	if len(entries) != len(kinds) {
		t.Errorf("DLQ holds %d records, want the %d refused updates", len(entries), len(kinds))
	}
	for _, en := range entries {
		src, ok := byCoord[[2]int64{int64(en.SourcePartition), en.SourceOffset}]
		if !ok {
			t.Errorf("DLQ holds %s@%d (%s %s: %s), not a refused update", en.Key, en.SourceOffset, en.Class, en.Stage, en.Message)
			continue
		}
		checkDLQEntry(t, e.topic, src, kinds[src], en)
	}
	want := foldGood(t, good)
	got := e.checkStores(*tw.cfg, tenants, want)
	for r, kind := range kinds {
		k := string(r.Key)
		if got.qdrantText[k] != want.Chunks[k].Text || got.neo4jText[k] != want.Chunks[k].Text || want.Chunks[k].Version != 1 {
			t.Errorf("%s refused (%s): text in qdrant %q, neo4j %q, want the previous version's %q", k, kind,
				got.qdrantText[k], got.neo4jText[k], want.Chunks[k].Text)
		}
	}
}

// TestFailureDeadlocks writes events that all mention the same few entities
// from 12 partitions at once, in small batches, with as many concurrent
// Neo4j transactions allowed (neo4j.max_concurrent_transactions), so the
// partitions' transactions lock the same nodes in parallel: deadlocks
// between them are transient and retried, so nothing is dead-lettered and
// everything lands.
func TestFailureDeadlocks(t *testing.T) {
	e := newWorkerEnv(t, testenv.Neo4jURI(t), envOptions{realKafka: true, partitions: 12, qdrantTarget: true})
	tenants := testTenants(t, 1, true)
	tenant := tenants[0]
	tw := e.start(shaped(20, 20*time.Second, func(c *config.Config) {
		c.Pipeline.Batch.Linger = config.Duration(5 * time.Millisecond)
		// Every partition's transaction at once: the default of one at a
		// time would serialise them and no deadlock could arise.
		c.Neo4j.MaxConcurrentTransactions = 12
	}))
	adm := e.admin()

	entities := []map[string]any{
		{"id": "org:hub", "type": "Organization", "name": "Hub", "props": map[string]any{"founded": 2001}},
		{"id": "person:ann", "type": "Person", "name": "Ann"},
		{"id": "person:bob", "type": "Person", "name": "Bob"},
		{"id": "place:port", "type": "Place", "name": "Port"},
	}
	relations := []map[string]any{
		{"from": "person:ann", "to": "org:hub", "type": "WORKS_AT"},
		{"from": "person:bob", "to": "org:hub", "type": "WORKS_AT"},
		{"from": "org:hub", "to": "place:port", "type": "LOCATED_IN"},
		{"from": "person:ann", "to": "person:bob", "type": "KNOWS"},
	}
	n := 2400
	var recs []sample.Record
	for i := range n {
		vec := make([]float64, dimsDefault)
		vec[i%dimsDefault] = 1
		// Each event names the shared entities in its own order, so
		// transactions would lock them in different orders if the sink did
		// not sort them.
		ents := append([]map[string]any(nil), entities...)
		rand.Shuffle(len(ents), func(a, b int) { ents[a], ents[b] = ents[b], ents[a] })
		id := fmt.Sprintf("c-%05d", i)
		v, err := json.Marshal(map[string]any{
			"id": id, "tenant": tenant, "doc_id": "d-" + strconv.Itoa(i/4), "text": "chunk " + id,
			"vector": vec, "entities": ents, "relations": relations, "version": 1,
		})
		if err != nil {
			t.Fatal(err)
		}
		recs = append(recs, sample.Record{Key: []byte(tenant + "/" + id), Value: v})
	}
	e.produce(toKafkaAll(recs))
	e.waitCaughtUp(adm, catchUpWait, tw)
	e.expectEmptyDLQ("deadlock test")
	got := e.checkStores(*tw.cfg, tenants, foldGood(t, recs))
	if got.graph.Entities != len(entities) || got.graph.Relationships != len(relations) {
		t.Errorf("graph %+v, want %d entities and %d relationships", got.graph, len(entities), len(relations))
	}
	// Every relationship is asserted by every chunk.
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	res, err := neo4jExec(ctx, neo4jtest.Connect(t),
		"MATCH (a:Entity {tenant: $t})-[r]->(:Entity) RETURN type(r), size(r.sources)", map[string]any{"t": tenant})
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range res.Records {
		if s, _ := r.Values[1].(int64); s != int64(n) {
			t.Errorf("relationship %v has %d sources, want %d", r.Values[0], s, n)
		}
	}
	f := tw.scrape(t)
	retries := metricValue(f, "ragstream_sink_retries_total", map[string]string{"sink": "neo4j"})
	deadlocks := strings.Count(tw.logs.String(), "Deadlock")
	t.Logf("%d events from 12 partitions: pipeline retries of neo4j %v, log lines naming a deadlock %d (the driver retries deadlocks inside one call without telling)",
		n, retries, deadlocks)
}
