package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/ragstream/ragstream/dlq"
	"github.com/ragstream/ragstream/pipeline"
	"github.com/ragstream/ragstream/pipeline/event"
)

// runDLQCLI runs `ragstream dlq args...` and maps its error to the exit
// code as realMain does.
func runDLQCLI(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errb bytes.Buffer
	err := runDLQ(args, &out, &errb)
	switch {
	case err == nil, errors.Is(err, errHelp):
		code = exitOK
	case errors.As(err, new(usageError)):
		code = exitUsage
	default:
		code = exitRuntime
	}
	if err != nil {
		errb.WriteString(err.Error())
	}
	return code, out.String(), errb.String()
}

func TestDLQFlagErrors(t *testing.T) {
	tests := []struct {
		name string
		args []string
		code int
		want []string
	}{
		{"no subcommand", nil, exitUsage, []string{"missing subcommand: inspect or replay"}},
		{"unknown subcommand", []string{"purge"}, exitUsage, []string{`unknown subcommand "purge"`}},
		{"help", []string{"--help"}, exitOK, []string{"usage: ragstream dlq inspect|replay"}},
		{"inspect help", []string{"inspect", "-h"}, exitOK, []string{"--offsets", "--since"}},
		{"unknown flag", []string{"inspect", "--nope"}, exitUsage, []string{"flag provided but not defined: -nope"}},
		{"bad since", []string{"inspect", "--since", "yesterday"}, exitUsage,
			[]string{`--since: "yesterday" is neither RFC 3339`}},
		{"bad until", []string{"replay", "--until", "2026-13-40"}, exitUsage, []string{`--until: "2026-13-40"`}},
		{"reversed offsets", []string{"inspect", "--offsets", "7-3"}, exitUsage, []string{`--offsets: "7-3": end 3 is before start 7`}},
		{"bad offsets", []string{"replay", "--offsets", "x-9"}, exitUsage, []string{`--offsets: "x-9": start "x" is not a non-negative integer`}},
		{"every problem at once", []string{"inspect", "--since", "soon", "--offsets", "-", "--partition", "-3"}, exitUsage,
			[]string{"--since:", "--offsets:", "--partition: must not be negative"}},
		{"unknown class", []string{"inspect", "--class", "oops"}, exitUsage,
			[]string{`--class: "oops" is not one of decode, schema, store_rejected`}},
		{"empty window", []string{"inspect", "--since", "2026-01-02", "--until", "2026-01-01"}, exitUsage,
			[]string{"--since/until: since 2026-01-02T00:00:00Z is not before until"}},
		{"bad format", []string{"inspect", "--format", "xml"}, exitUsage, []string{`--format: "xml" is neither table nor json`}},
		{"negative limit", []string{"inspect", "--limit", "-1"}, exitUsage, []string{"--limit: must not be negative"}},
		{"negative max replay count", []string{"replay", "--max-replay-count", "-2"}, exitUsage,
			[]string{"--max-replay-count: must not be negative, got -2"}},
		{"extra argument", []string{"inspect", "events.dlq"}, exitUsage, []string{`unexpected argument "events.dlq"`}},
		{"empty brokers", []string{"inspect", "--brokers", " , "}, exitUsage, []string{"--brokers: no broker"}},
		{"bad config key", []string{"inspect", "--set", "dlq.nope=1"}, exitUsage, []string{"invalid configuration", "dlq.nope"}},
		{"missing config file", []string{"replay", "--config", "/nonexistent/ragstream.yaml"}, exitUsage,
			[]string{"invalid configuration", "/nonexistent/ragstream.yaml"}},
		{"no topic with two sources", []string{"inspect", "--set", "kafka.topics=a,b"}, exitUsage,
			[]string{"--topic: required, the configuration names 2 source topics (a, b)"}},
		{"unreachable brokers", []string{"inspect", "--brokers", "127.0.0.1:1", "--timeout", "2s"}, exitRuntime,
			[]string{"kafka brokers 127.0.0.1:1 do not answer"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, _, errOut := runDLQCLI(t, tt.args...)
			if code != tt.code {
				t.Fatalf("exit %d, want %d; stderr:\n%s", code, tt.code, errOut)
			}
			for _, w := range tt.want {
				if !strings.Contains(errOut, w) {
					t.Errorf("stderr lacks %q:\n%s", w, errOut)
				}
			}
		})
	}
}

// dlqFixture is a kfake cluster with a source topic of two partitions and
// three records in its DLQ: a decode failure with an invalid UTF-8 value,
// a schema failure that is a tombstone, a store refusal.
func dlqFixture(t *testing.T) (brokers, src string, c *kfake.Cluster) {
	t.Helper()
	src = "events"
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(2, src))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	opts := []kgo.Opt{kgo.SeedBrokers(c.ListenAddrs()...)}
	cl, err := kgo.NewClient(append(opts, kgo.RecordPartitioner(kgo.ManualPartitioner()))...)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	recs := []*kgo.Record{
		{Topic: src, Partition: 0, Key: []byte("acme/1"), Value: []byte("\xff\xfe not utf-8")},
		{Topic: src, Partition: 1, Key: []byte("acme/2"), Headers: []kgo.RecordHeader{{Key: "correlation-id", Value: []byte("c-2")}}},
		{Topic: src, Partition: 1, Key: []byte("acme/3"), Value: []byte(`{"id":"3","tenant":"acme"}`)},
	}
	if err := cl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		t.Fatal(err)
	}
	w, err := dlq.NewWriter(dlq.WriterConfig{ConnectHeaders: true}, opts, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = w.Close(ctx) }()
	fail := func(r *kgo.Record, err error, stage string) *pipeline.Record {
		return &pipeline.Record{Src: r, Err: pipeline.Permanent(err), Stage: stage, CorrelationID: pipeline.CorrelationID(r)}
	}
	if err := w.Send(ctx, []*pipeline.Record{
		fail(recs[0], &event.Error{Class: event.ClassDecode, Msg: "invalid UTF-8"}, pipeline.StageDecode),
		fail(recs[1], &event.Error{Class: event.ClassSchema, Field: "key", Msg: "tombstone for an unknown key"}, pipeline.StageValidate),
		fail(recs[2], errors.New("constraint violated"), "sink.neo4j"),
	}); err != nil {
		t.Fatal(err)
	}
	return strings.Join(c.ListenAddrs(), ","), src, c
}

func TestDLQInspect(t *testing.T) {
	brokers, src, _ := dlqFixture(t)

	code, out, errOut := runDLQCLI(t, "inspect", "--brokers", brokers, "--topic", src+".dlq", "--format", "json")
	if code != exitOK {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 3 {
		t.Fatalf("%d JSON lines, want 3:\n%s", len(lines), out)
	}
	byKey := map[string]map[string]any{}
	for _, l := range lines {
		var m map[string]any
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			t.Fatalf("line %q: %v", l, err)
		}
		byKey[m["key"].(map[string]any)["text"].(string)] = m
	}
	if v := byKey["acme/1"]["value"].(map[string]any); v["base64"] != "//4gbm90IHV0Zi04" || v["text"] != nil {
		t.Errorf("invalid UTF-8 value rendered as %v, want base64 //4gbm90IHV0Zi04", v)
	}
	if v, ok := byKey["acme/2"]["value"]; !ok || v != nil {
		t.Errorf("tombstone value rendered as %v, want null", v)
	}
	if m := byKey["acme/3"]; m["class"] != "store_rejected" || m["stage"] != "sink.neo4j" ||
		m["source_topic"] != src || m["source_partition"] != 1.0 || m["source_offset"] != 1.0 ||
		m["message"] != "constraint violated" || m["replay_count"] != 0.0 || m["correlation_id"] != src+"/1/1" {
		t.Errorf("store refusal rendered as %v", m)
	}
	if hs := byKey["acme/2"]["headers"].([]any); len(hs) != 1+10+6 || hs[0].(map[string]any)["key"] != "correlation-id" {
		t.Errorf("tombstone headers %v, want correlation-id then 16 DLQ headers", hs)
	}

	code, out, errOut = runDLQCLI(t, "inspect", "--brokers", brokers, "--topic", src+".dlq")
	if code != exitOK {
		t.Fatalf("table: exit %d: %s", code, errOut)
	}
	rows := strings.Split(strings.TrimSpace(out), "\n")
	if len(rows) != 4 || !strings.HasPrefix(rows[0], "PARTITION  OFFSET  FAILED_AT") {
		t.Fatalf("table has %d lines, want a header and 3 rows:\n%s", len(rows), out)
	}
	for _, want := range []string{"decode", "validate", "(tombstone) key: tombstone for an unknown key",
		"acme/1", src + "/1@1", "constraint violated"} {
		if !strings.Contains(out, want) {
			t.Errorf("table lacks %q:\n%s", want, out)
		}
	}
	if !strings.Contains(errOut, "3 records from "+src+".dlq") {
		t.Errorf("stderr %q lacks the count", errOut)
	}

	// Filters and the limit; the topic derived from the configuration.
	code, out, errOut = runDLQCLI(t, "inspect", "--brokers", brokers, "--set", "kafka.topics="+src,
		"--class", "schema", "--format", "json")
	if code != exitOK || strings.Count(out, "\n") != 1 || !strings.Contains(out, `"class":"schema"`) {
		t.Fatalf("--class schema: exit %d, output:\n%s%s", code, out, errOut)
	}
	code, out, _ = runDLQCLI(t, "inspect", "--brokers", brokers, "--topic", src+".dlq", "--limit", "2", "--format", "json")
	if code != exitOK || strings.Count(out, "\n") != 2 {
		t.Fatalf("--limit 2: exit %d, %d lines", code, strings.Count(out, "\n"))
	}
	code, out, _ = runDLQCLI(t, "inspect", "--brokers", brokers, "--topic", src+".dlq", "--partition", "1",
		"--offsets", "1-", "--format", "json")
	if code != exitOK || strings.Count(out, "\n") != 1 || !strings.Contains(out, `"offset":1`) {
		t.Fatalf("--partition 1 --offsets 1-: exit %d, output:\n%s", code, out)
	}
	code, out, _ = runDLQCLI(t, "inspect", "--brokers", brokers, "--topic", src+".dlq", "--since", "1h", "--format", "json")
	if code != exitOK || strings.Count(out, "\n") != 3 {
		t.Fatalf("--since 1h: exit %d, output:\n%s", code, out)
	}
	code, out, _ = runDLQCLI(t, "inspect", "--brokers", brokers, "--topic", src+".dlq", "--until", "1h", "--format", "json")
	if code != exitOK || out != "" {
		t.Fatalf("--until 1h: exit %d, output:\n%s", code, out)
	}
	code, _, errOut = runDLQCLI(t, "inspect", "--brokers", brokers, "--topic", "absent.dlq")
	if code != exitRuntime || !strings.Contains(errOut, "topic absent.dlq does not exist") {
		t.Fatalf("absent topic: exit %d, stderr %s", code, errOut)
	}
}

func TestDLQReplay(t *testing.T) {
	brokers, src, c := dlqFixture(t)
	count := func() int {
		t.Helper()
		n := 0
		err := dlq.Inspect(context.Background(), []kgo.Opt{kgo.SeedBrokers(c.ListenAddrs()...)}, src, dlq.Filter{},
			func(dlq.Entry) error { n++; return nil })
		if err != nil {
			t.Fatal(err)
		}
		return n
	}

	code, out, errOut := runDLQCLI(t, "replay", "--brokers", brokers, "--topic", src+".dlq", "--dry-run")
	if code != exitOK {
		t.Fatalf("dry run: exit %d: %s", code, errOut)
	}
	if !strings.Contains(out, "3 records matched; would replay (dry run, nothing produced) 2 (2 to events)") ||
		!strings.Contains(out, "tombstones skipped: 1") {
		t.Errorf("dry-run summary:\n%s", out)
	}
	if n := count(); n != 3 {
		t.Fatalf("source topic holds %d records after a dry run, want 3", n)
	}

	code, out, errOut = runDLQCLI(t, "replay", "--brokers", brokers, "--topic", src+".dlq", "--class", "store_rejected")
	if code != exitOK || !strings.Contains(out, "1 records matched; replayed 1 (1 to events)") {
		t.Fatalf("replay: exit %d:\n%s%s", code, out, errOut)
	}
	if n := count(); n != 4 {
		t.Fatalf("source topic holds %d records after replaying one, want 4", n)
	}

	code, out, errOut = runDLQCLI(t, "replay", "--brokers", brokers, "--topic", src+".dlq", "--max-replay-count", "0",
		"--format", "json")
	if code != exitOK {
		t.Fatalf("max 0: exit %d: %s", code, errOut)
	}
	var rep struct {
		Replayed, Refused int
		RefusedRecords    []dlq.Ref `json:"refused_records"`
	}
	if err := json.Unmarshal([]byte(out), &rep); err != nil || rep.Replayed != 0 || rep.Refused != 3 || len(rep.RefusedRecords) != 3 {
		t.Fatalf("--max-replay-count 0 summary %s (%v): want all 3 refused", out, err)
	}

	code, out, errOut = runDLQCLI(t, "replay", "--brokers", brokers, "--topic", src+".dlq", "--class", "schema", "--tombstones")
	if code != exitOK || !strings.Contains(out, "replayed 1") {
		t.Fatalf("--tombstones: exit %d:\n%s%s", code, out, errOut)
	}
	if n := count(); n != 5 {
		t.Fatalf("source topic holds %d records, want 5", n)
	}
}

func TestDLQProgress(t *testing.T) {
	var b bytes.Buffer
	now := time.Unix(0, 0)
	p := newProgress(&b, "dlq inspect", func() time.Time { return now })
	p.report(0, 1000)
	now = now.Add(900 * time.Millisecond)
	p.report(10, 1000)
	if b.Len() != 0 {
		t.Fatalf("progress within the first second: %q", b.String())
	}
	now = now.Add(200 * time.Millisecond)
	p.report(400, 1000)
	now = now.Add(100 * time.Millisecond)
	p.report(500, 1000) // too soon after the last line
	now = now.Add(100 * time.Millisecond)
	p.report(1000, 1000) // the end always shows
	p.done()
	want := "\rdlq inspect: read 400/1000 records (40%)\rdlq inspect: read 1000/1000 records (100%)\n"
	if b.String() != want {
		t.Fatalf("progress %q, want %q", b.String(), want)
	}
}
