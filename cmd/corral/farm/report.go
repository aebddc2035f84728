package farm

import (
	"bytes"
	"fmt"
	"html"
	"io"
	"math"
	"os"
	"sort"
	"strings"
	"time"
)

// Statuses in display order.
var allStatuses = []Status{StatusPassed, StatusFailed, StatusTimeout, StatusError}

// Percentile returns the p-th percentile (0..100, nearest rank) of xs.
func Percentile(xs []float64, p float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := append([]float64(nil), xs...)
	sort.Float64s(s)
	k := int(math.Ceil(p/100*float64(len(s)))) - 1
	return s[min(max(k, 0), len(s)-1)]
}

// WriteSummary prints the end-of-run table.
func WriteSummary(w io.Writer, s *Summary) {
	fmt.Fprintf(w, "\n%-10s %6s\n", "status", "jobs")
	for _, st := range allStatuses {
		fmt.Fprintf(w, "%-10s %6d\n", st, s.Counts[st])
	}
	fmt.Fprintf(w, "%-10s %6d\n", "total", len(s.Results))
	if s.Skipped > 0 || s.Rerun > 0 {
		fmt.Fprintf(w, "%-10s %6d  (finished in an earlier run; results kept)\n", "kept", s.Skipped)
		fmt.Fprintf(w, "%-10s %6d  (finished in an earlier run with a status --rerun/--retry-errors names; run again)\n", "rerun", s.Rerun)
	}
	if len(s.Unfinished) > 0 {
		fmt.Fprintf(w, "%-10s %6d  (interrupted; rerun with the same --out to finish them)\n", "unfinished", len(s.Unfinished))
	}
	if len(s.BadLines) > 0 {
		fmt.Fprintf(w, "%-10s %6d  (malformed job lines, not run)\n", "bad lines", len(s.BadLines))
	}
	total, startup := durations(s.Results)
	if len(total) > 0 {
		fmt.Fprintf(w, "\n%-16s %8s %8s %8s %8s\n", "seconds", "p50", "p90", "p99", "max")
		for _, row := range []struct {
			name string
			xs   []float64
		}{{"job total", total}, {"sandbox start", startup}} {
			fmt.Fprintf(w, "%-16s %8.3f %8.3f %8.3f %8.3f\n", row.name,
				Percentile(row.xs, 50), Percentile(row.xs, 90), Percentile(row.xs, 99), Percentile(row.xs, 100))
		}
	}
	shown := 0
	for _, r := range s.Results {
		if r.Status == StatusPassed {
			continue
		}
		if shown == 0 {
			fmt.Fprintln(w, "\nnot passed:")
		}
		if shown == 20 {
			fmt.Fprintln(w, "  ... (see results.jsonl)")
			break
		}
		shown++
		why := firstLine(r.Error)
		if why == "" && r.CheckExitCode != nil {
			why = fmt.Sprintf("check exited %d", *r.CheckExitCode)
		}
		fmt.Fprintf(w, "  %-24s %-8s %s\n", r.ID, r.Status, why)
	}
	fmt.Fprintf(w, "\nran %d jobs in %s (%d skipped as already finished)\n", s.Ran, s.Elapsed.Round(time.Millisecond), s.Skipped)
}

func durations(rs []Result) (total, startup []float64) {
	for _, r := range rs {
		total = append(total, r.TotalSeconds)
		if !r.ReadyAt.IsZero() {
			startup = append(startup, r.StartupSeconds)
		}
	}
	return total, startup
}

// WriteReport writes the self-contained HTML report (no scripts, no
// external requests; charts are inline SVG). The markup is well-formed XML
// so tools (and tests) can parse it with encoding/xml.
func WriteReport(path string, s *Summary) error {
	var b bytes.Buffer
	renderReport(&b, s)
	if err := os.WriteFile(path, b.Bytes(), 0o644); err != nil {
		return fmt.Errorf("write report: %w", err)
	}
	return nil
}

var statusColor = map[Status]string{
	StatusPassed: "#2e7d32", StatusFailed: "#c62828", StatusTimeout: "#ef6c00", StatusError: "#6a1b9a",
}

func renderReport(b *bytes.Buffer, s *Summary) {
	esc := html.EscapeString
	b.WriteString(`<!DOCTYPE html>
<html xmlns="http://www.w3.org/1999/xhtml" lang="en"><head><meta charset="utf-8"/><title>Corral farm report</title>
<style>
body{font-family:system-ui,sans-serif;margin:2em;color:#222}
table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:.2em .6em;text-align:right}
td.l,th.l{text-align:left}.passed{color:#2e7d32}.failed{color:#c62828}.timeout{color:#ef6c00}.error{color:#6a1b9a}
svg{background:#fafafa;border:1px solid #ddd}
</style></head><body>
<h1>Corral farm report</h1>
`)
	fmt.Fprintf(b, "<p>Generated %s. This run: %d jobs ran in %s, %d skipped as already finished.</p>\n",
		esc(time.Now().UTC().Format(time.RFC3339)), s.Ran, esc(s.Elapsed.Round(time.Millisecond).String()), s.Skipped)
	b.WriteString("<h2>Outcome</h2>\n<table id=\"counts\"><tr><th class=\"l\">status</th><th>jobs</th></tr>\n")
	for _, st := range allStatuses {
		fmt.Fprintf(b, "<tr><td class=\"l %s\">%s</td><td id=\"count-%s\">%d</td></tr>\n", st, st, st, s.Counts[st])
	}
	fmt.Fprintf(b, "<tr><td class=\"l\">total</td><td id=\"count-total\">%d</td></tr>\n", len(s.Results))
	fmt.Fprintf(b, "<tr><td class=\"l\">unfinished</td><td id=\"count-unfinished\">%d</td></tr>\n", len(s.Unfinished))
	fmt.Fprintf(b, "<tr><td class=\"l\">malformed lines</td><td id=\"count-badlines\">%d</td></tr>\n</table>\n", len(s.BadLines))
	for _, le := range s.BadLines {
		fmt.Fprintf(b, "<p class=\"error\">%s</p>\n", esc(le.Error()))
	}

	total, startup := durations(s.Results)
	b.WriteString("<h2>Latency</h2>\n<table id=\"latency\"><tr><th class=\"l\">seconds</th><th>p50</th><th>p90</th><th>p99</th><th>max</th></tr>\n")
	for _, row := range []struct {
		id, name string
		xs       []float64
	}{{"total", "job total", total}, {"startup", "sandbox start", startup}} {
		fmt.Fprintf(b, "<tr id=\"lat-%s\"><td class=\"l\">%s</td><td>%.3f</td><td>%.3f</td><td>%.3f</td><td>%.3f</td></tr>\n",
			row.id, row.name, Percentile(row.xs, 50), Percentile(row.xs, 90), Percentile(row.xs, 99), Percentile(row.xs, 100))
	}
	b.WriteString("</table>\n<h3>Job duration</h3>\n")
	histogram(b, "hist-total", total)
	b.WriteString("<h3>Sandbox start</h3>\n")
	histogram(b, "hist-startup", startup)
	b.WriteString("<h2>Timeline</h2>\n")
	timeline(b, s.Results)

	b.WriteString("<h2>Jobs</h2>\n<table id=\"jobs\"><tr><th class=\"l\">id</th><th class=\"l\">status</th><th>attempts</th><th>queue s</th><th>start s</th><th>run s</th><th>total s</th><th class=\"l\">exit codes</th><th>check</th><th class=\"l\">node</th><th class=\"l\">error</th></tr>\n")
	for _, r := range s.Results {
		check := ""
		if r.CheckExitCode != nil {
			check = fmt.Sprint(*r.CheckExitCode)
		}
		codes := make([]string, len(r.ExitCodes))
		for i, c := range r.ExitCodes {
			codes[i] = fmt.Sprint(c)
		}
		codeText := strings.Join(codes, " ")
		if len(codeText) > 80 {
			codeText = codeText[:80] + " ..."
		}
		fmt.Fprintf(b, "<tr class=\"job\" data-id=\"%s\" data-status=\"%s\" data-total=\"%.6f\"><td class=\"l\">%s</td><td class=\"l %s\">%s</td><td>%d</td><td>%.3f</td><td>%.3f</td><td>%.3f</td><td>%.3f</td><td class=\"l\">%s</td><td>%s</td><td class=\"l\">%s</td><td class=\"l\">%s</td></tr>\n",
			esc(r.ID), r.Status, r.TotalSeconds, esc(r.ID), r.Status, r.Status, r.Attempt,
			r.QueueSeconds, r.StartupSeconds, r.RunSeconds, r.TotalSeconds, esc(codeText), check, esc(r.Node), esc(firstLine(r.Error)))
	}
	b.WriteString("</table>\n</body></html>\n")
}

// histogram draws xs as 20 bins of equal width from 0 to max.
func histogram(b *bytes.Buffer, id string, xs []float64) {
	const W, H, bins = 600.0, 160.0, 20
	fmt.Fprintf(b, "<svg id=\"%s\" xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" height=\"%d\" viewBox=\"0 0 %d %d\">\n", id, int(W), int(H+30), int(W), int(H+30))
	if len(xs) == 0 {
		b.WriteString("<text x=\"10\" y=\"20\">no data</text></svg>\n")
		return
	}
	hi := Percentile(xs, 100)
	if hi <= 0 {
		hi = 1e-9
	}
	var counts [bins]int
	for _, x := range xs {
		counts[min(int(x/hi*bins), bins-1)]++
	}
	most := 0
	for _, c := range counts {
		most = max(most, c)
	}
	bw := W / bins
	for i, c := range counts {
		h := float64(c) / float64(most) * H
		fmt.Fprintf(b, "<rect class=\"bin\" data-count=\"%d\" x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" fill=\"#1565c0\"><title>%.3fs-%.3fs: %d jobs</title></rect>\n",
			c, float64(i)*bw+1, H-h, bw-2, h, float64(i)*hi/bins, float64(i+1)*hi/bins, c)
	}
	fmt.Fprintf(b, "<text x=\"0\" y=\"%d\" font-size=\"12\">0s</text><text x=\"%d\" y=\"%d\" font-size=\"12\" text-anchor=\"end\">%.3fs</text>\n</svg>\n", int(H+20), int(W), int(H+20), hi)
}

// timeline draws one row per job: queue wait (grey), sandbox start
// (light) and run (status colour), against wall time.
func timeline(b *bytes.Buffer, rs []Result) {
	if len(rs) == 0 {
		b.WriteString("<p>no jobs</p>\n")
		return
	}
	sorted := append([]Result(nil), rs...)
	sort.Slice(sorted, func(i, j int) bool { return sorted[i].StartAt.Before(sorted[j].StartAt) })
	t0, t1 := sorted[0].StartAt, sorted[0].EndAt
	for _, r := range sorted {
		if r.StartAt.Before(t0) {
			t0 = r.StartAt
		}
		if r.EndAt.After(t1) {
			t1 = r.EndAt
		}
	}
	span := t1.Sub(t0).Seconds()
	if span <= 0 {
		span = 1e-9
	}
	const W = 800.0
	row := 6.0
	if len(sorted) > 300 {
		row = 2
	}
	H := row*float64(len(sorted)) + 30
	fmt.Fprintf(b, "<svg id=\"timeline\" xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" height=\"%d\" viewBox=\"0 0 %d %d\">\n", int(W), int(H), int(W), int(H))
	x := func(t time.Time) float64 { return t.Sub(t0).Seconds() / span * W }
	for i, r := range sorted {
		y := float64(i) * row
		end := r.EndAt
		ready := r.ReadyAt
		if ready.IsZero() {
			ready = end
		}
		fmt.Fprintf(b, "<g class=\"span\" data-id=\"%s\"><title>%s %s %.3fs</title>", html.EscapeString(r.ID), html.EscapeString(r.ID), r.Status, r.TotalSeconds)
		fmt.Fprintf(b, "<rect x=\"%.2f\" y=\"%.1f\" width=\"%.2f\" height=\"%.1f\" fill=\"#90caf9\"/>", x(r.StartAt), y, math.Max(x(ready)-x(r.StartAt), 0.5), row-1)
		fmt.Fprintf(b, "<rect x=\"%.2f\" y=\"%.1f\" width=\"%.2f\" height=\"%.1f\" fill=\"%s\"/></g>\n", x(ready), y, math.Max(x(end)-x(ready), 0.5), row-1, statusColor[r.Status])
	}
	fmt.Fprintf(b, "<text x=\"0\" y=\"%d\" font-size=\"12\">0s</text><text x=\"%d\" y=\"%d\" font-size=\"12\" text-anchor=\"end\">%.2fs (light: sandbox start)</text>\n</svg>\n", int(H-5), int(W), int(H-5), span)
}
