package qdranttest

import (
	"math"

	"github.com/qdrant/go-client/qdrant"
)

// metric holds Qdrant's score arithmetic for one distance
// (lib/segment/src/spaces/metric.rs): all in float32. Internally every
// metric ranks "higher is better"; Euclid and Manhattan rank by the negated
// distance and report the distance itself, as Qdrant's postprocess does.
type metric struct {
	dist qdrant.Distance
}

// preprocess is applied to stored and query vectors alike. Cosine vectors
// are normalised (a vector of length below f32 epsilon is kept as it is),
// so stored vectors read back normalised. v is not modified.
func (m metric) preprocess(v []float32) []float32 {
	if m.dist != qdrant.Distance_Cosine {
		return v
	}
	return m.preprocessInPlace(append([]float32(nil), v...))
}

// preprocessInPlace is preprocess overwriting v, for vectors the server
// owns (decoded from a request).
func (m metric) preprocessInPlace(v []float32) []float32 {
	if m.dist != qdrant.Distance_Cosine {
		return v
	}
	var sum float32
	for _, x := range v {
		sum += x * x
	}
	length := float32(math.Sqrt(float64(sum)))
	if length < float32Epsilon {
		return v
	}
	for i, x := range v {
		v[i] = x / length
	}
	return v
}

// internal scores a stored vector against a preprocessed query; higher is better.
func (m metric) internal(q, v []float32) float32 {
	switch m.dist {
	case qdrant.Distance_Euclid:
		return -sqDist(q, v)
	case qdrant.Distance_Manhattan:
		return -absDist(q, v)
	}
	return dot(q, v)
}

// external converts an internal score into the score Qdrant reports.
func (m metric) external(s float32) float32 {
	switch m.dist {
	case qdrant.Distance_Euclid:
		return float32(math.Sqrt(float64(-s)))
	case qdrant.Distance_Manhattan:
		return -s
	}
	return s
}

// passes applies score_threshold to a reported score. Qdrant keeps only
// strictly better scores: score > t for similarities, score < t for
// distances (an equal score is dropped; checked against qdrant-edge).
func (m metric) passes(external, threshold float32) bool {
	switch m.dist {
	case qdrant.Distance_Euclid, qdrant.Distance_Manhattan:
		return external < threshold
	}
	return external > threshold
}

// float32Epsilon is Rust's f32::EPSILON.
const float32Epsilon = 1.1920929e-07

func dot(a, b []float32) float32 {
	n := len(a)
	if len(b) < n {
		n = len(b)
	}
	a, b = a[:n], b[:n]
	var s0, s1, s2, s3 float32
	i := 0
	for ; i+4 <= n; i += 4 {
		s0 += a[i] * b[i]
		s1 += a[i+1] * b[i+1]
		s2 += a[i+2] * b[i+2]
		s3 += a[i+3] * b[i+3]
	}
	for ; i < n; i++ {
		s0 += a[i] * b[i]
	}
	return (s0 + s1) + (s2 + s3)
}

func sqDist(a, b []float32) float32 {
	n := len(a)
	if len(b) < n {
		n = len(b)
	}
	a, b = a[:n], b[:n]
	var s0, s1, s2, s3 float32
	i := 0
	for ; i+4 <= n; i += 4 {
		d0, d1, d2, d3 := a[i]-b[i], a[i+1]-b[i+1], a[i+2]-b[i+2], a[i+3]-b[i+3]
		s0 += d0 * d0
		s1 += d1 * d1
		s2 += d2 * d2
		s3 += d3 * d3
	}
	for ; i < n; i++ {
		d := a[i] - b[i]
		s0 += d * d
	}
	return (s0 + s1) + (s2 + s3)
}

func absDist(a, b []float32) float32 {
	n := len(a)
	if len(b) < n {
		n = len(b)
	}
	var s float32
	for i := 0; i < n; i++ {
		d := a[i] - b[i]
		if d < 0 {
			d = -d
		}
		s += d
	}
	return s
}
