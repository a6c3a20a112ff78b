package config

import (
	"regexp"
	"strings"
)

// Environment variables that start with EnvPrefix but are not config, and
// ignored by Load (DESIGN.md §10).
const (
	// envTestPrefix starts the variables through which tests find real
	// services (see TestServices).
	envTestPrefix = EnvPrefix + "TEST_"
	// Kubernetes injects these for a Service named "ragstream"
	// (RAGSTREAM_SERVICE_HOST, RAGSTREAM_SERVICE_PORT, RAGSTREAM_PORT,
	// RAGSTREAM_PORT_8080_TCP_ADDR, …).
	envServicePrefix = EnvPrefix + "SERVICE_"
	envPortPrefix    = EnvPrefix + "PORT"
)

// serviceLink matches what Kubernetes injects for a Service named
// "ragstream-<x>" (an admin or metrics Service beside the workers), with the
// shape of the value it sets. Config variables always contain "__" and
// these never do, so no config variable, and no typo whose value does not
// look like a service link, is ignored.
var serviceLink = []struct{ name, value *regexp.Regexp }{
	{
		regexp.MustCompile(`^RAGSTREAM(?:_[A-Z0-9]+)+_SERVICE_HOST$`),
		regexp.MustCompile(`^[0-9a-fA-F.:]+$`),
	},
	{
		regexp.MustCompile(`^RAGSTREAM(?:_[A-Z0-9]+)+_SERVICE_PORT(?:_[A-Z0-9]+)*$`),
		regexp.MustCompile(`^[0-9]+$`),
	},
	{
		regexp.MustCompile(`^RAGSTREAM(?:_[A-Z0-9]+)+_PORT(?:_[0-9]+_(?:TCP|UDP|SCTP))?$`),
		regexp.MustCompile(`^(?:tcp|udp|sctp)://[0-9a-fA-F.:\[\]]+:[0-9]+$`),
	},
	{
		regexp.MustCompile(`^RAGSTREAM(?:_[A-Z0-9]+)+_PORT_[0-9]+_(?:TCP|UDP|SCTP)_PROTO$`),
		regexp.MustCompile(`^(?:tcp|udp|sctp)$`),
	},
	{
		regexp.MustCompile(`^RAGSTREAM(?:_[A-Z0-9]+)+_PORT_[0-9]+_(?:TCP|UDP|SCTP)_PORT$`),
		regexp.MustCompile(`^[0-9]+$`),
	},
	{
		regexp.MustCompile(`^RAGSTREAM(?:_[A-Z0-9]+)+_PORT_[0-9]+_(?:TCP|UDP|SCTP)_ADDR$`),
		regexp.MustCompile(`^[0-9a-fA-F.:]+$`),
	},
}

// ignoredEnv reports whether a RAGSTREAM_* variable is not config.
func ignoredEnv(name, value string) bool {
	if strings.HasPrefix(name, envTestPrefix) ||
		strings.HasPrefix(name, envServicePrefix) ||
		strings.HasPrefix(name, envPortPrefix) {
		return true
	}
	if strings.Contains(name, "__") {
		return false
	}
	for _, l := range serviceLink {
		if l.name.MatchString(name) && l.value.MatchString(value) {
			return true
		}
	}
	return false
}

// suggestEnv returns the config variable a mistyped name probably meant,
// or "".
func suggestEnv(name string) string {
	candidates := make([]string, 0, len(schema.fields))
	for _, f := range schema.fields {
		candidates = append(candidates, f.env)
	}
	return suggest(strings.ToUpper(name), candidates, "__", func(s string) string {
		return strings.ReplaceAll(s, "_", "")
	})
}

// suggestKey returns the key a mistyped key probably meant, or "".
func suggestKey(key string) string {
	candidates := make([]string, 0, len(schema.fields))
	for _, f := range schema.fields {
		candidates = append(candidates, f.key)
	}
	return suggest(strings.ToLower(key), candidates, ".", func(s string) string {
		return strings.NewReplacer(".", "", "_", "", "-", "").Replace(s)
	})
}

// suggest returns the candidate s probably meant, or "": first one equal
// to s once both are normalized (a "_" for "__", a misplaced separator),
// then the nearest sibling (same parent) whose last part is within half
// its length in edits ("adress" for "addr"), then any candidate within two
// edits (a typo in the section).
func suggest(s string, candidates []string, sep string, normalize func(string) string) string {
	ns := normalize(s)
	for _, c := range candidates {
		if normalize(c) == ns {
			return c
		}
	}
	parent, last := splitLast(s, sep)
	best, bestDist := "", max(1, len(last)/2)+1
	for _, c := range candidates {
		cp, cl := splitLast(c, sep)
		if cp != parent {
			continue
		}
		if d := editDistance(last, cl); d < bestDist {
			best, bestDist = c, d
		}
	}
	if best != "" {
		return best
	}
	bestDist = 3
	for _, c := range candidates {
		if d := editDistance(s, c); d < bestDist {
			best, bestDist = c, d
		}
	}
	return best
}

func splitLast(s, sep string) (parent, last string) {
	if i := strings.LastIndex(s, sep); i >= 0 {
		return s[:i], s[i+len(sep):]
	}
	return "", s
}

// editDistance is the Levenshtein distance of a and b, in bytes.
func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}
