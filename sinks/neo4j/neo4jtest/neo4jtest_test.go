package neo4jtest_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/neo4j/neo4j-go-driver/v5/neo4j"

	"github.com/ragstream/ragstream/sinks/neo4j/neo4jtest"
)

func query(ctx context.Context, drv neo4j.DriverWithContext, cypher string, params map[string]any) (*neo4j.EagerResult, error) {
	return neo4j.ExecuteQuery(ctx, drv, cypher, params, neo4j.EagerResultTransformer)
}

// countDocs counts the nodes with the given label and id.
func countDocs(t *testing.T, drv neo4j.DriverWithContext, label, id string) int64 {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	res, err := query(ctx, drv, "MATCH (n:`"+label+"` {id: $id}) RETURN count(n) AS n", map[string]any{"id": id})
	if err != nil {
		t.Fatalf("count %s %s: %v", label, id, err)
	}
	n, _ := res.Records[0].Get("n")
	return n.(int64)
}

func writeDoc(t *testing.T, drv neo4j.DriverWithContext, label, id string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := query(ctx, drv, "CREATE (:`"+label+"` {id: $id})", map[string]any{"id": id}); err != nil {
		t.Fatalf("write %s %s: %v", label, id, err)
	}
}

func TestConnectShared(t *testing.T) {
	drv := neo4jtest.Connect(t)
	label := "Neo4jtest_" + uuid.NewString()[:8]
	t.Cleanup(func() {
		_, _ = query(context.Background(), drv, "MATCH (n:`"+label+"`) DETACH DELETE n", nil)
	})
	writeDoc(t, drv, label, "a")
	if got := countDocs(t, drv, label, "a"); got != 1 {
		t.Fatalf("shared neo4j has %d nodes %s a, want 1", got, label)
	}
}

// TestPrivateRestartKeepsData stops the server gracefully and then kills it:
// after each restart on the same home, committed writes are still there.
func TestPrivateRestartKeepsData(t *testing.T) {
	t.Parallel()
	srv := neo4jtest.StartPrivate(t, neo4jtest.Options{})
	drv := srv.Connect(t)
	uri := srv.URI()

	writeDoc(t, drv, "Doc", "before-stop")
	srv.Stop()

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := drv.VerifyConnectivity(ctx); err == nil {
		t.Fatalf("neo4j at %s still answers after Stop", uri)
	}

	srv.Start()
	if srv.URI() != uri {
		t.Fatalf("URI after restart = %s, want %s", srv.URI(), uri)
	}
	if got := countDocs(t, drv, "Doc", "before-stop"); got != 1 {
		t.Fatalf("after Stop and Start: %d nodes, want the 1 written before", got)
	}

	writeDoc(t, drv, "Doc", "before-kill")
	srv.Kill()
	srv.Start()
	if got := countDocs(t, drv, "Doc", "before-kill"); got != 1 {
		t.Fatalf("after Kill and Start: %d nodes, want the 1 committed before", got)
	}
}

// TestPrivateFreeze shows what timeout tests rely on: a frozen server keeps
// its port open but answers nothing, so a query runs into its deadline, and it
// answers again once thawed.
func TestPrivateFreeze(t *testing.T) {
	t.Parallel()
	srv := neo4jtest.StartPrivate(t, neo4jtest.Options{})
	drv := srv.Connect(t)
	writeDoc(t, drv, "Doc", "x")

	srv.Freeze()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	start := time.Now()
	_, err := query(ctx, drv, "MATCH (n:Doc) RETURN count(n) AS n", nil)
	if err == nil {
		t.Fatalf("query against a frozen server succeeded")
	}
	if ctx.Err() == nil {
		t.Fatalf("query against a frozen server failed before its 2s deadline (after %s): %v", time.Since(start), err)
	}

	srv.Thaw()
	if got := countDocs(t, drv, "Doc", "x"); got != 1 {
		t.Fatalf("after Thaw: %d nodes, want 1", got)
	}
}

func TestPrivateAuth(t *testing.T) {
	t.Parallel()
	const password = "test-secret-1"
	srv := neo4jtest.StartPrivate(t, neo4jtest.Options{Auth: true, Password: password})

	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	tests := []struct {
		name    string
		auth    neo4j.AuthToken
		wantErr bool
	}{
		{name: "right password", auth: srv.AuthToken()},
		{name: "no auth", auth: neo4j.NoAuth(), wantErr: true},
		{name: "wrong password", auth: neo4j.BasicAuth("neo4j", "not-the-password", ""), wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			drv, err := neo4j.NewDriverWithContext(srv.URI(), tt.auth)
			if err != nil {
				t.Fatal(err)
			}
			defer drv.Close(context.Background())
			err = drv.VerifyConnectivity(ctx)
			if !tt.wantErr {
				if err != nil {
					t.Fatalf("connect with the password: %v", err)
				}
				return
			}
			var n4e *neo4j.Neo4jError
			if !errors.As(err, &n4e) || n4e.Code != "Neo.ClientError.Security.Unauthorized" {
				t.Fatalf("connect: got %v, want Neo.ClientError.Security.Unauthorized", err)
			}
		})
	}

	// A restart on the same home keeps the password (the launcher must not
	// fail on setting the password it already has).
	srv.Stop()
	srv.Start()
	drv := srv.Connect(t)
	if err := drv.VerifyConnectivity(ctx); err != nil {
		t.Fatalf("connect after a restart: %v", err)
	}
}
