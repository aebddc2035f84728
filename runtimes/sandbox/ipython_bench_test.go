package sandbox

import (
	"context"
	"os"
	"os/exec"
	"testing"
	"time"
)

// BenchmarkPythonCell measures one small cell on the persistent interpreter
// and, in the same run, the baseline of starting a fresh interpreter for the
// same code (what a kernel-less runtime would do); it reports the ratio.
func BenchmarkPythonCell(b *testing.B) {
	py, err := exec.LookPath("python3")
	if err != nil {
		b.Fatal("python3 needed:", err)
	}
	k, err := startPythonKernel(context.Background(), py, os.Environ(), nil, b.TempDir())
	if err != nil {
		b.Fatal(err)
	}
	defer k.close()
	const code = "x = sum(range(100))\nx"
	start := time.Now()
	n := 0
	for b.Loop() {
		res, err := k.run(context.Background(), code, "", time.Minute, nil)
		if err != nil || res.text != "4950\n" {
			b.Fatalf("cell: %q %v", res.text, err)
		}
		n++
	}
	perCell := time.Since(start) / time.Duration(n)
	b.StopTimer()
	runs := min(n, 20)
	bstart := time.Now()
	for range runs {
		if out, err := exec.Command(py, "-c", "x = sum(range(100))\nprint(x)").Output(); err != nil || string(out) != "4950\n" {
			b.Fatalf("baseline: %q %v", out, err)
		}
	}
	perFresh := time.Since(bstart) / time.Duration(runs)
	b.ReportMetric(float64(perFresh.Microseconds()), "fresh-interpreter-µs")
	b.ReportMetric(float64(perFresh)/float64(perCell), "x-faster-than-fresh")
}
