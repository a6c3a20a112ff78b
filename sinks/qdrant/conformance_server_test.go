package qdrant_test

import (
	"context"
	"testing"

	"github.com/qdrant/go-client/qdrant"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
)

func TestConformanceHealth(t *testing.T) {
	tg := newConfTarget(t)
	// The health check needs no key.
	reply, err := tg.client(t, "-").HealthCheck(confCtx(t))
	if err != nil {
		t.Fatal(err)
	}
	if reply.GetTitle() != "qdrant - vector search engine" {
		t.Fatalf("title %q", reply.GetTitle())
	}
	if reply.GetVersion() == "" {
		t.Fatal("empty version") // its value is never compared
	}
}

func TestConformanceAuth(t *testing.T) {
	tg := newConfTarget(t)
	if tg.apiKey == "" {
		t.Skip("the target Qdrant has no API key (set RAGSTREAM_TEST_QDRANT_API_KEY for one that has)")
	}
	t.Run("missing key", func(t *testing.T) {
		_, err := tg.client(t, "-").ListCollections(confCtx(t))
		confWantStatus(t, err, codes.Unauthenticated, "Must provide an API key or an Authorization bearer token")
	})
	t.Run("wrong key", func(t *testing.T) {
		_, err := tg.client(t, "wrong-"+tg.apiKey).ListCollections(confCtx(t))
		confWantStatus(t, err, codes.Unauthenticated, "Invalid API key or JWT")
	})
	t.Run("right key", func(t *testing.T) {
		if _, err := tg.client(t).ListCollections(confCtx(t)); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("bearer token", func(t *testing.T) {
		conn, err := grpc.NewClient(tg.addr(), grpc.WithTransportCredentials(insecure.NewCredentials()))
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		ctx := metadata.AppendToOutgoingContext(confCtx(t), "authorization", "Bearer "+tg.apiKey)
		if _, err := qdrant.NewCollectionsClient(conn).List(ctx, &qdrant.ListCollectionsRequest{}); err != nil {
			t.Fatalf("bearer token refused: %v", err)
		}
		ctx = metadata.AppendToOutgoingContext(context.Background(), "authorization", "Bearer nope")
		_, err = qdrant.NewCollectionsClient(conn).List(ctx, &qdrant.ListCollectionsRequest{})
		confWantStatus(t, err, codes.Unauthenticated, "Invalid API key or JWT")
	})
}
