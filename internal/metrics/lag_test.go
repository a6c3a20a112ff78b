package metrics

import (
	"context"
	"strconv"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/ragstream/ragstream/internal/metrics/metricstest"
)

const (
	lagTopic = "events"
	lagGroup = "ragstream-lag-test"
)

func newCluster(t *testing.T) []string {
	t.Helper()
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(3, lagTopic),
		kfake.GroupMinSessionTimeout(100*time.Millisecond))
	if err != nil {
		t.Fatalf("kfake: %v", err)
	}
	t.Cleanup(c.Close)
	return c.ListenAddrs()
}

func newClient(t *testing.T, opts ...kgo.Opt) *kgo.Client {
	t.Helper()
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	return cl
}

// produce writes n records to each of partitions.
func produce(t *testing.T, cl *kgo.Client, n int, partitions ...int32) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var recs []*kgo.Record
	for _, p := range partitions {
		for i := 0; i < n; i++ {
			recs = append(recs, &kgo.Record{Topic: lagTopic, Partition: p, Value: []byte("v" + strconv.Itoa(i))})
		}
	}
	if err := cl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		t.Fatalf("produce: %v", err)
	}
}

func lagOf(t *testing.T, m *Metrics, partition int32) (float64, bool) {
	t.Helper()
	return metricstest.Scrape(t, m.Handler()).Value("ragstream_consumer_lag",
		map[string]string{"topic": lagTopic, "partition": strconv.Itoa(int(partition))})
}

// TestLagOfAPausedConsumer: a group member that committed part of the topic
// and paused fetching has lag end − committed on every partition (end −
// start where it committed nothing), and the lag grows as records arrive
// while it stays paused.
func TestLagOfAPausedConsumer(t *testing.T) {
	addrs := newCluster(t)
	producer := newClient(t, kgo.SeedBrokers(addrs...), kgo.RecordPartitioner(kgo.ManualPartitioner()))
	produce(t, producer, 10, 0, 1, 2)

	consumer := newClient(t, kgo.SeedBrokers(addrs...), kgo.ConsumerGroup(lagGroup), kgo.ConsumeTopics(lagTopic),
		kgo.DisableAutoCommit(), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.SessionTimeout(time.Second), kgo.HeartbeatInterval(100*time.Millisecond))
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	seen := map[int32]int{}
	for len(seen) < 3 || seen[0]+seen[1]+seen[2] < 30 {
		fs := consumer.PollFetches(ctx)
		if err := ctx.Err(); err != nil {
			t.Fatalf("consumed %v before the deadline", seen)
		}
		fs.EachRecord(func(r *kgo.Record) { seen[r.Partition]++ })
	}
	// Commit 4 records of partition 0 and all 10 of partition 1; nothing of
	// partition 2. Then pause, as the pipeline does when a sink is down.
	if err := commit(ctx, consumer, map[int32]int64{0: 4, 1: 10}); err != nil {
		t.Fatal(err)
	}
	consumer.PauseFetchTopics(lagTopic)
	produce(t, producer, 5, 0, 2)

	m := New(testBuild)
	adm := kadm.NewClient(newClient(t, kgo.SeedBrokers(addrs...)))
	if err := m.RefreshLag(ctx, adm, lagGroup, []string{lagTopic}); err != nil {
		t.Fatal(err)
	}
	for p, want := range map[int32]float64{0: 11, 1: 0, 2: 15} /* end minus committed: 15-4, 10-10, 15-0 */ {
		if got, ok := lagOf(t, m, p); !ok || got != want {
			t.Errorf("lag of partition %d = %v (present %v), want %v", p, got, ok, want)
		}
	}

	// Still paused: more records only raise the lag.
	produce(t, producer, 7, 1)
	if err := m.RefreshLag(ctx, adm, lagGroup, []string{lagTopic}); err != nil {
		t.Fatal(err)
	}
	if got, _ := lagOf(t, m, 1); got != 7 {
		t.Errorf("lag of partition 1 after 7 more records = %v, want 7", got)
	}
	if got := metricstest.Scrape(t, m.Handler())["ragstream_consumer_lag_refresh_errors_total"].GetMetric()[0].GetCounter().GetValue(); got != 0 {
		t.Errorf("refresh errors = %v", got)
	}
}

func commit(ctx context.Context, cl *kgo.Client, offsets map[int32]int64) error {
	eo := map[string]map[int32]kgo.EpochOffset{lagTopic: {}}
	for p, o := range offsets {
		eo[lagTopic][p] = kgo.EpochOffset{Epoch: -1, Offset: o}
	}
	var cerr error
	cl.CommitOffsetsSync(ctx, eo, func(_ *kgo.Client, _ *kmsg.OffsetCommitRequest, resp *kmsg.OffsetCommitResponse, err error) {
		cerr = err
		if err == nil {
			for _, t := range resp.Topics {
				for _, p := range t.Partitions {
					if p.ErrorCode != 0 {
						cerr = kerr.ErrorForCode(p.ErrorCode)
					}
				}
			}
		}
	})
	return cerr
}

// TestLagSeriesOfADeletedTopicGo: once a topic is gone its partitions'
// series are removed instead of reporting a stale lag forever.
func TestLagSeriesOfADeletedTopicGo(t *testing.T) {
	addrs := newCluster(t)
	producer := newClient(t, kgo.SeedBrokers(addrs...), kgo.RecordPartitioner(kgo.ManualPartitioner()))
	produce(t, producer, 3, 0)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	adm := kadm.NewClient(newClient(t, kgo.SeedBrokers(addrs...)))
	m := New(testBuild)
	if err := m.RefreshLag(ctx, adm, lagGroup, []string{lagTopic}); err != nil {
		t.Fatal(err)
	}
	if got, ok := lagOf(t, m, 0); !ok || got != 3 {
		t.Fatalf("lag of a group that committed nothing = %v (present %v), want 3", got, ok)
	}
	if _, err := adm.DeleteTopics(ctx, lagTopic); err != nil {
		t.Fatal(err)
	}
	if err := m.RefreshLag(ctx, adm, lagGroup, []string{lagTopic}); err != nil {
		t.Fatal(err)
	}
	if _, ok := lagOf(t, m, 0); ok {
		t.Error("the deleted topic still has a lag series")
	}
}

func TestRunLagCollector(t *testing.T) {
	addrs := newCluster(t)
	producer := newClient(t, kgo.SeedBrokers(addrs...), kgo.RecordPartitioner(kgo.ManualPartitioner()))
	adm := kadm.NewClient(newClient(t, kgo.SeedBrokers(addrs...)))
	m := New(testBuild)

	for _, tc := range []struct {
		name     string
		adm      *kadm.Client
		group    string
		topics   []string
		interval time.Duration
	}{
		{"nil client", nil, lagGroup, []string{lagTopic}, time.Second},
		{"no group", adm, "", []string{lagTopic}, time.Second},
		{"no topics", adm, lagGroup, nil, time.Second},
		{"zero interval", adm, lagGroup, []string{lagTopic}, 0},
	} {
		if err := m.RunLagCollector(context.Background(), tc.adm, tc.group, tc.topics, tc.interval); err == nil {
			t.Errorf("%s: no error", tc.name)
		}
	}

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- m.RunLagCollector(ctx, adm, lagGroup, []string{lagTopic}, 20*time.Millisecond) }()
	produce(t, producer, 4, 2)
	deadline := time.Now().Add(10 * time.Second)
	for {
		if got, _ := lagOf(t, m, 2); got == 4 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the collector never reported the lag of 4 records")
		}
		time.Sleep(10 * time.Millisecond)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("RunLagCollector returned %v after cancel", err)
	}
}
