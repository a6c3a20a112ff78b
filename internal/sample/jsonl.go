package sample

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"sort"
)

// The JSON Lines form of a stream, for documentation and tools: one record
// per line,
//
//	{"key":"acme/doc-0001#0","headers":{"correlation-id":"…"},"value":{…event…}}
//
// with "key" null for an unkeyed record and "value" null for a tombstone.
// The value is embedded byte for byte, so ReadJSONL returns the exact bytes
// Generate made.

type jsonlLine struct {
	Key     *string           `json:"key"`
	Headers map[string]string `json:"headers,omitempty"`
	Value   json.RawMessage   `json:"value"`
}

// WriteJSONL writes records as JSON Lines.
func WriteJSONL(w io.Writer, records []Record) error {
	bw := bufio.NewWriter(w)
	for i, r := range records {
		var line bytes.Buffer
		line.WriteString(`{"key":`)
		if r.Key == nil {
			line.WriteString("null")
		} else {
			k, err := json.Marshal(string(r.Key))
			if err != nil {
				return fmt.Errorf("record %d key: %w", i, err)
			}
			line.Write(k)
		}
		if len(r.Headers) > 0 {
			line.WriteString(`,"headers":{`)
			for j, h := range r.Headers {
				if j > 0 {
					line.WriteByte(',')
				}
				k, _ := json.Marshal(h.Key)
				v, _ := json.Marshal(string(h.Value))
				line.Write(k)
				line.WriteByte(':')
				line.Write(v)
			}
			line.WriteByte('}')
		}
		line.WriteString(`,"value":`)
		if r.Value == nil {
			line.WriteString("null")
		} else {
			if bytes.ContainsAny(r.Value, "\n\r") || !json.Valid(r.Value) {
				return fmt.Errorf("record %d: value is not single-line JSON", i)
			}
			line.Write(r.Value)
		}
		line.WriteString("}\n")
		if _, err := bw.Write(line.Bytes()); err != nil {
			return err
		}
	}
	return bw.Flush()
}

// ReadJSONL reads records written by WriteJSONL (or by hand in that form).
// Headers come back sorted by name.
func ReadJSONL(r io.Reader) ([]Record, error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64<<10), 16<<20)
	var out []Record
	for n := 1; sc.Scan(); n++ {
		raw := bytes.TrimSpace(sc.Bytes())
		if len(raw) == 0 {
			continue
		}
		var l jsonlLine
		if err := json.Unmarshal(raw, &l); err != nil {
			return nil, fmt.Errorf("line %d: %w", n, err)
		}
		var rec Record
		if l.Key != nil {
			rec.Key = []byte(*l.Key)
		}
		if v := bytes.TrimSpace(l.Value); len(v) > 0 && !bytes.Equal(v, []byte("null")) {
			rec.Value = append([]byte(nil), v...)
		}
		names := make([]string, 0, len(l.Headers))
		for k := range l.Headers {
			names = append(names, k)
		}
		sort.Strings(names)
		for _, k := range names {
			rec.Headers = append(rec.Headers, Header{Key: k, Value: []byte(l.Headers[k])})
		}
		out = append(out, rec)
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	return out, nil
}
