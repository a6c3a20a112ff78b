package admin

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"runtime/debug"
	"strconv"
	"time"

	"github.com/rs/zerolog"

	"github.com/ragstream/ragstream/admin/httpjson"
	"github.com/ragstream/ragstream/internal/logging"
)

// HeaderCorrelationID carries the correlation id in both directions.
const HeaderCorrelationID = "X-Correlation-ID"

// RouteUnmatched is the route label of requests no route matched (404,
// 405 and the ServeMux's redirects).
const RouteUnmatched = "unmatched"

// reqState is what the outer middlewares learn about a request while it is
// served: the inner ones fill it in, the outer ones read it when the
// handler returns or panics. It travels in the request context as a pointer
// so it survives the request being copied (r.WithContext) on the way in.
type reqState struct {
	start         time.Time
	correlationID string
	route         string // route template; "" until a route matched
	quiet         bool
	rw            *responseWriter
}

type stateKey struct{}

func stateOf(ctx context.Context) *reqState {
	st, _ := ctx.Value(stateKey{}).(*reqState)
	return st
}

// RouteTemplate returns the route template of the request being served
// ("/v1/tenants/{tenant}/subjects/{id}"), or "" before a route matched: for
// middlewares of the access-control stages that key limits by route.
func RouteTemplate(ctx context.Context) string {
	if st := stateOf(ctx); st != nil {
		return st.route
	}
	return ""
}

func (st *reqState) routeLabel() string {
	if st.route == "" {
		return RouteUnmatched
	}
	return st.route
}

// responseWriter records the status and size of the answer.
type responseWriter struct {
	http.ResponseWriter
	status      int
	bytes       int64
	wroteHeader bool
}

func (w *responseWriter) WriteHeader(code int) {
	if w.wroteHeader {
		return
	}
	if code >= 100 && code < 200 && code != http.StatusSwitchingProtocols {
		// Informational answers (103 Early Hints) precede the real one.
		w.ResponseWriter.WriteHeader(code)
		return
	}
	w.status, w.wroteHeader = code, true
	w.ResponseWriter.WriteHeader(code)
}

func (w *responseWriter) Write(p []byte) (int, error) {
	if !w.wroteHeader {
		w.WriteHeader(http.StatusOK)
	}
	n, err := w.ResponseWriter.Write(p)
	w.bytes += int64(n)
	return n, err
}

// Flush lets streaming handlers flush through the wrapper.
func (w *responseWriter) Flush() {
	if !w.wroteHeader {
		w.WriteHeader(http.StatusOK)
	}
	if f, ok := w.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

// Hijack supports protocol upgrades through the wrapper.
func (w *responseWriter) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	h, ok := w.ResponseWriter.(http.Hijacker)
	if !ok {
		return nil, nil, errors.New("admin: response writer does not support hijacking")
	}
	w.wroteHeader, w.status = true, http.StatusSwitchingProtocols
	return h.Hijack()
}

// Unwrap gives http.ResponseController the writer underneath.
func (w *responseWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// statusOf is the status the request ended with: what was written, or 500
// when the handler panicked before writing (the recover middleware answers
// 500 then), or 200 for a handler that wrote nothing.
func (st *reqState) statusOf(completed bool) int {
	switch {
	case st.rw.wroteHeader:
		return st.rw.status
	case !completed:
		return http.StatusInternalServerError
	default:
		return http.StatusOK
	}
}

// recoverPanics is the outermost middleware: it creates the request state
// and turns a panic anywhere inside into a logged 500 with a JSON body,
// never a crash. The stack is taken while the panic unwinds, so it shows
// the line that panicked. http.ErrAbortHandler passes through: it is how a
// handler asks net/http to abort the response, and how this middleware
// ends one whose header was already sent (net/http recovers it quietly).
func (s *Server) recoverPanics(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		st := &reqState{start: time.Now(), rw: &responseWriter{ResponseWriter: w}}
		defer func() {
			p := recover()
			if p == nil {
				return
			}
			if p == http.ErrAbortHandler {
				panic(p)
			}
			l := logging.WithCorrelation(s.log, st.correlationID)
			l.Error().
				Str("panic", fmt.Sprint(p)).
				Str("stack", string(debug.Stack())).
				Str("method", r.Method).
				Str("route", st.routeLabel()).
				Msg("http handler panicked")
			if st.rw.wroteHeader {
				// Part of an answer is out: ending it normally would pass a
				// truncated body off as complete, so abort the connection.
				panic(http.ErrAbortHandler)
			}
			httpjson.Error(st.rw, http.StatusInternalServerError, "internal error")
		}()
		next.ServeHTTP(st.rw, r.WithContext(context.WithValue(r.Context(), stateKey{}, st)))
	})
}

// correlate takes the request's X-Correlation-ID when it is one valid id
// (logging.ValidCorrelationID) and otherwise generates one — logging the
// rejected value, quoted and cut short — then sets it on the response, on
// the request (so handlers that forward headers forward the accepted id),
// in the context (logging.CorrelationID) and on the request's logger
// (zerolog.Ctx), so every line of the request carries it.
func (s *Server) correlate(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		st := stateOf(r.Context())
		vals := r.Header.Values(HeaderCorrelationID)
		var id, rejected string
		switch {
		case len(vals) == 1 && logging.ValidCorrelationID(vals[0]):
			id = vals[0]
		case len(vals) == 0:
			id = logging.NewCorrelationID()
		default:
			id = logging.NewCorrelationID()
			rejected = fmt.Sprintf("%q", vals)
			if len(rejected) > 80 {
				rejected = rejected[:80] + "…"
			}
		}
		st.correlationID = id
		w.Header().Set(HeaderCorrelationID, id)
		l := logging.WithCorrelation(s.log, id)
		if rejected != "" {
			l.Warn().Str("rejected", rejected).Msg("invalid X-Correlation-ID replaced by a generated one")
		}
		r = r.WithContext(l.WithContext(logging.WithCorrelationID(r.Context(), id)))
		r.Header.Set(HeaderCorrelationID, id)
		next.ServeHTTP(w, r)
	})
}

// accessLog writes one line per request, after the handler returned or
// panicked: method, route template, path, status, bytes, duration and
// (through the request logger) correlation_id. Quiet routes log at debug
// unless they fail with a 5xx; 5xx log at error.
func (s *Server) accessLog(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		st := stateOf(r.Context())
		completed := false
		defer func() {
			status := st.statusOf(completed)
			level := zerolog.InfoLevel
			switch {
			case status >= 500:
				level = zerolog.ErrorLevel
			case st.quiet:
				level = zerolog.DebugLevel
			}
			path := r.URL.Path
			if len(path) > 256 {
				path = path[:256] + "…"
			}
			zerolog.Ctx(r.Context()).WithLevel(level).
				Str("method", r.Method).
				Str("route", st.routeLabel()).
				Str("path", path).
				Int("status", status).
				Int64("bytes", st.rw.bytes).
				Float64("duration_ms", float64(time.Since(st.start).Microseconds())/1000).
				Str("remote", r.RemoteAddr).
				Msg("http request")
		}()
		next.ServeHTTP(w, r)
		completed = true
	})
}

// instrument records ragstream_http_requests_total and
// ragstream_http_request_duration_seconds by route template. It records in
// a defer, unlike promhttp's InstrumentHandler* (same labels otherwise), so
// that a panicking handler is counted as the 500 it answers.
func (s *Server) instrument(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		st := stateOf(r.Context())
		completed := false
		defer func() {
			s.metrics.ObserveHTTP(st.routeLabel(), r.Method, st.statusOf(completed), time.Since(st.start))
		}()
		next.ServeHTTP(w, r)
		completed = true
	})
}

// bodyLimit answers 413 at once when the declared Content-Length is over
// the limit and otherwise caps the body, so a handler reading more gets
// *http.MaxBytesError (httpjson.Decode turns it into 413).
func (s *Server) bodyLimit(next http.Handler) http.Handler {
	max := s.cfg.MaxBodyBytes
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.ContentLength > max {
			w.Header().Set("Connection", "close")
			httpjson.Error(w, http.StatusRequestEntityTooLarge, "request body of "+strconv.FormatInt(r.ContentLength, 10)+" bytes is larger than the limit of "+strconv.FormatInt(max, 10))
			return
		}
		if r.Body != nil && r.Body != http.NoBody {
			r.Body = http.MaxBytesReader(w, r.Body, max)
		}
		next.ServeHTTP(w, r)
	})
}

// dispatch hands the request to the ServeMux, turning its plain-text error
// answers when no route matched (404, 405 with its Allow header, 400 for a
// malformed request) into JSON.
func (s *Server) dispatch(w http.ResponseWriter, r *http.Request) {
	s.mux.ServeHTTP(&unmatchedWriter{ResponseWriter: w, st: stateOf(r.Context())}, r)
}

// unmatchedWriter rewrites the ServeMux's own error answers. It can tell
// them from a route's answers because a matched route records its template
// in the request state before it writes.
type unmatchedWriter struct {
	http.ResponseWriter
	st       *reqState
	swallow  bool
	answered bool
}

func (w *unmatchedWriter) WriteHeader(code int) {
	if w.answered {
		return
	}
	if w.st != nil && w.st.route == "" && code >= 400 {
		w.answered, w.swallow = true, true
		var msg string
		switch code {
		case http.StatusNotFound:
			msg = "no route for this path"
		case http.StatusMethodNotAllowed:
			msg = "method not allowed; allowed: " + w.Header().Get("Allow")
		default:
			msg = http.StatusText(code)
		}
		httpjson.Error(w.ResponseWriter, code, msg)
		return
	}
	w.answered = code >= 200 || code == http.StatusSwitchingProtocols
	w.ResponseWriter.WriteHeader(code)
}

func (w *unmatchedWriter) Write(p []byte) (int, error) {
	if !w.answered {
		w.WriteHeader(http.StatusOK)
	}
	if w.swallow {
		return len(p), nil
	}
	return w.ResponseWriter.Write(p)
}

func (w *unmatchedWriter) Flush() {
	if f, ok := w.ResponseWriter.(http.Flusher); ok && !w.swallow {
		f.Flush()
	}
}

// Unwrap gives http.ResponseController the writer underneath.
func (w *unmatchedWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }
