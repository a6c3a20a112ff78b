package dlq

import (
	"bytes"
	"context"
	"errors"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/ragstream/ragstream/config"
	"github.com/ragstream/ragstream/pipeline"
)

func h(k, v string) kgo.RecordHeader { return kgo.RecordHeader{Key: k, Value: []byte(v)} }

// TestSendHeaders checks a dead-lettered record against DESIGN.md §5: key,
// value and timestamp byte-for-byte (a tombstone, an empty value, invalid
// UTF-8, a binary key), the source's headers in order without its
// ragstream.* ones, then exactly the DLQ headers in the documented order
// with their values, the replay count carried over, and the source
// partition kept.
func TestSendHeaders(t *testing.T) {
	long := strings.Repeat("é", 800) // 1600 bytes: truncated on a rune boundary
	for _, kind := range clusterKinds {
		for _, connect := range []bool{true, false} {
			name := kind + "/connect_headers=" + map[bool]string{true: "on", false: "off"}[connect]
			t.Run(name, func(t *testing.T) {
				src := unique("events")
				c := newCluster(t, kind, src, 3)
				c.dropAfter(t, src+".dlq")
				ts := time.UnixMilli(1_767_873_600_123)
				stored := c.produce(t,
					&kgo.Record{Topic: src, Partition: 1, Key: []byte("acme/1"), Value: []byte(`{"bad json`), Timestamp: ts,
						Headers: []kgo.RecordHeader{
							h("correlation-id", "corr-a"),
							{Key: "x-bin", Value: []byte{0xff, 0x00, 0xfe}},
							h("ragstream.replay_count", "2"),
							h("ragstream.error.class", "stale"),
							h("x-bin", "again"),
							{Key: "x-empty", Value: nil},
						}},
					&kgo.Record{Topic: src, Partition: 2, Key: []byte{0x00, 0xff, 0xfe}, Value: []byte("{\"text\":\"\xff\xfe\"}"),
						Timestamp: ts.Add(time.Millisecond)},
					&kgo.Record{Topic: src, Partition: 0, Key: []byte("acme/2"), Value: nil, Timestamp: ts.Add(2 * time.Millisecond),
						Headers: []kgo.RecordHeader{h("correlation-id", "corr-c")}},
					&kgo.Record{Topic: src, Partition: 2, Key: []byte("acme/3"), Value: []byte(`{"id":"3","tenant":"acme"}`),
						Timestamp: ts.Add(3 * time.Millisecond)},
					&kgo.Record{Topic: src, Partition: 0, Key: []byte("acme/4"), Value: []byte{}, Timestamp: ts.Add(4 * time.Millisecond)},
				)
				recs := []*pipeline.Record{
					failed(stored[0], decodeErr("invalid character 'b'"), pipeline.StageDecode),
					failed(stored[1], decodeErr("invalid UTF-8"), pipeline.StageDecode),
					failed(stored[2], schemaErr("key", `"acme/2" disagrees with the body`), pipeline.StageValidate),
					failed(stored[3], storeErr("constraint violated: "+long), "sink.neo4j"),
					failed(stored[4], decodeErr("empty value (only a null value is a tombstone)"), pipeline.StageDecode),
				}
				w := newWriter(t, c, WriterConfig{ConnectHeaders: connect})
				ensure(t, w, src)
				at := time.Date(2026, 1, 8, 12, 0, 0, 456_000_000, time.FixedZone("CET", 3600))
				w.now = func() time.Time { return at }
				if err := send(t, w, recs...); err != nil {
					t.Fatalf("Send: %v", err)
				}
				got := c.readAll(t, src+".dlq")
				if len(got) != len(recs) {
					t.Fatalf("DLQ holds %d records, want %d", len(got), len(recs))
				}
				for i, r := range recs {
					s := r.Src
					var d *kgo.Record
					for _, g := range got {
						if bytes.Equal(g.Key, s.Key) {
							d = g
						}
					}
					if d == nil {
						t.Fatalf("record %d (key %q) not in the DLQ", i, s.Key)
					}
					if d.Partition != s.Partition {
						t.Errorf("record %d: DLQ partition %d, want the source's %d", i, d.Partition, s.Partition)
					}
					if !bytes.Equal(d.Value, s.Value) || (d.Value == nil) != (s.Value == nil) {
						t.Errorf("record %d: value %q (nil %v), want %q (nil %v)", i, d.Value, d.Value == nil, s.Value, s.Value == nil)
					}
					if !d.Timestamp.Equal(s.Timestamp) {
						t.Errorf("record %d: timestamp %v, want %v", i, d.Timestamp, s.Timestamp)
					}
					want := wantHeaders(s, r, connect)
					if !sameHeaders(d.Headers, want) {
						t.Errorf("record %d headers:\n%s want:\n%s", i, headerList(d.Headers), headerList(want))
					}
				}
			})
		}
	}
}

// wantHeaders spells out the expected headers of a record of TestSendHeaders.
func wantHeaders(s *kgo.Record, r *pipeline.Record, connect bool) []kgo.RecordHeader {
	var want []kgo.RecordHeader
	replays := "0"
	for _, x := range s.Headers {
		if strings.HasPrefix(x.Key, "ragstream.") {
			if x.Key == "ragstream.replay_count" {
				replays = string(x.Value)
			}
			continue
		}
		want = append(want, x)
	}
	part := map[int32]string{0: "0", 1: "1", 2: "2"}[s.Partition]
	off := []string{"0", "1", "2", "3"}[s.Offset]
	class := pipeline.ErrorClass(r.Err)
	msg := r.Err.Error()
	if len(msg) > 1024 {
		// 1024 bytes minus the 3-byte mark is 1021: after the 21-byte
		// prefix an é (2 bytes) starts there.
		msg = msg[:1021] + "…"
	}
	corr := map[string]string{"acme/1": "corr-a", "acme/2": "corr-c"}[string(s.Key)]
	if corr == "" {
		corr = s.Topic + "/" + part + "/" + off
	}
	want = append(want,
		h("ragstream.error.class", class),
		h("ragstream.error.stage", r.Stage),
		h("ragstream.error.message", msg),
		h("ragstream.source.topic", s.Topic),
		h("ragstream.source.partition", part),
		h("ragstream.source.offset", off),
		h("ragstream.attempts", "1"),
		h("ragstream.failed_at", "2026-01-08T11:00:00.456Z"),
		h("ragstream.replay_count", replays),
		h("ragstream.correlation_id", corr),
	)
	if connect {
		stage := map[string]string{"decode": "VALUE_CONVERTER", "validate": "VALUE_CONVERTER", "sink.neo4j": "TASK_PUT"}[r.Stage]
		exc := map[string]string{"decode": "ragstream.DecodeError", "schema": "ragstream.SchemaError",
			"store_rejected": "ragstream.StoreRejectedError"}[class]
		want = append(want,
			h("__connect.errors.topic", s.Topic),
			h("__connect.errors.partition", part),
			h("__connect.errors.offset", off),
			h("__connect.errors.stage", stage),
			h("__connect.errors.exception.class.name", exc),
			h("__connect.errors.exception.message", msg),
		)
	}
	return want
}

func sameHeaders(a, b []kgo.RecordHeader) bool {
	return slices.EqualFunc(a, b, func(x, y kgo.RecordHeader) bool {
		return x.Key == y.Key && bytes.Equal(x.Value, y.Value)
	})
}

// refuseProduce makes the fake answer every produce to topic with code
// while on() holds, and counts the refusals.
func refuseProduce(c *cluster, topic string, code int16, on func() bool, refused *atomic.Int32) {
	id := c.topicID(topic)
	c.fake.ControlKey(int16(kmsg.Produce), func(kreq kmsg.Request) (kmsg.Response, error, bool) {
		c.fake.KeepControl()
		req := kreq.(*kmsg.ProduceRequest)
		if !on() {
			return nil, nil, false
		}
		ours := false
		resp := req.ResponseKind().(*kmsg.ProduceResponse)
		for _, rt := range req.Topics {
			st := kmsg.NewProduceResponseTopic()
			st.Topic, st.TopicID = rt.Topic, rt.TopicID
			ours = ours || rt.Topic == topic || rt.TopicID == id
			for _, rp := range rt.Partitions {
				sp := kmsg.NewProduceResponseTopicPartition()
				sp.Partition = rp.Partition
				sp.ErrorCode = code
				st.Partitions = append(st.Partitions, sp)
			}
			resp.Topics = append(resp.Topics, st)
		}
		if !ours {
			return nil, nil, false
		}
		refused.Add(1)
		return resp, nil, true
	})
}

// topicID returns topic's id (produce v13 names topics by id).
func (c *cluster) topicID(topic string) [16]byte {
	cl, err := kgo.NewClient(c.opts()...)
	if err != nil {
		return [16]byte{}
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	req := kmsg.NewPtrMetadataRequest()
	rt := kmsg.NewMetadataRequestTopic()
	rt.Topic = kmsg.StringPtr(topic)
	req.Topics = append(req.Topics, rt)
	resp, err := req.RequestWith(ctx, cl)
	if err != nil || len(resp.Topics) == 0 {
		return [16]byte{}
	}
	return resp.Topics[0].TopicID
}

// TestSendFailsThenRecovers: while the DLQ refuses produces, Send returns
// a transient error and nothing is in the DLQ; once it accepts them, the
// next Send succeeds and every record is there exactly once.
func TestSendFailsThenRecovers(t *testing.T) {
	src := unique("events")
	c := newCluster(t, "kfake", src, 2)
	stored := c.produce(t,
		&kgo.Record{Topic: src, Partition: 0, Key: []byte("acme/1"), Value: []byte("x")},
		&kgo.Record{Topic: src, Partition: 1, Key: []byte("acme/2"), Value: []byte("y")},
	)
	recs := []*pipeline.Record{failed(stored[0], decodeErr("bad"), "decode"), failed(stored[1], decodeErr("bad"), "decode")}
	w := newWriter(t, c, WriterConfig{ProduceTimeout: 300 * time.Millisecond})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := w.EnsureTopic(ctx, src); err != nil {
		t.Fatalf("EnsureTopic: %v", err)
	}
	dlqTopic := src + ".dlq"
	var down atomic.Bool
	var refused atomic.Int32
	down.Store(true)
	refuseProduce(c, dlqTopic, kerr.NotEnoughReplicas.Code, down.Load, &refused)

	for i := range 3 {
		err := send(t, w, recs...)
		if err == nil {
			t.Fatalf("Send %d succeeded while the DLQ refuses every produce", i)
		}
		if got := pipeline.ClassOf(err); got != pipeline.ClassTransient {
			t.Fatalf("Send %d: class %v, want transient: %v", i, got, err)
		}
		if !strings.Contains(err.Error(), "not acknowledged") {
			t.Errorf("Send %d: error %q does not say the records were not acknowledged", i, err)
		}
	}
	if refused.Load() == 0 {
		t.Fatal("the fake refused no produce: the injection did not apply")
	}
	if got := c.readAll(t, dlqTopic); len(got) != 0 {
		t.Fatalf("DLQ holds %d records while it refused every produce", len(got))
	}
	down.Store(false)
	// The client retries the records it holds with backoff: the pipeline
	// calls Send again until it succeeds.
	sendUntilAcked(t, w, recs...)
	got := c.readAll(t, dlqTopic)
	if len(got) != 2 || string(got[0].Key) != "acme/1" || string(got[1].Key) != "acme/2" {
		t.Fatalf("DLQ after recovery holds %d records %v, want acme/1 and acme/2 once each", len(got), keys(got))
	}
}

// sendUntilAcked repeats Send, as the pipeline does, until it returns nil;
// every failure on the way must be transient.
func sendUntilAcked(t testing.TB, w *Writer, recs ...*pipeline.Record) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		err := send(t, w, recs...)
		if err == nil {
			return
		}
		if pipeline.ClassOf(err) != pipeline.ClassTransient || time.Now().After(deadline) {
			t.Fatalf("Send: %v (class %v)", err, pipeline.ClassOf(err))
		}
	}
}

func keys(rs []*kgo.Record) []string {
	var out []string
	for _, r := range rs {
		out = append(out, string(r.Key))
	}
	return out
}

// TestSendOnceWhenAckLost: the broker appends the record but its answer
// is lost (REQUEST_TIMED_OUT after the append). Within one Send the
// idempotent producer's retry is deduplicated; across Sends — the first
// giving up before the retry — the second Send waits for the same produce
// rather than producing again. Either way the DLQ holds one copy.
func TestSendOnceWhenAckLost(t *testing.T) {
	cases := []struct {
		name    string
		lost    int           // produce answers lost after the append
		backoff time.Duration // before the client retries
		timeout time.Duration // ProduceTimeout
		failing bool          // the first Send gives up before the ack
	}{
		{"retry within one Send", 2, 0, 10 * time.Second, false},
		{"retry after Send gave up", 1, 800 * time.Millisecond, 200 * time.Millisecond, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			src := unique("events")
			c := newCluster(t, "kfake", src, 1)
			stored := c.produce(t, &kgo.Record{Topic: src, Key: []byte("acme/1"), Value: []byte("poison")})
			var extra []kgo.Opt
			if tc.backoff > 0 {
				extra = append(extra, kgo.RetryBackoffFn(func(int) time.Duration { return tc.backoff }))
			}
			w := newWriter(t, c, WriterConfig{ProduceTimeout: tc.timeout}, extra...)
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			if err := w.EnsureTopic(ctx, src); err != nil {
				t.Fatalf("EnsureTopic: %v", err)
			}
			fault := c.fake.Fault(kfake.Fault{Keys: []kmsg.Key{kmsg.Produce}, Topic: src + ".dlq",
				Err: kerr.RequestTimedOut, Count: tc.lost})
			rec := failed(stored[0], decodeErr("bad"), "decode")
			for i := 1; ; i++ {
				err := send(t, w, rec)
				if err == nil {
					if tc.failing == (i == 1) {
						t.Fatalf("Send %d succeeded; want the first Send to fail: %v", i, tc.failing)
					}
					break
				}
				if pipeline.ClassOf(err) != pipeline.ClassTransient || !tc.failing || i == 20 {
					t.Fatalf("Send %d: %v (class %v)", i, err, pipeline.ClassOf(err))
				}
			}
			if fault.Hits() != tc.lost {
				t.Fatalf("%d answers lost, want %d: the injection did not apply", fault.Hits(), tc.lost)
			}
			if got := c.readAll(t, src+".dlq"); len(got) != 1 {
				t.Fatalf("DLQ holds %d copies of the record, want 1", len(got))
			}
		})
	}
}

// TestSendClassifies: refused permissions pause (SinkDown), a record the
// DLQ can never take halts (Permanent) and does not block the next Send.
func TestSendClassifies(t *testing.T) {
	t.Run("topic authorization failed on produce", func(t *testing.T) {
		src := unique("events")
		c := newCluster(t, "kfake", src, 1)
		stored := c.produce(t, &kgo.Record{Topic: src, Key: []byte("k"), Value: []byte("v")})
		w := newWriter(t, c, WriterConfig{})
		var refused atomic.Int32
		if err := w.EnsureTopic(context.Background(), src); err != nil {
			t.Fatalf("EnsureTopic: %v", err)
		}
		refuseProduce(c, src+".dlq", kerr.TopicAuthorizationFailed.Code, func() bool { return true }, &refused)
		err := send(t, w, failed(stored[0], decodeErr("bad"), "decode"))
		if pipeline.ClassOf(err) != pipeline.ClassSinkDown || !errors.Is(err, kerr.TopicAuthorizationFailed) {
			t.Fatalf("Send: %v (class %v), want sink_down with TOPIC_AUTHORIZATION_FAILED", err, pipeline.ClassOf(err))
		}
	})
	t.Run("topic authorization failed on create", func(t *testing.T) {
		src := unique("events")
		c := newCluster(t, "kfake", src, 1)
		stored := c.produce(t, &kgo.Record{Topic: src, Key: []byte("k"), Value: []byte("v")})
		c.fake.Fault(kfake.Fault{Keys: []kmsg.Key{kmsg.CreateTopics}, Err: kerr.TopicAuthorizationFailed, Count: -1})
		w := newWriter(t, c, WriterConfig{})
		err := send(t, w, failed(stored[0], decodeErr("bad"), "decode"))
		if pipeline.ClassOf(err) != pipeline.ClassSinkDown || !strings.Contains(err.Error(), src+".dlq") {
			t.Fatalf("Send: %v (class %v), want sink_down naming the DLQ topic", err, pipeline.ClassOf(err))
		}
	})
	for _, kind := range clusterKinds {
		t.Run(kind+"/record larger than the DLQ takes", func(t *testing.T) {
			src := unique("events")
			c := newCluster(t, kind, src, 1)
			c.createTopic(t, src+".dlq", 1, "max.message.bytes", "2048")
			stored := c.produce(t,
				&kgo.Record{Topic: src, Key: []byte("big"), Value: bytes.Repeat([]byte("x"), 4000)},
				&kgo.Record{Topic: src, Key: []byte("small"), Value: []byte("x")},
			)
			w := newWriter(t, c, WriterConfig{})
			err := send(t, w, failed(stored[0], decodeErr("bad"), "decode"))
			if pipeline.ClassOf(err) != pipeline.ClassPermanent || !errors.Is(err, kerr.MessageTooLarge) {
				t.Fatalf("Send: %v (class %v), want permanent MESSAGE_TOO_LARGE", err, pipeline.ClassOf(err))
			}
			if err := send(t, w, failed(stored[1], decodeErr("bad"), "decode")); err != nil {
				t.Fatalf("Send of a small record after a refused one: %v", err)
			}
			if got := c.readAll(t, src+".dlq"); len(got) != 1 || string(got[0].Key) != "small" {
				t.Fatalf("DLQ holds %v, want just the small record", keys(got))
			}
		})
	}
}

// TestEnsureTopic: the DLQ topic is created with the source's partition
// count (and replication factor), once; an override names one topic for
// every source; an existing topic is used as it is.
func TestEnsureTopic(t *testing.T) {
	for _, kind := range clusterKinds {
		t.Run(kind, func(t *testing.T) {
			src := unique("events")
			c := newCluster(t, kind, src, 5)
			c.dropAfter(t, src+".dlq")
			w := newWriter(t, c, WriterConfig{})
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			for range 2 {
				if err := w.EnsureTopic(ctx, src); err != nil {
					t.Fatalf("EnsureTopic: %v", err)
				}
			}
			if n, rf := c.partitions(t, src+".dlq"); n != 5 || rf != 1 {
				t.Fatalf("%s.dlq has %d partitions, replication factor %d; want 5, 1", src, n, rf)
			}

			other := unique("other")
			c.createTopic(t, other, 2)
			shared := unique("dead")
			c.dropAfter(t, shared)
			w2 := newWriter(t, c, WriterConfig{Topic: shared})
			if err := w2.EnsureTopic(ctx, other); err != nil {
				t.Fatalf("EnsureTopic with an override: %v", err)
			}
			if err := w2.EnsureTopic(ctx, src); err != nil {
				t.Fatalf("EnsureTopic of a second source with an override: %v", err)
			}
			if n, _ := c.partitions(t, shared); n != 2 {
				t.Fatalf("override topic %s has %d partitions, want 2 (its first source's)", shared, n)
			}
			// Source partition 4 of src has no partition 4 in the shared
			// topic: it goes to 4 mod 2.
			stored := c.produce(t, &kgo.Record{Topic: src, Partition: 4, Key: []byte("k"), Value: []byte("v")})
			if err := send(t, w2, failed(stored[0], decodeErr("bad"), "decode")); err != nil {
				t.Fatalf("Send: %v", err)
			}
			if got := c.readAll(t, shared); len(got) != 1 || got[0].Partition != 0 {
				t.Fatalf("shared DLQ holds %d records (partition %v), want 1 in partition 0", len(got), got)
			}

			err := w.EnsureTopic(ctx, unique("absent"))
			if err == nil || pipeline.ClassOf(err) != pipeline.ClassTransient {
				t.Fatalf("EnsureTopic of an absent source: %v, want a transient error", err)
			}
		})
	}
}

func TestConfigFrom(t *testing.T) {
	d := config.Default().DLQ
	got := ConfigFrom(d)
	if got != (WriterConfig{Topic: "", ConnectHeaders: true, ProduceTimeout: 3 * time.Second}) {
		t.Fatalf("ConfigFrom(defaults) = %+v, want connect headers on and a 3s produce timeout", got)
	}
	d.Topic, d.ConnectCompatibleHeaders = "dead", false
	if got := ConfigFrom(d); got.Topic != "dead" || got.ConnectHeaders {
		t.Fatalf("ConfigFrom = %+v", got)
	}
	if _, err := NewWriter(WriterConfig{ProduceTimeout: -time.Second}, nil, zerolog.Nop()); err == nil ||
		!strings.Contains(err.Error(), "dlq.produce_timeout") {
		t.Fatalf("NewWriter with a negative timeout: %v, want an error naming dlq.produce_timeout", err)
	}
}
