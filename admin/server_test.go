package admin

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/ragstream/ragstream/config"
	"github.com/ragstream/ragstream/internal/metrics/metricstest"
)

// start runs f's server on a free port until the test ends.
func start(t *testing.T, f *fixture) (base string, stop func() error) {
	t.Helper()
	if err := f.srv.Listen(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- f.srv.Run(ctx) }()
	var once bool
	var runErr error
	stop = func() error {
		if !once {
			once = true
			cancel()
			runErr = <-done
		}
		return runErr
	}
	t.Cleanup(func() { _ = stop() })
	return "http://" + f.srv.Addr(), stop
}

func client(t *testing.T) *http.Client {
	t.Helper()
	tr := &http.Transport{}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr, Timeout: 30 * time.Second}
}

func TestServerOverTCP(t *testing.T) {
	f := newFixture(t, testConfig(), nil)
	if f.srv.Addr() != "" {
		t.Error("Addr before Listen")
	}
	base, stop := start(t, f)
	if !strings.HasPrefix(base, "http://127.0.0.1:") || strings.HasSuffix(base, ":0") {
		t.Fatalf("Addr() = %q", base)
	}
	c := client(t)

	req, _ := http.NewRequest("GET", base+"/health/live", nil)
	req.Header.Set("X-Correlation-ID", "abc-123")
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || resp.Header.Get("X-Correlation-ID") != "abc-123" {
		t.Errorf("GET /health/live: %d, X-Correlation-ID %q", resp.StatusCode, resp.Header.Get("X-Correlation-ID"))
	}

	fams := metricstest.ScrapeURL(t, c, base+"/metrics")
	if v, _ := fams.Value("ragstream_http_requests_total", map[string]string{"route": "/health/live", "method": "GET", "code": "200"}); v != 1 {
		t.Errorf("live requests counted %v", v)
	}
	if v, _ := fams.Value("ragstream_build_info", map[string]string{"version": "test"}); v != 1 {
		t.Errorf("build info %v", v)
	}
	if len(fams.Names("go_")) == 0 || len(fams.Names("process_")) == 0 {
		t.Error("runtime and process collectors missing")
	}

	if err := stop(); err != nil {
		t.Fatalf("Run after cancel: %v", err)
	}
	if _, err := c.Get(base + "/health/live"); err == nil {
		t.Error("still serving after shutdown")
	}
	var sawCorrelated bool
	for _, l := range f.logs.find(t, "http request") {
		if l["correlation_id"] == "abc-123" && l["route"] == "/health/live" {
			sawCorrelated = true
		}
	}
	if !sawCorrelated {
		t.Error("no access line with correlation_id abc-123")
	}
	if len(f.logs.find(t, "admin server listening")) != 1 || len(f.logs.find(t, "admin server stopped")) != 1 {
		t.Error("start/stop lines missing")
	}
}

func TestShutdownLetsRequestsInFlightFinish(t *testing.T) {
	entered, release := make(chan struct{}), make(chan struct{})
	f := newFixture(t, testConfig(), func(s *Server) {
		s.HandleFunc("GET /v1/slow", func(w http.ResponseWriter, r *http.Request) {
			close(entered)
			<-release
			_, _ = io.WriteString(w, `{"done":true}`)
		})
	})
	base, stop := start(t, f)
	c := client(t)
	type result struct {
		body string
		err  error
	}
	got := make(chan result, 1)
	go func() {
		resp, err := c.Get(base + "/v1/slow")
		if err != nil {
			got <- result{err: err}
			return
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		got <- result{string(b), err}
	}()
	<-entered
	stopped := make(chan error, 1)
	go func() { stopped <- stop() }()
	// The server stops accepting while the slow request is still running.
	waitRefused(t, f.srv.Addr())
	close(release)
	if r := <-got; r.err != nil || r.body != `{"done":true}` {
		t.Errorf("in-flight request: %q, %v", r.body, r.err)
	}
	if err := <-stopped; err != nil {
		t.Errorf("graceful shutdown returned %v", err)
	}
}

func waitRefused(t *testing.T, addr string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		conn, err := net.DialTimeout("tcp", addr, time.Second)
		if err != nil {
			return
		}
		conn.Close()
		time.Sleep(5 * time.Millisecond)
	}
	t.Fatal("the listener stayed open during shutdown")
}

func TestShutdownTimeoutClosesWhatIsLeft(t *testing.T) {
	cfg := testConfig()
	cfg.ShutdownTimeout = 50 * time.Millisecond
	entered, release := make(chan struct{}), make(chan struct{})
	f := newFixture(t, cfg, func(s *Server) {
		s.HandleFunc("GET /v1/stuck", func(w http.ResponseWriter, r *http.Request) {
			close(entered)
			<-release
		})
	})
	base, stop := start(t, f)
	c := client(t)
	errc := make(chan error, 1)
	go func() {
		resp, err := c.Get(base + "/v1/stuck")
		if err == nil {
			resp.Body.Close()
		}
		errc <- err
	}()
	<-entered
	err := stop()
	close(release)
	if err == nil || !strings.Contains(err.Error(), "graceful shutdown within 50ms") {
		t.Errorf("Run returned %v, want the shutdown timeout", err)
	}
	if err := <-errc; err == nil {
		t.Error("the stuck request got an answer although its connection was closed")
	}
}

func TestHeaderLimitsAndTimeouts(t *testing.T) {
	cfg := testConfig()
	cfg.MaxHeaderBytes = 4 << 10
	cfg.ReadHeaderTimeout = 100 * time.Millisecond
	f := newFixture(t, cfg, nil)
	base, _ := start(t, f)
	c := client(t)

	req, _ := http.NewRequest("GET", base+"/health/live", nil)
	req.Header.Set("X-Big", strings.Repeat("a", 64<<10))
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusRequestHeaderFieldsTooLarge {
		t.Errorf("64 KiB header: status %d, want 431", resp.StatusCode)
	}

	// A client that sends half a request line and stalls is cut off by the
	// read-header timeout.
	conn, err := net.Dial("tcp", f.srv.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := io.WriteString(conn, "GET /health/live HTTP/1.1\r\nHost: x\r\n"); err != nil {
		t.Fatal(err)
	}
	_ = conn.SetReadDeadline(time.Now().Add(30 * time.Second))
	line, err := bufio.NewReader(conn).ReadString('\n')
	if err == nil && !strings.Contains(line, "408") {
		t.Errorf("stalled request got %q", line)
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		t.Error("the server kept a stalled connection open for 30s")
	}
}

func TestConfig(t *testing.T) {
	if err := ConfigFrom(config.Default().Admin).Validate(); err != nil {
		t.Errorf("defaults: %v", err)
	}
	got := ConfigFrom(config.Default().Admin)
	if got.Addr != "127.0.0.1:8080" || got.ReadHeaderTimeout != 5*time.Second || got.MaxBodyBytes != 4<<20 || got.MaxHeaderBytes != 1<<20 {
		t.Errorf("ConfigFrom(defaults) = %+v", got)
	}
	for _, tc := range []struct {
		name string
		edit func(*Config)
		want []string
	}{
		{"empty addr", func(c *Config) { c.Addr = "" }, []string{"admin.addr: empty"}},
		{"addr without port", func(c *Config) { c.Addr = "localhost" }, []string{"admin.addr:"}},
		{"timeouts", func(c *Config) { c.ReadTimeout, c.ShutdownTimeout = 0, -time.Second }, []string{"admin.read_timeout", "admin.shutdown_timeout"}},
		{"sizes", func(c *Config) { c.MaxBodyBytes, c.MaxHeaderBytes = 0, -1 }, []string{"admin.max_body_bytes", "admin.max_header_bytes"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := testConfig()
			tc.edit(&c)
			err := c.Validate()
			if err == nil {
				t.Fatal("accepted")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("%v does not name %s", err, w)
				}
			}
			if _, err := New(c, nopLogger(), nil, nil); err == nil {
				t.Error("New accepted it")
			}
		})
	}
	f := newFixture(t, testConfig(), nil)
	if _, err := New(testConfig(), nopLogger(), nil, f.ready); err == nil {
		t.Error("New accepted nil metrics")
	}
	if _, err := New(testConfig(), nopLogger(), f.m, nil); err == nil {
		t.Error("New accepted nil readiness")
	}
}

func TestListenFailsOnABusyPort(t *testing.T) {
	f := newFixture(t, testConfig(), nil)
	if err := f.srv.Listen(); err != nil {
		t.Fatal(err)
	}
	cfg := testConfig()
	cfg.Addr = f.srv.Addr()
	g := newFixture(t, cfg, nil)
	err := g.srv.Run(context.Background())
	if err == nil || !strings.Contains(err.Error(), "listen on "+cfg.Addr) {
		t.Errorf("Run on a busy port: %v", err)
	}
	f.srv.mu.Lock()
	_ = f.srv.ln.Close()
	f.srv.mu.Unlock()
}

// TestPanicAfterWritingAbortsTheConnection: a handler that panics half-way
// through its answer must not leave the client with a truncated body that
// looks complete.
func TestPanicAfterWritingAbortsTheConnection(t *testing.T) {
	f := newFixture(t, testConfig(), func(s *Server) {
		s.HandleFunc("GET /v1/half", func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Length", "100")
			_, _ = io.WriteString(w, `{"partial":`)
			w.(http.Flusher).Flush()
			panic("half-way")
		})
	})
	base, _ := start(t, f)
	resp, err := client(t).Get(base + "/v1/half")
	if err == nil {
		_, err = io.ReadAll(resp.Body)
		resp.Body.Close()
	}
	if err == nil {
		t.Error("the client read a complete answer from a handler that panicked")
	}
	if ls := f.logs.find(t, "http handler panicked"); len(ls) != 1 {
		t.Errorf("panic lines: %v", ls)
	}
	if len(f.logs.find(t, "http request")) != 1 {
		t.Error("no access line")
	}
	resp, err = client(t).Get(base + "/health/live")
	if err != nil {
		t.Fatalf("server down after the panic: %v", err)
	}
	resp.Body.Close()
}
