package sandbox

import (
	"bytes"
	"context"
	"math/rand/v2"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"corral/eventbus"
)

// realPrompt is a prompt as bash prints it (ps1Prompt expanded).
const realPrompt = "\n###PS1JSON###\n{\n  \"pid\": \"\",\n  \"exit_code\": \"0\",\n  \"username\": \"u\",\n  \"hostname\": \"h\",\n" +
	"  \"working_dir\": \"/w\",\n  \"py_interpreter_path\": \"/usr/bin/python\"\n}\n###PS1END###\n"

// filterAll runs text through a fresh filter in one write, then flushes.
func filterAll(text []byte) []byte {
	var f ps1Filter
	out := f.write(nil, text)
	return f.flush(out)
}

// filterSplit runs text through a fresh filter in writes cut at cuts.
func filterSplit(text []byte, cuts []int) []byte {
	var f ps1Filter
	var out []byte
	prev := 0
	for _, c := range cuts {
		out = f.write(out, text[prev:c])
		prev = c
	}
	out = f.write(out, text[prev:])
	return f.flush(out)
}

func TestPS1FilterRemovesPromptsAndKeepsEverythingElse(t *testing.T) {
	cases := []struct{ name, in, want string }{
		{"output then prompt", "hello\n" + realPrompt, "hello\n"},
		{"output without newline then prompt", "no newline" + realPrompt, "no newline"},
		{"blank lines are output", "a\n\n\n" + realPrompt, "a\n\n\n"},
		{"prompt then the next command's output", realPrompt + "next\n" + realPrompt, "next\n"},
		{"two prompts in a row", realPrompt + realPrompt, ""},
		{"marker text that is not a prompt stays", "###PS1JSON###\n{}\nx\n" + realPrompt, "###PS1JSON###\n{}\nx\n"},
		{"marker after a newline with a non-JSON body stays", "\n###PS1JSON###\nnot json\n###PS1END###\nz", "\n###PS1JSON###\nnot json\n###PS1END###\nz"},
		{"marker inside a line is not a prompt", "x\n" + "a" + strings.TrimPrefix(realPrompt, "\n"), "x\na" + strings.TrimPrefix(realPrompt, "\n")},
		{"unterminated marker is output once the stream ends", "a\n###PS1JSON###\n{", "a\n###PS1JSON###\n{"},
		{"a fake begin before a real prompt keeps the fake", "\n###PS1JSON###\n" + realPrompt, "\n###PS1JSON###\n"},
		{"the newline after the prompt goes, the next one stays", realPrompt + "\nx", "\nx"},
		{"CR and other bytes are untouched", "a\r\x1b[0m\x00" + realPrompt, "a\r\x1b[0m\x00"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := string(filterAll([]byte(tc.in))); got != tc.want {
				t.Errorf("one write:\n got %q\nwant %q", got, tc.want)
			}
			// Every split in two, and byte by byte: the same output.
			in := []byte(tc.in)
			for i := 0; i <= len(in); i++ {
				if got := string(filterSplit(in, []int{i})); got != tc.want {
					t.Fatalf("split at %d:\n got %q\nwant %q", i, got, tc.want)
				}
			}
			cuts := make([]int, len(in))
			for i := range cuts {
				cuts[i] = i
			}
			if got := string(filterSplit(in, cuts)); got != tc.want {
				t.Errorf("byte by byte:\n got %q\nwant %q", got, tc.want)
			}
		})
	}
}

func TestPS1FilterHoldsOnlyWhatMayStartAPrompt(t *testing.T) {
	var f ps1Filter
	if got := string(f.write(nil, []byte("tick\n"))); got != "tick" {
		t.Errorf("a trailing newline may start a prompt: got %q, want it held", got)
	}
	if got := string(f.write(nil, []byte("tick\n"))); got != "\ntick" {
		t.Errorf("the held newline comes with the next output: got %q", got)
	}
	if got := string(f.write(nil, []byte("abc"))); got != "\nabc" {
		t.Errorf("got %q", got)
	}
	if got := string(f.write(nil, []byte(strings.Repeat("x", 100)))); got != strings.Repeat("x", 100) {
		t.Errorf("a line without newline passes at once: got %q", got)
	}
	// A candidate longer than maxPS1Body without an end marker is output.
	long := "\n###PS1JSON###\n" + strings.Repeat("y", maxPS1Body+len(ps1End))
	if got := string(f.write(nil, []byte(long))); got != long {
		t.Errorf("an over-long candidate is held: got %d bytes, want %d", len(got), len(long))
	}
}

// FuzzPS1Filter: any split of any stream filters the same as one write;
// real prompts put between arbitrary pieces (that carry no end marker) are
// removed exactly, leaving the pieces byte for byte.
func FuzzPS1Filter(f *testing.F) {
	for _, s := range []string{
		"", "tick\n", realPrompt, "a" + realPrompt + "b", "\n###PS1JSON###\n", "\n###PS1", "###PS1END###",
		"x\n###PS1JSON###\n{}\n###PS1END###\n", "\n\n\n", "\r\n###PS1JSON###\r\n", "\n###PS1JSON###\n{\"a\":",
	} {
		f.Add([]byte(s), uint64(len(s)))
	}
	f.Fuzz(func(t *testing.T, data []byte, seed uint64) {
		rng := rand.New(rand.NewPCG(seed, seed>>7))
		cuts := randomCuts(rng, len(data))
		whole := filterAll(data)
		if got := filterSplit(data, cuts); !bytes.Equal(got, whole) {
			t.Fatalf("split %v of %q:\n got %q\nwant %q", cuts, data, got, whole)
		}
		// Pieces around real prompts.
		clean := data
		for bytes.Contains(clean, []byte(ps1End)) { // one pass may join a new one
			clean = bytes.ReplaceAll(clean, []byte(ps1End), nil)
		}
		pieces := bytes.Split(clean, []byte{0xff})
		var in, want []byte
		for i, p := range pieces {
			if i > 0 {
				in = append(in, realPrompt...)
			}
			in = append(in, p...)
			want = append(want, p...)
		}
		if got := filterSplit(in, randomCuts(rng, len(in))); !bytes.Equal(got, want) {
			t.Fatalf("prompts between pieces %q:\n got %q\nwant %q", pieces, got, want)
		}
	})
}

func randomCuts(rng *rand.Rand, n int) []int {
	var cuts []int
	for at := 0; n > 0 && at < n; {
		at += 1 + rng.IntN(max(1, n/3+1))
		if at < n {
			cuts = append(cuts, at)
		}
	}
	return cuts
}

// The live output of real commands is exactly what they printed: no
// prompt, also with outputs that end right at a 64 KiB read or straddle
// it, and with big output.
func TestRunLiveOutputHasNoPrompts(t *testing.T) {
	t.Parallel()
	s := btSession(t, BashOptions{})
	var seq strings.Builder
	for i := 1; i <= 200000; i++ {
		seq.WriteString(strconv.Itoa(i))
		seq.WriteByte('\n')
	}
	cases := []struct{ command, want string }{
		{"echo hello", "hello\n"},
		{"printf 'no newline'", "no newline"},
		{`printf 'a\n\n\n'`, "a\n\n\n"},
		{"true", ""},
		{`printf '%s\n' '###PS1JSON###' '{}' x`, "###PS1JSON###\n{}\nx\n"},
		{"head -c 65535 /dev/zero | tr '\\0' x", strings.Repeat("x", 65535)},
		{"head -c 65536 /dev/zero | tr '\\0' x", strings.Repeat("x", 65536)},
		{"head -c 65537 /dev/zero | tr '\\0' x; echo", strings.Repeat("x", 65537) + "\n"},
		{"seq 1 200000", seq.String()},
		{"for i in 1 2 3; do echo $i; done", "1\n2\n3\n"},
	}
	for _, tc := range cases {
		var mu sync.Mutex
		var live bytes.Buffer
		timeout := 120.0
		ev := s.Run(context.Background(), &eventbus.CmdRunAction{Command: tc.command, Blocking: true}, &timeout, func(p []byte) {
			mu.Lock()
			live.Write(p)
			mu.Unlock()
		})
		if _, ok := ev.Observation.(*eventbus.CmdOutputObservation); !ok {
			t.Fatalf("%q: got %s %q", tc.command, ev.Type(), ev.Content)
		}
		mu.Lock()
		got := live.String()
		mu.Unlock()
		if got != tc.want {
			n := min(len(got), 200)
			t.Errorf("%q: live output is %d bytes starting %q, want %d bytes (exactly what it printed)", tc.command, len(got), got[:n], len(tc.want))
		}
		if strings.Contains(got, ps1End) {
			t.Errorf("%q: a prompt reached the live output", tc.command)
		}
	}
}

// BenchmarkPS1Filter measures the live filter on `seq`-like output read in
// 64 KiB pieces with a prompt every 1 MiB, against the copy every chunk
// costs anyway (the baseline, same run): ns per MiB of both and the ratio.
func BenchmarkPS1Filter(b *testing.B) {
	var text []byte
	for i := 1; len(text) < 4<<20; i++ {
		text = strconv.AppendInt(text, int64(i), 10)
		text = append(text, '\n')
		if i%150000 == 0 {
			text = append(text, realPrompt...)
		}
	}
	const piece = 64 << 10
	run := func(step func(dst, p []byte) []byte) time.Duration {
		dst := make([]byte, 0, piece+64)
		t0 := time.Now()
		for p := text; len(p) > 0; {
			n := min(piece, len(p))
			dst = step(dst[:0], p[:n])
			p = p[n:]
		}
		return time.Since(t0)
	}
	var filtered, copied time.Duration
	b.SetBytes(int64(len(text)))
	for range b.N {
		var f ps1Filter
		filtered += run(f.write)
		copied += run(func(dst, p []byte) []byte { return append(dst, p...) })
	}
	mib := float64(len(text)) / (1 << 20) * float64(b.N)
	b.ReportMetric(float64(filtered.Nanoseconds())/mib, "filter-ns/MiB")
	b.ReportMetric(float64(copied.Nanoseconds())/mib, "copy-ns/MiB")
	b.ReportMetric(float64(filtered)/float64(copied), "filter/copy")
}
