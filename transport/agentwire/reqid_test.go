package agentwire

import (
	"context"
	"errors"
	"strings"
	"testing"
)

func TestExecuteRequestIDs(t *testing.T) {
	a := startAgent(t, "unix")
	c := dial(t, a.addr)
	tests := []struct {
		name    string
		id      string
		wantErr string // substring; "" = success
	}{
		{"an empty id gets a fresh one", "", ""},
		{"a caller-chosen id is accepted", "sess-42:ev.7_a", ""},
		{"an id of 128 characters is accepted", strings.Repeat("a", MaxReqIDLen), ""},
		{"an id of 129 characters is refused", strings.Repeat("b", MaxReqIDLen+1), "at most 128"},
		{"an id with a slash is refused", "sess/1", "only letters, digits"},
		{"an id with a space is refused", "sess 1", "only letters, digits"},
		{"an id with a non-ASCII letter is refused", "séance", "only letters, digits"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := a.exec.total.Load()
			obs, err := c.Execute(context.Background(), tt.id, runAction("echo ok"), nil)
			if tt.wantErr == "" {
				if err != nil || obs.Content != "ok\n" {
					t.Fatalf("got %v, %v; want output ok", obs, err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("got error %v, want one saying %q", err, tt.wantErr)
			}
			if a.exec.total.Load() != before {
				t.Fatal("an invalid id reached the executor")
			}
		})
	}
}

func TestSameRequestIDTwiceOnOneClientIsRefusedWhileInFlight(t *testing.T) {
	a := startAgent(t, "unix")
	c := dial(t, a.addr)
	started := make(chan struct{})
	first := make(chan error, 1)
	go func() {
		var once bool
		_, err := c.Execute(context.Background(), "twice", runAction("echo go; sleep 0.5"), func(uint64, []byte) {
			if !once {
				once = true
				close(started)
			}
		})
		first <- err
	}()
	<-started
	if _, err := c.Execute(context.Background(), "twice", runAction("echo go; sleep 0.5"), nil); !errors.Is(err, ErrRequestInFlight) {
		t.Fatalf("second call with the same id: got %v, want ErrRequestInFlight", err)
	}
	if err := <-first; err != nil {
		t.Fatalf("first call: %v", err)
	}
	// Once the first call returned, the id answers from the stored result.
	obs, err := c.Execute(context.Background(), "twice", runAction("echo go; sleep 0.5"), nil)
	if err != nil || obs.Content != "go\n" {
		t.Fatalf("after the first call: %v %v", obs, err)
	}
	if n := a.exec.count("echo go; sleep 0.5"); n != 1 {
		t.Fatalf("ran %d times, want 1", n)
	}
}
