package eventbus

import (
	"encoding/json"
	"strings"
	"testing"
	"time"
)

func benchObservation() *Event {
	user, host, cwd, py := "openhands", "0301ebbced1e", "/workspace", "/usr/bin/python3"
	o := NewObservation(5, "total 4\ndrwxr-xr-x 2 root root 4096 Jan 27 23:16 game\n-rw-r--r-- 1 root root 120 Jan 27 23:16 2048.py",
		&CmdOutputObservation{Command: "ls -l /workspace", Metadata: CmdOutputMetadata{ExitCode: 0, PID: -1,
			Username: &user, Hostname: &host, WorkingDir: &cwd, PyInterpreterPath: &py,
			Suffix: "\n[The command completed with exit code 0.]"}})
	o.ID, o.Source, o.Timestamp = 6, SourceAgent, "2025-01-27T23:16:57.600730"
	return o
}

func benchAction() *Event {
	a := NewAction(SourceAgent, &CmdRunAction{Command: "cd /workspace && python3 -m pytest -x tests/", Thought: "Run the tests to see what fails.",
		Blocking: true, ConfirmationState: Confirmed, SecurityRisk: RiskUnknown})
	a.ID, a.Timestamp = 5, "2025-01-27T23:16:56.951967"
	a.SetHardTimeout(120, true)
	return a
}

// benchLargeObservation is a run observation with 64 KiB of output, the
// size of a long build log.
func benchLargeObservation() *Event {
	o := benchObservation()
	o.Content = strings.Repeat("src/module/file_0042.go:17:2: imported and not used: \"fmt\"\t(αβγ)\n", 1000)[:64<<10]
	return o
}

// interleaved runs ours and baseline alternately, in blocks so that the
// clock is read rarely, and reports both per-op times and their ratio in
// the same run (ratio < 1: ours is faster). b.N counts pairs.
func interleaved(b *testing.B, unit string, ours, baseline func()) {
	b.Helper()
	const block = 64
	var tOurs, tBase time.Duration
	ours()
	baseline()
	b.ResetTimer()
	for done := 0; done < b.N; done += block {
		n := min(block, b.N-done)
		t := time.Now()
		for range n {
			ours()
		}
		tOurs += time.Since(t)
		t = time.Now()
		for range n {
			baseline()
		}
		tBase += time.Since(t)
	}
	b.StopTimer()
	o := float64(tOurs.Nanoseconds()) / float64(b.N)
	base := float64(tBase.Nanoseconds()) / float64(b.N)
	b.ReportMetric(o, "ns/"+unit)
	b.ReportMetric(base, "baseline_ns/"+unit)
	b.ReportMetric(o/base, "ratio_vs_baseline")
	b.ReportMetric(testing.AllocsPerRun(100, ours), "allocs/"+unit)
	b.ReportMetric(testing.AllocsPerRun(100, baseline), "baseline_allocs/"+unit)
}

// BenchmarkMarshalObservation compares the codec with encoding/json
// marshalling an equivalent map (the baseline a naive codec would pay), for
// a fresh event (payload encoded) and for one decoded from JSON (payload
// unchanged, written back as it came, as for observations from a sandbox).
func BenchmarkMarshalObservation(b *testing.B) {
	fresh := benchObservation()
	out, _ := Marshal(fresh)
	decoded, err := Unmarshal(out)
	if err != nil {
		b.Fatal(err)
	}
	var generic map[string]any
	if err := json.Unmarshal(out, &generic); err != nil {
		b.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		ev   *Event
	}{{"Fresh", fresh}, {"Decoded", decoded}} {
		b.Run(tc.name, func(b *testing.B) {
			interleaved(b, "encode", func() {
				if _, err := Marshal(tc.ev); err != nil {
					b.Fatal(err)
				}
			}, func() {
				if _, err := json.Marshal(generic); err != nil {
					b.Fatal(err)
				}
			})
		})
	}
}

// BenchmarkUnmarshal compares Unmarshal with encoding/json decoding the
// same bytes into a map[string]any, the cheapest generic decode (it keeps
// no types, no unknown keys and no legacy rules), interleaved in the same
// run: ratio_vs_baseline < 1 means the codec decodes faster than it.
func BenchmarkUnmarshal(b *testing.B) {
	for _, tc := range []struct {
		name string
		ev   *Event
	}{
		{"Observation", benchObservation()},
		{"Action", benchAction()},
		{"Observation64KiB", benchLargeObservation()},
	} {
		b.Run(tc.name, func(b *testing.B) {
			out, err := Marshal(tc.ev)
			if err != nil {
				b.Fatal(err)
			}
			interleaved(b, "decode", func() {
				if _, err := Unmarshal(out); err != nil {
					b.Fatal(err)
				}
			}, func() {
				var m map[string]any
				if err := json.Unmarshal(out, &m); err != nil {
					b.Fatal(err)
				}
			})
		})
	}
}
