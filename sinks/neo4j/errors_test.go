package neo4j

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"

	"github.com/neo4j/neo4j-go-driver/v5/neo4j"

	"github.com/ragstream/ragstream/pipeline"
)

func TestClassify(t *testing.T) {
	t.Parallel()
	code := func(c string) error { return &neo4j.Neo4jError{Code: c, Msg: "server says no"} }
	for _, tc := range []struct {
		name string
		err  error
		want pipeline.Class
	}{
		{"deadlock", code("Neo.TransientError.Transaction.DeadlockDetected"), pipeline.ClassTransient},
		{"lock_acquisition_timeout", code("Neo.TransientError.Transaction.LockAcquisitionTimeout"), pipeline.ClassTransient},
		{"database_unavailable", code("Neo.TransientError.General.DatabaseUnavailable"), pipeline.ClassTransient},
		{"out_of_memory", code("Neo.TransientError.General.MemoryPoolOutOfMemoryError"), pipeline.ClassTransient},
		{"tx_timed_out", code("Neo.ClientError.Transaction.TransactionTimedOutClientConfiguration"), pipeline.ClassTransient},
		{"tx_terminated", code("Neo.ClientError.Transaction.Terminated"), pipeline.ClassTransient},
		{"not_a_leader", code("Neo.ClientError.Cluster.NotALeader"), pipeline.ClassTransient},
		{"database_error", code("Neo.DatabaseError.General.UnknownError"), pipeline.ClassTransient},
		{"authorization_expired", code("Neo.ClientError.Security.AuthorizationExpired"), pipeline.ClassTransient},
		{"unknown_code", code("Neo.ClientError.Something.New"), pipeline.ClassTransient},
		{"unauthorized", code("Neo.ClientError.Security.Unauthorized"), pipeline.ClassSinkDown},
		{"forbidden", code("Neo.ClientError.Security.Forbidden"), pipeline.ClassSinkDown},
		{"rate_limited_auth", code("Neo.ClientError.Security.AuthenticationRateLimit"), pipeline.ClassSinkDown},
		{"database_not_found", code("Neo.ClientError.Database.DatabaseNotFound"), pipeline.ClassSinkDown},
		{"syntax_error", code("Neo.ClientError.Statement.SyntaxError"), pipeline.ClassSinkDown},
		{"semantic_error", code("Neo.ClientError.Statement.SemanticError"), pipeline.ClassSinkDown},
		{"parameter_missing", code("Neo.ClientError.Statement.ParameterMissing"), pipeline.ClassSinkDown},
		{"read_only", code("Neo.ClientError.General.ForbiddenReadOnlyDatabase"), pipeline.ClassSinkDown},
		{"constraint_violation", code("Neo.ClientError.Schema.ConstraintValidationFailed"), pipeline.ClassPermanent},
		{"type_error", code("Neo.ClientError.Statement.TypeError"), pipeline.ClassPermanent},
		{"argument_error", code("Neo.ClientError.Statement.ArgumentError"), pipeline.ClassPermanent},
		{"wrapped_code", fmt.Errorf("run: %w", code("Neo.ClientError.Security.Unauthorized")), pipeline.ClassSinkDown},
		{"connectivity", &neo4j.ConnectivityError{Inner: io.EOF}, pipeline.ClassTransient},
		{"usage", &neo4j.UsageError{Message: "closed session"}, pipeline.ClassSinkDown},
		{"invalid_auth", &neo4j.InvalidAuthenticationError{}, pipeline.ClassSinkDown},
		{"token_expired", &neo4j.TokenExpiredError{Code: "Neo.ClientError.Security.TokenExpired"}, pipeline.ClassSinkDown},
		{"retries_exhausted_on_deadlock", &neo4j.TransactionExecutionLimit{Cause: "timeout", Errors: []error{code("Neo.TransientError.Transaction.DeadlockDetected")}}, pipeline.ClassTransient},
		{"retries_ended_on_syntax", &neo4j.TransactionExecutionLimit{Cause: "x", Errors: []error{code("Neo.ClientError.Statement.SyntaxError")}}, pipeline.ClassSinkDown},
		{"deadline", context.DeadlineExceeded, pipeline.ClassTransient},
		{"canceled", context.Canceled, pipeline.ClassTransient},
		{"unknown", errors.New("something odd"), pipeline.ClassTransient},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := classify("merge entities", tc.err)
			if got := pipeline.ClassOf(err); got != tc.want {
				t.Errorf("class %s, want %s", got, tc.want)
			}
			if !errors.Is(err, tc.err) {
				t.Errorf("classified error %v does not wrap the cause", err)
			}
			if !strings.HasPrefix(err.Error(), "neo4j merge entities: ") {
				t.Errorf("message %q does not name the step", err)
			}
		})
	}
	if classify("x", nil) != nil {
		t.Error("classify(nil) is not nil")
	}
	if !pipeline.IsCanceled(classify("x", context.Canceled)) {
		t.Error("a classified cancellation is no longer recognisable")
	}
}
