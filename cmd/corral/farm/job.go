package farm

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strings"

	"corral/eventbus"
)

// Job is one line of a jobs file.
type Job struct {
	ID string
	// Line is the job's 1-based line number in the jobs file.
	Line int
	// Trajectory is the absolute path of an OpenHands trajectory file (a
	// JSON array of events); its runnable actions are replayed. Empty when
	// Actions is set.
	Trajectory string
	// Actions are the inline actions to run, in order.
	Actions []*eventbus.Event
	// Runtime is the sandbox the job wants; empty fields take the farm's
	// defaults.
	Runtime Runtime
	// Timeout bounds the whole job (sandbox start, actions, check) in
	// seconds; 0 means the farm's default.
	Timeout float64
	// Check is a shell command run in the sandbox after the actions; exit
	// code 0 means the job passed.
	Check string
	// ForkFrom names a set-up job of the same file: this job's sandbox is
	// a fork of the set-up job's finished sandbox (its files and events)
	// instead of a new one.
	ForkFrom string
}

// Runtime is a job's sandbox description ("runtime" in the jobs file).
type Runtime struct {
	Backend   string            `json:"backend,omitempty"`    // "local", "docker", ...
	Image     string            `json:"image,omitempty"`      // container image (docker)
	MemoryMB  int64             `json:"memory_mb,omitempty"`  // memory limit in MiB; 0 = none
	CPUs      float64           `json:"cpus,omitempty"`       // CPU limit in cores; 0 = none
	PidsLimit int64             `json:"pids_limit,omitempty"` // process limit; 0 = none
	Env       map[string]string `json:"env,omitempty"`        // environment of the sandbox's shells
	// MCP is the job's MCP servers (OpenHands' mcp_config) for
	// call_tool_mcp; nil: the [mcp] default of --config.
	MCP *eventbus.MCPConfig `json:"mcp_config,omitempty"`
}

// withDefaults fills r's empty fields from d (env maps are merged, r wins).
func (r Runtime) withDefaults(d Runtime) Runtime {
	if r.Backend == "" {
		r.Backend = d.Backend
	}
	if r.Image == "" {
		r.Image = d.Image
	}
	if r.MemoryMB == 0 {
		r.MemoryMB = d.MemoryMB
	}
	if r.CPUs == 0 {
		r.CPUs = d.CPUs
	}
	if r.PidsLimit == 0 {
		r.PidsLimit = d.PidsLimit
	}
	if len(d.Env) > 0 {
		env := make(map[string]string, len(d.Env)+len(r.Env))
		for k, v := range d.Env {
			env[k] = v
		}
		for k, v := range r.Env {
			env[k] = v
		}
		r.Env = env
	}
	return r
}

// LineError is a jobs-file line that could not be parsed.
type LineError struct {
	File string
	Line int
	Err  error
}

func (e *LineError) Error() string {
	return fmt.Sprintf("%s:%d: %v", e.File, e.Line, e.Err)
}

func (e *LineError) Unwrap() error { return e.Err }

// jobLine is the JSON shape of a jobs-file line.
type jobLine struct {
	ID         string            `json:"id"`
	Trajectory string            `json:"trajectory"`
	Actions    []json.RawMessage `json:"actions"`
	Runtime    *Runtime          `json:"runtime"`
	Timeout    float64           `json:"timeout"`
	Check      string            `json:"check"`
	ForkFrom   string            `json:"fork_from"`
}

// validID keeps ids usable as file names (events/<id>.jsonl) everywhere.
var validID = regexp.MustCompile(`^[A-Za-z0-9_][A-Za-z0-9._-]{0,127}$`)

// maxLineBytes bounds one jobs-file line; inline actions can be long.
const maxLineBytes = 16 << 20

// ParseJobs reads a jobs file: one JSON object per line; blank lines and
// lines starting with '#' are ignored. Trajectory paths are resolved
// relative to baseDir. A bad line does not stop the others: it is returned
// as a *LineError naming its line number, and the good jobs are returned
// too. The error return is only for a reader that fails.
func ParseJobs(r io.Reader, name, baseDir string) ([]Job, []*LineError, error) {
	var (
		jobs    []Job
		bad     []*LineError
		seen    = map[string]int{}
		sc      = bufio.NewScanner(r)
		lineNum int
	)
	sc.Buffer(make([]byte, 64<<10), maxLineBytes)
	for sc.Scan() {
		lineNum++
		line := bytes.TrimSpace(sc.Bytes())
		if len(line) == 0 || line[0] == '#' {
			continue
		}
		j, err := parseJobLine(line, baseDir)
		if err == nil {
			if prev, dup := seen[j.ID]; dup {
				err = fmt.Errorf("duplicate job id %q (first used on line %d): ids must be unique", j.ID, prev)
			}
		}
		if err != nil {
			bad = append(bad, &LineError{File: name, Line: lineNum, Err: err})
			continue
		}
		j.Line = lineNum
		seen[j.ID] = lineNum
		jobs = append(jobs, j)
	}
	if err := sc.Err(); err != nil {
		if errors.Is(err, bufio.ErrTooLong) {
			return jobs, bad, fmt.Errorf("%s: line %d is longer than %d bytes: split the job or move its actions into a trajectory file", name, lineNum+1, maxLineBytes)
		}
		return jobs, bad, fmt.Errorf("read jobs file %s: %w", name, err)
	}
	return jobs, bad, nil
}

func parseJobLine(line []byte, baseDir string) (Job, error) {
	var jl jobLine
	dec := json.NewDecoder(bytes.NewReader(line))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&jl); err != nil {
		return Job{}, fmt.Errorf("not a job object: %w (want {\"id\":..., \"trajectory\" or \"actions\":..., \"check\":...})", err)
	}
	if dec.More() {
		return Job{}, errors.New("more than one JSON value on the line: put one job per line")
	}
	if jl.ID == "" {
		return Job{}, errors.New(`missing "id"`)
	}
	if !validID.MatchString(jl.ID) {
		return Job{}, fmt.Errorf("job id %q is not usable as a file name: use letters, digits, '.', '_' and '-' (at most 128, not starting with '.' or '-')", jl.ID)
	}
	j := Job{ID: jl.ID, Timeout: jl.Timeout, Check: jl.Check, ForkFrom: jl.ForkFrom}
	if jl.ForkFrom == jl.ID {
		return Job{}, fmt.Errorf("job %s: fork_from names the job itself: name a set-up job of this file", jl.ID)
	}
	if jl.Runtime != nil {
		j.Runtime = *jl.Runtime
		if m := j.Runtime.MCP; m != nil {
			if err := m.Validate(); err != nil {
				return Job{}, fmt.Errorf("job %s: runtime.%w", jl.ID, err)
			}
		}
	}
	if jl.Timeout < 0 {
		return Job{}, fmt.Errorf("job %s: timeout %v is negative: give seconds > 0, or leave it out for the default", jl.ID, jl.Timeout)
	}
	switch {
	case jl.Trajectory != "" && jl.Actions != nil:
		return Job{}, fmt.Errorf("job %s: has both \"trajectory\" and \"actions\": give one", jl.ID)
	case jl.Trajectory != "":
		p := jl.Trajectory
		if !filepath.IsAbs(p) {
			p = filepath.Join(baseDir, p)
		}
		j.Trajectory = p
	case jl.Actions != nil:
		for i, raw := range jl.Actions {
			ev, err := eventbus.Unmarshal(raw)
			if err != nil {
				return Job{}, fmt.Errorf("job %s: actions[%d]: %w", jl.ID, i, err)
			}
			if !ev.IsAction() {
				return Job{}, fmt.Errorf("job %s: actions[%d] is a %q observation, not an action", jl.ID, i, ev.Type())
			}
			prepareAction(ev)
			j.Actions = append(j.Actions, ev)
		}
	default:
		if jl.Check == "" {
			return Job{}, fmt.Errorf("job %s: nothing to do: give \"trajectory\", \"actions\" or \"check\"", jl.ID)
		}
	}
	return j, nil
}

// prepareAction makes a decoded action ready to submit: streams assign ids.
func prepareAction(ev *eventbus.Event) {
	ev.ID = eventbus.InvalidID
	ev.Cause = nil
	if ev.Source == "" {
		ev.Source = eventbus.SourceAgent
	}
}

// maxTrajectoryBytes bounds a trajectory file read into memory.
const maxTrajectoryBytes = 256 << 20

// LoadTrajectory reads an OpenHands trajectory (a JSON array of events, as
// OpenHands saves with save_trajectory_path) and returns its runnable
// actions in order; observations and non-runnable actions are skipped.
func LoadTrajectory(path string) ([]*eventbus.Event, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("open trajectory: %w", err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxTrajectoryBytes+1))
	if err != nil {
		return nil, fmt.Errorf("read trajectory %s: %w", path, err)
	}
	if len(data) > maxTrajectoryBytes {
		return nil, fmt.Errorf("trajectory %s is larger than %d MiB", path, maxTrajectoryBytes>>20)
	}
	return ParseTrajectory(data, path)
}

// ParseTrajectory is LoadTrajectory on bytes; name is used in errors.
func ParseTrajectory(data []byte, name string) ([]*eventbus.Event, error) {
	trimmed := bytes.TrimSpace(data)
	if len(trimmed) == 0 || trimmed[0] != '[' {
		what := "empty"
		if len(trimmed) > 0 {
			what = "starts with " + strings.TrimSpace(string(trimmed[:min(len(trimmed), 20)]))
		}
		return nil, fmt.Errorf("trajectory %s is not OpenHands JSON: want a JSON array of events, file is %s", name, what)
	}
	var raws []json.RawMessage
	if err := json.Unmarshal(trimmed, &raws); err != nil {
		return nil, fmt.Errorf("trajectory %s is not OpenHands JSON: %w", name, err)
	}
	var actions []*eventbus.Event
	for i, raw := range raws {
		ev, err := eventbus.Unmarshal(raw)
		if err != nil {
			return nil, fmt.Errorf("trajectory %s: event #%d is not an OpenHands event: %w", name, i, err)
		}
		if ev.Action == nil || !ev.Action.Runnable() {
			continue
		}
		prepareAction(ev)
		actions = append(actions, ev)
	}
	return actions, nil
}
