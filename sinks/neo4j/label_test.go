package neo4j

import (
	"strings"
	"testing"
)

func TestValidLabelIsLabelPattern(t *testing.T) {
	cases := []string{"", "A", "a", "_A", "0A", "Person", "PERSON_2", "Per son", "Per-son", "Pérson", "Person\n",
		"A" + strings.Repeat("b", 63), "A" + strings.Repeat("b", 64), "Z9_z", "\x00A", "A\x00", "AÄ", "`A`"}
	for c := range 128 {
		cases = append(cases, "A"+string(rune(c)), string(rune(c)))
	}
	for _, s := range cases {
		if got, want := validLabel(s), labelPattern.MatchString(s); got != want {
			t.Errorf("validLabel(%q) = %v, labelPattern says %v", s, got, want)
		}
	}
}

func FuzzValidLabelIsLabelPattern(f *testing.F) {
	for _, s := range []string{"Person", "a", "A b", "A" + strings.Repeat("x", 70)} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if got, want := validLabel(s), labelPattern.MatchString(s); got != want {
			t.Errorf("validLabel(%q) = %v, labelPattern says %v", s, got, want)
		}
	})
}
