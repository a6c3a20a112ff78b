// Command testsummary reads `go test -json` on stdin and prints what a
// person (and CI) needs: one line per package as go test prints it, the
// whole output of every failed test, and a closing count line
// "N passed, N failed, N skipped". It exits 1 when a test or package failed,
// or when no test ran at all.
package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
)

type event struct {
	Action  string
	Package string
	Test    string
	Elapsed float64
	Output  string
}

type summary struct {
	passed, failed, skipped int
	pkgFailed               int
	output                  map[string][]string // package/test -> lines
	failedTests             []string
}

func main() {
	s, err := summarize(os.Stdin, os.Stdout)
	if err != nil {
		fmt.Fprintln(os.Stderr, "testsummary:", err)
		os.Exit(1)
	}
	fmt.Printf("%d passed, %d failed, %d skipped\n", s.passed, s.failed, s.skipped)
	if s.failed > 0 || s.pkgFailed > 0 || s.passed == 0 {
		os.Exit(1)
	}
}

func summarize(r io.Reader, w io.Writer) (*summary, error) {
	s := &summary{output: map[string][]string{}}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 1<<20), 16<<20)
	for sc.Scan() {
		line := sc.Bytes()
		var e event
		if len(line) == 0 || line[0] != '{' || json.Unmarshal(line, &e) != nil {
			// Build errors and other plain output: pass it through.
			fmt.Fprintln(w, string(line))
			continue
		}
		key := e.Package + " " + e.Test
		switch e.Action {
		case "output":
			if e.Test != "" {
				s.output[key] = append(s.output[key], e.Output)
			} else if isPackageLine(e.Output) {
				fmt.Fprint(w, e.Output)
			} else {
				s.output[key] = append(s.output[key], e.Output)
			}
		case "pass":
			if e.Test != "" {
				s.passed++
				delete(s.output, key)
			}
		case "skip":
			if e.Test != "" {
				s.skipped++
				delete(s.output, key)
			}
		case "fail":
			if e.Test != "" {
				s.failed++
				s.failedTests = append(s.failedTests, key)
				fmt.Fprint(w, strings.Join(s.output[key], ""))
				delete(s.output, key)
			} else {
				s.pkgFailed++
				// A package that failed without a failing test (build
				// error, panic in TestMain, timeout): show what it said.
				fmt.Fprint(w, strings.Join(s.output[key], ""))
			}
		}
	}
	if len(s.failedTests) > 0 {
		sort.Strings(s.failedTests)
		fmt.Fprintln(w, "failed tests:")
		for _, t := range s.failedTests {
			fmt.Fprintln(w, "  "+t)
		}
	}
	return s, sc.Err()
}

// isPackageLine reports go test's per-package result lines.
func isPackageLine(out string) bool {
	for _, p := range []string{"ok  \t", "FAIL\t", "?   \t", "--- FAIL", "FAIL\n", "PASS\n"} {
		if strings.HasPrefix(out, p) {
			return !strings.HasPrefix(out, "PASS\n") && !strings.HasPrefix(out, "FAIL\n")
		}
	}
	return false
}
