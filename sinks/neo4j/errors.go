package neo4j

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/neo4j/neo4j-go-driver/v5/neo4j"

	"github.com/ragstream/ragstream/pipeline"
)

// classify marks an error of the driver by its cause (DESIGN.md §5):
//
//   - transient: timeouts, cancellations, connectivity, the driver's own
//     retry budget running out, Neo.TransientError.* (deadlocks among
//     partitions sharing entities), transaction timeouts and terminations,
//     internal database errors;
//   - sink down: the sink's own condition, which no retry soon and no record
//     can fix: authentication or authorization refused
//     (Neo.ClientError.Security.*), the database missing, a statement
//     ragstream got wrong (syntax, semantics, a missing parameter), driver
//     misuse;
//   - permanent: a row's content the database refuses (a constraint it
//     violates, a value of the wrong type).
//
// Anything else is transient: the pipeline retries it with a bounded budget
// and then treats the sink as down, since dead-lettering during an outage is
// the costlier mistake.
func classify(step string, err error) error {
	if err == nil {
		return nil
	}
	wrapped := fmt.Errorf("neo4j %s: %w", step, err)
	return classOf(err)(wrapped)
}

// classOf returns the marking function for err's cause.
func classOf(err error) func(error) error {
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return pipeline.Transient
	}
	var ie *internalError
	if errors.As(err, &ie) {
		return pipeline.SinkDown
	}
	var limit *neo4j.TransactionExecutionLimit
	if errors.As(err, &limit) {
		// The driver gave up retrying: judge by the last attempt's error,
		// except that a retryable last error stays transient.
		if n := len(limit.Errors); n > 0 && limit.Errors[n-1] != nil && !neo4j.IsRetryable(limit.Errors[n-1]) {
			return classOf(limit.Errors[n-1])
		}
		return pipeline.Transient
	}
	var authErr *neo4j.InvalidAuthenticationError
	var tokenErr *neo4j.TokenExpiredError
	if errors.As(err, &authErr) || errors.As(err, &tokenErr) {
		return pipeline.SinkDown
	}
	var dbErr *neo4j.Neo4jError
	if errors.As(err, &dbErr) {
		return classOfCode(dbErr.Code)
	}
	var connErr *neo4j.ConnectivityError
	if errors.As(err, &connErr) || neo4j.IsRetryable(err) {
		return pipeline.Transient
	}
	var usageErr *neo4j.UsageError
	if errors.As(err, &usageErr) {
		return pipeline.SinkDown
	}
	return pipeline.Transient
}

// classOfCode classifies a Neo4j status code (Neo.<Classification>.<Category>.<Title>).
func classOfCode(code string) func(error) error {
	switch code {
	case "Neo.ClientError.Security.AuthorizationExpired":
		return pipeline.Transient // the driver re-authenticates
	case "Neo.ClientError.Database.DatabaseNotFound",
		"Neo.ClientError.Statement.SyntaxError",
		"Neo.ClientError.Statement.SemanticError",
		"Neo.ClientError.Statement.ParameterMissing",
		"Neo.ClientError.Statement.NotSystemDatabaseError",
		"Neo.ClientError.Statement.UnsupportedOperationError",
		"Neo.ClientError.Request.Invalid",
		"Neo.ClientError.Request.InvalidFormat",
		"Neo.ClientError.Request.InvalidUsage",
		"Neo.ClientError.General.ForbiddenReadOnlyDatabase",
		"Neo.ClientError.General.WriteOnReadOnlyAccessDatabase":
		return pipeline.SinkDown
	case "Neo.ClientError.Schema.ConstraintValidationFailed",
		"Neo.ClientError.Statement.TypeError",
		"Neo.ClientError.Statement.ArgumentError",
		"Neo.ClientError.Statement.ArithmeticError",
		"Neo.ClientError.Statement.PropertyNotFound":
		return pipeline.Permanent
	}
	switch {
	case strings.HasPrefix(code, "Neo.ClientError.Security."):
		return pipeline.SinkDown
	case strings.HasPrefix(code, "Neo.TransientError."),
		strings.HasPrefix(code, "Neo.ClientError.Transaction."),
		strings.HasPrefix(code, "Neo.ClientError.Cluster."),
		strings.HasPrefix(code, "Neo.DatabaseError."):
		return pipeline.Transient
	}
	return pipeline.Transient
}

// followError carries the follower's error out of the transaction callback
// untouched: the follower classified it. It has no Unwrap on purpose, so the
// driver, which retries errors whose chain holds a retryable Neo4j error,
// never re-runs the transaction for the follower's sake.
type followError struct{ err error }

func (e *followError) Error() string { return e.err.Error() }

// internalError is the sink's own fault: a statement it could not build, or
// bookkeeping it stored and cannot read back. No retry and no record fixes
// it, so the sink is down.
type internalError struct{ err error }

func (e *internalError) Error() string { return e.err.Error() }
func (e *internalError) Unwrap() error { return e.err }
