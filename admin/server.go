// Package admin is ragstream's HTTP port: probes, metrics and, added by
// later parts through Handle, the query and admin API. It owns the
// middleware chain of DESIGN.md §6 — recover → correlation id → access log
// → metrics → CORS → body-size limit → authentication → rate limit →
// authorization → handler — where CORS and the three access-control stages
// are slots (Use) that other packages fill, and routes registered Public
// (probes, and /metrics unless configured otherwise) bypass the
// access-control stages, since the kubelet and Prometheus call them without
// credentials.
//
// Every answer is JSON, errors included ({"error": "..."}); see httpjson.
package admin

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/rs/zerolog"

	"github.com/ragstream/ragstream/admin/httpjson"
	"github.com/ragstream/ragstream/config"
	"github.com/ragstream/ragstream/internal/logging"
	"github.com/ragstream/ragstream/internal/metrics"
)

// Config is what the server needs of the admin.* configuration.
type Config struct {
	// Addr is host:port; port 0 picks a free one (tests), see Server.Addr.
	Addr              string
	ReadHeaderTimeout time.Duration
	ReadTimeout       time.Duration
	WriteTimeout      time.Duration
	IdleTimeout       time.Duration
	// ShutdownTimeout bounds the graceful shutdown; connections still open
	// after it are closed.
	ShutdownTimeout time.Duration
	MaxHeaderBytes  int
	// MaxBodyBytes bounds every request body: larger bodies get 413.
	MaxBodyBytes int64
	// ProtectMetrics puts GET /metrics behind the access-control stages
	// instead of leaving it public like the probes.
	ProtectMetrics bool
}

// ConfigFrom takes the admin.* keys of the configuration.
func ConfigFrom(c config.Admin) Config {
	return Config{
		Addr:              c.Addr,
		ReadHeaderTimeout: c.ReadHeaderTimeout.Duration(),
		ReadTimeout:       c.ReadTimeout.Duration(),
		WriteTimeout:      c.WriteTimeout.Duration(),
		IdleTimeout:       c.IdleTimeout.Duration(),
		ShutdownTimeout:   c.ShutdownTimeout.Duration(),
		MaxHeaderBytes:    c.MaxHeaderBytes.Int(),
		MaxBodyBytes:      c.MaxBodyBytes.Bytes(),
	}
}

// Validate reports every problem of c, naming the admin.* key.
func (c Config) Validate() error {
	var errs []error
	if c.Addr == "" {
		errs = append(errs, errors.New("admin.addr: empty"))
	} else if _, _, err := net.SplitHostPort(c.Addr); err != nil {
		errs = append(errs, fmt.Errorf("admin.addr: %q is not host:port: %v", c.Addr, err))
	}
	for _, d := range []struct {
		key string
		v   time.Duration
	}{
		{"admin.read_header_timeout", c.ReadHeaderTimeout},
		{"admin.read_timeout", c.ReadTimeout},
		{"admin.write_timeout", c.WriteTimeout},
		{"admin.idle_timeout", c.IdleTimeout},
		{"admin.shutdown_timeout", c.ShutdownTimeout},
	} {
		if d.v <= 0 {
			errs = append(errs, fmt.Errorf("%s: %v must be positive", d.key, d.v))
		}
	}
	if c.MaxHeaderBytes <= 0 {
		errs = append(errs, fmt.Errorf("admin.max_header_bytes: %d must be positive", c.MaxHeaderBytes))
	}
	if c.MaxBodyBytes <= 0 {
		errs = append(errs, fmt.Errorf("admin.max_body_bytes: %d must be positive", c.MaxBodyBytes))
	}
	return errors.Join(errs...)
}

// Middleware wraps a handler.
type Middleware func(http.Handler) http.Handler

// Stage is a slot of the middleware chain that other packages fill.
type Stage int

// The slots, in chain order. StageCORS wraps every request (preflights
// included, matched or not); the three access-control stages wrap only the
// routes not registered Public, in this order, inside the body-size limit.
const (
	StageCORS Stage = iota
	StageAuthentication
	StageRateLimit
	StageAuthorization
	numStages
)

func (s Stage) String() string {
	switch s {
	case StageCORS:
		return "cors"
	case StageAuthentication:
		return "authentication"
	case StageRateLimit:
		return "rate limit"
	case StageAuthorization:
		return "authorization"
	}
	return fmt.Sprintf("Stage(%d)", int(s))
}

// RouteOption configures one route.
type RouteOption func(*route)

// Public exempts the route from authentication, rate limit and
// authorization (probes, /metrics).
func Public() RouteOption { return func(r *route) { r.public = true } }

// Quiet logs the route's successful requests at debug instead of info:
// probes and scrapes arrive every few seconds and would drown the log.
func Quiet() RouteOption { return func(r *route) { r.quiet = true } }

type route struct {
	pattern string
	h       http.Handler
	public  bool
	quiet   bool

	once    sync.Once
	wrapped http.Handler
}

// Server is the admin HTTP server.
type Server struct {
	cfg     Config
	log     zerolog.Logger
	metrics *metrics.Metrics
	ready   *Readiness
	mux     *http.ServeMux

	mu     sync.Mutex
	stages [numStages][]Middleware
	frozen bool
	chain  http.Handler

	srv *http.Server
	ln  net.Listener
}

// New returns a server with GET /health/live, GET /health/ready and
// GET /metrics registered. It fails on an invalid cfg or a nil m or ready.
func New(cfg Config, log zerolog.Logger, m *metrics.Metrics, ready *Readiness) (*Server, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if m == nil {
		return nil, errors.New("admin: nil metrics")
	}
	if ready == nil {
		return nil, errors.New("admin: nil readiness")
	}
	s := &Server{cfg: cfg, log: log, metrics: m, ready: ready, mux: http.NewServeMux()}
	s.Handle("GET /health/live", http.HandlerFunc(live), Public(), Quiet())
	s.Handle("GET /health/ready", ready, Public(), Quiet())
	metricsOpts := []RouteOption{Quiet()}
	if !cfg.ProtectMetrics {
		metricsOpts = append(metricsOpts, Public())
	}
	s.Handle("GET /metrics", m.Handler(), metricsOpts...)
	return s, nil
}

func live(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Cache-Control", "no-store")
	httpjson.Write(w, http.StatusOK, map[string]string{"status": "alive"})
}

// Use puts mw into stage; several middlewares of one stage run in the order
// they were added. It panics once the server serves: the chain is fixed
// then.
func (s *Server) Use(stage Stage, mw Middleware) {
	if stage < 0 || stage >= numStages {
		panic(fmt.Sprintf("admin: Use with unknown stage %d", int(stage)))
	}
	if mw == nil {
		panic(fmt.Sprintf("admin: Use(%v) with a nil middleware", stage))
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.frozen {
		panic(fmt.Sprintf("admin: Use(%v) after the server started serving", stage))
	}
	s.stages[stage] = append(s.stages[stage], mw)
}

// Handle registers h for pattern, a Go 1.22 ServeMux pattern with a method
// ("POST /v1/query", "DELETE /v1/tenants/{tenant}/subjects/{id}"). The
// pattern without its method is the route label of the HTTP metrics and the
// access log, so label values stay bounded whatever paths clients send. It
// panics on a pattern ServeMux rejects or that conflicts with another.
func (s *Server) Handle(pattern string, h http.Handler, opts ...RouteOption) {
	rt := &route{pattern: pattern, h: h}
	for _, o := range opts {
		o(rt)
	}
	s.mux.Handle(pattern, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if st := stateOf(r.Context()); st != nil {
			p := r.Pattern
			if p == "" {
				p = rt.pattern
			}
			st.route, st.quiet = routeTemplate(p), rt.quiet
		}
		s.routeChain(rt).ServeHTTP(w, r)
	}))
}

// HandleFunc is Handle for a function.
func (s *Server) HandleFunc(pattern string, h http.HandlerFunc, opts ...RouteOption) {
	s.Handle(pattern, h, opts...)
}

// routeTemplate strips the method from a ServeMux pattern: "GET /a/{id}"
// → "/a/{id}".
func routeTemplate(pattern string) string {
	if i := strings.IndexAny(pattern, " \t"); i >= 0 {
		return strings.TrimLeft(pattern[i:], " \t")
	}
	return pattern
}

// routeChain is rt's handler inside the access-control stages (none for a
// public route), built at its first request, when the stages are fixed.
func (s *Server) routeChain(rt *route) http.Handler {
	rt.once.Do(func() {
		h := rt.h
		if !rt.public {
			s.mu.Lock()
			var mws []Middleware
			for _, st := range []Stage{StageAuthentication, StageRateLimit, StageAuthorization} {
				mws = append(mws, s.stages[st]...)
			}
			s.mu.Unlock()
			for i := len(mws) - 1; i >= 0; i-- {
				h = mws[i](h)
			}
		}
		rt.wrapped = h
	})
	return rt.wrapped
}

// Handler returns the whole chain, the ServeMux inside. The first call
// fixes the stages; Run calls it, tests may serve it directly.
func (s *Server) Handler() http.Handler {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.chain != nil {
		return s.chain
	}
	s.frozen = true
	var h http.Handler = http.HandlerFunc(s.dispatch)
	h = s.bodyLimit(h)
	for i := len(s.stages[StageCORS]) - 1; i >= 0; i-- {
		h = s.stages[StageCORS][i](h)
	}
	h = s.instrument(h)
	h = s.accessLog(h)
	h = s.correlate(h)
	h = s.recoverPanics(h)
	s.chain = h
	return h
}

// Listen binds the configured address. Run calls it when it has not been
// called; tests call it first to learn the port of "127.0.0.1:0".
func (s *Server) Listen() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ln != nil {
		return nil
	}
	ln, err := net.Listen("tcp", s.cfg.Addr)
	if err != nil {
		return fmt.Errorf("admin: listen on %s: %w", s.cfg.Addr, err)
	}
	s.ln = ln
	return nil
}

// Addr returns the bound address (host:port) after Listen, else "".
func (s *Server) Addr() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ln == nil {
		return ""
	}
	return s.ln.Addr().String()
}

// Run serves until ctx ends, then shuts down gracefully: it stops
// accepting, lets requests in flight finish within ShutdownTimeout and
// closes what is left. It returns nil after a graceful shutdown, an error
// when listening or serving fails or the shutdown ran out of time. Cancel
// ctx last on SIGTERM, after the pipeline drained, so probes keep answering
// (503) meanwhile.
func (s *Server) Run(ctx context.Context) error {
	if err := s.Listen(); err != nil {
		return err
	}
	h := s.Handler()
	s.mu.Lock()
	ln := s.ln
	s.srv = &http.Server{
		Handler:           h,
		ReadHeaderTimeout: s.cfg.ReadHeaderTimeout,
		ReadTimeout:       s.cfg.ReadTimeout,
		WriteTimeout:      s.cfg.WriteTimeout,
		IdleTimeout:       s.cfg.IdleTimeout,
		MaxHeaderBytes:    s.cfg.MaxHeaderBytes,
		ErrorLog:          logging.StdLogger(s.log, zerolog.WarnLevel, "http"),
	}
	srv := s.srv
	s.mu.Unlock()

	s.log.Info().Str("addr", ln.Addr().String()).Msg("admin server listening")
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return fmt.Errorf("admin: serve on %s: %w", ln.Addr(), err)
	case <-ctx.Done():
	}

	sctx, cancel := context.WithTimeout(context.Background(), s.cfg.ShutdownTimeout)
	defer cancel()
	err := srv.Shutdown(sctx)
	if err != nil {
		_ = srv.Close()
		err = fmt.Errorf("admin: graceful shutdown within %v: %w; remaining connections closed", s.cfg.ShutdownTimeout, err)
	}
	if serr := <-errc; serr != nil && !errors.Is(serr, http.ErrServerClosed) && err == nil {
		err = fmt.Errorf("admin: serve: %w", serr)
	}
	s.log.Info().Msg("admin server stopped")
	return err
}
