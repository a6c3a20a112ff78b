package qdranttest_test

import (
	"context"
	"testing"
	"time"

	"github.com/qdrant/go-client/qdrant"
	"github.com/ragstream/ragstream/sinks/qdrant/qdranttest"
	"go.uber.org/goleak"
	"google.golang.org/grpc"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

func ctx(t *testing.T) context.Context {
	t.Helper()
	c, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return c
}

// roundTrip creates a collection, upserts, queries and deletes through a
// plain go-client, the way any gRPC Qdrant client would.
func roundTrip(t *testing.T, c *qdrant.Client) {
	t.Helper()
	cx := ctx(t)
	if _, err := c.HealthCheck(cx); err != nil {
		t.Fatalf("health: %v", err)
	}
	err := c.CreateCollection(cx, &qdrant.CreateCollection{
		CollectionName: "rt",
		VectorsConfig:  qdrant.NewVectorsConfig(&qdrant.VectorParams{Size: 2, Distance: qdrant.Distance_Dot}),
	})
	if err != nil {
		t.Fatalf("create: %v", err)
	}
	_, err = c.Upsert(cx, &qdrant.UpsertPoints{
		CollectionName: "rt",
		Wait:           qdrant.PtrOf(true),
		Points: []*qdrant.PointStruct{
			{Id: qdrant.NewIDNum(1), Vectors: qdrant.NewVectors(1, 0), Payload: qdrant.NewValueMap(map[string]any{"k": "a"})},
			{Id: qdrant.NewIDNum(2), Vectors: qdrant.NewVectors(0, 1)},
		},
	})
	if err != nil {
		t.Fatalf("upsert: %v", err)
	}
	res, err := c.Query(cx, &qdrant.QueryPoints{CollectionName: "rt", Query: qdrant.NewQuery(1, 0), WithPayload: qdrant.NewWithPayload(true)})
	if err != nil {
		t.Fatalf("query: %v", err)
	}
	if len(res) != 2 || res[0].GetId().GetNum() != 1 || res[0].GetScore() != 1 || res[0].GetPayload()["k"].GetStringValue() != "a" {
		t.Fatalf("query answered %v", res)
	}
	if err := c.DeleteCollection(cx, "rt"); err != nil {
		t.Fatalf("delete: %v", err)
	}
}

func TestServesPlainGoClientOverTCP(t *testing.T) {
	s := qdranttest.Start(t)
	host, port := s.HostPort()
	if host != "127.0.0.1" || port == 0 {
		t.Fatalf("Addr() = %q, want 127.0.0.1:<port>", s.Addr())
	}
	c, err := qdrant.NewClient(&qdrant.Config{Host: host, Port: port})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	roundTrip(t, c)
}

func TestServesInProcess(t *testing.T) {
	s := qdranttest.New()
	defer s.Close()
	c, err := qdrant.NewClient(&qdrant.Config{
		Host:        qdranttest.InProcessHost,
		PoolSize:    1,
		GrpcOptions: []grpc.DialOption{s.InProcessDialOption()},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	roundTrip(t, c)
}
