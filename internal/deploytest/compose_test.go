package deploytest

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/compose-spec/compose-go/v2/cli"
	"github.com/compose-spec/compose-go/v2/types"

	"github.com/ragstream/ragstream/config"
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

// TestComposeRagstreamServiceConfigLoads feeds the ragstream service's
// RAGSTREAM_* variables, as compose resolves them, through the config
// package: a typo or a bad value there would stop the container at start.
func TestComposeRagstreamServiceConfigLoads(t *testing.T) {
	p, err := loadCompose(t, []string{"NEO4J_PASSWORD=s3cret-from-env", "QDRANT_API_KEY=k3y-from-env"})
	if err != nil {
		t.Fatal(err)
	}
	svc, ok := p.Services["ragstream"]
	if !ok {
		t.Fatal("compose.yaml has no ragstream service")
	}
	var environ []string
	for k, v := range svc.Environment {
		if v == nil {
			t.Errorf("%s has no value", k)
			continue
		}
		environ = append(environ, k+"="+*v)
	}
	cfg, _, err := config.Load(config.LoadOptions{Environ: environ})
	if err != nil {
		t.Fatalf("the ragstream service's environment does not load:\n%v", err)
	}
	if cfg.Neo4j.Password.Reveal() != "s3cret-from-env" || cfg.Qdrant.APIKey.Reveal() != "k3y-from-env" {
		t.Error("secrets from the compose environment did not reach the config")
	}
	if cfg.Kafka.Brokers[0] != "redpanda:9093" || cfg.Qdrant.Addr != "qdrant:6334" || cfg.Neo4j.URI != "bolt://neo4j:7687" {
		t.Errorf("addresses %v %s %s do not point at the compose services", cfg.Kafka.Brokers, cfg.Qdrant.Addr, cfg.Neo4j.URI)
	}

	// One core per replica, and a Go scheduler sized to it: Go derives at
	// least 2 from a CPU limit, so GOMAXPROCS is set as well.
	if svc.CPUS != 1 {
		t.Errorf("ragstream cpus: %v, want 1", svc.CPUS)
	}
	if v := svc.Environment["GOMAXPROCS"]; v == nil {
		t.Error("ragstream GOMAXPROCS: not set, want 1")
	} else if *v != "1" {
		t.Errorf("ragstream GOMAXPROCS: %q, want 1", *v)
	}

	// The healthcheck probes readiness on the admin port with the binary
	// itself (the image has no curl).
	hc := svc.HealthCheck
	if hc == nil || len(hc.Test) < 3 {
		t.Fatalf("ragstream healthcheck %v", hc)
	}
	if hc.Test[0] != "CMD" || !strings.HasSuffix(hc.Test[1], "/ragstream") || hc.Test[2] != "probe" {
		t.Fatalf("healthcheck %q does not run `ragstream probe`", hc.Test)
	}
	_, port, _ := strings.Cut(cfg.Admin.Addr, ":")
	if want := "http://127.0.0.1:" + port + "/health/ready"; hc.Test[len(hc.Test)-1] != want {
		t.Fatalf("healthcheck probes %q, want %q (the admin port's readiness)", hc.Test[len(hc.Test)-1], want)
	}
	// The binary the healthcheck names is where the Dockerfile puts it.
	df, err := os.ReadFile(filepath.Join(repoRoot, "Dockerfile"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(df), hc.Test[1]) {
		t.Fatalf("the Dockerfile does not install %s", hc.Test[1])
	}
}
