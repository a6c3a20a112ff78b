package main

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"testing"
)

func runCLI(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errb bytes.Buffer
	code = realMain(args, &out, &errb)
	return code, out.String(), errb.String()
}

func TestVersion(t *testing.T) {
	code, out, errOut := runCLI(t, "version")
	if code != exitOK {
		t.Fatalf("exit %d, stderr %q", code, errOut)
	}
	if !strings.HasPrefix(out, "ragstream ") || !strings.Contains(out, runtime.Version()) {
		t.Fatalf("version line %q lacks name or Go version", out)
	}

	code, out, _ = runCLI(t, "version", "--json")
	if code != exitOK {
		t.Fatalf("--json exit %d", code)
	}
	var info map[string]string
	if err := json.Unmarshal([]byte(out), &info); err != nil {
		t.Fatalf("--json output %q: %v", out, err)
	}
	for _, k := range []string{"version", "commit", "go_version"} {
		if info[k] == "" {
			t.Errorf("--json lacks %q: %v", k, info)
		}
	}
}

func TestUsageErrors(t *testing.T) {
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"no command", nil, "usage: ragstream"},
		{"unknown command", []string{"frobnicate"}, `unknown command "frobnicate"`},
		{"unknown flag", []string{"version", "--nope"}, "flag provided but not defined"},
		{"probe without url", []string{"probe"}, "want exactly one URL"},
		{"probe bad url", []string{"probe", "ftp://x"}, "is not an http(s) URL"},
		{"probe bad timeout", []string{"probe", "--timeout", "0s", "http://127.0.0.1:1/"}, "--timeout must be positive"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, _, errOut := runCLI(t, tt.args...)
			if code != exitUsage {
				t.Fatalf("exit %d, want %d (stderr %q)", code, exitUsage, errOut)
			}
			if !strings.Contains(errOut, tt.want) {
				t.Fatalf("stderr %q lacks %q", errOut, tt.want)
			}
		})
	}
}

func TestHelpExitsZero(t *testing.T) {
	for _, args := range [][]string{{"--help"}, {"probe", "-h"}, {"version", "-h"}} {
		if code, _, errOut := runCLI(t, args...); code != exitOK {
			t.Errorf("%v: exit %d, stderr %q", args, code, errOut)
		}
	}
}

func TestProbe(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/ok":
			w.WriteHeader(http.StatusNoContent)
		case "/down":
			http.Error(w, `{"status":"not ready"}`, http.StatusServiceUnavailable)
		default:
			http.NotFound(w, r)
		}
	}))
	t.Cleanup(srv.Close)

	tests := []struct {
		path     string
		wantCode int
		wantErr  string
	}{
		{"/ok", exitOK, ""},
		{"/down", exitRuntime, "503"},
		{"/missing", exitRuntime, "404"},
	}
	for _, tt := range tests {
		t.Run(tt.path, func(t *testing.T) {
			code, _, errOut := runCLI(t, "probe", srv.URL+tt.path)
			if code != tt.wantCode {
				t.Fatalf("exit %d, want %d (stderr %q)", code, tt.wantCode, errOut)
			}
			if !strings.Contains(errOut, tt.wantErr) {
				t.Fatalf("stderr %q lacks %q", errOut, tt.wantErr)
			}
		})
	}

	t.Run("refused", func(t *testing.T) {
		l := httptest.NewServer(http.NotFoundHandler())
		addr := l.URL
		l.Close() // nothing listens there any more
		code, _, errOut := runCLI(t, "probe", "--timeout", "2s", addr+"/health/ready")
		if code != exitRuntime || !strings.Contains(errOut, "refused") {
			t.Fatalf("exit %d stderr %q, want exit 1 with connection refused", code, errOut)
		}
	})
}
