package pipelinetest

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/ragstream/ragstream/pipeline"
	"github.com/ragstream/ragstream/pipeline/event"
)

// batch decodes recs (offsets 0, 1, …) into a batch of partition 0.
func batch(t *testing.T, recs ...*kgo.Record) *pipeline.Batch {
	t.Helper()
	dec := event.NewDecoder(event.DefaultLimits(Dims))
	b := &pipeline.Batch{Topic: "t", Partition: 0}
	for i, src := range recs {
		src.Offset = int64(i)
		ev, err := dec.Decode(src.Key, src.Value)
		if err != nil {
			t.Fatalf("record %d: %v", i, err)
		}
		b.Records = append(b.Records, &pipeline.Record{Src: src, Event: ev})
	}
	return b
}

func TestStoreAsAuthority(t *testing.T) {
	a := Event{Tenant: "acme", ID: "a"}
	key := pipeline.Key{Tenant: "acme", ID: "a"}
	tests := []struct {
		name    string
		recs    []*kgo.Record
		prepare func(s *Store)
		follow  error
		wantErr bool
		want    Entry // of acme/a
	}{
		{name: "upserts fold to the last", recs: []*kgo.Record{
			withV(a, 1).Record("t", 0, ""), withV(a, 3).Record("t", 0, ""), withV(a, 2).Record("t", 0, "")},
			want: Entry{State: pipeline.Present, Version: 3, DocID: "a", Text: "text of a", Topic: "t", Offset: 1}},
		{name: "tombstone deletes at the current version", recs: []*kgo.Record{
			withV(a, 4).Record("t", 0, ""), Tombstone("t", 0, "acme", "a")},
			want: Entry{State: pipeline.Deleted, Version: 4}},
		{name: "follower failure commits nothing", recs: []*kgo.Record{withV(a, 1).Record("t", 0, "")},
			follow: pipeline.Transient(errors.New("qdrant down")), wantErr: true},
		{name: "refused record", recs: []*kgo.Record{withV(a, 1).Record("t", 0, "")},
			prepare: func(s *Store) { s.RejectIf(func(*pipeline.Record) error { return errors.New("constraint") }) },
			wantErr: true},
		{name: "reply lost after commit", recs: []*kgo.Record{withV(a, 1).Record("t", 0, "")},
			prepare: func(s *Store) { s.CrashAfterCommit(1) }, wantErr: true,
			want: Entry{State: pipeline.Present, Version: 1, DocID: "a", Text: "text of a", Topic: "t"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := NewStore("neo4j")
			if tc.prepare != nil {
				tc.prepare(s)
			}
			b := batch(t, tc.recs...)
			var followed []pipeline.Write
			err := s.Apply(context.Background(), b, func(_ context.Context, w []pipeline.Write) error {
				followed = w
				return tc.follow
			})
			if (err != nil) != tc.wantErr {
				t.Fatalf("Apply = %v, want error %v", err, tc.wantErr)
			}
			got, _ := s.Get(key)
			got.CorrelationID = ""
			if got != tc.want {
				t.Errorf("acme/a = %+v, want %+v", got, tc.want)
			}
			if tc.follow == nil && err == nil && len(followed) != 1 {
				t.Errorf("follow got %d writes, want the one the key folds to", len(followed))
			}
		})
	}
}

func TestStoreInjection(t *testing.T) {
	s := NewStore("qdrant")
	s.FailNext(1, pipeline.SinkDown(errors.New("auth refused")))
	if err := s.Write(context.Background(), nil); pipeline.ClassOf(err) != pipeline.ClassSinkDown {
		t.Errorf("first write = %v, want the injected sink-down error", err)
	}
	if err := s.Write(context.Background(), nil); err != nil {
		t.Errorf("second write = %v, want nil", err)
	}
	unblock := s.Block()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if err := s.Write(ctx, nil); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("blocked write = %v, want its context's error", err)
	}
	unblock()
	if err := s.Write(context.Background(), nil); err != nil {
		t.Errorf("write after unblock = %v", err)
	}
	if s.Calls() != 4 || s.Cancelled() != 1 {
		t.Errorf("calls %d, cancelled %d; want 4 and 1", s.Calls(), s.Cancelled())
	}
}

func withV(e Event, v int64) Event {
	e.Version = v
	return e
}
