package qdranttest

import (
	"context"
	"sort"
	"time"

	"github.com/qdrant/go-client/qdrant"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

type pointsService struct {
	qdrant.UnimplementedPointsServer
	s *Server
}

// Default page sizes of Query and Scroll when the request sets no limit.
const defaultLimit = 10

func errLimitZero() error {
	return status.Error(codes.InvalidArgument, "Validation error in body: [limit: value 0 invalid, must be 1 or larger]")
}

func errEmptyUpdate() error {
	return status.Error(codes.InvalidArgument, "Bad request: Empty update request")
}

func updateResult(start time.Time, id uint64, wait bool) *qdrant.PointsOperationResponse {
	st := qdrant.UpdateStatus_Acknowledged
	if wait {
		st = qdrant.UpdateStatus_Completed
	}
	return &qdrant.PointsOperationResponse{
		Result: &qdrant.UpdateResult{OperationId: &id, Status: st},
		Time:   since(start),
	}
}

// Upsert validates the whole request synchronously (even with wait=false,
// as Qdrant does) and then queues it. The order of checks follows Qdrant:
// the gRPC conversion (ids, vectors present, payload numbers) before the
// collection is looked up, then the collection's own checks.
func (ps *pointsService) Upsert(_ context.Context, req *qdrant.UpsertPoints) (*qdrant.PointsOperationResponse, error) {
	start := time.Now()
	type raw struct {
		key     pointKey
		vectors []namedVector
		payload payload
	}
	raws := make([]raw, len(req.GetPoints()))
	for i, p := range req.GetPoints() {
		k, err := parsePointID(p.GetId())
		if err != nil {
			return nil, err
		}
		if p.Vectors == nil {
			return nil, status.Error(codes.InvalidArgument, "Expected some vectors")
		}
		vecs, err := wireVectors(p.GetVectors())
		if err != nil {
			return nil, err
		}
		pl, err := normalizePayload(p.GetPayload())
		if err != nil {
			return nil, err
		}
		raws[i] = raw{key: k, vectors: vecs, payload: pl}
	}
	c, err := ps.s.collection(req.GetCollectionName())
	if err != nil {
		return nil, err
	}
	if len(raws) == 0 {
		return nil, errEmptyUpdate()
	}
	points := make([]preparedPoint, len(raws))
	keys := make([]pointKey, len(raws))
	for i, r := range raws {
		if err := c.checkVectors(r.vectors); err != nil {
			return nil, err
		}
		points[i] = preparedPoint{key: r.key, payload: r.payload, vectors: r.vectors}
		keys[i] = r.key
	}
	var cond predicate
	if req.UpdateFilter != nil {
		if cond, err = compileFilter(req.GetUpdateFilter()); err != nil {
			return nil, err
		}
	}
	if k, bad := ps.s.faults.rejectedIn(keys); bad {
		return nil, status.Errorf(codes.InvalidArgument, "Wrong input: point %s rejected (qdranttest fault injection)", k)
	}
	mode := req.GetUpdateMode()
	wait := req.GetWait()
	id, err := c.submit(func(c *collection, version uint64) { c.upsert(points, cond, mode, version) }, wait)
	if err != nil {
		return nil, err
	}
	return updateResult(start, id, wait), nil
}

// namedVector is one vector of a point; the unnamed vector is named "".
type namedVector struct {
	name string
	v    []float32
}

// wireVectors reads a point's vectors as Qdrant's conversion does.
func wireVectors(v *qdrant.Vectors) ([]namedVector, error) {
	switch o := v.GetVectorsOptions().(type) {
	case *qdrant.Vectors_Vector:
		d, err := denseOf(o.Vector)
		if err != nil {
			return nil, err
		}
		return []namedVector{{v: d}}, nil
	case *qdrant.Vectors_Vectors:
		out := make([]namedVector, 0, len(o.Vectors.GetVectors()))
		for name, vec := range o.Vectors.GetVectors() {
			d, err := denseOf(vec)
			if err != nil {
				return nil, err
			}
			out = append(out, namedVector{name: name, v: d})
		}
		return out, nil
	}
	return nil, status.Error(codes.InvalidArgument, "No Vector Provided")
}

func denseOf(v *qdrant.Vector) ([]float32, error) {
	switch o := v.GetVector().(type) {
	case nil:
		if v.GetIndices() != nil || v.VectorsCount != nil { //nolint:staticcheck // the deprecated fields are still on the wire
			return nil, status.Error(codes.InvalidArgument, "qdranttest: sparse and multi vectors are unsupported by the stand-in")
		}
		return v.GetData(), nil //nolint:staticcheck // the deprecated form is still accepted by Qdrant
	case *qdrant.Vector_Dense:
		return o.Dense.GetData(), nil
	}
	return nil, status.Error(codes.InvalidArgument, "qdranttest: only dense vectors are supported by the stand-in")
}

// checkVectors checks names and sizes against the collection and
// preprocesses (normalises, for Cosine) each vector, in place: the decoded
// request is the server's, and its vectors become the stored ones.
func (c *collection) checkVectors(vecs []namedVector) error {
	for i := range vecs {
		vs, ok := c.spaces[vecs[i].name]
		if !ok {
			return status.Errorf(codes.InvalidArgument, "Wrong input: Not existing vector name error: %s", vecs[i].name)
		}
		if len(vecs[i].v) != vs.size {
			return errDim(vs.size, len(vecs[i].v))
		}
		vecs[i].v = vs.metric.preprocessInPlace(vecs[i].v)
	}
	return nil
}

func errDim(want, got int) error {
	return status.Errorf(codes.InvalidArgument, "Wrong input: Vector dimension error: expected dim: %d, got %d", want, got)
}

func (ps *pointsService) Delete(_ context.Context, req *qdrant.DeletePoints) (*qdrant.PointsOperationResponse, error) {
	start := time.Now()
	var keys []pointKey
	var filter *qdrant.Filter
	byFilter := false
	switch sel := req.GetPoints().GetPointsSelectorOneOf().(type) {
	case *qdrant.PointsSelector_Points:
		for _, id := range sel.Points.GetIds() {
			k, err := parsePointID(id)
			if err != nil {
				return nil, err
			}
			keys = append(keys, k)
		}
	case *qdrant.PointsSelector_Filter:
		filter, byFilter = sel.Filter, true
	default:
		return nil, status.Error(codes.InvalidArgument, "No PointsSelector")
	}
	c, err := ps.s.collection(req.GetCollectionName())
	if err != nil {
		return nil, err
	}
	var apply func(*collection, uint64)
	if byFilter {
		pred, err := compileFilter(filter)
		if err != nil {
			return nil, err
		}
		apply = func(c *collection, _ uint64) {
			var doomed []pointKey
			for i := range c.slots {
				if c.slots[i].live && pred(c.view(int32(i))) {
					doomed = append(doomed, c.slots[i].id)
				}
			}
			for _, k := range doomed {
				c.remove(k)
			}
		}
	} else {
		if len(keys) == 0 {
			return nil, errEmptyUpdate()
		}
		apply = func(c *collection, _ uint64) {
			for _, k := range keys {
				c.remove(k)
			}
		}
	}
	wait := req.GetWait()
	id, err := c.submit(apply, wait)
	if err != nil {
		return nil, err
	}
	return updateResult(start, id, wait), nil
}

func (ps *pointsService) CreateFieldIndex(_ context.Context, req *qdrant.CreateFieldIndexCollection) (*qdrant.PointsOperationResponse, error) {
	start := time.Now()
	c, err := ps.s.collection(req.GetCollectionName())
	if err != nil {
		return nil, err
	}
	field := req.GetFieldName()
	if _, err := parsePath(field); err != nil {
		return nil, err
	}
	if req.FieldType == nil {
		return nil, status.Error(codes.InvalidArgument,
			"Bad request: Can't auto-detect field type, please specify `field_schema` in the request")
	}
	dt, ok := schemaTypes[req.GetFieldType()]
	if !ok {
		return nil, status.Errorf(codes.InvalidArgument, "Unknown field type: %d", req.GetFieldType())
	}
	info := &qdrant.PayloadSchemaInfo{DataType: dt, Params: req.GetFieldIndexParams()}
	wait := req.GetWait()
	id, err := c.submit(func(c *collection, _ uint64) {
		c.schema[field] = info
	}, wait)
	if err != nil {
		return nil, err
	}
	return updateResult(start, id, wait), nil
}

func (ps *pointsService) DeleteFieldIndex(_ context.Context, req *qdrant.DeleteFieldIndexCollection) (*qdrant.PointsOperationResponse, error) {
	start := time.Now()
	c, err := ps.s.collection(req.GetCollectionName())
	if err != nil {
		return nil, err
	}
	field := req.GetFieldName()
	wait := req.GetWait()
	id, err := c.submit(func(c *collection, _ uint64) { delete(c.schema, field) }, wait)
	if err != nil {
		return nil, err
	}
	return updateResult(start, id, wait), nil
}

var schemaTypes = map[qdrant.FieldType]qdrant.PayloadSchemaType{
	qdrant.FieldType_FieldTypeKeyword:  qdrant.PayloadSchemaType_Keyword,
	qdrant.FieldType_FieldTypeInteger:  qdrant.PayloadSchemaType_Integer,
	qdrant.FieldType_FieldTypeFloat:    qdrant.PayloadSchemaType_Float,
	qdrant.FieldType_FieldTypeGeo:      qdrant.PayloadSchemaType_Geo,
	qdrant.FieldType_FieldTypeText:     qdrant.PayloadSchemaType_Text,
	qdrant.FieldType_FieldTypeBool:     qdrant.PayloadSchemaType_Bool,
	qdrant.FieldType_FieldTypeDatetime: qdrant.PayloadSchemaType_Datetime,
	qdrant.FieldType_FieldTypeUuid:     qdrant.PayloadSchemaType_Uuid,
}

// Get returns the known points in request order, unknown ids skipped.
// Payloads and vectors are off unless asked for.
func (ps *pointsService) Get(_ context.Context, req *qdrant.GetPoints) (*qdrant.GetResponse, error) {
	start := time.Now()
	keys := make([]pointKey, 0, len(req.GetIds()))
	for _, id := range req.GetIds() {
		k, err := parsePointID(id)
		if err != nil {
			return nil, err
		}
		keys = append(keys, k)
	}
	c, err := ps.s.collection(req.GetCollectionName())
	if err != nil {
		return nil, err
	}
	psel := compilePayloadSelector(req.GetWithPayload(), false)
	vsel, err := c.vectorSelector(req.GetWithVectors())
	if err != nil {
		return nil, err
	}
	c.mu.RLock()
	defer c.mu.RUnlock()
	out := &qdrant.GetResponse{Result: make([]*qdrant.RetrievedPoint, 0, len(keys))}
	for _, k := range keys {
		s, ok := c.index[k]
		if !ok {
			continue
		}
		out.Result = append(out.Result, &qdrant.RetrievedPoint{
			Id:      k.proto(),
			Payload: psel.apply(c.slots[s].payload),
			Vectors: c.vectorsOut(s, vsel),
		})
	}
	out.Time = since(start)
	return out, nil
}

// Scroll pages through points in id order (numbers, then UUIDs). The
// offset is inclusive and next_page_offset is the id after the page.
// Payloads are on by default here, unlike Query and Get.
func (ps *pointsService) Scroll(_ context.Context, req *qdrant.ScrollPoints) (*qdrant.ScrollResponse, error) {
	start := time.Now()
	if req.Limit != nil && req.GetLimit() == 0 {
		return nil, errLimitZero()
	}
	var offset *pointKey
	if req.Offset != nil {
		k, err := parsePointID(req.GetOffset())
		if err != nil {
			return nil, err
		}
		offset = &k
	}
	if req.OrderBy != nil {
		return nil, status.Error(codes.InvalidArgument, "qdranttest: order_by is unsupported by the stand-in")
	}
	c, err := ps.s.collection(req.GetCollectionName())
	if err != nil {
		return nil, err
	}
	pred, err := compileFilter(req.GetFilter())
	if err != nil {
		return nil, err
	}
	psel := compilePayloadSelector(req.GetWithPayload(), true)
	vsel, err := c.vectorSelector(req.GetWithVectors())
	if err != nil {
		return nil, err
	}
	limit := defaultLimit
	if req.Limit != nil {
		limit = int(req.GetLimit())
	}
	c.mu.RLock()
	defer c.mu.RUnlock()
	ids := c.sortedIDs()
	i := 0
	if offset != nil {
		i = sort.Search(len(ids), func(j int) bool { return !ids[j].less(*offset) })
	}
	out := &qdrant.ScrollResponse{}
	for ; i < len(ids); i++ {
		s := c.index[ids[i]]
		if !pred(c.view(s)) {
			continue
		}
		if len(out.Result) == limit {
			out.NextPageOffset = ids[i].proto()
			break
		}
		out.Result = append(out.Result, &qdrant.RetrievedPoint{
			Id:      ids[i].proto(),
			Payload: psel.apply(c.slots[s].payload),
			Vectors: c.vectorsOut(s, vsel),
		})
	}
	out.Time = since(start)
	return out, nil
}

// Count is always exact (Qdrant's default; the estimate is not modelled).
func (ps *pointsService) Count(_ context.Context, req *qdrant.CountPoints) (*qdrant.CountResponse, error) {
	start := time.Now()
	c, err := ps.s.collection(req.GetCollectionName())
	if err != nil {
		return nil, err
	}
	pred, err := compileFilter(req.GetFilter())
	if err != nil {
		return nil, err
	}
	c.mu.RLock()
	n := 0
	if req.GetFilter() == nil {
		n = c.live
	} else {
		var v pointView
		for i := range c.slots {
			if !c.slots[i].live {
				continue
			}
			v = pointView{id: c.slots[i].id, payload: c.slots[i].payload, c: c, slot: int32(i)}
			if pred(&v) {
				n++
			}
		}
	}
	c.mu.RUnlock()
	return &qdrant.CountResponse{Result: &qdrant.CountResult{Count: uint64(n)}, Time: since(start)}, nil
}

// vectorSelector is a compiled WithVectorsSelector: nil means no vectors.
type vectorSelector map[string]bool

func (c *collection) vectorSelector(sel *qdrant.WithVectorsSelector) (vectorSelector, error) {
	switch o := sel.GetSelectorOptions().(type) {
	case *qdrant.WithVectorsSelector_Enable:
		if !o.Enable {
			return nil, nil
		}
		all := vectorSelector{}
		for name := range c.spaces {
			all[name] = true
		}
		return all, nil
	case *qdrant.WithVectorsSelector_Include:
		some := vectorSelector{}
		for _, name := range o.Include.GetNames() {
			if _, ok := c.spaces[name]; !ok {
				return nil, status.Errorf(codes.InvalidArgument, "Wrong input: Not existing vector name error: %s", name)
			}
			some[name] = true
		}
		return some, nil
	}
	return nil, nil
}

// vectorsOut renders a point's vectors as Qdrant does: the unnamed vector
// as a single VectorOutput, named vectors as a map of those present. Must
// hold mu (read).
func (c *collection) vectorsOut(s int32, sel vectorSelector) *qdrant.VectorsOutput {
	if sel == nil {
		return nil
	}
	if !c.named {
		vs := c.spaces[""]
		if !sel[""] || !vs.has(s) {
			return nil
		}
		return &qdrant.VectorsOutput{VectorsOptions: &qdrant.VectorsOutput_Vector{Vector: denseOut(vs.get(s))}}
	}
	named := &qdrant.NamedVectorsOutput{Vectors: map[string]*qdrant.VectorOutput{}}
	for name := range sel {
		if vs := c.spaces[name]; vs.has(s) {
			named.Vectors[name] = denseOut(vs.get(s))
		}
	}
	return &qdrant.VectorsOutput{VectorsOptions: &qdrant.VectorsOutput_Vectors{Vectors: named}}
}

// denseOut copies v into the legacy `data` field, which Qdrant's gRPC
// conversion fills for dense vectors (go-client's GetDenseVector reads it).
func denseOut(v []float32) *qdrant.VectorOutput {
	return &qdrant.VectorOutput{Data: append([]float32(nil), v...)} //nolint:staticcheck // Qdrant fills the deprecated field
}
