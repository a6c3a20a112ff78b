package qdrant

// SetSliceBytes sets the bound of one upsert request (upsertSliceBytes).
func SetSliceBytes(s *Sink, n int) { s.sliceBytes = n }
