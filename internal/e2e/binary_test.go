package e2e

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// The ragstream binary, built once per test process (without -race: it is
// the production build under test, and a SIGKILLed process reports
// nothing anyway).
var (
	binaryOnce sync.Once
	binaryDir  string
	binaryPath string
	binaryErr  error
	binaryOut  []byte
)

func ragstreamBinary(t *testing.T) string {
	t.Helper()
	binaryOnce.Do(func() {
		binaryDir, binaryErr = os.MkdirTemp("", "ragstream-e2e-bin-")
		if binaryErr != nil {
			return
		}
		binaryPath = filepath.Join(binaryDir, "ragstream")
		cmd := exec.Command("go", "build", "-o", binaryPath, "github.com/ragstream/ragstream/cmd/ragstream")
		binaryOut, binaryErr = cmd.CombinedOutput()
	})
	if binaryErr != nil {
		t.Fatalf("go build ./cmd/ragstream: %v\n%s", binaryErr, binaryOut)
	}
	return binaryPath
}

func cleanupBinary() {
	if binaryDir != "" {
		_ = os.RemoveAll(binaryDir)
	}
}

// processEnv is the environment of a ragstream process: the test's own
// minus any RAGSTREAM_ configuration (an unknown one is a config error, and
// a stray one would change what is tested), plus settings.
func processEnv(settings map[string]string) []string {
	var env []string
	for _, kv := range os.Environ() {
		if strings.HasPrefix(kv, "RAGSTREAM_") && !strings.HasPrefix(kv, "RAGSTREAM_TEST_") {
			continue
		}
		env = append(env, kv)
	}
	for k, v := range settings {
		env = append(env, k+"="+v)
	}
	return env
}

// process is a running `ragstream run`.
type process struct {
	cmd  *exec.Cmd
	logs *logBuf
	done chan struct{}
	err  error // Wait's result, once done is closed
}

func (p *process) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// wait waits up to d for the process to exit.
func (p *process) wait(d time.Duration) bool {
	select {
	case <-p.done:
		return true
	case <-time.After(d):
		return false
	}
}
