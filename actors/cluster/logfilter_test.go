package cluster

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"
)

func TestProtoactorLogFilter(t *testing.T) {
	tests := []struct {
		name  string
		level slog.Level // the handler's level
		rec   slog.Level
		msg   string
		want  string // "" = dropped
	}{
		{"info is dropped", slog.LevelDebug, slog.LevelInfo, "gossip tick", ""},
		{"warnings pass", slog.LevelInfo, slog.LevelWarn, "sendGossipForMember failed", "level=WARN"},
		{"a failed health poll is debug", slog.LevelDebug, slog.LevelError, pollFailure, "level=DEBUG"},
		{"a failed health poll is dropped above debug", slog.LevelInfo, slog.LevelError, pollFailure, ""},
		{"other errors pass", slog.LevelInfo, slog.LevelError, "EndpointWriter lost connection", "level=ERROR"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var buf bytes.Buffer
			l := slog.New(warnFilter{slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: tt.level})})
			l.Log(t.Context(), tt.rec, tt.msg)
			got := buf.String()
			if tt.want == "" && got != "" || tt.want != "" && !strings.Contains(got, tt.want) {
				t.Fatalf("logged %q, want %q", got, tt.want)
			}
		})
	}
}
