package config

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Duration is a time.Duration that reads as a Go duration ("50ms", "1h30m")
// or with a leading whole number of days ("7d", "1d12h"), since retention
// periods are spoken of in days. A bare 0 is zero; any other number needs a
// unit, so "5" is an error rather than five nanoseconds.
type Duration time.Duration

// Duration returns d as a time.Duration.
func (d Duration) Duration() time.Duration { return time.Duration(d) }

// ParseDuration parses s as Duration's UnmarshalText does.
func ParseDuration(s string) (Duration, error) {
	t := strings.TrimSpace(s)
	if t == "" {
		return 0, fmt.Errorf("invalid duration %q: empty", s)
	}
	if t == "0" {
		return 0, nil
	}
	neg := false
	if t[0] == '-' || t[0] == '+' {
		neg = t[0] == '-'
		t = t[1:]
	}
	var total time.Duration
	if i := strings.IndexByte(t, 'd'); i > 0 && allDigits(t[:i]) {
		days, err := strconv.ParseInt(t[:i], 10, 64)
		const maxDays = int64(1<<63-1) / int64(24*time.Hour)
		if err != nil || days > maxDays {
			return 0, fmt.Errorf("invalid duration %q: too many days", s)
		}
		total = time.Duration(days) * 24 * time.Hour
		t = t[i+1:]
	}
	if t != "" {
		rest, err := time.ParseDuration(t)
		if err != nil || rest < 0 || (t[0] == '-' || t[0] == '+') {
			return 0, fmt.Errorf("invalid duration %q: want e.g. 500ms, 10s, 1h30m or 7d", s)
		}
		if total > 0 && rest > time.Duration(1<<63-1)-total {
			return 0, fmt.Errorf("invalid duration %q: too long", s)
		}
		total += rest
	}
	if neg {
		total = -total
	}
	return Duration(total), nil
}

func allDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return s != ""
}

// UnmarshalText implements encoding.TextUnmarshaler.
func (d *Duration) UnmarshalText(b []byte) error {
	v, err := ParseDuration(string(b))
	if err != nil {
		return err
	}
	*d = v
	return nil
}

// MarshalText implements encoding.TextMarshaler with String's form.
func (d Duration) MarshalText() ([]byte, error) { return []byte(d.String()), nil }

// String formats d so that ParseDuration reads it back: whole days as "7d",
// otherwise Go's form without zero trailing units ("1h30m", not "1h30m0s").
func (d Duration) String() string {
	td := time.Duration(d)
	const day = 24 * time.Hour
	if td != 0 && td%day == 0 {
		return strconv.FormatInt(int64(td/day), 10) + "d"
	}
	s := td.String()
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}
