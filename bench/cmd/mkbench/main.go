// Command mkbench regenerates BENCHMARKS.md from measurements: the output
// of `go test -bench` runs (custom b.ReportMetric units included) and the
// JSON figures of `corral bench SCENARIO --json`, arranged in the sections
// of bench/notes/*.md, whose hand-written prose (why the numbers are what
// they are) is kept verbatim. It never edits measurements by hand and never
// invents a number: a section whose inputs are missing says so.
//
// Usage (bench/run.sh runs it):
//
//	go run ./bench/cmd/mkbench -in bench/out -notes bench/notes -o BENCHMARKS.md
//
// -in holds gotest-*.txt (raw `go test -bench` output), scenario-*.jsonl
// (`corral bench --json` output) and commands.txt (one command per line, as
// run). A notes file starts with directives in HTML comments:
//
//	<!-- packages: corral/eventbus corral/actors -->
//	<!-- scenarios: events roundtrip -->
//	<!-- bench: ./eventbus -bench 'DurableAppend' -benchtime 20000x -->
//
// "bench" lines are the go test runs of the section (flags after the
// package directory); `mkbench -plan` prints them for bench/run.sh, which
// runs every other package with Benchmark functions at its default settings.
//
// followed by Markdown prose; its first "## " line is the section heading.
package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"time"
)

func main() {
	in := flag.String("in", "bench/out", "directory with gotest-*.txt, scenario-*.jsonl and commands.txt")
	notes := flag.String("notes", "bench/notes", "directory of section templates (*.md, in name order)")
	out := flag.String("o", "BENCHMARKS.md", "file to write")
	plan := flag.Bool("plan", false, "print the sections' bench directives (DIR<TAB>FLAGS per line) and exit")
	flag.Parse()
	if *plan {
		secs, err := loadSections(*notes)
		if err != nil {
			fmt.Fprintln(os.Stderr, "mkbench:", err)
			os.Exit(1)
		}
		for _, s := range secs {
			for _, b := range s.Bench {
				fmt.Println(b)
			}
		}
		return
	}
	if err := run(*in, *notes, *out); err != nil {
		fmt.Fprintln(os.Stderr, "mkbench:", err)
		os.Exit(1)
	}
}

func run(in, notesDir, out string) error {
	m, err := load(in)
	if err != nil {
		return err
	}
	secs, err := loadSections(notesDir)
	if err != nil {
		return err
	}
	var b bytes.Buffer
	render(&b, m, secs, machine(m))
	tmp := out + ".tmp"
	if err := os.WriteFile(tmp, b.Bytes(), 0o644); err != nil {
		return fmt.Errorf("write %s: %w", tmp, err)
	}
	return os.Rename(tmp, out)
}

// Bench is one `go test -bench` result line.
type Bench struct {
	Pkg     string
	Name    string // without the -GOMAXPROCS suffix
	Iters   int64
	Metrics []Metric
}

// Metric is one value/unit pair of a result line.
type Metric struct {
	Value float64
	Unit  string
}

// Figure is one `corral bench --json` line.
type Figure struct {
	Name          string  `json:"name"`
	Value         float64 `json:"value"`
	Unit          string  `json:"unit"`
	Baseline      string  `json:"baseline"`
	BaselineValue float64 `json:"baseline_value"`
	Ratio         float64 `json:"ratio"`
	Settings      string  `json:"settings,omitempty"` // event store settings it ran with
}

// Measurements is everything read from -in.
type Measurements struct {
	Benches   []Bench
	Figures   map[string][]Figure // scenario -> figures
	Failed    map[string]string   // input that reported failure -> why
	Commands  []string
	CPU       string
	GoVersion string
}

var (
	procSuffix   = regexp.MustCompile(`-\d+$`)
	compileError = regexp.MustCompile(`^\S+\.go:\d+:\d+: `)
)

// ParseGoBench reads `go test -bench` output. Lines it does not know are
// skipped; "pkg:" and "cpu:" lines set the context of the lines after them.
func ParseGoBench(r io.Reader) (benches []Bench, cpu string, failed []string, err error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 4<<20)
	pkg := ""
	for sc.Scan() {
		line := sc.Text()
		switch {
		case strings.HasPrefix(line, "pkg: "):
			pkg = strings.TrimSpace(strings.TrimPrefix(line, "pkg: "))
		case strings.HasPrefix(line, "cpu: "):
			cpu = strings.TrimSpace(strings.TrimPrefix(line, "cpu: "))
		case strings.HasPrefix(line, "--- FAIL: Benchmark"), strings.HasPrefix(line, "FAIL\t"):
			failed = append(failed, strings.TrimSpace(line))
		case compileError.MatchString(line) && len(failed) < 3:
			failed = append(failed, strings.TrimSpace(line)) // why a build failed
		case strings.HasPrefix(line, "Benchmark"):
			f := strings.Fields(line)
			if len(f) < 4 || len(f)%2 != 0 {
				continue // a benchmark's log line, or a name without results
			}
			iters, perr := strconv.ParseInt(f[1], 10, 64)
			if perr != nil {
				continue
			}
			bn := Bench{Pkg: pkg, Name: procSuffix.ReplaceAllString(f[0], ""), Iters: iters}
			ok := true
			for i := 2; i+1 < len(f); i += 2 {
				v, perr := strconv.ParseFloat(f[i], 64)
				if perr != nil {
					ok = false
					break
				}
				bn.Metrics = append(bn.Metrics, Metric{Value: v, Unit: f[i+1]})
			}
			if ok {
				benches = append(benches, bn)
			}
		}
	}
	return benches, cpu, failed, sc.Err()
}

func load(in string) (*Measurements, error) {
	m := &Measurements{Figures: map[string][]Figure{}, Failed: map[string]string{}}
	files, err := filepath.Glob(filepath.Join(in, "gotest-*.txt"))
	if err != nil {
		return nil, err
	}
	for _, p := range files {
		f, err := os.Open(p)
		if err != nil {
			return nil, err
		}
		bs, cpu, failed, err := ParseGoBench(f)
		f.Close()
		if err != nil {
			return nil, fmt.Errorf("%s: %w", p, err)
		}
		m.Benches = append(m.Benches, bs...)
		if cpu != "" {
			m.CPU = cpu
		}
		if len(failed) > 0 {
			m.Failed[filepath.Base(p)] = strings.Join(failed, "; ")
		}
	}
	files, err = filepath.Glob(filepath.Join(in, "scenario-*.jsonl"))
	if err != nil {
		return nil, err
	}
	for _, p := range files {
		name := strings.TrimSuffix(strings.TrimPrefix(filepath.Base(p), "scenario-"), ".jsonl")
		data, err := os.ReadFile(p)
		if err != nil {
			return nil, err
		}
		for i, line := range bytes.Split(data, []byte("\n")) {
			if len(bytes.TrimSpace(line)) == 0 {
				continue
			}
			var fg Figure
			if err := json.Unmarshal(line, &fg); err != nil {
				return nil, fmt.Errorf("%s:%d: not a figure: %w", p, i+1, err)
			}
			m.Figures[name] = append(m.Figures[name], fg)
		}
	}
	// scenario-NAME.err holds a scenario's stderr; non-empty means it failed.
	errFiles, err := filepath.Glob(filepath.Join(in, "scenario-*.err"))
	if err != nil {
		return nil, err
	}
	for _, p := range errFiles {
		name := strings.TrimSuffix(strings.TrimPrefix(filepath.Base(p), "scenario-"), ".err")
		if errText, err := os.ReadFile(p); err == nil && len(bytes.TrimSpace(errText)) > 0 {
			m.Failed[name] = lastLine(string(errText))
		}
	}
	if data, err := os.ReadFile(filepath.Join(in, "commands.txt")); err == nil {
		for _, l := range strings.Split(string(data), "\n") {
			if l = strings.TrimSpace(l); l != "" {
				m.Commands = append(m.Commands, l)
			}
		}
	}
	if v, err := exec.Command("go", "env", "GOVERSION").Output(); err == nil {
		m.GoVersion = strings.TrimSpace(string(v))
	} else {
		m.GoVersion = runtime.Version()
	}
	return m, nil
}

func lastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return strings.TrimSpace(lines[len(lines)-1])
}

// Section is one notes file.
type Section struct {
	File      string
	Title     string
	Prose     string
	Packages  []string
	Scenarios []string
	Bench     []string // "DIR\tFLAGS"
}

var directive = regexp.MustCompile(`^<!--\s*(packages|scenarios|bench):\s*(.*?)\s*-->$`)

// ParseSection reads a notes file.
func ParseSection(name, text string) Section {
	s := Section{File: name}
	var prose []string
	for _, line := range strings.Split(text, "\n") {
		if m := directive.FindStringSubmatch(strings.TrimSpace(line)); m != nil {
			switch m[1] {
			case "packages":
				s.Packages = append(s.Packages, strings.Fields(m[2])...)
			case "scenarios":
				s.Scenarios = append(s.Scenarios, strings.Fields(m[2])...)
			case "bench":
				dir, flags, _ := strings.Cut(m[2], " ")
				s.Bench = append(s.Bench, dir+"\t"+strings.TrimSpace(flags))
			}
			continue
		}
		if s.Title == "" && strings.HasPrefix(line, "## ") {
			s.Title = strings.TrimSpace(strings.TrimPrefix(line, "## "))
			continue
		}
		prose = append(prose, line)
	}
	s.Prose = strings.TrimSpace(strings.Join(prose, "\n"))
	return s
}

func loadSections(dir string) ([]Section, error) {
	files, err := filepath.Glob(filepath.Join(dir, "*.md"))
	if err != nil {
		return nil, err
	}
	if len(files) == 0 {
		return nil, fmt.Errorf("no section templates in %s", dir)
	}
	sort.Strings(files)
	var secs []Section
	for _, p := range files {
		data, err := os.ReadFile(p)
		if err != nil {
			return nil, err
		}
		secs = append(secs, ParseSection(filepath.Base(p), string(data)))
	}
	return secs, nil
}

// machine describes where the numbers were taken.
func machine(m *Measurements) string {
	cpu := m.CPU
	if data, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, l := range strings.Split(string(data), "\n") {
			if k, v, ok := strings.Cut(l, ":"); ok && strings.TrimSpace(k) == "model name" {
				cpu = strings.TrimSpace(v)
				break
			}
		}
	}
	mem := ""
	if data, err := os.ReadFile("/proc/meminfo"); err == nil {
		for _, l := range strings.Split(string(data), "\n") {
			if strings.HasPrefix(l, "MemTotal:") {
				f := strings.Fields(l)
				if len(f) >= 2 {
					if kb, err := strconv.ParseFloat(f[1], 64); err == nil {
						mem = fmt.Sprintf(", %.0f GiB RAM", kb/(1<<20))
					}
				}
			}
		}
	}
	kernel := ""
	if v, err := exec.Command("uname", "-sr").Output(); err == nil {
		kernel = ", " + strings.TrimSpace(string(v))
	}
	docker := ""
	if v, err := exec.Command("docker", "version", "--format", "{{.Server.Version}}").Output(); err == nil {
		docker = ", Docker Engine " + strings.TrimSpace(string(v))
	}
	return fmt.Sprintf("%s, %d cores%s%s, %s/%s, %s%s", cpu, runtime.NumCPU(), mem, kernel, runtime.GOOS, runtime.GOARCH, m.GoVersion, docker)
}

func render(b *bytes.Buffer, m *Measurements, secs []Section, mach string) {
	commit := ""
	if v, err := exec.Command("git", "rev-parse", "--short", "HEAD").Output(); err == nil {
		commit = " at commit `" + strings.TrimSpace(string(v)) + "`"
	}
	fmt.Fprintf(b, "# Benchmarks\n\n")
	fmt.Fprintf(b, "Generated by `make bench` (bench/run.sh → bench/cmd/mkbench) on %s%s. Do not edit by hand: edit the prose in `bench/notes/*.md` and rerun `make bench`.\n\n",
		time.Now().UTC().Format("2006-01-02 15:04 UTC"), commit)
	fmt.Fprintf(b, "**Machine:** %s.\n\n", mach)
	b.WriteString("Every figure is measured with its baseline in the same run; *ratio* = value / baseline (for latencies lower is better, for rates higher is better).\n\n")
	used := map[string]bool{}
	for _, s := range secs {
		if s.Title != "" {
			fmt.Fprintf(b, "## %s\n\n", s.Title)
		}
		if s.Prose != "" {
			b.WriteString(s.Prose + "\n\n")
		}
		for _, name := range s.Scenarios {
			used["scenario:"+name] = true
			figs := m.Figures[name]
			if why, ok := m.Failed[name]; ok {
				fmt.Fprintf(b, "> `corral bench %s` did not complete: %s\n\n", name, mdEscape(why))
			}
			if len(figs) == 0 {
				fmt.Fprintf(b, "*`corral bench %s`: no figures in this run.*\n\n", name)
				continue
			}
			renderFigures(b, name, figs)
			b.WriteString("\n")
		}
		var rows []Bench
		for _, bn := range m.Benches {
			for _, p := range s.Packages {
				if bn.Pkg == p {
					rows = append(rows, bn)
					used["pkg:"+p] = true
				}
			}
		}
		if len(rows) > 0 {
			b.WriteString("| benchmark | package | runs | results |\n|---|---|--:|---|\n")
			for _, bn := range rows {
				fmt.Fprintf(b, "| `%s` | `%s` | %d | %s |\n", bn.Name, strings.TrimPrefix(bn.Pkg, "corral/"), bn.Iters, metricsText(bn.Metrics))
			}
			b.WriteString("\n")
		} else if len(s.Packages) > 0 {
			fmt.Fprintf(b, "*No `go test -bench` results for %s in this run.*\n\n", strings.Join(s.Packages, ", "))
		}
		for _, p := range s.Packages {
			seen := map[string]bool{}
			var files []string
			for file := range m.Failed {
				if strings.HasPrefix(file, "gotest-"+slug(p)+"-") || file == "gotest-"+slug(p)+".txt" {
					files = append(files, file)
				}
			}
			sort.Strings(files)
			for _, file := range files {
				why := m.Failed[file]
				if seen[why] {
					continue
				}
				seen[why] = true
				fmt.Fprintf(b, "> `go test -bench` for `%s` reported a failure (%s): %s\n\n", p, file, mdEscape(why))
			}
		}
	}
	// Measurements no section claims are still shown, never dropped.
	var orphans []string
	for _, bn := range m.Benches {
		if !used["pkg:"+bn.Pkg] {
			orphans = append(orphans, fmt.Sprintf("| `%s` | `%s` | %d | %s |", bn.Name, strings.TrimPrefix(bn.Pkg, "corral/"), bn.Iters, metricsText(bn.Metrics)))
		}
	}
	if len(orphans) > 0 {
		b.WriteString("## Other benchmarks\n\n| benchmark | package | runs | results |\n|---|---|--:|---|\n" + strings.Join(orphans, "\n") + "\n\n")
	}
	if len(m.Commands) > 0 {
		b.WriteString("## How these numbers were produced\n\n```sh\n")
		for _, c := range m.Commands {
			b.WriteString(c + "\n")
		}
		b.WriteString("```\n")
	}
}

// renderFigures writes a scenario's table; a "store" column names the
// event store settings when any figure says which it ran with.
func renderFigures(b *bytes.Buffer, scenario string, figs []Figure) {
	store := false
	for _, f := range figs {
		store = store || f.Settings != ""
	}
	fmt.Fprintf(b, "`corral bench %s`:\n\n| figure | value | baseline | baseline value | ratio |", scenario)
	if store {
		b.WriteString(" store |\n|---|--:|---|--:|--:|---|\n")
	} else {
		b.WriteString("\n|---|--:|---|--:|--:|\n")
	}
	for _, f := range figs {
		ratio := "–"
		if f.BaselineValue != 0 {
			ratio = fmt.Sprintf("%.2f×", f.Ratio)
		}
		fmt.Fprintf(b, "| %s | %s %s | %s | %s %s | %s |", mdEscape(f.Name), num(f.Value), f.Unit, mdEscape(f.Baseline), num(f.BaselineValue), f.Unit, ratio)
		if store {
			fmt.Fprintf(b, " %s |", mdEscape(f.Settings))
		}
		b.WriteString("\n")
	}
}

// slug is how bench/run.sh names a package's output file.
func slug(pkg string) string {
	return strings.NewReplacer("corral/", "", "/", "_").Replace(pkg)
}

func metricsText(ms []Metric) string {
	parts := make([]string, 0, len(ms))
	for _, mt := range ms {
		parts = append(parts, num(mt.Value)+" "+mt.Unit)
	}
	return mdEscape(strings.Join(parts, "; "))
}

func num(v float64) string {
	switch {
	case v == 0:
		return "0"
	case v == math.Trunc(v) && math.Abs(v) < 1e15:
		return strconv.FormatFloat(v, 'f', 0, 64)
	case v >= 100:
		return strconv.FormatFloat(v, 'f', 0, 64)
	case v >= 1:
		return strconv.FormatFloat(v, 'f', 2, 64)
	default:
		return strconv.FormatFloat(v, 'g', 3, 64)
	}
}

func mdEscape(s string) string { return strings.ReplaceAll(s, "|", `\|`) }
