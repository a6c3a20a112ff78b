package main

import (
	"context"
	"encoding/json"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
)

func TestProducePublishesSampleEvents(t *testing.T) {
	c, err := kfake.NewCluster(kfake.NumBrokers(1))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	brokers := strings.Join(c.ListenAddrs(), ",")

	code, out, errOut := runCLI(t, "produce", "--brokers", brokers, "--topic", "events", "--sample", "300", "--partitions", "4", "--dims", "16")
	if code != exitOK {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	if !strings.Contains(out, "produced 300 events to events") || !strings.Contains(errOut, "300/300 acknowledged") {
		t.Fatalf("stdout %q stderr %q", out, errOut)
	}

	cl, err := kgo.NewClient(kgo.SeedBrokers(c.ListenAddrs()...), kgo.ConsumeTopics("events"),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var n, keyed, tombstones int
	parts := map[int32]bool{}
	for n < 300 {
		fs := cl.PollFetches(ctx)
		if err := ctx.Err(); err != nil {
			t.Fatalf("consumed %d of 300: %v", n, err)
		}
		fs.EachRecord(func(r *kgo.Record) {
			n++
			parts[r.Partition] = true
			if r.Value == nil {
				tombstones++
				return
			}
			var ev struct {
				Tenant string    `json:"tenant"`
				ID     string    `json:"id"`
				Vector []float64 `json:"vector"`
			}
			if err := json.Unmarshal(r.Value, &ev); err != nil {
				t.Fatalf("record %d is not JSON: %v", r.Offset, err)
			}
			if r.Key != nil {
				keyed++
				if string(r.Key) != ev.Tenant+"/"+ev.ID {
					t.Errorf("key %q disagrees with body %s/%s", r.Key, ev.Tenant, ev.ID)
				}
			}
			if ev.Vector != nil && len(ev.Vector) != 16 {
				t.Errorf("vector of %d floats, want --dims 16", len(ev.Vector))
			}
		})
	}
	if keyed < 250 || len(parts) < 2 {
		t.Fatalf("keyed %d of 300 over %d partitions: want most keyed, spread over partitions", keyed, len(parts))
	}
}

func TestProduceFlagErrors(t *testing.T) {
	_, err := parseProduce([]string{"--brokers", "", "--sample", "0", "--rate", "-1", "--dims", "0"}, io.Discard)
	if err == nil {
		t.Fatal("want an error")
	}
	for _, want := range []string{"--brokers: empty", "--sample: must be at least 1", "--rate: must not be negative", "--dims: must be in"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q lacks %q (every problem is reported)", err, want)
		}
	}
}
