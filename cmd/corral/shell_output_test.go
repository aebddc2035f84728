package main

import (
	"bytes"
	"fmt"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/creack/pty"
	"go.uber.org/goleak"

	"corral/actors"
)

func TestLiveOutputUnshownIsWhatTheObservationAddsToTheStreamedOutput(t *testing.T) {
	truncated := "head\n" + observationTruncated + "\ntail"
	tests := []struct {
		name     string
		live     liveOutput
		content  string
		wantRest string
		wantWhy  bool // a note says why the rest is printed after the fact
	}{
		{"all of it was streamed", liveOutput{text: []byte("tick 1\ntick 2\n")}, "tick 1\ntick 2", "", false},
		{"streamed output is compared cleaned as the observation is", liveOutput{text: []byte("\n a  \nb\t\n\n")}, "a\nb", "", false},
		{"invalid UTF-8 is compared as the observation replaces it", liveOutput{text: []byte("\xff ok\n")}, "\uFFFD ok", "", false},
		{"nothing streamed: an error or a notice is the whole content", liveOutput{}, "ERROR: No previous running command to interact with.", "ERROR: No previous running command to interact with.", false},
		{"nothing streamed and nothing to show", liveOutput{}, "", "", false},
		{"output printed while no command was waiting comes first in the content", liveOutput{text: []byte("b\n")}, "a\nb", "a", true},
		{"a truncated observation of output streamed whole adds nothing", liveOutput{text: []byte(strings.Repeat("x\n", 1000))}, truncated, "", false},
		{"output longer than what is kept, its end shown: nothing more", liveOutput{over: true, end: []byte("x\ntail\n")}, truncated, "", false},
		{"a different content is shown with a note", liveOutput{text: []byte("abc\n")}, "xyz", "xyz", true},
		{"lost chunks in the middle, end shown: nothing more", liveOutput{end: []byte("3\n4\n5\n"), lost: 1}, "1\n2\n3\n4\n5", "", false},
		{"the last chunks lost: the content after the last line shown", liveOutput{end: []byte("1\n2\n3\n4"), lost: 1}, "1\n2\n3\n4\n5\n6", "4\n5\n6", true},
		{"the last chunks lost from a truncated observation", liveOutput{end: []byte("x\n7\n8\n"), over: true}, "1\n" + observationTruncated + "\n7\n8\n9", "9", true},
		{"the last line shown is not in the content: the content's end", liveOutput{end: []byte("a\nq\nr\n"), lost: 3}, "1\n" + observationTruncated + "\n8\n9", "8\n9", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rest, why := tt.live.unshown(tt.content)
			if rest != tt.wantRest || (why != "") != tt.wantWhy {
				t.Fatalf("unshown(%q) = %q, %q; want %q, note %v", tt.content, rest, why, tt.wantRest, tt.wantWhy)
			}
		})
	}
}

func TestLiveOutputKeepStopsAtItsBoundButKeepsTheEnd(t *testing.T) {
	var l liveOutput
	l.keep(bytes.Repeat([]byte("x"), maxLiveKept))
	if l.over || len(l.text) != maxLiveKept {
		t.Fatalf("kept %d bytes, over %v; want %d, false", len(l.text), l.over, maxLiveKept)
	}
	l.keep([]byte("y"))
	if !l.over || l.text != nil {
		t.Fatalf("past the bound: kept %d bytes, over %v; want none, true", len(l.text), l.over)
	}
	l.keep([]byte("z"))
	if !l.over || l.text != nil {
		t.Fatal("once over the bound, nothing more is kept")
	}
	if !bytes.HasSuffix(l.end, []byte("xyz")) || len(l.end) < liveEndKept || len(l.end) > 2*liveEndKept {
		t.Fatalf("the end kept is %d bytes ending %q; want %d..%d bytes ending \"xyz\"", len(l.end), l.end[max(0, len(l.end)-3):], liveEndKept, 2*liveEndKept)
	}
}

func TestChunkPumpKeepsOrderSyncsDropsPastItsBacklogAndDiscards(t *testing.T) {
	defer verifyNoLeaks(t, goleak.IgnoreCurrent())
	src := make(chan actors.Chunk, 8)
	p := startChunkPump(src)
	big := bytes.Repeat([]byte("x"), maxBacklog/2)
	for seq := uint64(1); seq <= 3; seq++ { // the third does not fit
		src <- actors.Chunk{ActionID: 1, Seq: seq, Data: big}
	}
	src <- actors.Chunk{ActionID: 1, Seq: 4, Data: []byte("end")}
	p.sync() // everything sent before is queued (or dropped) now
	select {
	case <-p.ready:
	default:
		t.Fatal("chunks wait but ready holds no token")
	}
	var seqs []uint64
	for _, c := range p.take(0) {
		seqs = append(seqs, c.Seq)
	}
	if fmt.Sprint(seqs) != "[1 2]" {
		t.Fatalf("queued seqs %v, want [1 2]: the third is past the backlog, the fourth too while two wait", seqs)
	}
	src <- actors.Chunk{ActionID: 1, Seq: 5, Data: []byte("a")}
	src <- actors.Chunk{ActionID: 1, Seq: 6, Data: []byte("b")}
	p.sync()
	if got := p.take(1); len(got) != 1 || got[0].Seq != 5 {
		t.Fatalf("take(1) = %+v, want seq 5 alone", got)
	}
	select {
	case <-p.ready:
	default:
		t.Fatal("a chunk still waits but ready holds no token")
	}
	if got := p.take(0); len(got) != 1 || got[0].Seq != 6 {
		t.Fatalf("take(0) = %+v, want seq 6", got)
	}
	src <- actors.Chunk{ActionID: 1, Seq: 7, Data: []byte("c")}
	p.sync()
	p.discard() // Ctrl-C: what waits is dropped, as a terminal drops its pending output
	if got := p.take(0); len(got) != 0 {
		t.Fatalf("after discard, take(0) = %+v, want nothing", got)
	}
	close(src) // the subscription ends
	<-p.done
	p.sync() // returns once the pump is gone
}

func TestTermWriterPutsTheShellsLinesOnLinesOfTheirOwn(t *testing.T) {
	tests := []struct {
		name string
		dim  bool
		do   func(w *termWriter)
		want string
	}{
		{"a note after output without a newline starts a new line", false, func(w *termWriter) {
			w.output([]byte("abc"))
			w.note("[exit]")
		}, "abc\n[exit]\n"},
		{"a note after a complete line adds no blank line", false, func(w *termWriter) {
			w.output([]byte("abc\n"))
			w.note("[exit]")
		}, "abc\n[exit]\n"},
		{"a prompt after a prompt starts a new line", false, func(w *termWriter) {
			w.prompt("$ ")
			w.prompt("$ ")
		}, "$ \n$ "},
		{"newline ends only a begun line", false, func(w *termWriter) {
			w.newline()
			w.output([]byte("x"))
			w.newline()
			w.newline()
		}, "x\n"},
		{"notes are dimmed on a terminal", true, func(w *termWriter) {
			w.output([]byte("out"))
			w.note("[exit code 1]")
		}, "out\n\x1b[2m[exit code 1]\x1b[0m\n"},
		{"output is never dimmed", true, func(w *termWriter) {
			w.output([]byte("plain\n"))
		}, "plain\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var b bytes.Buffer
			w := &termWriter{w: &b, dim: tt.dim, bol: true}
			tt.do(w)
			if b.String() != tt.want {
				t.Fatalf("wrote %q, want %q", b.String(), tt.want)
			}
		})
	}
}

// collect reads events until a final one.
func collect(t *testing.T, ch <-chan typed) []typed {
	t.Helper()
	var got []typed
	for {
		select {
		case ev := <-ch:
			got = append(got, ev)
			if ev.final {
				return got
			}
		case <-time.After(time.Minute):
			t.Fatalf("no final event; got %+v", got)
		}
	}
}

func TestReadInputFromAPipeOrFile(t *testing.T) {
	tests := []struct {
		name  string
		input string
		want  []typed
	}{
		{"lines then the end", "a\nb\n", []typed{{line: "a"}, {line: "b"}, {eof: true, final: true}}},
		{"a last line without its newline is a line", "a\nb", []typed{{line: "a"}, {line: "b"}, {eof: true, final: true}}},
		{"CRLF line ends", "a\r\n\r\n", []typed{{line: "a"}, {line: ""}, {eof: true, final: true}}},
		{"empty input ends at once", "", []typed{{eof: true, final: true}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			done := make(chan struct{})
			defer close(done)
			got := collect(t, readInput(strings.NewReader(tt.input), false, done))
			if len(got) != len(tt.want) {
				t.Fatalf("got %+v, want %+v", got, tt.want)
			}
			for i := range got {
				if got[i] != tt.want[i] {
					t.Fatalf("event %d: got %+v, want %+v", i, got[i], tt.want[i])
				}
			}
		})
	}
}

func TestReadInputEndsWhenTheShellHasEnded(t *testing.T) {
	defer verifyNoLeaks(t, goleak.IgnoreCurrent())
	r, w := io.Pipe()
	done := make(chan struct{})
	ch := readInput(r, false, done)
	close(done) // the shell returned while the reader waits on stdin
	ended := make(chan struct{})
	go func() {
		// The reader, given a line nobody takes, must return; the pipe
		// write returns once it has read.
		_, _ = w.Write([]byte("late\n"))
		close(ended)
	}()
	<-ended
	select {
	case ev := <-ch:
		t.Fatalf("an event after the shell ended: %+v", ev)
	default:
	}
	w.Close()
}

// TestReadInputOnATerminal: Ctrl-D is an EOF that does not end reading
// (the shell decides what it means), and a hung-up terminal is final.
func TestReadInputOnATerminal(t *testing.T) {
	defer verifyNoLeaks(t, goleak.IgnoreCurrent())
	ptmx, tty, err := pty.Open()
	if err != nil {
		t.Fatal(err)
	}
	defer tty.Close()
	if !stdinIsTerminal(tty) {
		t.Fatal("a pty is not taken for a terminal")
	}
	done := make(chan struct{})
	defer close(done)
	ch := readInput(tty, true, done)
	next := func() typed {
		t.Helper()
		select {
		case ev := <-ch:
			return ev
		case <-time.After(time.Minute):
			t.Fatal("no input event")
		}
		return typed{}
	}
	steps := []struct {
		typed string
		want  typed
	}{
		{"echo a\n", typed{line: "echo a"}},
		{"\x04", typed{eof: true}},        // Ctrl-D at an empty line
		{"after\n", typed{line: "after"}}, // reading went on
		{"half\x04\x04", typed{line: "half"}},
	}
	for _, s := range steps {
		if _, err := ptmx.Write([]byte(s.typed)); err != nil {
			t.Fatal(err)
		}
		if ev := next(); ev != s.want {
			t.Fatalf("after typing %q: got %+v, want %+v", s.typed, ev, s.want)
		}
	}
	ptmx.Close() // the terminal goes away
	if ev := next(); !ev.eof || !ev.hangup || !ev.final {
		t.Fatalf("after a hangup: got %+v, want a final hangup", ev)
	}
}
