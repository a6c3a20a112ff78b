package config

import (
	"strings"
	"testing"
	"time"
)

func TestParseDuration(t *testing.T) {
	tests := []struct {
		in   string
		want time.Duration
		str  string // String of the result
	}{
		{"50ms", 50 * time.Millisecond, "50ms"},
		{"10s", 10 * time.Second, "10s"},
		{"90s", 90 * time.Second, "1m30s"},
		{"1h", time.Hour, "1h"},
		{"1h30m", 90 * time.Minute, "1h30m"},
		{"7d", 7 * 24 * time.Hour, "7d"},
		{"1d12h", 36 * time.Hour, "36h"},
		{"1d", 24 * time.Hour, "1d"},
		{" 2d ", 48 * time.Hour, "2d"},
		{"0", 0, "0s"},
		{"0s", 0, "0s"},
		{"-5ms", -5 * time.Millisecond, "-5ms"},
		{"-1d", -24 * time.Hour, "-1d"},
		{"1.5h", 90 * time.Minute, "1h30m"},
	}
	for _, tc := range tests {
		t.Run(tc.in, func(t *testing.T) {
			d, err := ParseDuration(tc.in)
			if err != nil {
				t.Fatal(err)
			}
			eq(t, "value", d.Duration(), tc.want)
			eq(t, "String", d.String(), tc.str)
			back, err := ParseDuration(d.String())
			if err != nil || back != d {
				t.Errorf("String %q reads back as %v, %v", d.String(), back, err)
			}
		})
	}
	for _, in := range []string{"", "5", "abc", "d", "1.5d", "7days", "1d-2h", "2 weeks", "99999999999999d", "1d+1h"} {
		t.Run("bad "+in, func(t *testing.T) {
			if d, err := ParseDuration(in); err == nil {
				t.Errorf("ParseDuration(%q) = %v, want an error", in, d)
			} else if !strings.Contains(err.Error(), "invalid duration") {
				t.Errorf("error %q does not say invalid duration", err)
			}
		})
	}
}

func TestParseByteSize(t *testing.T) {
	tests := []struct {
		in   string
		want ByteSize
		str  string
	}{
		{"1048576", 1 << 20, "1MiB"},
		{"0", 0, "0B"},
		{"512", 512, "512B"},
		{"8MiB", 8 << 20, "8MiB"},
		{"8mib", 8 << 20, "8MiB"},
		{"8 MiB", 8 << 20, "8MiB"},
		{"512KB", 512000, "500KiB"},
		{"1MB", 1000000, "1MB"},
		{"1000B", 1000, "1KB"},
		{"1.5MiB", 3 << 19, "1536KiB"},
		{"1.5KB", 1500, "1500B"},
		{"2GiB", 2 << 30, "2GiB"},
		{"1TB", 1e12, "1TB"},
		{"4kib", 4096, "4KiB"},
	}
	for _, tc := range tests {
		t.Run(tc.in, func(t *testing.T) {
			b, err := ParseByteSize(tc.in)
			if err != nil {
				t.Fatal(err)
			}
			eq(t, "value", b, tc.want)
			eq(t, "String", b.String(), tc.str)
			back, err := ParseByteSize(b.String())
			if err != nil || back != b {
				t.Errorf("String %q reads back as %v, %v", b.String(), back, err)
			}
		})
	}
	for _, in := range []string{"", "MiB", "-1", "-1KiB", "+5", "1.5B", "8XB", "eight", "9999999TiB", "NaN", "1e400"} {
		t.Run("bad "+in, func(t *testing.T) {
			if b, err := ParseByteSize(in); err == nil {
				t.Errorf("ParseByteSize(%q) = %v, want an error", in, b)
			} else if !strings.Contains(err.Error(), "invalid size") {
				t.Errorf("error %q does not say invalid size", err)
			}
		})
	}
}

func TestTextMarshalling(t *testing.T) {
	var d Duration
	if err := d.UnmarshalText([]byte("3d")); err != nil {
		t.Fatal(err)
	}
	txt, _ := d.MarshalText()
	eq(t, "Duration text", string(txt), "3d")
	var b ByteSize
	if err := b.UnmarshalText([]byte("2MiB")); err != nil {
		t.Fatal(err)
	}
	txt, _ = b.MarshalText()
	eq(t, "ByteSize text", string(txt), "2MiB")
	eq(t, "Int", b.Int(), 2<<20)
	eq(t, "Bytes", b.Bytes(), int64(2<<20))
	if err := b.UnmarshalText([]byte("x")); err == nil {
		t.Error("UnmarshalText accepted x")
	}
}
