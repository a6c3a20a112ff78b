package qdranttest

import (
	"context"
	"net"
	"sort"
	"strconv"
	"time"

	"github.com/qdrant/go-client/qdrant"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

type collectionsService struct {
	qdrant.UnimplementedCollectionsServer
	s *Server
}

func (cs *collectionsService) Create(_ context.Context, req *qdrant.CreateCollection) (*qdrant.CollectionOperationResponse, error) {
	start := time.Now()
	name := req.GetCollectionName()
	if err := validateCollectionName(name); err != nil {
		return nil, err
	}
	spaces, named, err := vectorSpaces(req.GetVectorsConfig())
	if err != nil {
		return nil, err
	}
	s := cs.s
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.collections[name]; ok {
		return nil, status.Errorf(codes.AlreadyExists, "Wrong input: Collection `%s` already exists!", name)
	}
	onDisk := true
	if req.OnDiskPayload != nil {
		onDisk = req.GetOnDiskPayload()
	}
	s.collections[name] = newCollection(name, req.GetVectorsConfig(), spaces, named, onDisk, s.faults)
	return &qdrant.CollectionOperationResponse{Result: true, Time: since(start)}, nil
}

// validateCollectionName mirrors Qdrant's checks on collection names
// (length 1..255, no path or shell-special characters).
func validateCollectionName(name string) error {
	if len(name) == 0 || len(name) > 255 {
		return status.Error(codes.InvalidArgument,
			"Validation error in body: [collection_name: length must be between 1 and 255]")
	}
	for _, r := range name {
		switch r {
		case '<', '>', ':', '"', '/', '\\', '|', '?', '*', 0, 0x1f:
			return status.Errorf(codes.InvalidArgument,
				"Validation error in body: [collection_name: collection name cannot contain \"%c\" char]", r)
		}
	}
	return nil
}

func vectorSpaces(cfg *qdrant.VectorsConfig) (map[string]*vectorSpace, bool, error) {
	spaces := map[string]*vectorSpace{}
	add := func(field, name string, p *qdrant.VectorParams) error {
		if p.GetSize() < 1 || p.GetSize() > 65536 {
			return status.Errorf(codes.InvalidArgument,
				"Validation error in body: [%s.size: value %d invalid, must be from 1 to 65536]", field, p.GetSize())
		}
		switch p.GetDistance() {
		case qdrant.Distance_Cosine, qdrant.Distance_Dot, qdrant.Distance_Euclid, qdrant.Distance_Manhattan:
		default:
			return status.Errorf(codes.InvalidArgument, "Unknown distance: %d", p.GetDistance())
		}
		if p.GetMultivectorConfig() != nil {
			return status.Error(codes.InvalidArgument, "qdranttest: multivectors are unsupported by the stand-in")
		}
		spaces[name] = &vectorSpace{size: int(p.GetSize()), metric: metric{dist: p.GetDistance()}}
		return nil
	}
	switch c := cfg.GetConfig().(type) {
	case nil:
		return spaces, true, nil
	case *qdrant.VectorsConfig_Params:
		return spaces, false, add("vectors_config.params", "", c.Params)
	case *qdrant.VectorsConfig_ParamsMap:
		for name, p := range c.ParamsMap.GetMap() {
			if err := add("vectors_config.params_map."+name, name, p); err != nil {
				return nil, false, err
			}
		}
		return spaces, true, nil
	}
	return nil, false, status.Error(codes.InvalidArgument, "Unknown vectors config")
}

func (cs *collectionsService) CollectionExists(_ context.Context, req *qdrant.CollectionExistsRequest) (*qdrant.CollectionExistsResponse, error) {
	start := time.Now()
	cs.s.mu.RLock()
	_, ok := cs.s.collections[req.GetCollectionName()]
	cs.s.mu.RUnlock()
	return &qdrant.CollectionExistsResponse{Result: &qdrant.CollectionExists{Exists: ok}, Time: since(start)}, nil
}

func (cs *collectionsService) List(context.Context, *qdrant.ListCollectionsRequest) (*qdrant.ListCollectionsResponse, error) {
	start := time.Now()
	cs.s.mu.RLock()
	names := make([]string, 0, len(cs.s.collections))
	for n := range cs.s.collections {
		names = append(names, n)
	}
	cs.s.mu.RUnlock()
	sort.Strings(names)
	out := &qdrant.ListCollectionsResponse{Time: since(start)}
	for _, n := range names {
		out.Collections = append(out.Collections, &qdrant.CollectionDescription{Name: n})
	}
	return out, nil
}

// Delete answers result=false for a missing collection, as Qdrant does
// (the go-client turns that into an error).
func (cs *collectionsService) Delete(_ context.Context, req *qdrant.DeleteCollection) (*qdrant.CollectionOperationResponse, error) {
	start := time.Now()
	cs.s.mu.Lock()
	c, ok := cs.s.collections[req.GetCollectionName()]
	delete(cs.s.collections, req.GetCollectionName())
	cs.s.mu.Unlock()
	if ok {
		c.close()
	}
	return &qdrant.CollectionOperationResponse{Result: ok, Time: since(start)}, nil
}

func (cs *collectionsService) Get(_ context.Context, req *qdrant.GetCollectionInfoRequest) (*qdrant.GetCollectionInfoResponse, error) {
	start := time.Now()
	c, err := cs.s.collection(req.GetCollectionName())
	if err != nil {
		return nil, err
	}
	c.mu.RLock()
	points := uint64(c.live)
	schema := make(map[string]*qdrant.PayloadSchemaInfo, len(c.schema))
	for k, v := range c.schema {
		schema[k] = &qdrant.PayloadSchemaInfo{DataType: v.GetDataType(), Params: v.GetParams(), Points: qdrant.PtrOf(c.countWithField(k))}
	}
	c.mu.RUnlock()
	one := uint32(1)
	zero := uint64(0)
	info := &qdrant.CollectionInfo{
		Status:              qdrant.CollectionStatus_Green,
		OptimizerStatus:     &qdrant.OptimizerStatus{Ok: true},
		SegmentsCount:       1,
		PointsCount:         &points,
		IndexedVectorsCount: &zero,
		PayloadSchema:       schema,
		Config: &qdrant.CollectionConfig{
			Params: &qdrant.CollectionParams{
				ShardNumber:            1,
				OnDiskPayload:          c.onDiskPayload,
				VectorsConfig:          c.vectorsConfig,
				ReplicationFactor:      &one,
				WriteConsistencyFactor: &one,
			},
			HnswConfig: &qdrant.HnswConfigDiff{
				M:                  qdrant.PtrOf(uint64(16)),
				EfConstruct:        qdrant.PtrOf(uint64(100)),
				FullScanThreshold:  qdrant.PtrOf(uint64(10000)),
				MaxIndexingThreads: qdrant.PtrOf(uint64(0)),
				OnDisk:             qdrant.PtrOf(false),
			},
			OptimizerConfig: &qdrant.OptimizersConfigDiff{
				DeletedThreshold:      qdrant.PtrOf(0.2),
				VacuumMinVectorNumber: qdrant.PtrOf(uint64(1000)),
				DefaultSegmentNumber:  qdrant.PtrOf(uint64(0)),
				FlushIntervalSec:      qdrant.PtrOf(uint64(5)),
			},
			WalConfig: &qdrant.WalConfigDiff{
				WalCapacityMb:    qdrant.PtrOf(uint64(32)),
				WalSegmentsAhead: qdrant.PtrOf(uint64(0)),
			},
		},
	}
	return &qdrant.GetCollectionInfoResponse{Result: info, Time: since(start)}, nil
}

func since(t time.Time) float64 { return time.Since(t).Seconds() }

func splitHostPort(addr string) (string, int, error) {
	host, p, err := net.SplitHostPort(addr)
	if err != nil {
		return "", 0, err
	}
	port, err := strconv.Atoi(p)
	return host, port, err
}

// countWithField counts the points holding a non-null value at key, the
// number Qdrant reports as a payload index's points. Must hold mu (read).
func (c *collection) countWithField(key string) uint64 {
	path, err := parsePath(key)
	if err != nil {
		return 0
	}
	var n uint64
	for i := range c.slots {
		if c.slots[i].live && valuesCount(path.raw(c.slots[i].payload)) > 0 {
			n++
		}
	}
	return n
}
