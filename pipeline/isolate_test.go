package pipeline_test

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/ragstream/ragstream/pipeline"
	"github.com/ragstream/ragstream/pipeline/pipelinetest"
)

// Culprit isolation (DESIGN.md §5): a batch a store refuses because of some
// of its records is split until only the culprits are left; they go to the
// DLQ with the stage of the store that refused each, and every other record
// is written once, in offset order.

// wholeRefusingSink is a follower that refuses a whole write, without naming
// anything, when it holds a write of a bad record (as Qdrant's
// InvalidArgument does); other writes go to its Store.
type wholeRefusingSink struct {
	*pipelinetest.Store
	bad func(*pipeline.Record) bool
}

func (s *wholeRefusingSink) Write(ctx context.Context, writes []pipeline.Write) error {
	for _, w := range writes {
		if s.bad(w.Record) {
			return pipeline.Permanent(errors.New("qdrant upsert: InvalidArgument: Wrong input: the request holds a bad point"))
		}
	}
	return s.Store.Write(ctx, writes)
}

func hasID(id string) func(*pipeline.Record) bool {
	return func(r *pipeline.Record) bool { return r.Event.ID == id }
}

// TestCulpritStageNamesTheRefusingStore puts a record the authority (neo4j)
// refuses next to one the follower (qdrant) refuses in one batch: each is
// dead-lettered with the stage of the store that refused it, however the
// stores report the refusal, and every other record is in both stores.
func TestCulpritStageNamesTheRefusingStore(t *testing.T) {
	const neo4jBad, qdrantBad = "c000011", "c000012"
	tests := []struct {
		name string
		// refuse sets up the authority to refuse neo4jBad and returns the
		// follower, which refuses qdrantBad.
		refuse func(auth, sink *pipelinetest.Store) pipeline.Sink
	}{
		{"neither store names the record", func(auth, sink *pipelinetest.Store) pipeline.Sink {
			auth.RefuseBatchIf(hasID(neo4jBad))
			return &wholeRefusingSink{Store: sink, bad: hasID(qdrantBad)}
		}},
		{"the follower names its record", func(auth, sink *pipelinetest.Store) pipeline.Sink {
			auth.RefuseBatchIf(hasID(neo4jBad))
			sink.RejectIf(func(r *pipeline.Record) error {
				if hasID(qdrantBad)(r) {
					return errors.New("point refused")
				}
				return nil
			})
			return sink
		}},
		{"the authority names its record", func(auth, sink *pipelinetest.Store) pipeline.Sink {
			auth.RejectIf(func(r *pipeline.Record) error {
				if hasID(neo4jBad)(r) {
					return errors.New("constraint violated")
				}
				return nil
			})
			return &wholeRefusingSink{Store: sink, bad: hasID(qdrantBad)}
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			topic, group := uniq("stage"), uniq("g")
			cl := newKfake(t, topic, 1)
			recs := simpleStream(topic, 1, 30, 0)
			cl.produce(t, recs...)
			auth, sinkStore := pipelinetest.NewStore("neo4j"), pipelinetest.NewStore("qdrant")
			sink := tc.refuse(auth, sinkStore)
			dl := &deadLetters{}
			o := testOptions(group, topic)
			o.MaxRecords = 30
			start(t, cl, o, auth, sink, dl, pipeline.Hooks{})
			waitCommitted(t, cl, group, topic, ends(recs), 20*time.Second)

			got := dl.all()
			slices.SortFunc(got, func(a, b dead) int { return int(a.offset - b.offset) })
			want := []struct {
				offset int64
				stage  string
			}{{11, "sink.neo4j"}, {12, "sink.qdrant"}}
			if len(got) != len(want) {
				t.Fatalf("dead letters %+v, want offsets 11 (sink.neo4j) and 12 (sink.qdrant)", got)
			}
			for i, w := range want {
				if got[i].offset != w.offset || got[i].stage != w.stage || got[i].class != pipeline.ErrorClassStoreRejected {
					t.Errorf("dead letter %+v, want offset %d with stage %s and class %s", got[i], w.offset, w.stage, pipeline.ErrorClassStoreRejected)
				}
			}
			good := slices.DeleteFunc(slices.Clone(recs), func(r *kgo.Record) bool { return r.Offset == 11 || r.Offset == 12 })
			wantState, err := pipelinetest.Expect(pipelinetest.Dims, good)
			if err != nil {
				t.Fatal(err)
			}
			sameState(t, "authority", auth.State(), wantState)
			sameState(t, "follower", sinkStore.State(), wantState)
		})
	}
}
