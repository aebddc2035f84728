package farm

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"sync"
	"time"
)

// Status is a finished job's outcome.
type Status string

// Job outcomes.
const (
	StatusPassed  Status = "passed"  // every action answered and the check (if any) exited 0
	StatusFailed  Status = "failed"  // the check exited non-zero
	StatusTimeout Status = "timeout" // the job's timeout expired
	StatusError   Status = "error"   // infrastructure or input error (after retries)
)

// RerunStatuses is what `corral farm --rerun SPEC --retry-errors=BOOL`
// asks WithRerun for: spec is empty (nothing beyond errors), "all" or a
// comma-separated list of statuses; retryErrors adds StatusError.
func RerunStatuses(spec string, retryErrors bool) ([]Status, error) {
	var out []Status
	add := func(st Status) {
		if !slices.Contains(out, st) {
			out = append(out, st)
		}
	}
	if retryErrors {
		add(StatusError)
	}
	spec = strings.TrimSpace(spec)
	if spec == "" || spec == "none" {
		return out, nil
	}
	if spec == "all" {
		for _, st := range allStatuses {
			add(st)
		}
		return out, nil
	}
	for _, part := range strings.Split(spec, ",") {
		st := Status(strings.TrimSpace(part))
		if !slices.Contains(allStatuses, st) {
			return nil, fmt.Errorf("--rerun %q: %q is not a job status; give all, none, or a comma-separated list of passed, failed, timeout, error", spec, part)
		}
		add(st)
	}
	return out, nil
}

// Result is one line of results.jsonl.
type Result struct {
	ID      string `json:"id"`
	Status  Status `json:"status"`
	Attempt int    `json:"attempts"` // tries used (1 = no retry)

	QueuedAt time.Time `json:"queued_at"`
	StartAt  time.Time `json:"start_at"`          // the last attempt began
	ReadyAt  time.Time `json:"ready_at,omitzero"` // its sandbox was ready
	EndAt    time.Time `json:"end_at"`

	QueueSeconds   float64 `json:"queue_s"`   // queued -> first attempt start
	StartupSeconds float64 `json:"startup_s"` // last attempt: start -> sandbox ready
	RunSeconds     float64 `json:"run_s"`     // sandbox ready -> end (actions + check)
	TotalSeconds   float64 `json:"total_s"`   // first attempt start -> end

	Actions       int    `json:"actions"`                   // runnable actions submitted
	ExitCodes     []int  `json:"exit_codes"`                // exit code of each "run" action, in order
	CheckExitCode *int   `json:"check_exit_code,omitempty"` // nil when there is no check or it did not finish
	Error         string `json:"error,omitempty"`
	EventsFile    string `json:"events_file,omitempty"` // relative to the output folder
	// Node is the cluster member that ran the job's session last (farm
	// --cluster; see NodeSession).
	Node string `json:"node,omitempty"`
}

// resultsFile appends results with one fsync per line, so a line that is
// on disk is complete and survives a crash.
type resultsFile struct {
	mu sync.Mutex
	f  *os.File
}

// Finished holds what an earlier run of the same output folder left.
type Finished struct {
	Results []Result
	// TornLine is the 1-based number of an incomplete last line that was
	// dropped (0 when there was none); its job runs again.
	TornLine int
	// Bad lists complete lines that could not be decoded (skipped; their
	// jobs run again).
	Bad []*LineError
}

// openResults opens (creating) path for appending and reads what is there.
// A torn last line (a crash mid-write) is cut off so appends stay
// line-aligned.
func openResults(path string) (*resultsFile, *Finished, error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, nil, fmt.Errorf("open results file: %w", err)
	}
	fin, goodLen, err := readResults(f, path)
	if err != nil {
		f.Close()
		return nil, nil, err
	}
	if fin.TornLine > 0 {
		if err := f.Truncate(goodLen); err != nil {
			f.Close()
			return nil, nil, fmt.Errorf("cut torn last line of %s: %w", path, err)
		}
	}
	if _, err := f.Seek(0, io.SeekEnd); err != nil {
		f.Close()
		return nil, nil, fmt.Errorf("seek %s: %w", path, err)
	}
	return &resultsFile{f: f}, fin, nil
}

// readResults decodes r; goodLen is the length of its complete lines.
func readResults(r io.Reader, name string) (*Finished, int64, error) {
	fin := &Finished{}
	br := bufio.NewReader(r)
	var (
		off  int64
		line int
	)
	for {
		b, err := br.ReadBytes('\n')
		if len(b) > 0 {
			line++
			if b[len(b)-1] != '\n' {
				fin.TornLine = line
				return fin, off, nil
			}
			off += int64(len(b))
			b = bytes.TrimSpace(b)
			if len(b) > 0 {
				var res Result
				if jerr := json.Unmarshal(b, &res); jerr != nil || res.ID == "" || res.Status == "" {
					if jerr == nil {
						jerr = errors.New(`missing "id" or "status"`)
					}
					fin.Bad = append(fin.Bad, &LineError{File: name, Line: line, Err: jerr})
				} else {
					fin.Results = append(fin.Results, res)
				}
			}
		}
		if err == io.EOF {
			return fin, off, nil
		}
		if err != nil {
			return nil, 0, fmt.Errorf("read results file %s: %w", name, err)
		}
	}
}

// Append writes res as one line and fsyncs it before returning.
func (rf *resultsFile) Append(res Result) error {
	b, err := json.Marshal(res)
	if err != nil {
		return fmt.Errorf("encode result of %s: %w", res.ID, err)
	}
	b = append(b, '\n')
	rf.mu.Lock()
	defer rf.mu.Unlock()
	if _, err := rf.f.Write(b); err != nil {
		return fmt.Errorf("write result of %s: %w", res.ID, err)
	}
	if err := rf.f.Sync(); err != nil {
		return fmt.Errorf("fsync results file: %w", err)
	}
	return nil
}

func (rf *resultsFile) Close() error { return rf.f.Close() }

// ReadResultsFile reads a results.jsonl (for reports and tests).
func ReadResultsFile(path string) (*Finished, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("open results file: %w", err)
	}
	defer f.Close()
	fin, _, err := readResults(f, path)
	return fin, err
}
