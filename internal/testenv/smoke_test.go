package testenv_test

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/neo4j/neo4j-go-driver/v5/neo4j"
	"github.com/redis/go-redis/v9"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/ragstream/ragstream/internal/testenv"
)

// These smoke tests prove that the services started by scripts/services.sh
// answer the clients ragstream uses. Under CI=true they fail when a service
// is missing.

func unique(prefix string) string {
	return prefix + "_" + uuid.NewString()[:8]
}

func TestKafkaSmoke(t *testing.T) {
	brokers := testenv.KafkaBrokers(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...))
	if err != nil {
		t.Fatalf("kafka client for %v: %v", brokers, err)
	}
	// Closed by Cleanup, which runs after the topic's deletion registered below.
	t.Cleanup(cl.Close)
	adm := kadm.NewClient(cl)

	md, err := adm.BrokerMetadata(ctx)
	if err != nil {
		t.Fatalf("kafka metadata from %v: %v", brokers, err)
	}
	var advertised []string
	for _, b := range md.Brokers {
		advertised = append(advertised, fmt.Sprintf("%s:%d", b.Host, b.Port))
	}
	if !slices.ContainsFunc(advertised, func(a string) bool { return slices.Contains(brokers, a) }) {
		t.Fatalf("metadata lists brokers %v, none of them the seed %v", advertised, brokers)
	}

	topic := unique("ragstream-smoke")
	if _, err := adm.CreateTopic(ctx, 1, 1, nil, topic); err != nil {
		t.Fatalf("create topic %s: %v", topic, err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if _, err := adm.DeleteTopic(ctx, topic); err != nil {
			t.Errorf("delete topic %s: %v", topic, err)
		}
	})

	want := &kgo.Record{Topic: topic, Key: []byte("tenant/1"), Value: []byte(`{"smoke":true}`)}
	if err := cl.ProduceSync(ctx, want).FirstErr(); err != nil {
		t.Fatalf("produce to %s: %v", topic, err)
	}

	consumer, err := kgo.NewClient(
		kgo.SeedBrokers(brokers...),
		kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
	)
	if err != nil {
		t.Fatalf("kafka consumer: %v", err)
	}
	defer consumer.Close()
	for {
		fetches := consumer.PollFetches(ctx)
		if err := ctx.Err(); err != nil {
			t.Fatalf("no record consumed from %s: %v", topic, err)
		}
		for _, fe := range fetches.Errors() {
			t.Fatalf("fetch %s[%d]: %v", fe.Topic, fe.Partition, fe.Err)
		}
		if recs := fetches.Records(); len(recs) > 0 {
			got := recs[0]
			if string(got.Key) != string(want.Key) || string(got.Value) != string(want.Value) {
				t.Fatalf("consumed key %q value %q, want %q %q", got.Key, got.Value, want.Key, want.Value)
			}
			return
		}
	}
}

func TestNeo4jSmoke(t *testing.T) {
	uri := testenv.Neo4jURI(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	drv, err := neo4j.NewDriverWithContext(uri, neo4j.NoAuth())
	if err != nil {
		t.Fatalf("neo4j driver for %s: %v", uri, err)
	}
	t.Cleanup(func() { drv.Close(context.Background()) })
	if err := drv.VerifyConnectivity(ctx); err != nil {
		t.Fatalf("neo4j at %s: %v", uri, err)
	}

	label := unique("Smoke")
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if _, err := neo4j.ExecuteQuery(ctx, drv, "MATCH (n:`"+label+"`) DETACH DELETE n",
			nil, neo4j.EagerResultTransformer); err != nil {
			t.Errorf("clean up label %s: %v", label, err)
		}
	})

	if _, err := neo4j.ExecuteQuery(ctx, drv, "CREATE (:`"+label+"` {id: $id, body: $body})",
		map[string]any{"id": "doc-1", "body": "hello"}, neo4j.EagerResultTransformer); err != nil {
		t.Fatalf("write: %v", err)
	}
	res, err := neo4j.ExecuteQuery(ctx, drv, "MATCH (n:`"+label+"` {id: $id}) RETURN n.body AS body",
		map[string]any{"id": "doc-1"}, neo4j.EagerResultTransformer,
		neo4j.ExecuteQueryWithReadersRouting())
	if err != nil {
		t.Fatalf("read: %v", err)
	}
	if len(res.Records) != 1 {
		t.Fatalf("read %d records, want 1", len(res.Records))
	}
	if body, _ := res.Records[0].Get("body"); body != "hello" {
		t.Fatalf("read body %v, want hello", body)
	}
}

func TestRedisSmoke(t *testing.T) {
	addr := testenv.RedisAddr(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	rdb := redis.NewClient(&redis.Options{Addr: addr})
	t.Cleanup(func() { rdb.Close() })
	if pong, err := rdb.Ping(ctx).Result(); err != nil || pong != "PONG" {
		t.Fatalf("redis PING at %s = %q, %v; want PONG", addr, pong, err)
	}
	key := unique("ragstream:smoke")
	t.Cleanup(func() { rdb.Del(context.Background(), key) })
	if err := rdb.Set(ctx, key, "v1", time.Minute).Err(); err != nil {
		t.Fatalf("SET %s: %v", key, err)
	}
	if got, err := rdb.Get(ctx, key).Result(); err != nil || got != "v1" {
		t.Fatalf("GET %s = %q, %v; want v1", key, got, err)
	}
}
