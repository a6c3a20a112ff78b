package deploytest

import (
	"context"
	"path/filepath"
	"strings"
	"testing"

	"github.com/compose-spec/compose-go/v2/cli"
	"github.com/compose-spec/compose-go/v2/types"
)

// loadCompose loads compose.yaml as `docker compose` would, with env as the
// only environment (no .env file is read), so missing required variables fail.
func loadCompose(t *testing.T, env []string) (*types.Project, error) {
	t.Helper()
	opts, err := cli.NewProjectOptions(
		[]string{filepath.Join(repoRoot, "compose.yaml")},
		cli.WithWorkingDirectory(repoRoot),
		cli.WithEnv(env),
		cli.WithInterpolation(true),
		cli.WithDiscardEnvFile,
	)
	if err != nil {
		return nil, err
	}
	return opts.LoadProject(context.Background())
}

func TestComposeServicesAreHealthchecked(t *testing.T) {
	p, err := loadCompose(t, []string{"NEO4J_PASSWORD=test-only-password"})
	if err != nil {
		t.Fatalf("load compose.yaml: %v", err)
	}
	for _, want := range []string{"redpanda", "qdrant", "neo4j", "redis"} {
		if _, ok := p.Services[want]; !ok {
			t.Errorf("compose.yaml lacks service %q", want)
		}
	}
	for name, s := range p.Services {
		hc := s.HealthCheck
		if hc == nil || hc.Disable || len(hc.Test) == 0 || hc.Test[0] == "NONE" {
			t.Errorf("service %q has no healthcheck", name)
			continue
		}
		if hc.Interval == nil || hc.Retries == nil {
			t.Errorf("service %q healthcheck lacks interval or retries", name)
		}
		for _, port := range s.Ports {
			if port.HostIP != "127.0.0.1" {
				t.Errorf("service %q publishes port %s on %q, want 127.0.0.1 only", name, port.Published, port.HostIP)
			}
		}
	}
}

// TestComposeHasNoHardCodedSecret proves the Neo4j password must come from
// the user's environment: without it the file does not load.
func TestComposeHasNoHardCodedSecret(t *testing.T) {
	_, err := loadCompose(t, nil)
	if err == nil || !strings.Contains(err.Error(), "NEO4J_PASSWORD") {
		t.Fatalf("compose.yaml loaded without NEO4J_PASSWORD (err %v): a credential is hard-coded or defaulted", err)
	}
	p, err := loadCompose(t, []string{"NEO4J_PASSWORD=s3cret-from-env"})
	if err != nil {
		t.Fatal(err)
	}
	if got := p.Services["neo4j"].Environment["NEO4J_AUTH"]; got == nil || *got != "neo4j/s3cret-from-env" {
		t.Fatalf("NEO4J_AUTH = %v, want it built from NEO4J_PASSWORD", got)
	}
}
