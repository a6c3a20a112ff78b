package qdranttest

import (
	"container/heap"
	"context"
	"runtime"
	"sort"
	"sync"
	"time"

	"github.com/qdrant/go-client/qdrant"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// Query runs an exact nearest-neighbour search, or, without a query,
// lists points in id order with score 1.0 (as Qdrant does). offset skips
// ranked results; payloads and vectors are off unless asked for.
func (ps *pointsService) Query(_ context.Context, req *qdrant.QueryPoints) (*qdrant.QueryResponse, error) {
	start := time.Now()
	if req.Limit != nil && req.GetLimit() == 0 {
		return nil, errLimitZero()
	}
	if len(req.GetPrefetch()) > 0 {
		return nil, status.Error(codes.InvalidArgument, "qdranttest: prefetch is unsupported by the stand-in")
	}
	var input *qdrant.VectorInput
	switch q := req.GetQuery().GetVariant().(type) {
	case nil:
	case *qdrant.Query_Nearest:
		input = q.Nearest
	default:
		return nil, status.Error(codes.InvalidArgument, "qdranttest: only nearest queries are supported by the stand-in")
	}
	c, err := ps.s.collection(req.GetCollectionName())
	if err != nil {
		return nil, err
	}
	pred, err := compileFilter(req.GetFilter())
	if err != nil {
		return nil, err
	}
	psel := compilePayloadSelector(req.GetWithPayload(), false)
	vsel, err := c.vectorSelector(req.GetWithVectors())
	if err != nil {
		return nil, err
	}
	limit := uint64(defaultLimit)
	if req.Limit != nil {
		limit = req.GetLimit()
	}
	offset := req.GetOffset()

	c.mu.RLock()
	defer c.mu.RUnlock()
	var hits []hit
	if input == nil {
		hits = c.idOrder(pred, int(offset+limit))
	} else {
		using := req.GetUsing()
		vs, ok := c.spaces[using]
		if !ok {
			return nil, status.Errorf(codes.InvalidArgument, "Wrong input: Not existing vector name error: %s", using)
		}
		q, err := c.queryVector(input, using, vs)
		if err != nil {
			return nil, err
		}
		var spred predicate // nil skips filtering altogether
		if req.GetFilter() != nil {
			spred = pred
		}
		hits = c.search(vs, vs.metric.preprocess(q), spred, req.ScoreThreshold, int(offset+limit))
	}
	out := &qdrant.QueryResponse{Result: []*qdrant.ScoredPoint{}}
	for i := int(offset); i < len(hits); i++ {
		h := hits[i]
		out.Result = append(out.Result, &qdrant.ScoredPoint{
			Id:      c.slots[h.slot].id.proto(),
			Payload: psel.apply(c.slots[h.slot].payload),
			Score:   h.score,
			Version: c.slots[h.slot].version,
			Vectors: c.vectorsOut(h.slot, vsel),
		})
	}
	out.Time = since(start)
	return out, nil
}

// queryVector resolves the query input: a dense vector, or the stored
// vector of a point given by id. Must hold mu (read).
func (c *collection) queryVector(in *qdrant.VectorInput, using string, vs *vectorSpace) ([]float32, error) {
	var q []float32
	switch v := in.GetVariant().(type) {
	case *qdrant.VectorInput_Dense:
		q = v.Dense.GetData()
	case *qdrant.VectorInput_Id:
		k, err := parsePointID(v.Id)
		if err != nil {
			return nil, err
		}
		s, ok := c.index[k]
		if !ok || !vs.has(s) {
			return nil, status.Errorf(codes.NotFound, "Not found: No point with id %s found", k)
		}
		return vs.get(s), nil
	default:
		return nil, status.Error(codes.InvalidArgument, "qdranttest: only dense query vectors are supported by the stand-in")
	}
	if len(q) != vs.size {
		return nil, errDim(vs.size, len(q))
	}
	return q, nil
}

// hit is a ranked point: score is the reported score, rank orders hits
// (higher first) in every metric.
type hit struct {
	slot  int32
	id    pointKey
	rank  float32
	score float32
}

// better orders hits; ties, which Qdrant leaves unordered, go by id so the
// stand-in is deterministic.
func better(a, b hit) bool {
	if a.rank != b.rank {
		return a.rank > b.rank
	}
	return a.id.less(b.id)
}

// worstFirst is a bounded min-heap keeping the best k hits.
type worstFirst []hit

func (h worstFirst) Len() int           { return len(h) }
func (h worstFirst) Less(i, j int) bool { return better(h[j], h[i]) }
func (h worstFirst) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *worstFirst) Push(x any)        { *h = append(*h, x.(hit)) }
func (h *worstFirst) Pop() any {
	old := *h
	x := old[len(old)-1]
	*h = old[:len(old)-1]
	return x
}

func (h *worstFirst) offer(x hit, k int) {
	if len(*h) < k {
		heap.Push(h, x)
		return
	}
	if better(x, (*h)[0]) {
		(*h)[0] = x
		heap.Fix(h, 0)
	}
}

// parallelFrom is the collection size above which a search is split over
// the available cores.
const parallelFrom = 16384

// search scores every live point holding the vector and keeps the best k.
// Must hold mu (read).
func (c *collection) search(vs *vectorSpace, q []float32, pred predicate, threshold *float32, k int) []hit {
	if k <= 0 {
		return nil
	}
	n := len(c.slots)
	parts := 1
	if n >= parallelFrom {
		parts = runtime.GOMAXPROCS(0)
	}
	heaps := make([]worstFirst, parts)
	var wg sync.WaitGroup
	for p := 0; p < parts; p++ {
		lo, hi := n*p/parts, n*(p+1)/parts
		wg.Add(1)
		go func(p, lo, hi int) {
			defer wg.Done()
			h := make(worstFirst, 0, k)
			var view pointView
			m := vs.metric
			for i := lo; i < hi; i++ {
				sl := &c.slots[i]
				if !sl.live || !vs.has(int32(i)) {
					continue
				}
				if pred != nil {
					view = pointView{id: sl.id, payload: sl.payload, c: c, slot: int32(i)}
					if !pred(&view) {
						continue
					}
				}
				r := m.internal(q, vs.get(int32(i)))
				x := hit{slot: int32(i), id: sl.id, rank: r}
				if len(h) == k && !better(x, h[0]) {
					continue
				}
				x.score = m.external(r)
				if threshold != nil && !m.passes(x.score, *threshold) {
					continue
				}
				h.offer(x, k)
			}
			heaps[p] = h
		}(p, lo, hi)
	}
	wg.Wait()
	all := heaps[0]
	for _, h := range heaps[1:] {
		all = append(all, h...)
	}
	sort.Slice(all, func(i, j int) bool { return better(all[i], all[j]) })
	if len(all) > k {
		all = all[:k]
	}
	return all
}

// idOrder lists the first k matching points in id order, score 1.0.
// Must hold mu (read).
func (c *collection) idOrder(pred predicate, k int) []hit {
	var out []hit
	for _, id := range c.sortedIDs() {
		if len(out) >= k {
			break
		}
		s := c.index[id]
		if pred(c.view(s)) {
			out = append(out, hit{slot: s, id: id, rank: 1, score: 1})
		}
	}
	return out
}
