package testenv

import (
	"fmt"
	"slices"
	"strings"
	"testing"
)

// recorder stands in for a test so that Fatalf and Skipf can be observed
// instead of ending the calling test.
type recorder struct {
	testing.TB
	fatal, skip string
}

func (r *recorder) Helper() {}

func (r *recorder) Fatalf(format string, args ...any) { r.fatal = fmt.Sprintf(format, args...) }

func (r *recorder) Skipf(format string, args ...any) { r.skip = fmt.Sprintf(format, args...) }

func TestAddr(t *testing.T) {
	const v = "RAGSTREAM_TEST_TESTENV_PROBE"
	tests := []struct {
		name      string
		value     string
		ci        string
		want      string
		wantFatal bool
		wantSkip  bool
	}{
		{name: "set", value: "127.0.0.1:1234", want: "127.0.0.1:1234"},
		{name: "set under CI", value: "127.0.0.1:1234", ci: "true", want: "127.0.0.1:1234"},
		{name: "trimmed", value: "  bolt://127.0.0.1:7 ", want: "bolt://127.0.0.1:7"},
		{name: "unset outside CI skips", wantSkip: true},
		{name: "unset under CI fails", ci: "true", wantFatal: true},
		{name: "unset under CI=1 fails", ci: "1", wantFatal: true},
		{name: "blank under CI fails", value: "   ", ci: "true", wantFatal: true},
		{name: "unset with CI=false skips", ci: "false", wantSkip: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Setenv(v, tt.value)
			t.Setenv("CI", tt.ci)
			r := &recorder{TB: t}
			got := Addr(r, v)
			if got != tt.want {
				t.Errorf("Addr = %q, want %q", got, tt.want)
			}
			if (r.fatal != "") != tt.wantFatal {
				t.Errorf("fatal = %q, want a fatal: %v", r.fatal, tt.wantFatal)
			}
			if (r.skip != "") != tt.wantSkip {
				t.Errorf("skip = %q, want a skip: %v", r.skip, tt.wantSkip)
			}
			// Whoever reads the message must learn which variable and how to set it.
			for _, msg := range []string{r.fatal, r.skip} {
				if msg == "" {
					continue
				}
				for _, part := range []string{v, "make up"} {
					if !strings.Contains(msg, part) {
						t.Errorf("message %q does not mention %q", msg, part)
					}
				}
			}
		})
	}
}

func TestKafkaBrokers(t *testing.T) {
	tests := []struct {
		name      string
		value     string
		want      []string
		wantFatal bool
	}{
		{name: "one", value: "127.0.0.1:19092", want: []string{"127.0.0.1:19092"}},
		{name: "list with blanks", value: " a:1, b:2 ,", want: []string{"a:1", "b:2"}},
		{name: "only commas", value: ",,", wantFatal: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Setenv(KafkaBrokersVar, tt.value)
			t.Setenv("CI", "true")
			r := &recorder{TB: t}
			got := KafkaBrokers(r)
			if !slices.Equal(got, tt.want) {
				t.Errorf("KafkaBrokers = %q, want %q", got, tt.want)
			}
			if (r.fatal != "") != tt.wantFatal {
				t.Errorf("fatal = %q, want a fatal: %v", r.fatal, tt.wantFatal)
			}
		})
	}
}
