package neo4j

import (
	"context"
	"strings"
	"testing"
	"time"
)

func TestNewConfig(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		cfg  Config
		err  string
	}{
		{"missing_uri", Config{}, "neo4j sink: uri is required"},
		{"bad_scheme", Config{URI: "http://127.0.0.1:7474"}, "neo4j sink: driver for http://127.0.0.1:7474"},
		{"bolt", Config{URI: "bolt://127.0.0.1:1"}, ""},
		{"routing_with_auth", Config{URI: "neo4j+s://db.example:7687", User: "neo4j", Password: "secret-pw"}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, err := New(tc.cfg)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("error %v, want one containing %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatalf("new: %v", err)
			}
			if s.cfg.Timeout != DefaultTimeout || s.cfg.TombstoneRetention != DefaultTombstoneRetention || s.cfg.SweepBatch != DefaultSweepBatch {
				t.Errorf("defaults not applied: %+v", s.cfg)
			}
			if err := s.Close(context.Background()); err != nil {
				t.Errorf("close: %v", err)
			}
		})
	}
	s := NewWithDriver(nil, Config{Timeout: time.Second})
	if s.cfg.Timeout != time.Second || s.Name() != "neo4j" {
		t.Errorf("NewWithDriver config %+v, name %q", s.cfg, s.Name())
	}
	if err := s.Close(context.Background()); err != nil {
		t.Errorf("closing a sink on a borrowed driver: %v", err)
	}
}
