package admin

import (
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/rs/zerolog"

	"github.com/ragstream/ragstream/admin/httpjson"
	"github.com/ragstream/ragstream/internal/logging"
)

func panickingHandler(w http.ResponseWriter, r *http.Request) {
	zerolog.Ctx(r.Context()).Info().Msg("about to panic")
	var m map[string]int
	//lint:ignore SA5000 the nil-map write is the point: a real runtime panic
	m["boom"]++
}

// TestPanicGoesThroughTheWholeChain proves the order recover → correlation
// id → access log → metrics: a handler that panics still gets the
// request's correlation id on its answer and on every log line, an access
// log line and a metric, both saying 500, and the process lives on.
func TestPanicGoesThroughTheWholeChain(t *testing.T) {
	f := newFixture(t, testConfig(), func(s *Server) {
		s.HandleFunc("GET /v1/boom/{id}", panickingHandler)
	})
	rec := f.do("GET", "/v1/boom/7", nil, map[string]string{"X-Correlation-ID": "abc-123"})

	if rec.Code != 500 {
		t.Fatalf("status %d, want 500", rec.Code)
	}
	if got := jsonBody(t, rec)["error"]; got != "internal error" {
		t.Errorf("error body %q", got)
	}
	if got := rec.Header().Get("X-Correlation-ID"); got != "abc-123" {
		t.Errorf("X-Correlation-ID on the 500 = %q", got)
	}

	handlerLines := f.logs.find(t, "about to panic")
	access := f.logs.find(t, "http request")
	panics := f.logs.find(t, "http handler panicked")
	if len(handlerLines) != 1 || len(access) != 1 || len(panics) != 1 {
		t.Fatalf("log lines: handler %d, access %d, panic %d; want one each", len(handlerLines), len(access), len(panics))
	}
	for _, l := range []map[string]any{handlerLines[0], access[0], panics[0]} {
		if l["correlation_id"] != "abc-123" {
			t.Errorf("line %q has correlation_id %v", l["msg"], l["correlation_id"])
		}
	}
	if access[0]["status"] != float64(500) || access[0]["route"] != "/v1/boom/{id}" || access[0]["level"] != "error" {
		t.Errorf("access line: %v", access[0])
	}
	stack, _ := panics[0]["stack"].(string)
	if !strings.Contains(stack, "panickingHandler") {
		t.Errorf("panic stack does not show the panicking function:\n%s", stack)
	}
	if !strings.Contains(fmt.Sprint(panics[0]["panic"]), "nil map") {
		t.Errorf("panic value: %v", panics[0]["panic"])
	}

	fams := f.scrape(t)
	if v, ok := fams.Value("ragstream_http_requests_total", map[string]string{"route": "/v1/boom/{id}", "method": "GET", "code": "500"}); !ok || v != 1 {
		t.Errorf("500 counted %v times (present %v), want 1", v, ok)
	}
	// And the server keeps serving.
	if rec := f.do("GET", "/health/live", nil, nil); rec.Code != 200 {
		t.Errorf("after the panic /health/live = %d", rec.Code)
	}
}

// TestStagesRunInDesignOrder: CORS, authentication, rate limit and
// authorization run in DESIGN.md §6 order whatever order they were added
// in, inside correlation id and body limit; public routes skip the three
// access-control stages.
func TestStagesRunInDesignOrder(t *testing.T) {
	var mu sync.Mutex
	var trace []string
	mark := func(name string) Middleware {
		return func(next http.Handler) http.Handler {
			return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				mu.Lock()
				trace = append(trace, name)
				if logging.CorrelationID(r.Context()) == "" {
					trace = append(trace, name+":no-correlation-id")
				}
				mu.Unlock()
				next.ServeHTTP(w, r)
			})
		}
	}
	f := newFixture(t, testConfig(), func(s *Server) {
		s.Use(StageAuthorization, mark("authz"))
		s.Use(StageRateLimit, mark("ratelimit"))
		s.Use(StageAuthentication, mark("authn1"))
		s.Use(StageAuthentication, mark("authn2"))
		s.Use(StageCORS, mark("cors"))
		s.HandleFunc("POST /v1/thing", func(w http.ResponseWriter, r *http.Request) {
			mu.Lock()
			trace = append(trace, "handler:"+RouteTemplate(r.Context()))
			mu.Unlock()
			w.WriteHeader(http.StatusNoContent)
		})
	})
	for _, tc := range []struct {
		method, target string
		want           []string
	}{
		{"POST", "/v1/thing", []string{"cors", "authn1", "authn2", "ratelimit", "authz", "handler:/v1/thing"}},
		{"GET", "/health/live", []string{"cors"}},
		{"GET", "/health/ready", []string{"cors"}},
		{"GET", "/metrics", []string{"cors"}},
		{"GET", "/nowhere", []string{"cors"}},
	} {
		t.Run(tc.method+tc.target, func(t *testing.T) {
			mu.Lock()
			trace = nil
			mu.Unlock()
			f.do(tc.method, tc.target, nil, nil)
			mu.Lock()
			defer mu.Unlock()
			if !slices.Equal(trace, tc.want) {
				t.Errorf("ran %v, want %v", trace, tc.want)
			}
		})
	}
	defer func() {
		if recover() == nil {
			t.Error("Use after the chain was built did not panic")
		}
	}()
	f.srv.Use(StageCORS, mark("late"))
}

func TestProtectMetricsPutsMetricsBehindAuthentication(t *testing.T) {
	cfg := testConfig()
	cfg.ProtectMetrics = true
	f := newFixture(t, cfg, func(s *Server) {
		s.Use(StageAuthentication, func(next http.Handler) http.Handler {
			return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if r.Header.Get("Authorization") != "Bearer ok" {
					httpjson.Error(w, http.StatusUnauthorized, "authentication required")
					return
				}
				next.ServeHTTP(w, r)
			})
		})
	})
	if rec := f.do("GET", "/metrics", nil, nil); rec.Code != 401 {
		t.Errorf("unauthenticated /metrics = %d, want 401", rec.Code)
	}
	if rec := f.do("GET", "/metrics", nil, map[string]string{"Authorization": "Bearer ok"}); rec.Code != 200 {
		t.Errorf("authenticated /metrics = %d, want 200", rec.Code)
	}
	if rec := f.do("GET", "/health/ready", nil, nil); rec.Code != 200 {
		t.Errorf("probes must stay public: /health/ready = %d", rec.Code)
	}
	fams := f.scrape2(t)
	if v, _ := fams.Value("ragstream_http_requests_total", map[string]string{"route": "/metrics", "code": "401"}); v != 1 {
		t.Errorf("the 401 was counted %v times under route /metrics", v)
	}
}

func TestCorrelationID(t *testing.T) {
	for _, tc := range []struct {
		name    string
		header  []string
		want    string // "" means: a generated id
		rejects bool
	}{
		{"accepted", []string{"abc-123"}, "abc-123", false},
		{"accepted uuid", []string{"0f8fad5b-d9cb-469f-a165-70867728950e"}, "0f8fad5b-d9cb-469f-a165-70867728950e", false},
		{"absent", nil, "", false},
		{"empty", []string{""}, "", true},
		{"space", []string{"abc 123"}, "", true},
		{"too long", []string{strings.Repeat("x", 129)}, "", true},
		{"log injection", []string{"abc\",\"level\":\"fatal"}, "", true},
		{"two headers", []string{"abc-1", "abc-2"}, "", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var seen string
			f := newFixture(t, testConfig(), func(s *Server) {
				s.HandleFunc("GET /v1/echo", func(w http.ResponseWriter, r *http.Request) {
					seen = logging.CorrelationID(r.Context())
					if r.Header.Get(HeaderCorrelationID) != seen {
						t.Errorf("request header %q, context %q", r.Header.Get(HeaderCorrelationID), seen)
					}
					zerolog.Ctx(r.Context()).Info().Msg("inside")
					w.WriteHeader(204)
				})
			})
			req := newRequest("GET", "/v1/echo", tc.header)
			rec := serve(f.h, req)
			got := rec.Header().Get(HeaderCorrelationID)
			switch {
			case tc.want != "" && got != tc.want:
				t.Errorf("response id %q, want %q", got, tc.want)
			case tc.want == "" && (!logging.ValidCorrelationID(got) || slices.Contains(tc.header, got)):
				t.Errorf("response id %q is not a fresh valid id", got)
			}
			if seen != got {
				t.Errorf("handler saw %q, response says %q", seen, got)
			}
			for _, msg := range []string{"inside", "http request"} {
				ls := f.logs.find(t, msg)
				if len(ls) != 1 || ls[0]["correlation_id"] != got {
					t.Errorf("%q lines: %v", msg, ls)
				}
			}
			rej := f.logs.find(t, "invalid X-Correlation-ID replaced by a generated one")
			if tc.rejects != (len(rej) == 1) {
				t.Fatalf("rejection lines: %v", rej)
			}
			if tc.rejects {
				if rej[0]["correlation_id"] != got || len(rej[0]["rejected"].(string)) > 90 {
					t.Errorf("rejection line: %v", rej[0])
				}
			}
		})
	}
}

func TestErrorsAreJSON(t *testing.T) {
	type payload struct {
		Name  string `json:"name"`
		Count int    `json:"count"`
	}
	f := newFixture(t, testConfig(), func(s *Server) {
		s.HandleFunc("POST /v1/items", func(w http.ResponseWriter, r *http.Request) {
			var p payload
			if err := httpjson.Decode(r, &p); err != nil {
				httpjson.Fail(w, err)
				return
			}
			httpjson.Write(w, http.StatusCreated, p)
		})
		s.HandleFunc("GET /v1/fails", func(w http.ResponseWriter, r *http.Request) {
			httpjson.Fail(w, fmt.Errorf("neo4j: password=hunter2 rejected"))
		})
	})
	big := `{"name":"` + strings.Repeat("x", 2000) + `"}`
	for _, tc := range []struct {
		name     string
		method   string
		target   string
		body     string
		header   map[string]string
		chunked  bool
		status   int
		contains string
		allow    string
	}{
		{"unknown route", "GET", "/v2/nothing", "", nil, false, 404, "no route", ""},
		{"unknown route under a known prefix", "GET", "/health/live/x", "", nil, false, 404, "no route", ""},
		{"wrong method", "DELETE", "/health/live", "", nil, false, 405, "method not allowed", "GET, HEAD"},
		{"wrong method on a route of ours", "GET", "/v1/items", "", nil, false, 405, "method not allowed", "POST"},
		{"declared body too large", "POST", "/v1/items", big, nil, false, 413, "larger than the limit of 1024", ""},
		{"streamed body too large", "POST", "/v1/items", big, nil, true, 413, "larger than 1024 bytes", ""},
		{"malformed JSON", "POST", "/v1/items", `{"name":`, nil, false, 400, "malformed JSON", ""},
		{"wrong type names the field", "POST", "/v1/items", `{"count":"three"}`, nil, false, 400, "count: want int", ""},
		{"unknown field", "POST", "/v1/items", `{"colour":"red"}`, nil, false, 400, `unknown field \"colour\"`, ""},
		{"two values", "POST", "/v1/items", `{} {}`, nil, false, 400, "more than one JSON value", ""},
		{"empty body", "POST", "/v1/items", ``, nil, false, 400, "empty request body", ""},
		{"not JSON", "POST", "/v1/items", `name=x`, map[string]string{"Content-Type": "application/x-www-form-urlencoded"}, false, 415, "not application/json", ""},
		{"internal errors say nothing", "GET", "/v1/fails", "", nil, false, 500, "internal error", ""},
		{"ok", "POST", "/v1/items", `{"name":"a","count":2}`, map[string]string{"Content-Type": "application/json; charset=utf-8"}, false, 201, `"count":2`, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req := newRequest(tc.method, tc.target, nil)
			req.Body = readCloser(tc.body)
			req.ContentLength = int64(len(tc.body))
			if tc.chunked {
				req.ContentLength = -1
			}
			for k, v := range tc.header {
				req.Header.Set(k, v)
			}
			rec := serve(f.h, req)
			if rec.Code != tc.status {
				t.Fatalf("status %d, want %d: %s", rec.Code, tc.status, rec.Body)
			}
			body := jsonBody(t, rec)
			if !strings.Contains(rec.Body.String(), tc.contains) {
				t.Errorf("body %s does not contain %q", rec.Body, tc.contains)
			}
			if tc.status >= 400 {
				if _, ok := body["error"].(string); !ok || len(body) != 1 {
					t.Errorf("error body is not {\"error\": ...}: %s", rec.Body)
				}
			}
			if tc.allow != "" && rec.Header().Get("Allow") != tc.allow {
				t.Errorf("Allow %q, want %q", rec.Header().Get("Allow"), tc.allow)
			}
			if strings.Contains(rec.Body.String(), "hunter2") {
				t.Error("an internal error's message reached the client")
			}
		})
	}
}

func TestMetricsLabelRoutesByTemplate(t *testing.T) {
	f := newFixture(t, testConfig(), func(s *Server) {
		s.HandleFunc("DELETE /v1/tenants/{tenant}/subjects/{id}", func(w http.ResponseWriter, r *http.Request) {
			w.WriteHeader(http.StatusAccepted)
		})
	})
	for i := 0; i < 30; i++ {
		f.do("DELETE", fmt.Sprintf("/v1/tenants/t%d/subjects/s%d", i, i), nil, nil)
		f.do("GET", fmt.Sprintf("/random/%d", i), nil, nil)
		f.do("PURGE", fmt.Sprintf("/v1/tenants/t%d/subjects/s%d", i, i), nil, nil)
	}
	fams := f.scrape(t)
	routes := map[string]bool{}
	for _, ls := range fams.LabelSets("ragstream_http_requests_total") {
		routes[ls["route"]+" "+ls["method"]+" "+ls["code"]] = true
	}
	want := map[string]bool{
		"/v1/tenants/{tenant}/subjects/{id} DELETE 202": true,
		"unmatched GET 404":                             true,
		"unmatched OTHER 405":                           true,
	}
	if fmt.Sprint(routes) != fmt.Sprint(want) {
		t.Errorf("series %v, want %v", routes, want)
	}
	if v, _ := fams.Value("ragstream_http_requests_total", map[string]string{"route": "/v1/tenants/{tenant}/subjects/{id}"}); v != 30 {
		t.Errorf("templated route counted %v, want 30", v)
	}
	if v, _ := fams.Value("ragstream_http_request_duration_seconds", map[string]string{"route": "unmatched", "method": "GET"}); v != 30 {
		t.Errorf("unmatched GET durations observed %v, want 30", v)
	}
	var access []map[string]any
	for _, l := range f.logs.find(t, "http request") {
		if l["route"] != "/metrics" {
			access = append(access, l)
		}
	}
	if len(access) != 90 || access[0]["route"] != "/v1/tenants/{tenant}/subjects/{id}" || access[0]["path"] != "/v1/tenants/t0/subjects/s0" {
		t.Errorf("%d access lines; first %v", len(access), access[0])
	}
}

func TestQuietRoutesLogAtDebug(t *testing.T) {
	f := newFixture(t, testConfig(), func(s *Server) {
		s.HandleFunc("GET /v1/loud", func(w http.ResponseWriter, r *http.Request) {})
	})
	f.do("GET", "/health/live", nil, nil)
	f.do("GET", "/v1/loud", nil, nil)
	access := f.logs.find(t, "http request")
	if len(access) != 2 || access[0]["level"] != "debug" || access[1]["level"] != "info" {
		t.Errorf("access lines: %v", access)
	}
	if access[1]["status"] != float64(200) || access[1]["bytes"] != float64(0) {
		t.Errorf("a handler that writes nothing answers 200: %v", access[1])
	}
}
