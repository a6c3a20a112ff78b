package config

import (
	"fmt"
	"math"
	"strconv"
	"strings"
)

// ByteSize is a number of bytes that reads as a plain number ("1048576") or
// with a unit: B, binary KiB MiB GiB TiB (powers of 1024) or decimal KB MB
// GB TB (powers of 1000), case-insensitive, optionally fractional ("1.5MiB")
// as long as the result is a whole number of bytes.
type ByteSize int64

// Byte units.
const (
	KiB ByteSize = 1 << 10
	MiB ByteSize = 1 << 20
	GiB ByteSize = 1 << 30
	TiB ByteSize = 1 << 40
)

// Bytes returns b as an int64.
func (b ByteSize) Bytes() int64 { return int64(b) }

// Int returns b as an int, clamped to the int range.
func (b ByteSize) Int() int {
	if int64(b) > int64(math.MaxInt) {
		return math.MaxInt
	}
	return int(b)
}

var byteUnits = []struct {
	name string
	size int64
}{
	{"TiB", 1 << 40}, {"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10},
	{"TB", 1e12}, {"GB", 1e9}, {"MB", 1e6}, {"KB", 1e3},
	{"B", 1},
}

// ParseByteSize parses s as ByteSize's UnmarshalText does.
func ParseByteSize(s string) (ByteSize, error) {
	t := strings.TrimSpace(s)
	num, mult := t, int64(1)
	for _, u := range byteUnits {
		if len(t) > len(u.name) && strings.EqualFold(t[len(t)-len(u.name):], u.name) {
			num, mult = strings.TrimSpace(t[:len(t)-len(u.name)]), u.size
			break
		}
	}
	if num == "" || num[0] == '+' || num[0] == '-' {
		return 0, fmt.Errorf("invalid size %q: want e.g. 512KiB, 8MiB or 1048576", s)
	}
	if n, err := strconv.ParseInt(num, 10, 64); err == nil {
		if n > math.MaxInt64/mult {
			return 0, fmt.Errorf("invalid size %q: too large", s)
		}
		return ByteSize(n * mult), nil
	}
	f, err := strconv.ParseFloat(num, 64)
	if err != nil || math.IsNaN(f) || math.IsInf(f, 0) {
		return 0, fmt.Errorf("invalid size %q: want e.g. 512KiB, 8MiB or 1048576", s)
	}
	v := f * float64(mult)
	if v >= math.MaxInt64 {
		return 0, fmt.Errorf("invalid size %q: too large", s)
	}
	if v != math.Trunc(v) {
		return 0, fmt.Errorf("invalid size %q: not a whole number of bytes", s)
	}
	return ByteSize(v), nil
}

// UnmarshalText implements encoding.TextUnmarshaler.
func (b *ByteSize) UnmarshalText(text []byte) error {
	v, err := ParseByteSize(string(text))
	if err != nil {
		return err
	}
	*b = v
	return nil
}

// MarshalText implements encoding.TextMarshaler with String's form.
func (b ByteSize) MarshalText() ([]byte, error) { return []byte(b.String()), nil }

// String formats b with the unit, binary or decimal, that divides it
// exactly into the smallest number ("8MiB", "1TB", "1500B"), so that
// ParseByteSize reads it back.
func (b ByteSize) String() string {
	n := int64(b)
	best := byteUnits[len(byteUnits)-1]
	if n != 0 {
		for _, u := range byteUnits {
			if n%u.size == 0 && n/u.size < n/best.size {
				best = u
			}
		}
	}
	return strconv.FormatInt(n/best.size, 10) + best.name
}
