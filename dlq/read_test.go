package dlq

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/ragstream/ragstream/pipeline"
)

// fixture is a source topic with five records dead-lettered at known
// times:
//
//	DLQ p0: 0 r0 decode   T0  (correlation-id corr-0)
//	        1 r1 schema   T1  (no correlation-id)
//	        2 r4 decode   T3  (incoming replay_count 3)
//	DLQ p1: 0 r2 store    T2  (incoming replay_count 1, x-app header)
//	        1 r3 schema   T2  (tombstone)
type fixture struct {
	c        *cluster
	src, dlq string
	stored   []*kgo.Record // r0..r4
	times    [4]time.Time
}

func newFixture(t *testing.T, kind string) *fixture {
	t.Helper()
	f := &fixture{src: unique("events")}
	f.dlq = f.src + ".dlq"
	f.c = newCluster(t, kind, f.src, 2)
	f.c.dropAfter(t, f.dlq)
	base := time.Date(2026, 1, 1, 10, 0, 0, 0, time.UTC)
	for i := range f.times {
		f.times[i] = base.Add(time.Duration(i) * time.Hour)
	}
	f.stored = f.c.produce(t,
		&kgo.Record{Topic: f.src, Partition: 0, Key: []byte("acme/0"), Value: []byte("not json 0"),
			Headers: []kgo.RecordHeader{h("correlation-id", "corr-0")}},
		&kgo.Record{Topic: f.src, Partition: 0, Key: []byte("acme/1"), Value: []byte(`{"id":"1"}`)},
		&kgo.Record{Topic: f.src, Partition: 1, Key: []byte("acme/2"), Value: []byte(`{"id":"2","tenant":"acme"}`),
			Headers: []kgo.RecordHeader{h("x-app", "crm"), h("ragstream.replay_count", "1"), h("correlation-id", "corr-2")}},
		&kgo.Record{Topic: f.src, Partition: 1, Key: []byte("acme/3"), Value: nil},
		&kgo.Record{Topic: f.src, Partition: 0, Key: []byte("acme/4"), Value: []byte("not json 4"),
			Headers: []kgo.RecordHeader{h("ragstream.replay_count", "3")}},
	)
	w := newWriter(t, f.c, WriterConfig{ConnectHeaders: true})
	ensure(t, w, f.src)
	sendAt := func(at time.Time, recs ...*pipeline.Record) {
		t.Helper()
		w.now = func() time.Time { return at }
		if err := send(t, w, recs...); err != nil {
			t.Fatalf("Send: %v", err)
		}
	}
	s := f.stored
	sendAt(f.times[0], failed(s[0], decodeErr("bad 0"), pipeline.StageDecode))
	sendAt(f.times[1], failed(s[1], schemaErr("tenant", "required"), pipeline.StageValidate))
	sendAt(f.times[2], failed(s[2], storeErr("refused"), "sink.qdrant"), failed(s[3], schemaErr("key", "bad"), pipeline.StageValidate))
	sendAt(f.times[3], failed(s[4], decodeErr("bad 4"), pipeline.StageDecode))
	return f
}

func (f *fixture) inspect(t *testing.T, flt Filter) ([]string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var got []string
	err := Inspect(ctx, f.c.opts(), f.dlq, flt, func(e Entry) error {
		got = append(got, string(e.Key))
		return nil
	})
	slices.Sort(got)
	return got, err
}

func TestInspect(t *testing.T) {
	for _, kind := range clusterKinds {
		t.Run(kind, func(t *testing.T) {
			f := newFixture(t, kind)
			tm := f.times
			cases := []struct {
				name   string
				filter Filter
				want   string
			}{
				{"everything", Filter{}, "acme/0 acme/1 acme/2 acme/3 acme/4"},
				{"class schema", Filter{Class: "schema"}, "acme/1 acme/3"},
				{"class store_rejected", Filter{Class: "store_rejected"}, "acme/2"},
				{"stage sink.qdrant", Filter{Stage: "sink.qdrant"}, "acme/2"},
				{"since T1", Filter{Since: tm[1]}, "acme/1 acme/2 acme/3 acme/4"},
				{"until T2 (exclusive)", Filter{Until: tm[2]}, "acme/0 acme/1"},
				{"since T1 until T2", Filter{Since: tm[1], Until: tm[2]}, "acme/1"},
				{"offsets 1-1", Filter{Offsets: &OffsetRange{From: 1, To: 1}}, "acme/1 acme/3"},
				{"offsets 1- in partition 0", Filter{Offsets: &OffsetRange{From: 1, To: -1}, Partitions: []int32{0}}, "acme/1 acme/4"},
				{"offsets past the end", Filter{Offsets: &OffsetRange{From: 7, To: -1}}, ""},
				{"class and offsets", Filter{Class: "decode", Offsets: &OffsetRange{From: 0, To: 1}}, "acme/0"},
			}
			for _, tc := range cases {
				t.Run(tc.name, func(t *testing.T) {
					got, err := f.inspect(t, tc.filter)
					if err != nil {
						t.Fatalf("Inspect: %v", err)
					}
					if s := strings.Join(got, " "); s != tc.want {
						t.Fatalf("Inspect selected %q, want %q", s, tc.want)
					}
				})
			}
		})
	}
}

// TestInspectEntry checks one entry's decoded fields, the stop sentinel,
// the progress reports and the errors.
func TestInspectEntry(t *testing.T) {
	f := newFixture(t, "kfake")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var got []Entry
	var progress [][2]int64
	r := &Reader{Topic: f.dlq, Kafka: f.c.opts(), Progress: func(read, total int64) {
		progress = append(progress, [2]int64{read, total})
	}}
	if err := r.Inspect(ctx, Filter{Class: "store_rejected"}, func(e Entry) error {
		got = append(got, e)
		return nil
	}); err != nil {
		t.Fatalf("Inspect: %v", err)
	}
	if len(got) != 1 {
		t.Fatalf("%d entries, want 1", len(got))
	}
	e := got[0]
	s := f.stored[2]
	want := Entry{Partition: 1, Offset: 0, Timestamp: s.Timestamp, Key: s.Key, Value: s.Value,
		Class: "store_rejected", Stage: "sink.qdrant", Message: "refused", SourceTopic: f.src,
		SourcePartition: 1, SourceOffset: 0, Attempts: 1, ReplayCount: 1, CorrelationID: "corr-2", FailedAt: f.times[2]}
	e.Headers = nil
	if fmt.Sprint(e) != fmt.Sprint(want) || !e.FailedAt.Equal(want.FailedAt) || !e.Timestamp.Equal(want.Timestamp) {
		t.Fatalf("entry\n %+v\nwant\n %+v", e, want)
	}
	if len(progress) == 0 || progress[0] != [2]int64{0, 5} || progress[len(progress)-1] != [2]int64{5, 5} {
		t.Fatalf("progress reports %v, want from [0 5] to [5 5]", progress)
	}

	n := 0
	if err := Inspect(ctx, f.c.opts(), f.dlq, Filter{}, func(Entry) error {
		n++
		if n == 2 {
			return ErrStop
		}
		return nil
	}); err != nil || n != 2 {
		t.Fatalf("Inspect stopped after %d entries with %v, want 2 and nil", n, err)
	}
	boom := errors.New("boom")
	if err := Inspect(ctx, f.c.opts(), f.dlq, Filter{}, func(Entry) error { return boom }); !errors.Is(err, boom) {
		t.Fatalf("Inspect with a failing callback: %v, want boom", err)
	}
	if err := Inspect(ctx, f.c.opts(), unique("absent"), Filter{}, func(Entry) error { return nil }); err == nil ||
		!strings.Contains(err.Error(), "does not exist") {
		t.Fatalf("Inspect of an absent topic: %v, want does not exist", err)
	}
	empty := unique("empty")
	f.c.createTopic(t, empty, 3)
	if err := Inspect(ctx, f.c.opts(), empty, Filter{}, func(Entry) error { return boom }); err != nil {
		t.Fatalf("Inspect of an empty topic: %v", err)
	}
	if err := Inspect(ctx, f.c.opts(), f.dlq, Filter{Partitions: []int32{9}}, func(Entry) error { return nil }); err == nil ||
		!strings.Contains(err.Error(), "no partition 9") {
		t.Fatalf("Inspect of a missing partition: %v", err)
	}
}

// TestInspectIncomplete: a DLQ record written by something else is listed
// with its problems.
func TestInspectIncomplete(t *testing.T) {
	topic := unique("foreign.dlq")
	c := newCluster(t, "kfake", topic, 1)
	c.produce(t, &kgo.Record{Topic: topic, Key: []byte("k"), Value: []byte("v"),
		Headers: []kgo.RecordHeader{h(HeaderReplayCount, "x"), h(HeaderErrorClass, "decode")}})
	var got []Entry
	err := Inspect(context.Background(), c.opts(), topic, Filter{}, func(e Entry) error {
		got = append(got, e)
		return nil
	})
	if err != nil || len(got) != 1 {
		t.Fatalf("Inspect: %d entries, %v", len(got), err)
	}
	p := strings.Join(got[0].Problems, "; ")
	for _, want := range []string{HeaderSourceTopic + " missing", HeaderReplayCount + ` "x" is not`, HeaderFailedAt + " missing"} {
		if !strings.Contains(p, want) {
			t.Errorf("problems %q lack %q", p, want)
		}
	}
	if strings.Contains(p, HeaderErrorClass) {
		t.Errorf("problems %q name %s, which is present", p, HeaderErrorClass)
	}
}

func TestReplay(t *testing.T) {
	for _, kind := range clusterKinds {
		t.Run(kind, func(t *testing.T) {
			f := newFixture(t, kind)
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			defer cancel()
			opts := ReplayOptions{MaxReplayCount: 3}

			dry := opts
			dry.DryRun = true
			rep, err := Replay(ctx, f.c.opts(), f.dlq, Filter{}, dry)
			if err != nil {
				t.Fatalf("dry run: %v", err)
			}
			if got := len(f.c.readAll(t, f.src)); got != 5 {
				t.Fatalf("source topic holds %d records after a dry run, want the 5 it had", got)
			}
			checkReport(t, "dry run", rep, 5, 3, 1, 1)
			if rep.RefusedRecords[0].SourceOffset != 2 || rep.RefusedRecords[0].ReplayCount != 3 {
				t.Errorf("refused %+v, want acme/4 (source offset 2, replay count 3)", rep.RefusedRecords[0])
			}

			rep, err = Replay(ctx, f.c.opts(), f.dlq, Filter{}, opts)
			if err != nil {
				t.Fatalf("Replay: %v", err)
			}
			checkReport(t, "replay", rep, 5, 3, 1, 1)
			if rep.ByTopic[f.src] != 3 {
				t.Errorf("ByTopic %v, want %s: 3", rep.ByTopic, f.src)
			}
			all := f.c.readAll(t, f.src)
			replayed := f.added(all)
			if len(all) != 8 || len(replayed) != 3 {
				t.Fatalf("source topic holds %d records, %d replayed; want 8 and 3", len(all), len(replayed))
			}
			want := map[string][]kgo.RecordHeader{
				"acme/0": {h("correlation-id", "corr-0"), h(HeaderReplayCount, "1")},
				"acme/1": {h("correlation-id", f.src+"/0/1"), h(HeaderReplayCount, "1")},
				"acme/2": {h("x-app", "crm"), h("correlation-id", "corr-2"), h(HeaderReplayCount, "2")},
			}
			for _, r := range replayed {
				wh, ok := want[string(r.Key)]
				if !ok {
					t.Errorf("replayed %q, which was not selected", r.Key)
					continue
				}
				delete(want, string(r.Key))
				orig := f.stored[int(r.Key[len(r.Key)-1]-'0')]
				if !bytes.Equal(r.Value, orig.Value) {
					t.Errorf("%s: replayed value %q, want %q", r.Key, r.Value, orig.Value)
				}
				if !sameHeaders(r.Headers, wh) {
					t.Errorf("%s: replayed headers\n%s want\n%s", r.Key, headerList(r.Headers), headerList(wh))
				}
			}
			if len(want) > 0 {
				t.Errorf("not replayed: %v", want)
			}

			tomb := opts
			tomb.Tombstones = true
			rep, err = Replay(ctx, f.c.opts(), f.dlq, Filter{Class: "schema", Partitions: []int32{1}}, tomb)
			if err != nil {
				t.Fatalf("Replay with tombstones: %v", err)
			}
			checkReport(t, "tombstones", rep, 1, 1, 0, 0)
			last := f.c.readAll(t, f.src)
			if len(last) != 9 {
				t.Fatalf("source topic holds %d records, want 9", len(last))
			}
			var tombstone *kgo.Record
			for _, r := range f.added(last) {
				if string(r.Key) == "acme/3" {
					tombstone = r
				}
			}
			if tombstone == nil || tombstone.Value != nil {
				t.Fatalf("replayed tombstone %+v, want a null value", tombstone)
			}
		})
	}
}

// added returns the records of all that the fixture did not produce.
func (f *fixture) added(all []*kgo.Record) []*kgo.Record {
	var out []*kgo.Record
	for _, r := range all {
		if !slices.ContainsFunc(f.stored, func(s *kgo.Record) bool {
			return s.Partition == r.Partition && s.Offset == r.Offset
		}) {
			out = append(out, r)
		}
	}
	return out
}

func checkReport(t *testing.T, what string, rep Report, matched, replayed, refused, tombstones int) {
	t.Helper()
	if rep.Matched != matched || rep.Replayed != replayed || rep.Refused != refused ||
		rep.SkippedTombstones != tombstones || rep.Invalid != 0 || rep.Failed != 0 {
		t.Fatalf("%s: report %+v, want matched %d, replayed %d, refused %d, skipped tombstones %d",
			what, rep, matched, replayed, refused, tombstones)
	}
}

func TestParseOffsets(t *testing.T) {
	cases := []struct {
		in, want, err string
	}{
		{"3-7", "3-7", ""},
		{"5", "5-5", ""},
		{"5-", "5-", ""},
		{" 0 - 10 ", "0-10", ""},
		{"7-3", "", "end 3 is before start 7"},
		{"a-b", "", `start "a" is not a non-negative integer`},
		{"-3", "", `start "" is not`},
		{"3-x", "", `end "x" is not`},
		{"", "", "start"},
	}
	for _, tc := range cases {
		t.Run(tc.in, func(t *testing.T) {
			r, err := ParseOffsets(tc.in)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("ParseOffsets(%q) = %v, %v; want an error containing %q", tc.in, r, err, tc.err)
				}
				return
			}
			if err != nil || r.String() != tc.want {
				t.Fatalf("ParseOffsets(%q) = %v, %v; want %s", tc.in, r, err, tc.want)
			}
		})
	}
}

func TestParseTime(t *testing.T) {
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	cases := []struct {
		in   string
		want time.Time
		err  bool
	}{
		{"2026-01-08T12:00:00Z", time.Date(2026, 1, 8, 12, 0, 0, 0, time.UTC), false},
		{"2026-01-08T13:00:00.5+01:00", time.Date(2026, 1, 8, 12, 0, 0, 500_000_000, time.UTC), false},
		{"2026-01-08", time.Date(2026, 1, 8, 0, 0, 0, 0, time.UTC), false},
		{"2h", now.Add(-2 * time.Hour), false},
		{"7d", now.Add(-7 * 24 * time.Hour), false},
		{"yesterday", time.Time{}, true},
		{"2026-13-01", time.Time{}, true},
		{"-2h", time.Time{}, true},
	}
	for _, tc := range cases {
		t.Run(tc.in, func(t *testing.T) {
			got, err := ParseTime(tc.in, now)
			if tc.err {
				if err == nil || !strings.Contains(err.Error(), "RFC 3339") {
					t.Fatalf("ParseTime(%q) = %v, %v; want an error explaining the forms", tc.in, got, err)
				}
				return
			}
			if err != nil || !got.Equal(tc.want) {
				t.Fatalf("ParseTime(%q) = %v, %v; want %v", tc.in, got, err, tc.want)
			}
		})
	}
}

func TestFilterValidate(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	cases := []struct {
		name string
		f    Filter
		err  string
	}{
		{"zero", Filter{}, ""},
		{"known class", Filter{Class: "store_rejected"}, ""},
		{"unknown class", Filter{Class: "oops"}, `class: "oops" is not one of decode, schema, store_rejected`},
		{"empty window", Filter{Since: t0, Until: t0}, "since/until"},
		{"negative partition", Filter{Partitions: []int32{-1}}, "partition: -1"},
		{"reversed offsets", Filter{Offsets: &OffsetRange{From: 5, To: 2}}, "offsets: end 2 is before start 5"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.f.Validate()
			if (err == nil) != (tc.err == "") || (err != nil && !strings.Contains(err.Error(), tc.err)) {
				t.Fatalf("Validate: %v, want %q", err, tc.err)
			}
		})
	}
}

// TestInspectEndsWhenNothingComes: a read whose remaining offsets never
// arrive (here: the broker answers every fetch empty, as for offsets
// compacted away) ends after the idle timeout while the brokers answer,
// instead of waiting forever.
func TestInspectEndsWhenNothingComes(t *testing.T) {
	topic := unique("events.dlq")
	c := newCluster(t, "kfake", topic, 1)
	c.produce(t, &kgo.Record{Topic: topic, Key: []byte("k"), Value: []byte("v")})
	c.fake.ControlKey(int16(kmsg.Fetch), func(kreq kmsg.Request) (kmsg.Response, error, bool) {
		c.fake.KeepControl()
		return kreq.ResponseKind(), nil, true
	})
	r := &Reader{Topic: topic, Kafka: c.opts(), IdleTimeout: 300 * time.Millisecond}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	n := 0
	if err := r.Inspect(ctx, Filter{}, func(Entry) error { n++; return nil }); err != nil || n != 0 {
		t.Fatalf("Inspect: %d entries, %v; want it to end with none and no error", n, err)
	}
}
