package agentwire

import (
	"bufio"
	"context"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"
)

// ringTexts strips the stamps off the ring's lines and checks each stamp.
func ringTexts(t testing.TB, r *LogRing, tail int) []string {
	t.Helper()
	lines, _, _ := r.since(r.start(tail))
	out := make([]string, 0, len(lines))
	for _, l := range lines {
		stamp, text, ok := strings.Cut(strings.TrimSuffix(l, "\n"), " ")
		if _, err := time.Parse(time.RFC3339Nano, stamp); !ok || err != nil {
			t.Fatalf("line %q has no RFC 3339 stamp: %v", l, err)
		}
		out = append(out, text)
	}
	return out
}

func TestLogRingKeepsStampedLinesWithinItsBounds(t *testing.T) {
	tests := []struct {
		name       string
		lines, max int
		writes     []string
		tail       int
		want       []string
	}{
		{"slog time becomes the stamp", 10, 0, []string{"time=2026-01-02T03:04:05.5Z level=INFO msg=hi\n"}, -1, []string{"level=INFO msg=hi"}},
		{"a line split over writes is one line", 10, 0, []string{"par", "tial\nnext\n"}, -1, []string{"partial", "next"}},
		{"an unfinished line waits", 10, 0, []string{"done\nhalf"}, -1, []string{"done"}},
		{"oldest lines go beyond max lines", 2, 0, []string{"a\nb\nc\n"}, -1, []string{"b", "c"}},
		{"oldest lines go beyond max bytes", 10, 100, []string{"aaaaaaaaaa\nbbbbbbbbbb\ncccccccccc\n"}, -1, []string{"bbbbbbbbbb", "cccccccccc"}},
		{"tail gives the last n", 10, 0, []string{"a\nb\nc\n"}, 2, []string{"b", "c"}},
		{"tail 0 gives none", 10, 0, []string{"a\n"}, 0, []string{}},
		{"tail beyond the ring gives all", 10, 0, []string{"a\nb\n"}, 50, []string{"a", "b"}},
		{"a bad time= is text", 10, 0, []string{"time=yesterday msg=x\n"}, -1, []string{"time=yesterday msg=x"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := NewLogRing(tc.lines, tc.max)
			for _, w := range tc.writes {
				if n, err := r.Write([]byte(w)); n != len(w) || err != nil {
					t.Fatalf("Write = %d, %v", n, err)
				}
			}
			got := ringTexts(t, r, tc.tail)
			if strings.Join(got, "|") != strings.Join(tc.want, "|") {
				t.Fatalf("lines = %q, want %q", got, tc.want)
			}
		})
	}
	r := NewLogRing(0, 0)
	_, _ = r.Write([]byte("time=2026-01-02T03:04:05.5+02:00 msg=x\n"))
	lines, _, _ := r.since(0)
	if want := "2026-01-02T01:04:05.5Z msg=x\n"; lines[0] != want {
		t.Fatalf("stamped %q, want UTC %q", lines[0], want)
	}
	_, _ = r.Write([]byte(strings.Repeat("x", 3*maxLogLine) + "\n"))
	if lines, _, _ := r.since(1); len(lines[0]) > maxLogLine+40 {
		t.Fatalf("a runaway line is kept whole (%d bytes)", len(lines[0]))
	}
}

// getLogs asks the agent at a for its log with query q.
func getLogs(t *testing.T, ctx context.Context, c *Client, token, q string) *http.Response {
	t.Helper()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://agent"+PathLogs+q, nil)
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := c.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	return resp
}

func TestLogsEndpointServesTailFollowAndEndsWithTheServer(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	ring := NewLogRing(0, 0)
	log := slog.New(slog.NewTextHandler(ring, nil))
	for i := range 5 {
		log.Info("before", "i", i)
	}
	a := startAgent(t, "unix", WithLogRing(ring))
	c := dial(t, a.addr)

	resp := getLogs(t, ctx, c, testToken, "?tail=2")
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || strings.Count(string(body), "\n") != 2 || !strings.Contains(string(body), "i=3") || !strings.Contains(string(body), "i=4") {
		t.Fatalf("tail=2: %d %q", resp.StatusCode, body)
	}

	resp = getLogs(t, ctx, c, testToken, "?follow=true&tail=0")
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	log.Info("while following")
	if !sc.Scan() || !strings.Contains(sc.Text(), "while following") || strings.Contains(sc.Text(), "i=4") {
		t.Fatalf("followed line = %q, %v", sc.Text(), sc.Err())
	}
	if _, err := time.Parse(time.RFC3339Nano, strings.Fields(sc.Text())[0]); err != nil {
		t.Fatalf("followed line %q has no stamp: %v", sc.Text(), err)
	}
	log.Info("last words")
	_ = a.srv.Close() // the agent shutting down ends the stream after its last lines
	var rest []string
	for sc.Scan() {
		rest = append(rest, sc.Text())
	}
	if sc.Err() != nil || len(rest) != 1 || !strings.Contains(rest[0], "last words") {
		t.Fatalf("after close: lines %q, err %v; want the last line then a clean end", rest, sc.Err())
	}
}

func TestLogsEndpointRefusesBadRequests(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	withRing := startAgent(t, "unix", WithLogRing(NewLogRing(0, 0)))
	without := startAgent(t, "unix")
	tests := []struct {
		name   string
		a      *agent
		token  string
		query  string
		status int
		want   string
	}{
		{"no token", withRing, "", "", 401, "token"},
		{"wrong token", withRing, "nope", "", 401, "token"},
		{"tail not a number", withRing, testToken, "?tail=ten", 400, "tail="},
		{"tail below -1", withRing, testToken, "?tail=-5", 400, "tail="},
		{"follow not a bool", withRing, testToken, "?follow=maybe", 400, "follow="},
		{"a server without a ring", without, testToken, "", 404, "keeps no log"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			resp := getLogs(t, ctx, dial(t, tc.a.addr), tc.token, tc.query)
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != tc.status || !strings.Contains(string(body), tc.want) {
				t.Fatalf("%s: %d %s, want %d mentioning %q", tc.query, resp.StatusCode, body, tc.status, tc.want)
			}
		})
	}
}

// FuzzLogRingWrite: whatever is written, every kept line is one stamped
// line within the bounds, and the ring holds no more than it may.
func FuzzLogRingWrite(f *testing.F) {
	for _, s := range []string{"time=2026-01-02T03:04:05Z level=INFO msg=x\n", "a\nb", "time=\n", "time=2026-01-02T03:04:05Z", "\n\n\n", "time=2026-13-45T99:99:99Z x\n"} {
		f.Add([]byte(s), 3)
	}
	f.Fuzz(func(t *testing.T, data []byte, cut int) {
		r := NewLogRing(4, 256)
		cut = min(max(cut, 0), len(data))
		_, _ = r.Write(data[:cut])
		_, _ = r.Write(data[cut:])
		lines, next, _ := r.since(0)
		if len(lines) > 4 || next < uint64(len(lines)) {
			t.Fatalf("%d lines kept, next %d", len(lines), next)
		}
		size := 0
		for _, l := range lines {
			size += len(l)
			if strings.Count(l, "\n") != 1 || !strings.HasSuffix(l, "\n") {
				t.Fatalf("line %q is not one line", l)
			}
			if _, err := time.Parse(time.RFC3339Nano, strings.SplitN(l, " ", 2)[0]); err != nil {
				t.Fatalf("line %q: %v", l, err)
			}
		}
		if len(lines) > 1 && size > 256 {
			t.Fatalf("%d bytes kept in %d lines, bound 256", size, len(lines))
		}
	})
}
