// Package neo4jtest gives tests a real Neo4j 5.26 Community: the shared
// instance that scripts/services.sh starts (Connect), or a private one that a
// test may stop, kill, restart and freeze (StartPrivate), for outage and
// timeout tests that must not disturb other packages.
//
// Both run the launcher kept in scripts/services/neo4j/Launcher.java on the
// jars scripts/services.sh resolves; the private one finds them through the
// variables in .services/env (LibsVar, LauncherVar, JavaVar). When those are
// unset the test is skipped, or fails under CI=true.
package neo4jtest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/neo4j/neo4j-go-driver/v5/neo4j"

	"github.com/ragstream/ragstream/internal/testenv"
)

// Variables written to .services/env by scripts/services.sh up, naming what a
// private instance is launched with.
const (
	// LibsVar is the directory of the Neo4j 5.26 jars.
	LibsVar = "RAGSTREAM_TEST_NEO4J_LIBS"
	// LauncherVar is the absolute path of scripts/services/neo4j/Launcher.java.
	LauncherVar = "RAGSTREAM_TEST_NEO4J_LAUNCHER"
	// JavaVar is a Java 17 (or 21) binary; Neo4j 5.26 runs on nothing newer.
	JavaVar = "RAGSTREAM_TEST_JAVA"
)

const (
	// startTimeout bounds one start, which takes ~10 s on an idle machine and
	// several times that on two busy cores under -race.
	startTimeout = 3 * time.Minute
	// stopTimeout bounds a graceful stop before the process group is killed.
	stopTimeout = time.Minute
	// minPassword is Neo4j 5's default minimum password length.
	minPassword = 8
)

// Connect returns a driver for the shared test Neo4j (RAGSTREAM_TEST_NEO4J_URI,
// authentication disabled) after checking that it answers. The driver is
// closed when the test ends. Tests sharing the instance should keep to labels
// of their own.
func Connect(t testing.TB) neo4j.DriverWithContext {
	t.Helper()
	return connect(t, testenv.Neo4jURI(t), neo4j.NoAuth())
}

func connect(t testing.TB, uri string, auth neo4j.AuthToken) neo4j.DriverWithContext {
	t.Helper()
	drv, err := neo4j.NewDriverWithContext(uri, auth)
	if err != nil {
		t.Fatalf("neo4j driver for %s: %v", uri, err)
	}
	t.Cleanup(func() { _ = drv.Close(context.Background()) })
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := drv.VerifyConnectivity(ctx); err != nil {
		t.Fatalf("neo4j at %s does not answer: %v", uri, err)
	}
	return drv
}

// Options configure a private Neo4j.
type Options struct {
	// Auth turns authentication on; user neo4j then has Password.
	Auth bool
	// Password of user neo4j, at least 8 characters; only with Auth.
	Password string
}

func (o Options) validate() error {
	if o.Auth && len(o.Password) < minPassword {
		return fmt.Errorf("Options.Password: with Auth, want at least %d characters, got %d", minPassword, len(o.Password))
	}
	if !o.Auth && o.Password != "" {
		return errors.New("Options.Password is set but Options.Auth is false")
	}
	return nil
}

// Server is a private Neo4j in its own process group, on a free port of
// 127.0.0.1 and a home directory of its own that survives Stop, Kill and Start.
// Its methods report problems with t.Fatalf, so call them from the test's
// goroutine. The process group is killed when the test ends, frozen or not.
type Server struct {
	t        testing.TB
	opts     Options
	java     string
	libs     string
	launcher string
	home     string
	logPath  string
	port     int

	mu     sync.Mutex
	cmd    *exec.Cmd
	exited chan struct{} // closed when cmd has been waited for
	frozen bool
}

// StartPrivate launches a private Neo4j and returns once it answers queries.
func StartPrivate(t testing.TB, opts Options) *Server {
	t.Helper()
	if err := opts.validate(); err != nil {
		t.Fatalf("neo4jtest: %v", err)
	}
	s := &Server{t: t, opts: opts}
	for _, v := range []struct {
		dst  *string
		name string
	}{{&s.libs, LibsVar}, {&s.launcher, LauncherVar}, {&s.java, JavaVar}} {
		*v.dst = testenv.Addr(t, v.name)
		if *v.dst == "" {
			return nil // skipped outside CI
		}
		if _, err := os.Stat(*v.dst); err != nil {
			t.Fatalf("neo4jtest: %s: %v (re-run `make up` to refresh .services/env)", v.name, err)
		}
	}
	dir := t.TempDir()
	s.home = filepath.Join(dir, "home")
	s.logPath = filepath.Join(dir, "neo4j.log")
	s.port = freePort(t)
	// Registered after TempDir, so it runs first: the directory is removed
	// only once the process is gone.
	t.Cleanup(s.cleanup)
	s.Start()
	return s
}

// URI returns the Bolt URI of the server, stable across restarts.
func (s *Server) URI() string { return "bolt://127.0.0.1:" + strconv.Itoa(s.port) }

// AuthToken returns the token the server accepts: basic auth for user neo4j
// with Options.Password, or none when Options.Auth is false.
func (s *Server) AuthToken() neo4j.AuthToken {
	if s.opts.Auth {
		return neo4j.BasicAuth("neo4j", s.opts.Password, "")
	}
	return neo4j.NoAuth()
}

// Connect returns a driver for this server with its AuthToken, checked to
// answer and closed when the test ends.
func (s *Server) Connect(t testing.TB) neo4j.DriverWithContext {
	t.Helper()
	return connect(t, s.URI(), s.AuthToken())
}

// Start launches the server, again on the same home and port after Stop or
// Kill, so committed data is still there, and waits until it answers.
func (s *Server) Start() {
	s.t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd != nil {
		s.t.Fatalf("neo4jtest: Start: the server on %s is already running", s.URI())
	}
	logf, err := os.OpenFile(s.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		s.t.Fatalf("neo4jtest: %v", err)
	}
	defer logf.Close()
	from, err := logf.Seek(0, 2)
	if err != nil {
		s.t.Fatalf("neo4jtest: %v", err)
	}
	auth := "off"
	if s.opts.Auth {
		auth = "on"
	}
	args := []string{
		"-Xms512m", "-Xmx512m", "-XX:TieredStopAtLevel=1", "-Djava.awt.headless=true",
		"--add-opens=java.base/java.nio=ALL-UNNAMED", "--add-opens=java.base/java.io=ALL-UNNAMED",
		"--add-opens=java.base/sun.nio.ch=ALL-UNNAMED", "-Dio.netty.tryReflectionSetAccessible=true",
		"-cp", filepath.Join(s.libs, "*"), s.launcher, s.home, strconv.Itoa(s.port), auth,
	}
	if s.opts.Auth {
		args = append(args, s.opts.Password)
	}
	cmd := exec.Command(s.java, args...)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = procAttr()
	// Pdeathsig follows the thread that started the child, so keep that
	// thread for the goroutine: a locked thread outlives the server only
	// because this goroutine, which the runtime never retires, holds it.
	if err := cmd.Start(); err != nil {
		s.t.Fatalf("neo4jtest: start %s: %v", s.java, err)
	}
	exited := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		close(exited)
	}()
	s.cmd, s.exited, s.frozen = cmd, exited, false

	began := time.Now()
	deadline := began.Add(startTimeout)
	for {
		if s.readySince(from) {
			s.t.Logf("neo4jtest: neo4j on %s ready in %s", s.URI(), time.Since(began).Round(time.Millisecond))
			return
		}
		select {
		case <-exited:
			s.cmd = nil
			s.t.Fatalf("neo4jtest: neo4j on %s exited before it was ready (%s)\n%s", s.URI(), cmd.ProcessState, s.logTail())
		case <-time.After(100 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			s.killLocked()
			s.t.Fatalf("neo4jtest: neo4j on %s not ready after %s\n%s", s.URI(), startTimeout, s.logTail())
		}
	}
}

// Stop shuts the server down gracefully (SIGTERM; a frozen server is thawed
// first) and waits until it has exited.
func (s *Server) Stop() {
	s.t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd == nil {
		s.t.Fatalf("neo4jtest: Stop: the server on %s is not running", s.URI())
	}
	s.signal(syscall.SIGTERM)
	if s.frozen {
		s.signal(syscall.SIGCONT)
	}
	select {
	case <-s.exited:
		s.cmd = nil
	case <-time.After(stopTimeout):
		s.killLocked()
		s.t.Fatalf("neo4jtest: neo4j on %s did not stop within %s; killed it\n%s", s.URI(), stopTimeout, s.logTail())
	}
}

// Kill ends the server's process group with SIGKILL, as a crash would, and
// waits until it has exited.
func (s *Server) Kill() {
	s.t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd == nil {
		s.t.Fatalf("neo4jtest: Kill: the server on %s is not running", s.URI())
	}
	s.killLocked()
}

// Freeze stops the server's process group with SIGSTOP: connections stay open
// and nothing answers, as with a hung server or a network partition.
func (s *Server) Freeze() {
	s.t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd == nil {
		s.t.Fatalf("neo4jtest: Freeze: the server on %s is not running", s.URI())
	}
	s.signal(syscall.SIGSTOP)
	s.frozen = true
}

// Thaw resumes a frozen server with SIGCONT.
func (s *Server) Thaw() {
	s.t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd == nil {
		s.t.Fatalf("neo4jtest: Thaw: the server on %s is not running", s.URI())
	}
	s.signal(syscall.SIGCONT)
	s.frozen = false
}

// signal sends sig to the process group; the caller holds mu.
func (s *Server) signal(sig syscall.Signal) {
	if err := syscall.Kill(-s.cmd.Process.Pid, sig); err != nil && !errors.Is(err, syscall.ESRCH) {
		s.t.Fatalf("neo4jtest: signal %v to process group %d: %v", sig, s.cmd.Process.Pid, err)
	}
}

// killLocked SIGKILLs the process group (frozen or not) and waits for it.
func (s *Server) killLocked() {
	if s.cmd == nil {
		return
	}
	_ = syscall.Kill(-s.cmd.Process.Pid, syscall.SIGKILL)
	select {
	case <-s.exited:
	case <-time.After(stopTimeout):
		s.t.Errorf("neo4jtest: process group %d still there %s after SIGKILL", s.cmd.Process.Pid, stopTimeout)
	}
	s.cmd, s.frozen = nil, false
}

func (s *Server) cleanup() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.killLocked()
	if s.t.Failed() {
		s.t.Logf("neo4jtest: private neo4j on %s\n%s", s.URI(), s.logTail())
	}
}

// readySince reports whether the launcher printed READY after offset from of
// the log, that is, in the current run.
func (s *Server) readySince(from int64) bool {
	b, err := os.ReadFile(s.logPath)
	if err != nil || int64(len(b)) <= from {
		return false
	}
	return bytes.Contains(b[from:], []byte("READY bolt://"))
}

// logTail returns the last lines of the launcher's output and of Neo4j's own
// debug.log, for failure messages.
func (s *Server) logTail() string {
	var sb strings.Builder
	for _, p := range []string{s.logPath, filepath.Join(s.home, "logs", "debug.log")} {
		b, err := os.ReadFile(p)
		if err != nil {
			continue
		}
		lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
		if len(lines) > 30 {
			lines = lines[len(lines)-30:]
		}
		fmt.Fprintf(&sb, "----- last %d lines of %s -----\n%s\n", len(lines), p, strings.Join(lines, "\n"))
	}
	return sb.String()
}

// freePort asks the kernel for a port that is free now. Another process may
// take it before Neo4j binds it; on this test machine that is rare enough.
func freePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("neo4jtest: find a free port: %v", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}
