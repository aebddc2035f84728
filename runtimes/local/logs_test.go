package local

import (
	"bufio"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"corral/runtimes"
)

func TestStampLineUsesTheSlogTimeOrTheLastOne(t *testing.T) {
	last := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	for _, tc := range []struct {
		name, in, want string
	}{
		{"slog line", "time=2026-12-01T17:22:00.123+01:00 level=INFO msg=hi\n", "2026-12-01T16:22:00.123Z level=INFO msg=hi\n"},
		{"plain line gets the last stamp", "listening on unix:///x.sock\n", "2026-01-02T03:04:05Z listening on unix:///x.sock\n"},
		{"bad time stays text", "time=yesterday level=INFO\n", "2026-01-02T03:04:05Z time=yesterday level=INFO\n"},
		{"time alone", "time=2026-12-01T17:22:00Z\n", "2026-12-01T17:22:00Z \n"},
		{"empty line", "\n", "2026-01-02T03:04:05Z \n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			l := last
			if got := string(stampLine([]byte(tc.in), &l)); got != tc.want {
				t.Errorf("stampLine(%q) = %q, want %q", tc.in, got, tc.want)
			}
		})
	}
}

func FuzzStampLine(f *testing.F) {
	f.Add([]byte("time=2026-12-01T17:22:00.123+01:00 level=INFO msg=hi\n"))
	f.Add([]byte("time=\n"))
	f.Add([]byte("time= x"))
	f.Fuzz(func(t *testing.T, line []byte) {
		last := time.Unix(0, 0)
		out := stampLine(line, &last)
		stamp, _, ok := strings.Cut(string(out), " ")
		if _, err := time.Parse(time.RFC3339Nano, stamp); !ok || err != nil {
			t.Fatalf("stampLine(%q) = %q: no leading timestamp (%v)", line, out, err)
		}
	})
}

func TestSeekTailStartsAtTheLastNLines(t *testing.T) {
	for _, tc := range []struct {
		name, data string
		n          int
		want       string
	}{
		{"last two", "a\nb\nc\n", 2, "b\nc\n"},
		{"more than there are", "a\nb\n", 5, "a\nb\n"},
		{"zero", "a\nb\n", 0, ""},
		{"unterminated last line counts", "a\nb\nc", 1, "c"},
		{"empty file", "", 3, ""},
		{"exactly all", "a\nb\n", 2, "a\nb\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "log")
			if err := os.WriteFile(path, []byte(tc.data), 0o600); err != nil {
				t.Fatal(err)
			}
			f, err := os.Open(path)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			if err := seekTail(f, tc.n); err != nil {
				t.Fatal(err)
			}
			got, _ := io.ReadAll(f)
			if string(got) != tc.want {
				t.Errorf("tail %d of %q = %q, want %q", tc.n, tc.data, got, tc.want)
			}
		})
	}
}

// TestLogsOfAKilledAgentEndAndOfADestroyedOneAreGone follows an agent's
// log, kills the agent from outside: the follow delivers what is there and
// ends by itself. After Destroy the log is runtimes.ErrNotFound.
func TestLogsOfAKilledAgentEndAndOfADestroyedOneAreGone(t *testing.T) {
	b := newBackend(t)
	ctx := context.Background()
	h, err := b.Start(ctx, runtimes.Spec{SessionID: "logs"})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Destroy(ctx, h)
	rc, err := b.Logs(ctx, h, runtimes.LogOptions{Follow: true, Tail: -1})
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	rd := bufio.NewReader(rc)
	var seen []string
	for !strings.Contains(strings.Join(seen, ""), "corral-agent started") {
		line, err := rd.ReadString('\n')
		if err != nil {
			t.Fatalf("followed log ended before the start line (%v): %q", err, seen)
		}
		seen = append(seen, line)
	}
	pid, _ := strconv.Atoi(h.ID)
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadAll(rd); err != nil { // ends once the agent is dead
		t.Fatalf("followed log of a killed agent: %v", err)
	}

	// Not following: what is left, then EOF.
	rc2, err := b.Logs(ctx, h, runtimes.LogOptions{Tail: 1})
	if err != nil {
		t.Fatal(err)
	}
	left, _ := io.ReadAll(rc2)
	rc2.Close()
	if n := strings.Count(string(left), "\n"); n != 1 {
		t.Errorf("tail 1 of a dead agent's log = %q, want one line", left)
	}

	if err := b.Destroy(ctx, h); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Logs(ctx, h, runtimes.LogOptions{Tail: -1}); !errors.Is(err, runtimes.ErrNotFound) {
		t.Fatalf("Logs after Destroy = %v, want runtimes.ErrNotFound", err)
	}
}

// TestClosingAFollowedLogEndsIt: Close of a log followed on a live agent
// returns, and reading after it fails instead of hanging.
func TestClosingAFollowedLogEndsIt(t *testing.T) {
	b := newBackend(t)
	ctx := context.Background()
	h, err := b.Start(ctx, runtimes.Spec{SessionID: "logs-close"})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Destroy(ctx, h)
	rc, err := b.Logs(ctx, h, runtimes.LogOptions{Follow: true, Tail: 0})
	if err != nil {
		t.Fatal(err)
	}
	if err := rc.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := rc.Read(make([]byte, 1)); err == nil {
		t.Fatal("Read after Close succeeded")
	}
}
