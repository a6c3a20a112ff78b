//go:build unix

package e2e

import (
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ragstream/ragstream/internal/sample"
)

// startProcess starts `ragstream run` in a process group of its own, killed
// when the test ends if it still runs.
func startProcess(t *testing.T, bin string, settings map[string]string) *process {
	t.Helper()
	p := &process{logs: &logBuf{}, done: make(chan struct{})}
	p.cmd = exec.Command(bin, "run")
	p.cmd.Env = processEnv(settings)
	p.cmd.Stdout, p.cmd.Stderr = p.logs, p.logs
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("start %s run: %v", bin, err)
	}
	go func() {
		p.err = p.cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() {
		if !p.exited() {
			_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
			p.wait(time.Minute)
		}
		if t.Failed() {
			t.Logf("log of ragstream pid %d:\n%s", p.cmd.Process.Pid, tail(p.logs.String(), 40))
		}
	})
	return p
}

// TestCrashSafetySIGKILL runs the production binary, `ragstream run`
// configured through RAGSTREAM_* variables, and kills it with SIGKILL at
// random points of the stream several times, restarting it each time; the
// last run ends with SIGTERM and exit code 0. The final state must be the
// expected state in every field — what a clean run stores.
func TestCrashSafetySIGKILL(t *testing.T) {
	bin := ragstreamBinary(t)
	e := newEnv(t, envOptions{partitions: 4})
	recs := sample.Generate(1200, crashStream(e))
	produced := e.produce(e.toKafka(recs))
	w := foldWant(t, produced)
	st := w.crossCheck(t, recs)
	collection := e.collectionName("kill")
	group := e.name("kill")
	settings := map[string]string{
		"RAGSTREAM_KAFKA__BROKERS":                strings.Join(e.brokers, ","),
		"RAGSTREAM_KAFKA__TOPICS":                 e.topic,
		"RAGSTREAM_KAFKA__GROUP":                  group,
		"RAGSTREAM_KAFKA__SESSION_TIMEOUT":        "6s", // the broker's minimum: a killed member leaves soon
		"RAGSTREAM_KAFKA__REBALANCE_TIMEOUT":      "30s",
		"RAGSTREAM_QDRANT__ADDR":                  e.qt.Addr(),
		"RAGSTREAM_QDRANT__API_KEY":               e.qt.APIKey,
		"RAGSTREAM_QDRANT__COLLECTION":            collection,
		"RAGSTREAM_QDRANT__VECTOR_SIZE":           "384",
		"RAGSTREAM_QDRANT__TIMEOUT":               "2m",
		"RAGSTREAM_NEO4J__URI":                    e.drvURI(),
		"RAGSTREAM_NEO4J__TIMEOUT":                "2m",
		"RAGSTREAM_ADMIN__ADDR":                   "127.0.0.1:0",
		"RAGSTREAM_PIPELINE__BATCH__MAX_RECORDS":  "100",
		"RAGSTREAM_PIPELINE__RETRY__MAX_ELAPSED":  "2m",
		"RAGSTREAM_PIPELINE__RETRY__MAX_ATTEMPTS": "10",
		"RAGSTREAM_PIPELINE__TOMBSTONE_RETENTION": "168h",
		"RAGSTREAM_LOG__LEVEL":                    "info",
	}
	plan := newKillPlan(t)
	ends := e.endOffsets()
	midStream := 0
	for i := 0; i < 6 && midStream < 4; i++ {
		p := startProcess(t, bin, settings)
		before, total := plan.waitForKill(e, group, ends, func() bool { return !p.exited() })
		if err := syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL); err != nil {
			t.Fatalf("SIGKILL: %v", err)
		}
		if !p.wait(time.Minute) {
			t.Fatalf("ragstream survived SIGKILL")
		}
		t.Logf("SIGKILL %d: %d of %d records committed", i+1, before, total)
		if before < total {
			midStream++
		} else {
			break
		}
	}
	if midStream < 3 {
		t.Errorf("only %d kills landed mid-stream; the test needs several", midStream)
	}
	p := startProcess(t, bin, settings)
	ok := false
	deadline := time.Now().Add(commitWait)
	for !ok && time.Now().Before(deadline) && !p.exited() {
		done, total, err := e.progress(group, ends)
		ok = err == nil && done == total
		time.Sleep(pollEvery)
	}
	if !ok {
		t.Fatalf("the restarted ragstream did not commit the stream (exited: %v)", p.exited())
	}
	if err := syscall.Kill(p.cmd.Process.Pid, syscall.SIGTERM); err != nil {
		t.Fatalf("SIGTERM: %v", err)
	}
	if !p.wait(2 * time.Minute) {
		t.Fatalf("ragstream did not stop within 2m of SIGTERM")
	}
	if p.err != nil {
		t.Errorf("ragstream run after SIGTERM: %v, want exit code 0", p.err)
	}
	e.checkCounts(collection, st)
	e.mustMatch(collection, w)
}
