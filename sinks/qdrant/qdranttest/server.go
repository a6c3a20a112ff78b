// Package qdranttest is an in-memory Qdrant for tests and dev mode: a gRPC
// server that the unchanged github.com/qdrant/go-client cannot tell from
// Qdrant 1.19 for the calls ragstream makes (see qdrant-standin.md). It
// follows the net/http/httptest idea: the real protocol, in process.
//
// Search is exact (no HNSW), with Qdrant's float32 score arithmetic and
// ordering. Writes with wait=false are acknowledged before they are
// applied, as on a real server. Faults() injects failures for tests.
package qdranttest

import (
	"context"
	"crypto/subtle"
	"errors"
	"math"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/qdrant/go-client/qdrant"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/keepalive"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/grpc/test/bufconn"
)

// Version is the Qdrant version the stand-in reports in HealthCheck.
const Version = "1.19.0"

const healthMethod = "/qdrant.Qdrant/HealthCheck"

// Server is a running (or ready to run) stand-in.
type Server struct {
	grpc    *grpc.Server
	apiKey  string
	version string
	faults  *Faults

	mu          sync.RWMutex
	collections map[string]*collection
	addr        string
	buf         *bufconn.Listener
	closed      bool
}

// Option configures a Server.
type Option func(*Server)

// WithAPIKey makes the server demand key in the api-key header or as an
// Authorization bearer token, as Qdrant does with service.api_key set.
func WithAPIKey(key string) Option { return func(s *Server) { s.apiKey = key } }

// WithVersion sets the version HealthCheck reports (default Version).
func WithVersion(v string) Option { return func(s *Server) { s.version = v } }

// New returns a server that is not yet listening; see Serve.
func New(opts ...Option) *Server {
	s := &Server{version: Version, faults: &Faults{}, collections: map[string]*collection{}}
	for _, o := range opts {
		o(s)
	}
	s.faults.restart = s.restart
	s.grpc = grpc.NewServer(
		// The go-client pings every 10 s even without streams; a stricter
		// policy answers with GOAWAY too_many_pings.
		grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{MinTime: 5 * time.Second, PermitWithoutStream: true}),
		// Real Qdrant accepts requests of any size.
		grpc.MaxRecvMsgSize(math.MaxInt32),
		grpc.MaxSendMsgSize(math.MaxInt32),
		// Large flow-control windows: a 1000-point batch of 384-dim vectors
		// is ~2 MB, which gRPC's 64 KiB default window would chop into many
		// round trips.
		grpc.InitialWindowSize(16<<20),
		grpc.InitialConnWindowSize(16<<20),
		grpc.ForceServerCodec(codec{}),
		grpc.ChainUnaryInterceptor(s.latencyInterceptor, s.authInterceptor, s.faultInterceptor),
	)
	qdrant.RegisterQdrantServer(s.grpc, &healthService{s: s})
	qdrant.RegisterCollectionsServer(s.grpc, &collectionsService{s: s})
	qdrant.RegisterPointsServer(s.grpc, &pointsService{s: s})
	return s
}

// Start starts a stand-in on a fresh 127.0.0.1 TCP port and stops it when
// the test ends.
func Start(t testing.TB, opts ...Option) *Server {
	t.Helper()
	s := New(opts...)
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("qdranttest: listen: %v", err)
	}
	s.mu.Lock()
	s.addr = lis.Addr().String()
	s.mu.Unlock()
	go func() { _ = s.Serve(lis) }()
	t.Cleanup(s.Close)
	return s
}

// Serve serves gRPC on lis until Close. Addr reports lis's address.
func (s *Server) Serve(lis net.Listener) error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		_ = lis.Close()
		return grpc.ErrServerStopped
	}
	s.addr = lis.Addr().String()
	s.mu.Unlock()
	err := s.grpc.Serve(lis)
	if errors.Is(err, grpc.ErrServerStopped) {
		return nil
	}
	return err
}

// ListenAndServe listens on the TCP address addr and serves until Close.
func (s *Server) ListenAndServe(addr string) error {
	lis, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	return s.Serve(lis)
}

// Addr is the host:port the server listens on ("" before Serve).
func (s *Server) Addr() string {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.addr
}

// HostPort splits Addr for qdrant.Config.
func (s *Server) HostPort() (string, int) {
	host, port, _ := splitHostPort(s.Addr())
	return host, port
}

// InProcessHost is the qdrant.Config.Host to use with InProcessDialOption:
// it skips name resolution, since no socket is dialled.
const InProcessHost = "passthrough:///qdranttest"

// InProcessDialOption connects a client to the server in memory (no
// socket): pass it in qdrant.Config.GrpcOptions, with Host InProcessHost.
func (s *Server) InProcessDialOption() grpc.DialOption {
	s.mu.Lock()
	if s.buf == nil {
		s.buf = bufconn.Listen(1 << 20)
		go func() { _ = s.grpc.Serve(s.buf) }()
	}
	buf := s.buf
	s.mu.Unlock()
	return grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) {
		return buf.DialContext(ctx)
	})
}

// Faults is the server's fault injector.
func (s *Server) Faults() *Faults { return s.faults }

// Close stops the server at once, closing connections and dropping
// unapplied writes. It is safe to call more than once.
func (s *Server) Close() {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return
	}
	s.closed = true
	cols := s.collections
	s.collections = map[string]*collection{}
	s.mu.Unlock()
	s.grpc.Stop()
	for _, c := range cols {
		c.close()
	}
}

func (s *Server) restart() int {
	s.mu.RLock()
	cols := make([]*collection, 0, len(s.collections))
	for _, c := range s.collections {
		cols = append(cols, c)
	}
	s.mu.RUnlock()
	n := 0
	for _, c := range cols {
		n += c.dropPending()
	}
	return n
}

func (s *Server) collection(name string) (*collection, error) {
	s.mu.RLock()
	c, ok := s.collections[name]
	s.mu.RUnlock()
	if !ok {
		return nil, errNotFound(name)
	}
	return c, nil
}

func errNotFound(name string) error {
	return status.Errorf(codes.NotFound, "Not found: Collection `%s` doesn't exist!", name)
}

func (s *Server) latencyInterceptor(ctx context.Context, req any, info *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
	if d := s.faults.currentLatency(); d > 0 {
		t := time.NewTimer(d)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return nil, status.FromContextError(ctx.Err()).Err()
		}
	}
	return h(ctx, req)
}

// authInterceptor checks the key as Qdrant's gRPC auth layer does
// (src/common/auth/mod.rs); the health check is open.
func (s *Server) authInterceptor(ctx context.Context, req any, info *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
	if s.apiKey == "" || info.FullMethod == healthMethod {
		return h(ctx, req)
	}
	md, _ := metadata.FromIncomingContext(ctx)
	key, ok := "", false
	if v := md.Get("api-key"); len(v) > 0 {
		key, ok = v[0], true
	} else if v := md.Get("authorization"); len(v) > 0 && strings.HasPrefix(v[0], "Bearer ") {
		key, ok = strings.TrimPrefix(v[0], "Bearer "), true
	}
	if !ok {
		return nil, status.Error(codes.Unauthenticated, "Must provide an API key or an Authorization bearer token")
	}
	if subtle.ConstantTimeCompare([]byte(key), []byte(s.apiKey)) != 1 {
		return nil, status.Error(codes.Unauthenticated, "Invalid API key or JWT")
	}
	return h(ctx, req)
}

func (s *Server) faultInterceptor(ctx context.Context, req any, info *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
	if err := s.faults.check(info.FullMethod); err != nil {
		return nil, err
	}
	return h(ctx, req)
}

type healthService struct {
	qdrant.UnimplementedQdrantServer
	s *Server
}

func (h *healthService) HealthCheck(context.Context, *qdrant.HealthCheckRequest) (*qdrant.HealthCheckReply, error) {
	return &qdrant.HealthCheckReply{Title: "qdrant - vector search engine", Version: h.s.version}, nil
}
