package event_test

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/ragstream/ragstream/internal/sample"
	"github.com/ragstream/ragstream/pipeline/event"
)

// benchRecords are generated upserts (384-dim vectors, about 4.8 KB each,
// a fifth of them with Python-style \u-escaped text).
func benchRecords(b *testing.B) ([]sample.Record, int) {
	b.Helper()
	recs := sample.Generate(1000, sample.Options{Seed: 7, EscapeNonASCII: 0.2})
	n := 0
	for _, r := range recs {
		n += len(r.Value)
	}
	return recs, n / len(recs)
}

// reportRecords reports records/s (wall clock, the figure asked for) and
// records/cpu-s (per CPU-second the process used, GC included), which a
// loaded machine does not distort. cpu0 is cpuTime() before the loop.
func reportRecords(b *testing.B, cpu0 time.Duration) {
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "records/s")
	if used := cpuTime() - cpu0; cpu0 > 0 && used > 0 {
		b.ReportMetric(float64(b.N)/used.Seconds(), "records/cpu-s")
	}
}

// BenchmarkDecode measures decoding with full validation, the path every
// record takes: `go test -bench Decode -cpu 1 ./pipeline/...`.
func BenchmarkDecode(b *testing.B) {
	recs, avg := benchRecords(b)
	dec := event.NewDecoder(event.DefaultLimits(384))
	b.Run("Decode", func(b *testing.B) {
		b.SetBytes(int64(avg))
		b.ReportAllocs()
		i := 0
		cpu0 := cpuTime()
		for b.Loop() {
			r := recs[i%len(recs)]
			i++
			if _, err := dec.Decode(r.Key, r.Value); err != nil {
				b.Fatal(err)
			}
		}
		reportRecords(b, cpu0)
	})
	b.Run("DecodeInto", func(b *testing.B) {
		b.SetBytes(int64(avg))
		b.ReportAllocs()
		var ev event.Event
		i := 0
		cpu0 := cpuTime()
		for b.Loop() {
			r := recs[i%len(recs)]
			i++
			if err := dec.DecodeInto(r.Key, r.Value, &ev); err != nil {
				b.Fatal(err)
			}
		}
		reportRecords(b, cpu0)
	})
}

// stdEvent is the contract as encoding/json would decode it, for a
// reference figure without any validation.
type stdEvent struct {
	Op       string         `json:"op"`
	ID       string         `json:"id"`
	Tenant   string         `json:"tenant"`
	DocID    string         `json:"doc_id"`
	Text     *string        `json:"text"`
	Vector   []float32      `json:"vector"`
	Metadata map[string]any `json:"metadata"`
	Entities []struct {
		ID    string         `json:"id"`
		Type  string         `json:"type"`
		Name  string         `json:"name"`
		Props map[string]any `json:"props"`
	} `json:"entities"`
	Relations []struct {
		From  string         `json:"from"`
		To    string         `json:"to"`
		Type  string         `json:"type"`
		Props map[string]any `json:"props"`
	} `json:"relations"`
	Version *int64 `json:"version"`
	TS      string `json:"ts"`
}

// BenchmarkStdlibUnmarshal is encoding/json on the same records, without
// validation: the baseline the decoder is measured against. Its name does
// not match -bench Decode.
func BenchmarkStdlibUnmarshal(b *testing.B) {
	recs, avg := benchRecords(b)
	b.SetBytes(int64(avg))
	b.ReportAllocs()
	i := 0
	cpu0 := cpuTime()
	for b.Loop() {
		var ev stdEvent
		if err := json.Unmarshal(recs[i%len(recs)].Value, &ev); err != nil {
			b.Fatal(err)
		}
		i++
	}
	reportRecords(b, cpu0)
}
