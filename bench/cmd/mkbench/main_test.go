package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const sampleBench = `goos: linux
goarch: amd64
pkg: corral/runtimes/sandbox
cpu: AMD EPYC
BenchmarkBashRoundTrip-2   	     200	   8933737 ns/op	      5218 session-p50-µs	     21088 session-p90-µs	         0.3419 session/spawn	     15261 spawn-p50-µs
BenchmarkNoisy-2
    bench_test.go:10: a log line
--- FAIL: BenchmarkBroken-2
PASS
ok  	corral/runtimes/sandbox	8.967s
`

func TestParseGoBenchKeepsCustomMetricsAndFailures(t *testing.T) {
	bs, cpu, failed, err := ParseGoBench(strings.NewReader(sampleBench))
	if err != nil {
		t.Fatal(err)
	}
	if cpu != "AMD EPYC" || len(bs) != 1 || len(failed) != 1 {
		t.Fatalf("cpu %q benches %+v failed %v", cpu, bs, failed)
	}
	b := bs[0]
	if b.Pkg != "corral/runtimes/sandbox" || b.Name != "BenchmarkBashRoundTrip" || b.Iters != 200 || len(b.Metrics) != 5 {
		t.Fatalf("bench %+v", b)
	}
	if b.Metrics[3] != (Metric{0.3419, "session/spawn"}) {
		t.Errorf("custom metric %+v", b.Metrics[3])
	}
}

func TestRunWritesSectionsWithProseMeasurementsAndCommands(t *testing.T) {
	dir := t.TempDir()
	in, notes := filepath.Join(dir, "in"), filepath.Join(dir, "notes")
	os.Mkdir(in, 0o755)
	os.Mkdir(notes, 0o755)
	os.WriteFile(filepath.Join(in, "gotest-runtimes_sandbox.txt"), []byte(sampleBench), 0o644)
	os.WriteFile(filepath.Join(in, "gotest-eventbus.txt"), []byte("pkg: corral/eventbus\nBenchmarkAppend-2 10 5 ns/op\n"), 0o644)
	os.WriteFile(filepath.Join(in, "scenario-events.jsonl"), []byte(`{"name":"store append","value":9000,"unit":"events/s","baseline":"raw write","baseline_value":180000,"ratio":0.05,"settings":"defaults (sync = batch)"}`+"\n"), 0o644)
	os.WriteFile(filepath.Join(in, "scenario-roundtrip.jsonl"), []byte(`{"name":"api p50","value":900,"unit":"µs","baseline":"bash","baseline_value":1800,"ratio":0.5}`+"\n"), 0o644)
	os.WriteFile(filepath.Join(in, "scenario-farm.err"), []byte("corral bench farm: local runtime: boom\n"), 0o644)
	os.WriteFile(filepath.Join(in, "commands.txt"), []byte("go test -bench . ./runtimes/sandbox\ncorral bench events --json\n"), 0o644)
	os.WriteFile(filepath.Join(notes, "10-sandbox.md"), []byte("<!-- packages: corral/runtimes/sandbox -->\n<!-- scenarios: events farm roundtrip -->\n## Sandbox agent\n\nWhy: a warm PTY.\n"), 0o644)
	out := filepath.Join(dir, "BENCHMARKS.md")
	if err := run(in, notes, out); err != nil {
		t.Fatal(err)
	}
	got, _ := os.ReadFile(out)
	for _, want := range []string{
		"## Sandbox agent", "Why: a warm PTY.", "**Machine:**",
		"| `BenchmarkBashRoundTrip` | `runtimes/sandbox` | 200 |", "0.342 session/spawn",
		"| store append | 9000 events/s | raw write | 180000 events/s | 0.05× | defaults (sync = batch) |",
		"| api p50 | 900 µs | bash | 1800 µs | 0.50× |\n",
		"`corral bench farm` did not complete: corral bench farm: local runtime: boom",
		"reported a failure (gotest-runtimes_sandbox.txt): --- FAIL: BenchmarkBroken-2",
		"## Other benchmarks", "`BenchmarkAppend`",
		"corral bench events --json",
	} {
		if !bytes.Contains(got, []byte(want)) {
			t.Errorf("BENCHMARKS.md lacks %q:\n%s", want, got)
		}
	}
}

func TestParseSectionReadsDirectivesAndKeepsProse(t *testing.T) {
	s := ParseSection("10.md", "<!-- packages: corral/eventbus -->\n<!-- bench: ./eventbus -bench 'Durable' -benchtime 20000x -->\n<!-- scenarios: events -->\n## Event bus\n\nWhy it is slow.\n")
	if s.Title != "Event bus" || s.Prose != "Why it is slow." || len(s.Packages) != 1 || len(s.Scenarios) != 1 {
		t.Fatalf("%+v", s)
	}
	if len(s.Bench) != 1 || s.Bench[0] != "./eventbus\t-bench 'Durable' -benchtime 20000x" {
		t.Errorf("bench directive %q", s.Bench)
	}
}
