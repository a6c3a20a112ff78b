package httpjson

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func TestFail(t *testing.T) {
	for _, tc := range []struct {
		name   string
		err    error
		status int
		msg    string
	}{
		{"problem", Problemf(http.StatusConflict, "key %q exists", "k1"), 409, `key "k1" exists`},
		{"wrapped problem", fmt.Errorf("create key: %w", Problemf(http.StatusForbidden, "tenant mismatch")), 403, "tenant mismatch"},
		{"anything else is a 500 that says nothing", errors.New("dial tcp 10.0.0.7:7687: password rejected"), 500, "internal error"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rec := httptest.NewRecorder()
			Fail(rec, tc.err)
			var b ErrorBody
			if err := json.Unmarshal(rec.Body.Bytes(), &b); err != nil {
				t.Fatal(err)
			}
			if rec.Code != tc.status || b.Error != tc.msg || rec.Header().Get("Content-Type") != ContentType {
				t.Errorf("%d %q %q", rec.Code, b.Error, rec.Header().Get("Content-Type"))
			}
		})
	}
}

func TestWriteUnencodable(t *testing.T) {
	rec := httptest.NewRecorder()
	Write(rec, http.StatusOK, map[string]any{"f": func() {}})
	if rec.Code != 500 || !strings.Contains(rec.Body.String(), `"error"`) {
		t.Errorf("%d %s", rec.Code, rec.Body)
	}
}

func TestDecodeLimitIs413(t *testing.T) {
	rec := httptest.NewRecorder()
	req := httptest.NewRequest("POST", "/", strings.NewReader(`{"a":"`+strings.Repeat("x", 100)+`"}`))
	req.Body = http.MaxBytesReader(rec, req.Body, 10)
	var v map[string]string
	err := Decode(req, &v)
	var p *Problem
	if !errors.As(err, &p) || p.Status != 413 || p.Msg != "request body larger than 10 bytes" {
		t.Errorf("%v", err)
	}
}
