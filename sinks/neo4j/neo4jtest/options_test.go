package neo4jtest

import (
	"strings"
	"testing"
)

func TestOptionsValidate(t *testing.T) {
	tests := []struct {
		name    string
		opts    Options
		wantErr string
	}{
		{name: "no auth", opts: Options{}},
		{name: "auth with password", opts: Options{Auth: true, Password: "12345678"}},
		{name: "auth with short password", opts: Options{Auth: true, Password: "1234567"}, wantErr: "Options.Password: with Auth, want at least 8 characters, got 7"},
		{name: "auth without password", opts: Options{Auth: true}, wantErr: "Options.Password: with Auth"},
		{name: "password without auth", opts: Options{Password: "12345678"}, wantErr: "Options.Password is set but Options.Auth is false"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.opts.validate()
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("validate: %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("validate = %v, want an error containing %q", err, tt.wantErr)
			}
		})
	}
}
