// Package httpjson writes and reads the JSON bodies of the admin port: every
// answer is JSON, every error is {"error": "..."} with a 4xx status when the
// request is at fault, and reading a request body never turns bad input into
// a 500.
package httpjson

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strings"
)

// ContentType is the Content-Type of every JSON answer.
const ContentType = "application/json"

// Write sends v as JSON with status. An encoding failure (a value that
// cannot be marshalled: a programming error) becomes a 500 with a JSON
// error body, since nothing has been written yet.
func Write(w http.ResponseWriter, status int, v any) {
	body, err := json.Marshal(v)
	if err != nil {
		status = http.StatusInternalServerError
		body = []byte(`{"error":"internal error: encoding the response failed"}`)
	}
	h := w.Header()
	h.Set("Content-Type", ContentType)
	h.Set("X-Content-Type-Options", "nosniff")
	h.Del("Content-Length")
	w.WriteHeader(status)
	_, _ = w.Write(append(body, '\n'))
}

// ErrorBody is the body of every error answer.
type ErrorBody struct {
	Error string `json:"error"`
}

// Error sends {"error": msg} with status.
func Error(w http.ResponseWriter, status int, msg string) {
	Write(w, status, ErrorBody{Error: msg})
}

// Problem is an error that knows its HTTP status: what Decode returns, and
// what handlers may return for Fail to send.
type Problem struct {
	Status int
	Msg    string
}

func (p *Problem) Error() string { return p.Msg }

// Problemf returns a Problem with a formatted message.
func Problemf(status int, format string, args ...any) *Problem {
	return &Problem{Status: status, Msg: fmt.Sprintf(format, args...)}
}

// Fail sends err: a *Problem (anywhere in its chain) with its status and
// message, anything else as a 500 "internal error" — the message of an
// unexpected error is for the log, not for the client.
func Fail(w http.ResponseWriter, err error) {
	if p, ok := errors.AsType[*Problem](err); ok {
		Error(w, p.Status, p.Msg)
		return
	}
	Error(w, http.StatusInternalServerError, "internal error")
}

// Decode reads one JSON value from r's body into v. Every failure is a
// *Problem: 415 when the Content-Type is given and is not JSON, 413 when
// the body is larger than the admin port's limit, 400 for an empty body,
// malformed JSON, a value of the wrong type (naming the field), an unknown
// field, or trailing data.
func Decode(r *http.Request, v any) error {
	if ct := r.Header.Get("Content-Type"); ct != "" {
		mt, _, err := mime.ParseMediaType(ct)
		if err != nil || (mt != "application/json" && !strings.HasSuffix(mt, "+json")) {
			return Problemf(http.StatusUnsupportedMediaType, "content type %q is not application/json", ct)
		}
	}
	if r.Body == nil {
		return Problemf(http.StatusBadRequest, "empty request body")
	}
	dec := json.NewDecoder(r.Body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return decodeProblem(err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		if err != nil {
			return decodeProblem(err)
		}
		return Problemf(http.StatusBadRequest, "request body holds more than one JSON value")
	}
	return nil
}

func decodeProblem(err error) *Problem {
	if mbe, ok := errors.AsType[*http.MaxBytesError](err); ok {
		return Problemf(http.StatusRequestEntityTooLarge, "request body larger than %d bytes", mbe.Limit)
	}
	if syn, ok := errors.AsType[*json.SyntaxError](err); ok {
		return Problemf(http.StatusBadRequest, "malformed JSON at byte %d: %v", syn.Offset, syn)
	}
	if te, ok := errors.AsType[*json.UnmarshalTypeError](err); ok {
		field := te.Field
		if field == "" {
			field = "(body)"
		}
		return Problemf(http.StatusBadRequest, "%s: want %s, got JSON %s", field, te.Type, te.Value)
	}
	switch {
	case errors.Is(err, io.EOF):
		return Problemf(http.StatusBadRequest, "empty request body")
	case errors.Is(err, io.ErrUnexpectedEOF):
		return Problemf(http.StatusBadRequest, "malformed JSON: unexpected end of body")
	}
	// encoding/json reports unknown fields and a few other problems only as
	// plain errors ("json: unknown field \"x\"").
	return Problemf(http.StatusBadRequest, "%s", strings.TrimPrefix(err.Error(), "json: "))
}
