package admin

import (
	"bufio"
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"go.uber.org/goleak"

	"github.com/ragstream/ragstream/internal/buildinfo"
	"github.com/ragstream/ragstream/internal/logging"
	"github.com/ragstream/ragstream/internal/metrics"
	"github.com/ragstream/ragstream/internal/metrics/metricstest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// logBuffer collects log lines written from any goroutine.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

// lines parses every line written so far, failing t on a line that is not
// a JSON object.
func (b *logBuffer) lines(t *testing.T) []map[string]any {
	t.Helper()
	b.mu.Lock()
	raw := append([]byte(nil), b.buf.Bytes()...)
	b.mu.Unlock()
	var out []map[string]any
	sc := bufio.NewScanner(bytes.NewReader(raw))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		var m map[string]any
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			t.Fatalf("log line is not a JSON object: %v\n%s", err, sc.Text())
		}
		out = append(out, m)
	}
	return out
}

// find returns the lines whose msg is msg.
func (b *logBuffer) find(t *testing.T, msg string) []map[string]any {
	t.Helper()
	var out []map[string]any
	for _, l := range b.lines(t) {
		if l["msg"] == msg {
			out = append(out, l)
		}
	}
	return out
}

type fixture struct {
	srv   *Server
	h     http.Handler
	m     *metrics.Metrics
	ready *Readiness
	logs  *logBuffer
}

func testConfig() Config {
	return Config{
		Addr:              "127.0.0.1:0",
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       10 * time.Second,
		WriteTimeout:      10 * time.Second,
		IdleTimeout:       30 * time.Second,
		ShutdownTimeout:   5 * time.Second,
		MaxHeaderBytes:    16 << 10,
		MaxBodyBytes:      1024,
	}
}

// newFixture builds a server logging at debug into a buffer; setup may
// register routes and middlewares before the chain is fixed.
func newFixture(t *testing.T, cfg Config, setup func(*Server)) *fixture {
	t.Helper()
	logs := &logBuffer{}
	log, err := logging.New(logs, "debug", "test")
	if err != nil {
		t.Fatal(err)
	}
	m := metrics.New(buildinfo.Info{Version: "test", Commit: "c", GoVersion: "go"})
	ready := NewReadiness(log, m)
	s, err := New(cfg, log, m, ready)
	if err != nil {
		t.Fatal(err)
	}
	if setup != nil {
		setup(s)
	}
	t.Cleanup(func() { logs.lines(t) }) // every line JSON, whatever the test
	return &fixture{srv: s, h: s.Handler(), m: m, ready: ready, logs: logs}
}

// do serves one request through the whole chain.
func (f *fixture) do(method, target string, body io.Reader, header map[string]string) *httptest.ResponseRecorder {
	req := httptest.NewRequest(method, target, body)
	for k, v := range header {
		req.Header.Set(k, v)
	}
	rec := httptest.NewRecorder()
	f.h.ServeHTTP(rec, req)
	return rec
}

func (f *fixture) scrape(t *testing.T) metricstest.Families {
	t.Helper()
	rec := f.do("GET", "/metrics", nil, nil)
	if rec.Code != 200 {
		t.Fatalf("GET /metrics: %d %s", rec.Code, rec.Body)
	}
	return metricstest.Parse(t, rec.Body.String())
}

// jsonBody decodes a JSON object answer, failing t when it is not one.
func jsonBody(t *testing.T, rec *httptest.ResponseRecorder) map[string]any {
	t.Helper()
	if ct := rec.Header().Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		t.Errorf("Content-Type %q, want application/json", ct)
	}
	var m map[string]any
	if err := json.Unmarshal(rec.Body.Bytes(), &m); err != nil {
		t.Fatalf("body is not a JSON object: %v: %s", err, rec.Body)
	}
	return m
}

func newRequest(method, target string, correlationIDs []string) *http.Request {
	req := httptest.NewRequest(method, target, nil)
	for _, id := range correlationIDs {
		req.Header.Add(HeaderCorrelationID, id)
	}
	return req
}

func serve(h http.Handler, req *http.Request) *httptest.ResponseRecorder {
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec
}

func readCloser(s string) io.ReadCloser { return io.NopCloser(strings.NewReader(s)) }

// scrape2 scrapes with the credentials TestProtectMetrics… demands.
func (f *fixture) scrape2(t *testing.T) metricstest.Families {
	t.Helper()
	return metricstest.Scrape(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		r.Header.Set("Authorization", "Bearer ok")
		f.h.ServeHTTP(w, r)
	}))
}

func decodeJSON(b []byte, v any) error { return json.Unmarshal(b, v) }

func nopLogger() zerolog.Logger { return zerolog.Nop() }
