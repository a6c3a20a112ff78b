package qdrant

import (
	"cmp"
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"time"

	qc "github.com/qdrant/go-client/qdrant"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/mem"
	"google.golang.org/grpc/status"

	"github.com/ragstream/ragstream/pipeline"
)

// Config is what the sink needs; cmd fills it from config.Qdrant.
type Config struct {
	// Addr is the gRPC address, host:port.
	Addr       string
	APIKey     string
	Collection string
	VectorSize int
	// Distance is Cosine, Dot, Euclid or Manhattan.
	Distance string
	// TLS, when set, connects with TLS; CAFile adds a CA to the system pool.
	TLS                bool
	CAFile             string
	InsecureSkipVerify bool
	// Timeout bounds every call (default 10 s).
	Timeout time.Duration
	// StoreText keeps the chunk text in the payload.
	StoreText bool
	// DialOptions are extra gRPC options (tests use them for bufconn).
	DialOptions []grpc.DialOption
}

// Sink writes the version authority's decisions to one Qdrant collection.
type Sink struct {
	cfg    Config
	client *qc.Client
	codec  wireCodec
	now    func() time.Time
	// sliceBytes bounds one upsert request; zero: upsertSliceBytes
	// (tests make it small).
	sliceBytes int
}

// upsertSliceBytes bounds the points of one upsert request, by their
// encoded size: a larger write goes as several requests, one after the
// other, so that a request's buffer holds a slice and not the whole batch
// (about 10 MB at 5,000 points of 384 dimensions). Qdrant itself takes
// requests of any size.
const upsertSliceBytes = 4 << 20

// pooledUpsertBytes is the largest request whose buffer comes from gRPC's
// buffer pool (its largest tier).
const pooledUpsertBytes = 1 << 20

// New connects to Qdrant (lazily: gRPC dials on the first call) and returns
// the sink; call Setup before the first Write.
func New(cfg Config) (*Sink, error) {
	host, portStr, err := net.SplitHostPort(cfg.Addr)
	if err != nil {
		return nil, fmt.Errorf("qdrant addr %q: %w", cfg.Addr, err)
	}
	port, err := strconv.Atoi(portStr)
	if err != nil {
		return nil, fmt.Errorf("qdrant addr %q: bad port", cfg.Addr)
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 10 * time.Second
	}
	qcfg := &qc.Config{
		Host:   host,
		Port:   port,
		APIKey: cfg.APIKey,
		// Setup checks the server itself; the client's check only logs.
		SkipCompatibilityCheck: true,
		GrpcOptions: append([]grpc.DialOption{
			grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(256 << 20)),
		}, cfg.DialOptions...),
	}
	if cfg.TLS {
		tc := &tls.Config{MinVersion: tls.VersionTLS12, InsecureSkipVerify: cfg.InsecureSkipVerify} //nolint:gosec // opt-in, documented
		if cfg.CAFile != "" {
			pem, err := os.ReadFile(cfg.CAFile)
			if err != nil {
				return nil, fmt.Errorf("qdrant tls ca_file: %w", err)
			}
			pool, err := x509.SystemCertPool()
			if err != nil {
				pool = x509.NewCertPool()
			}
			if !pool.AppendCertsFromPEM(pem) {
				return nil, fmt.Errorf("qdrant tls ca_file %s: no certificate found", cfg.CAFile)
			}
			tc.RootCAs = pool
		}
		qcfg.UseTLS, qcfg.TLSConfig = true, tc
	}
	client, err := qc.NewClient(qcfg)
	if err != nil {
		return nil, fmt.Errorf("qdrant client: %w", err)
	}
	return &Sink{cfg: cfg, client: client, codec: newWireCodec(), now: time.Now}, nil
}

// Name identifies the sink in logs, metrics and DLQ stages (sink.qdrant).
func (s *Sink) Name() string { return "qdrant" }

// Client exposes the connection for the query API.
func (s *Sink) Client() *qc.Client { return s.client }

// Close closes the connection.
func (s *Sink) Close() error { return s.client.Close() }

func (s *Sink) timeout(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, s.cfg.Timeout)
}

// Ping checks that Qdrant answers, for readiness.
func (s *Sink) Ping(ctx context.Context) error {
	ctx, cancel := s.timeout(ctx)
	defer cancel()
	_, err := s.client.HealthCheck(ctx)
	return classify("health check", err)
}

func distanceOf(name string) (qc.Distance, error) {
	switch strings.ToLower(name) {
	case "cosine":
		return qc.Distance_Cosine, nil
	case "dot":
		return qc.Distance_Dot, nil
	case "euclid":
		return qc.Distance_Euclid, nil
	case "manhattan":
		return qc.Distance_Manhattan, nil
	}
	return qc.Distance_UnknownDistance, fmt.Errorf("unknown distance %q", name)
}

// Setup creates the collection if it is absent, checks that an existing one
// has the configured size and distance, and creates the payload indexes on
// tenant (tenant-aware) and doc_id. It is safe to run from several replicas
// at once.
func (s *Sink) Setup(ctx context.Context) error {
	dist, err := distanceOf(s.cfg.Distance)
	if err != nil {
		return err
	}
	ctx, cancel := s.timeout(ctx)
	defer cancel()
	exists, err := s.client.CollectionExists(ctx, s.cfg.Collection)
	if err != nil {
		return classify("collection exists", err)
	}
	if !exists {
		err := s.client.CreateCollection(ctx, &qc.CreateCollection{
			CollectionName: s.cfg.Collection,
			VectorsConfig: qc.NewVectorsConfig(&qc.VectorParams{
				Size:     uint64(s.cfg.VectorSize),
				Distance: dist,
			}),
		})
		// Another replica may have created it in between: check it below.
		if err != nil && !isAlreadyExists(err) {
			return classify("create collection "+s.cfg.Collection, err)
		}
	}
	if err := s.checkCollection(ctx, dist); err != nil {
		return err
	}
	for _, idx := range []struct {
		field  string
		tenant bool
	}{{FieldTenant, true}, {FieldDocID, false}} {
		params := &qc.KeywordIndexParams{}
		if idx.tenant {
			params.IsTenant = qc.PtrOf(true)
		}
		_, err := s.client.CreateFieldIndex(ctx, &qc.CreateFieldIndexCollection{
			CollectionName:   s.cfg.Collection,
			Wait:             qc.PtrOf(true),
			FieldName:        idx.field,
			FieldType:        qc.FieldType_FieldTypeKeyword.Enum(),
			FieldIndexParams: qc.NewPayloadIndexParamsKeyword(params),
		})
		if err != nil {
			return classify("create payload index "+idx.field, err)
		}
	}
	return nil
}

func isAlreadyExists(err error) bool {
	return status.Code(err) == codes.AlreadyExists
}

// checkCollection refuses a collection whose vectors differ from the
// configuration: writing into it would fail record by record, or worse,
// score with the wrong metric. The store is unusable as configured, so the
// error is SinkDown: start-up stops instead of waiting.
func (s *Sink) checkCollection(ctx context.Context, dist qc.Distance) error {
	info, err := s.client.GetCollectionInfo(ctx, s.cfg.Collection)
	if err != nil {
		return classify("get collection "+s.cfg.Collection, err)
	}
	vc := info.GetConfig().GetParams().GetVectorsConfig()
	params := vc.GetParams()
	if params == nil {
		names := []string{}
		for n := range vc.GetParamsMap().GetMap() {
			names = append(names, n)
		}
		return pipeline.SinkDown(fmt.Errorf("qdrant collection %q has named vectors %v; ragstream writes one unnamed vector (size %d, %s)",
			s.cfg.Collection, names, s.cfg.VectorSize, s.cfg.Distance))
	}
	var diffs []string
	if params.GetSize() != uint64(s.cfg.VectorSize) {
		diffs = append(diffs, fmt.Sprintf("vector size is %d, config qdrant.vector_size is %d", params.GetSize(), s.cfg.VectorSize))
	}
	if params.GetDistance() != dist {
		diffs = append(diffs, fmt.Sprintf("distance is %s, config qdrant.distance is %s", params.GetDistance(), s.cfg.Distance))
	}
	if len(diffs) > 0 {
		return pipeline.SinkDown(fmt.Errorf("qdrant collection %q differs from the configuration: %s", s.cfg.Collection, strings.Join(diffs, "; ")))
	}
	return nil
}

// Write upserts the points of upsert writes and deletes the points of
// delete writes, both with wait=true, so every write is applied and visible
// when Write returns nil (the offset may then be committed). A key occurs
// at most once in writes (the fold collapsed it), so the order of the two
// calls does not matter.
func (s *Sink) Write(ctx context.Context, writes []pipeline.Write) error {
	if len(writes) == 0 {
		return nil
	}
	var deletes []*qc.PointId
	for i := range writes {
		if w := &writes[i]; w.Action == pipeline.ActionDelete {
			deletes = append(deletes, qc.NewIDUUID(PointID(w.Key.Tenant, w.Key.ID)))
		}
	}
	ctx, cancel := s.timeout(ctx)
	defer cancel()
	now := s.now()
	limit := cmp.Or(s.sliceBytes, upsertSliceBytes)
	for rest := writes; len(rest) > 0; {
		// The next slice: at least one write, then as many as fit.
		end, size, upserts := 0, 0, 0
		for end < len(rest) {
			if w := &rest[end]; w.Action == pipeline.ActionUpsert {
				guess := pointSizeGuess(w.Record, s.cfg.StoreText, len(time.RFC3339Nano))
				if upserts > 0 && size+guess > limit {
					break
				}
				size += guess
				upserts++
			}
			end++
		}
		slice := rest[:end]
		rest = rest[end:]
		if upserts == 0 {
			continue
		}
		// A request over gRPC's largest pooled size (1 MiB) gets a buffer of
		// its own: the pool's fallback for such sizes is a sync.Pool, where
		// a buffer outlives the call by up to two GC cycles and counts as
		// live at each, raising the heap goal by twice its size (~11 MB of
		// a batch-1000 worker's 77 MB live heap); this one is garbage once
		// the call is done.
		var pool mem.BufferPool
		if size <= pooledUpsertBytes {
			pool = mem.DefaultBufferPool()
		}
		req, n, err := encodeUpsert(s.cfg.Collection, slice, s.cfg.StoreText, now, pool)
		if err != nil {
			return err
		}
		if err := s.invokeUpsert(ctx, req); err != nil {
			return classify(fmt.Sprintf("upsert %d points", n), err)
		}
	}
	if len(deletes) > 0 {
		_, err := s.client.Delete(ctx, &qc.DeletePoints{
			CollectionName: s.cfg.Collection,
			Wait:           qc.PtrOf(true),
			Points:         qc.NewPointsSelectorIDs(deletes),
		})
		if err != nil {
			return classify(fmt.Sprintf("delete %d points", len(deletes)), err)
		}
	}
	return nil
}
