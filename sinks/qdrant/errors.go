package qdrant

import (
	"context"
	"errors"
	"fmt"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/ragstream/ragstream/pipeline"
)

// classify maps a go-client error to the pipeline's classes by its gRPC
// code (STYLE.md, Errors):
//   - InvalidArgument: Qdrant refused the request's content (a point's
//     vector or payload) — permanent; the request as a whole is refused, so
//     finding the culprit is bisecting's job.
//   - Unauthenticated, PermissionDenied, NotFound (collection missing),
//     FailedPrecondition, Unimplemented: Qdrant's or our own condition — the
//     sink is down, nothing is dead-lettered.
//   - Unavailable, DeadlineExceeded, ResourceExhausted, Aborted, Internal,
//     Unknown and anything unclassified: transient.
func classify(op string, err error) error {
	if err == nil {
		return nil
	}
	wrapped := fmt.Errorf("qdrant %s: %w", op, err)
	if errors.Is(err, context.Canceled) {
		return wrapped
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return pipeline.Transient(wrapped)
	}
	st, ok := status.FromError(err) // unwraps the go-client's wrapping
	if !ok {
		return pipeline.Transient(wrapped)
	}
	switch st.Code() {
	case codes.InvalidArgument:
		return pipeline.Permanent(wrapped)
	case codes.Unauthenticated, codes.PermissionDenied, codes.NotFound,
		codes.FailedPrecondition, codes.Unimplemented, codes.AlreadyExists:
		return pipeline.SinkDown(wrapped)
	default:
		return pipeline.Transient(wrapped)
	}
}
