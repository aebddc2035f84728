package farm

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"corral/eventbus"
)

// bashEngine is a test double of the session engine (not of bash): each
// session is a directory, and "run" actions are real `bash -c` processes in
// their own process group, killed with the group when the action's context
// ends. It numbers events like a stream does.
type bashEngine struct {
	root       string        // sandboxes are directories under root
	marker     string        // put in every process's environment, to find leftovers
	startDelay time.Duration // simulated sandbox start time

	mu         sync.Mutex
	failStarts map[string]int // job id -> starts that fail before one succeeds
	starts     map[string]int // job id -> StartSession calls

	live atomic.Int64 // sessions started and not closed
}

func newBashEngine(root, marker string) *bashEngine {
	return &bashEngine{root: root, marker: marker, failStarts: map[string]int{}, starts: map[string]int{}}
}

func (e *bashEngine) StartSession(ctx context.Context, spec SessionSpec) (Session, error) {
	e.mu.Lock()
	e.starts[spec.JobID]++
	fail := e.failStarts[spec.JobID] > 0
	if fail {
		e.failStarts[spec.JobID]--
	}
	e.mu.Unlock()
	if spec.Runtime.Image == "missing:latest" {
		return nil, errors.New("create container: Error response from daemon: No such image: missing:latest")
	}
	if fail {
		return nil, errors.New("sandbox agent did not answer (injected infrastructure failure)")
	}
	if spec.Runtime.PidsLimit != 0 {
		return nil, fmt.Errorf("pids_limit is not supported by the test engine: %w", ErrPermanent)
	}
	if e.startDelay > 0 {
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(e.startDelay):
		}
	}
	dir, err := os.MkdirTemp(e.root, spec.JobID+"-")
	if err != nil {
		return nil, err
	}
	e.live.Add(1)
	env := append(os.Environ(), "FARM_TEST_MARKER="+e.marker, "JOB="+spec.JobID)
	for k, v := range spec.Runtime.Env {
		env = append(env, k+"="+v)
	}
	return &bashSession{e: e, dir: dir, env: env}, nil
}

type bashSession struct {
	e      *bashEngine
	dir    string
	env    []string
	nextID int64
	closed atomic.Bool
}

func (s *bashSession) Run(ctx context.Context, a *eventbus.Event) (*eventbus.Event, error) {
	a.ID = s.nextID
	s.nextID++
	var obs *eventbus.Event
	switch act := a.Action.(type) {
	case *eventbus.CmdRunAction:
		cmd := exec.CommandContext(ctx, "bash", "-c", act.Command)
		cmd.Dir, cmd.Env = s.dir, s.env
		cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
		cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
		cmd.WaitDelay = 2 * time.Second
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		err := cmd.Run()
		// Whatever the command left in its group dies with the action.
		if cmd.Process != nil {
			_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		}
		if ctx.Err() != nil {
			return nil, fmt.Errorf("run %q: %w", act.Command, ctx.Err())
		}
		code := 0
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			code = ee.ExitCode()
		} else if err != nil {
			return nil, err
		}
		md := eventbus.DefaultMetadata()
		md.ExitCode = code
		obs = eventbus.NewObservation(a.ID, strings.TrimRight(out.String(), "\n"),
			&eventbus.CmdOutputObservation{Command: act.Command, Metadata: md})
	case *eventbus.FileWriteAction:
		p := act.Path
		if !filepath.IsAbs(p) {
			p = filepath.Join(s.dir, p)
		}
		if err := os.WriteFile(p, []byte(act.Content), 0o644); err != nil {
			obs = eventbus.NewError(a.ID, "", err.Error())
		} else {
			obs = eventbus.NewObservation(a.ID, "", &eventbus.FileWriteObservation{Path: act.Path})
		}
	default:
		obs = eventbus.NewError(a.ID, "", a.Type()+" is not supported by the test engine")
	}
	obs.ID = s.nextID
	s.nextID++
	obs.Source = eventbus.SourceEnvironment
	return obs, nil
}

func (s *bashSession) Close(context.Context) error {
	if s.closed.Swap(true) {
		return errors.New("session closed twice")
	}
	s.e.live.Add(-1)
	return os.RemoveAll(s.dir)
}

// leftoverProcesses lists pids whose environment holds marker.
func leftoverProcesses(marker string) []int {
	var pids []int
	ents, _ := os.ReadDir("/proc")
	for _, d := range ents {
		var pid int
		if _, err := fmt.Sscan(d.Name(), &pid); err != nil {
			continue
		}
		env, err := os.ReadFile(filepath.Join("/proc", d.Name(), "environ"))
		if err == nil && bytes.Contains(env, []byte("FARM_TEST_MARKER="+marker+"\x00")) {
			pids = append(pids, pid)
		}
	}
	return pids
}
