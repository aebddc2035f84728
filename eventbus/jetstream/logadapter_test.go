package jetstream

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"
)

func TestServerLogLevels(t *testing.T) {
	tests := []struct {
		name, msg, want string
	}{
		{"a route's first failed dial is a warning", "Error trying to connect to route (attempt 1): dial tcp: refused", "WARN"},
		{"later retries are debug", "Error trying to connect to route (attempt 17): dial tcp: refused", "DEBUG"},
		{"other errors stay errors", "JetStream out of resources", "ERROR"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var buf bytes.Buffer
			a := &slogAdapter{l: slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug}))}
			a.Errorf("%s", tt.msg)
			if !strings.Contains(buf.String(), "level="+tt.want) {
				t.Fatalf("logged %q, want level %s", buf.String(), tt.want)
			}
		})
	}
}
