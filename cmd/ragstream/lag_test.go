package main

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"strconv"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"google.golang.org/grpc/codes"

	"github.com/ragstream/ragstream/config"
	"github.com/ragstream/ragstream/internal/metrics/metricstest"
	"github.com/ragstream/ragstream/internal/testenv"
	"github.com/ragstream/ragstream/pipeline"
	"github.com/ragstream/ragstream/pipeline/pipelinetest"
)

// lagWait bounds every wait of the lag test: a lag refresh, a commit, a
// rebalance or the recovery of a paused partition on a loaded machine.
const lagWait = 2 * time.Minute

// lagProbe reads, for one worker, the consumer lag it exports on /metrics
// and the same figure computed from the brokers with kadm.
type lagProbe struct {
	t     *testing.T
	tw    *testWorker
	adm   *kadm.Client
	topic string
	group string
	parts int32
}

func newLagProbe(t *testing.T, e *workerEnv, tw *testWorker) *lagProbe {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(e.brokers...))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	return &lagProbe{t: t, tw: tw, adm: kadm.NewClient(cl), topic: e.topic, group: e.group, parts: e.partitions}
}

// brokerLag returns end offset minus the group's committed offset for
// every partition, as kadm reads them (minus 0 where nothing is committed:
// the test topics start at offset 0), and the committed offsets.
func (p *lagProbe) brokerLag() (lag, committed map[int32]int64, err error) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	ends, err := p.adm.ListEndOffsets(ctx, p.topic)
	if err != nil {
		return nil, nil, fmt.Errorf("end offsets: %w", err)
	}
	offs, err := p.adm.FetchOffsetsForTopics(ctx, p.group, p.topic)
	if err != nil && !errors.Is(err, kerr.GroupIDNotFound) {
		return nil, nil, fmt.Errorf("committed offsets: %w", err)
	}
	lag, committed = map[int32]int64{}, map[int32]int64{}
	for part := range p.parts {
		end, ok := ends.Lookup(p.topic, part)
		if !ok || end.Err != nil {
			return nil, nil, fmt.Errorf("end offset of partition %d: listed %v, %v", part, ok, end.Err)
		}
		var c int64
		if o, ok := offs.Lookup(p.topic, part); ok && o.Err == nil && o.At >= 0 {
			c = o.At
		}
		lag[part], committed[part] = end.Offset-c, c
	}
	return lag, committed, nil
}

// metricLag returns ragstream_consumer_lag of every partition from the
// worker's /metrics; a partition without a series is missing from it.
func (p *lagProbe) metricLag() map[int32]int64 {
	f := metricstest.ScrapeURL(p.t, http.DefaultClient, p.tw.base+"/metrics")
	out := map[int32]int64{}
	for part := range p.parts {
		v, ok := f.Value("ragstream_consumer_lag", map[string]string{"topic": p.topic, "partition": strconv.Itoa(int(part))})
		if ok {
			out[part] = int64(v)
		}
	}
	return out
}

// metric returns one sample of the worker's /metrics (0 when absent).
func (p *lagProbe) metric(name string, labels map[string]string) float64 {
	v, _ := metricstest.ScrapeURL(p.t, http.DefaultClient, p.tw.base+"/metrics").Value(name, labels)
	return v
}

// expect waits until the brokers say the lag of every partition is want
// (kadm: end − committed) and /metrics says the same, then checks that the
// two keep agreeing over a few more refreshes. It fails with the last
// figures when they do not agree within lagWait.
func (p *lagProbe) expect(when string, want map[int32]int64, refresh time.Duration) {
	p.t.Helper()
	var got, broker, committed map[int32]int64
	var err error
	agree := func() bool {
		broker, committed, err = p.brokerLag()
		if err != nil {
			return false
		}
		got = p.metricLag()
		return maps.Equal(broker, want) && maps.Equal(got, broker)
	}
	deadline := time.Now().Add(lagWait)
	for !agree() {
		if time.Now().After(deadline) {
			p.t.Fatalf("%s: after %s ragstream_consumer_lag is %v; kadm reads end − committed %v (committed %v, error %v); want %v",
				when, lagWait, got, broker, committed, err, want)
		}
		time.Sleep(refresh / 2)
	}
	// Nothing moves now (the stores are steady, nothing is produced): the
	// gauge must hold the brokers' figure refresh after refresh.
	for range 4 {
		time.Sleep(refresh)
		if !agree() {
			p.t.Fatalf("%s: ragstream_consumer_lag moved to %v; kadm reads end − committed %v (committed %v, error %v); want %v",
				when, got, broker, committed, err, want)
		}
	}
	p.t.Logf("%s: lag %v (committed %v)", when, got, committed)
}

// produceLagRecords writes n events to partition part of the env's topic
// and waits for their acknowledgement.
func produceLagRecords(t *testing.T, e *workerEnv, tenant string, part int32, n int, from *int) {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(e.brokers...), kgo.RecordPartitioner(kgo.ManualPartitioner()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	recs := make([]*kgo.Record, n)
	for i := range recs {
		ev := pipelinetest.Event{Tenant: tenant, ID: fmt.Sprintf("c%04d", *from), Version: 1,
			Dims: e.config().Qdrant.VectorSize, Entities: []string{fmt.Sprintf("e%d", *from%5)}}
		recs[i] = ev.Record(e.topic, part, "")
		*from++
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := cl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		t.Fatalf("produce %d records to partition %d: %v", n, part, err)
	}
}

// partitionStatus returns the worker's status of one partition.
func partitionStatus(tw *testWorker, topic string, part int32) (pipeline.PartitionStatus, bool) {
	for _, s := range tw.consumer.Status() {
		if s.Topic == topic && s.Partition == part {
			return s, true
		}
	}
	return pipeline.PartitionStatus{}, false
}

// TestConsumerLagOfAPausedPartition runs the whole worker (on kfake and on
// the real test Kafka) with pipeline.lag_refresh at 100ms and checks that
// ragstream_consumer_lag on GET /metrics is, per partition, the end offset
// minus the group's committed offset as kadm reads them:
//
//   - 0 everywhere once a first round on every partition is committed;
//   - with Qdrant refusing upserts, partition 0 is paused (its fetching,
//     for a store being down) on its one new record: lag 1 there;
//   - records produced to the paused partition are not fetched, and its
//     lag grows by exactly their number, step by step, while the other
//     partitions stay at 0;
//   - once Qdrant accepts writes again the partition resumes, everything
//     is committed and the lag returns to 0.
func TestConsumerLagOfAPausedPartition(t *testing.T) {
	for _, tc := range []struct {
		name      string
		realKafka bool
	}{
		{"kfake", false},
		{"kafka", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			const refresh = 100 * time.Millisecond
			e := newWorkerEnv(t, testenv.Neo4jURI(t), envOptions{realKafka: tc.realKafka, partitions: 3})
			tw := e.start(func(c *config.Config) {
				c.Pipeline.LagRefresh = config.Duration(refresh)
				// A refused upsert is down at once: one attempt, one cycle
				// opens the breaker; the breaker probes again every second.
				c.Pipeline.Retry.MaxAttempts = 1
				c.Pipeline.Breaker.FailureThreshold = 1
				c.Pipeline.Breaker.OpenTimeout = config.Duration(time.Second)
			})
			faults := e.standIn.Faults()
			// Before the worker stops (cleanups run last first): a paused
			// partition would otherwise only be abandoned.
			t.Cleanup(faults.Reset)
			tenant := unique("lag")
			t.Cleanup(func() { deleteTenants(t, []string{tenant}) })
			probe := newLagProbe(t, e, tw)
			topic := e.topic
			next := 0
			consumed := func() float64 {
				return probe.metric("ragstream_records_consumed_total", map[string]string{"topic": topic})
			}

			// A first round on every partition, committed: the committed
			// offsets are past the log start, lag 0 everywhere.
			base := map[int32]int{0: 4, 1: 5, 2: 6}
			total := 0
			for part, n := range base {
				produceLagRecords(t, e, tenant, part, n, &next)
				total += n
			}
			probe.expect("first round committed", map[int32]int64{0: 0, 1: 0, 2: 0}, refresh)
			if got := consumed(); got != float64(total) {
				t.Fatalf("ragstream_records_consumed_total = %v after the first round, want %d", got, total)
			}

			// Qdrant refuses upserts; one record on partition 0 fails and
			// pauses the partition's fetching.
			faults.FailFor("Upsert", codes.Unavailable, time.Hour)
			produceLagRecords(t, e, tenant, 0, 1, &next)
			total++
			waitFor(t, lagWait, "partition 0 paused for Qdrant being down", func() bool {
				s, ok := partitionStatus(tw, topic, 0)
				return ok && s.Paused&pipeline.PauseSinkDown != 0 &&
					probe.metric("ragstream_partitions_paused", map[string]string{"topic": topic}) == 1
			})
			lag0 := int64(1)
			probe.expect("partition 0 paused", map[int32]int64{0: lag0, 1: 0, 2: 0}, refresh)
			if got := consumed(); got != float64(total) {
				t.Fatalf("ragstream_records_consumed_total = %v once partition 0 paused, want %d", got, total)
			}

			// More records to the paused partition: none is fetched, the
			// lag grows by exactly what was produced.
			for _, n := range []int{3, 7, 12} {
				produceLagRecords(t, e, tenant, 0, n, &next)
				lag0 += int64(n)
				probe.expect(fmt.Sprintf("%d more records produced to paused partition 0", n),
					map[int32]int64{0: lag0, 1: 0, 2: 0}, refresh)
				if s, ok := partitionStatus(tw, topic, 0); !ok || s.Paused&pipeline.PauseSinkDown == 0 {
					t.Fatalf("partition 0 is no longer paused for Qdrant being down: %+v (assigned %v)", s, ok)
				}
			}
			if got := consumed(); got != float64(total) {
				t.Errorf("ragstream_records_consumed_total = %v while partition 0 is paused, want %d: the paused partition was fetched", got, total)
			}

			// Qdrant is back: the partition resumes, reads what waited and
			// commits it; the lag returns to 0.
			faults.Reset()
			probe.expect("Qdrant back", map[int32]int64{0: 0, 1: 0, 2: 0}, refresh)
			total += int(lag0 - 1)
			if got := consumed(); got != float64(total) {
				t.Errorf("ragstream_records_consumed_total = %v after the resume, want %d", got, total)
			}
			waitFor(t, lagWait, "no partition paused", func() bool {
				s, ok := partitionStatus(tw, topic, 0)
				return ok && s.Paused == 0 &&
					probe.metric("ragstream_partitions_paused", map[string]string{"topic": topic}) == 0
			})
		})
	}
}
