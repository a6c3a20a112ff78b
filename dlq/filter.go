package dlq

import (
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/ragstream/ragstream/config"
	"github.com/ragstream/ragstream/pipeline"
)

// Classes are the values of ragstream.error.class.
var Classes = []string{pipeline.ErrorClassDecode, pipeline.ErrorClassSchema, pipeline.ErrorClassStoreRejected}

// Filter selects DLQ records. The zero Filter selects every record.
type Filter struct {
	// Class selects one ragstream.error.class (decode, schema,
	// store_rejected); empty selects all.
	Class string
	// Stage selects one ragstream.error.stage (decode, validate,
	// sink.neo4j, sink.qdrant); empty selects all.
	Stage string
	// Since and Until select by ragstream.failed_at: Since <= failed_at <
	// Until; a zero bound is open. With either bound set, a record
	// without a readable failed_at is not selected.
	Since, Until time.Time
	// Partitions restricts the read to these DLQ partitions; nil reads all.
	Partitions []int32
	// Offsets restricts the read to this range of offsets in every DLQ
	// partition read; nil reads each partition from its start.
	Offsets *OffsetRange
}

// OffsetRange is an inclusive range of offsets; To < 0 means no upper end.
type OffsetRange struct {
	From, To int64
}

// String renders r as ParseOffsets reads it.
func (r OffsetRange) String() string {
	if r.To < 0 {
		return strconv.FormatInt(r.From, 10) + "-"
	}
	return strconv.FormatInt(r.From, 10) + "-" + strconv.FormatInt(r.To, 10)
}

// Validate reports a filter that can select nothing by mistake: an unknown
// class, an empty time window, a reversed offset range. Field names are
// the CLI's flags.
func (f Filter) Validate() error {
	var errs []error
	if f.Class != "" && !slices.Contains(Classes, f.Class) {
		errs = append(errs, fmt.Errorf("class: %q is not one of %s", f.Class, strings.Join(Classes, ", ")))
	}
	if !f.Since.IsZero() && !f.Until.IsZero() && !f.Since.Before(f.Until) {
		errs = append(errs, fmt.Errorf("since/until: since %s is not before until %s",
			f.Since.Format(time.RFC3339), f.Until.Format(time.RFC3339)))
	}
	for _, p := range f.Partitions {
		if p < 0 {
			errs = append(errs, fmt.Errorf("partition: %d is negative", p))
		}
	}
	if r := f.Offsets; r != nil {
		if r.From < 0 {
			errs = append(errs, fmt.Errorf("offsets: start %d is negative", r.From))
		}
		if r.To >= 0 && r.To < r.From {
			errs = append(errs, fmt.Errorf("offsets: end %d is before start %d", r.To, r.From))
		}
	}
	return errors.Join(errs...)
}

// Match reports whether e passes the filter's header conditions (the
// partition and offset conditions are applied by the read itself).
func (f Filter) Match(e *Entry) bool {
	if f.Class != "" && e.Class != f.Class {
		return false
	}
	if f.Stage != "" && e.Stage != f.Stage {
		return false
	}
	if !f.Since.IsZero() || !f.Until.IsZero() {
		if e.FailedAt.IsZero() {
			return false
		}
		if !f.Since.IsZero() && e.FailedAt.Before(f.Since) {
			return false
		}
		if !f.Until.IsZero() && !e.FailedAt.Before(f.Until) {
			return false
		}
	}
	return true
}

// ParseOffsets reads an offset range: "a-b" (inclusive), "a-" (from a on)
// or "a" (just a).
func ParseOffsets(s string) (OffsetRange, error) {
	s = strings.TrimSpace(s)
	num := func(part, what string) (int64, error) {
		n, err := strconv.ParseInt(strings.TrimSpace(part), 10, 64)
		if err != nil || n < 0 {
			return 0, fmt.Errorf("%q: %s %q is not a non-negative integer (want a-b, a- or a)", s, what, part)
		}
		return n, nil
	}
	from, to, dash := strings.Cut(s, "-")
	a, err := num(from, "start")
	if err != nil {
		return OffsetRange{}, err
	}
	if !dash {
		return OffsetRange{From: a, To: a}, nil
	}
	if strings.TrimSpace(to) == "" {
		return OffsetRange{From: a, To: -1}, nil
	}
	b, err := num(to, "end")
	if err != nil {
		return OffsetRange{}, err
	}
	if b < a {
		return OffsetRange{}, fmt.Errorf("%q: end %d is before start %d", s, b, a)
	}
	return OffsetRange{From: a, To: b}, nil
}

// ParseTime reads a time bound: RFC 3339 ("2026-01-08T12:00:00Z"), a date
// ("2026-01-08", midnight UTC), or a duration back from now ("90m", "2h",
// "7d").
func ParseTime(s string, now time.Time) (time.Time, error) {
	s = strings.TrimSpace(s)
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return t, nil
	}
	if t, err := time.Parse(time.DateOnly, s); err == nil {
		return t, nil
	}
	if d, err := config.ParseDuration(s); err == nil && d >= 0 {
		return now.Add(-d.Duration()), nil
	}
	return time.Time{}, fmt.Errorf("%q is neither RFC 3339 (2026-01-08T12:00:00Z), a date (2026-01-08) nor a duration ago (2h, 7d)", s)
}
