package sandbox

import (
	"context"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"corral/eventbus"
)

// isZombie reports whether pid has exited and waits to be reaped (here pid 1
// may not reap orphans, so killed processes can linger as zombies).
func isZombie(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return true // gone
	}
	i := strings.LastIndexByte(string(b), ')')
	return i < 0 || strings.HasPrefix(string(b[i+1:]), " Z") || strings.HasPrefix(string(b[i+1:]), " X")
}

// liveSessionProcs lists live (non-zombie) processes still in the session
// of bash's pid (or below it), and children of the test process.
func liveSessionProcs(sid int) []int {
	var live []int
	for _, p := range rawSessionProcs(sid) {
		if !isZombie(p) {
			live = append(live, p)
		}
	}
	return live
}

func rawSessionProcs(sid int) []int {
	procs := sessionProcesses(sid)
	if _, _, ok := procStat(sid); ok {
		procs = append(procs, sid)
	}
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		var pid int
		if _, err := fmt.Sscan(e.Name(), &pid); err != nil {
			continue
		}
		if ppid, _, ok := procStat(pid); ok && ppid == os.Getpid() {
			procs = append(procs, pid)
		}
	}
	return procs
}

func TestCloseMidCommandKillsEverythingAndRunReturns(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	s, err := NewBashSession(context.Background(), BashOptions{WorkDir: t.TempDir(), Env: []string{"HOME=" + t.TempDir()}})
	if err != nil {
		t.Fatal(err)
	}
	sid := s.pid
	// A background job (its own process group under job control), a
	// SIGHUP-immune one, and a foreground command that never ends.
	btMustRun(t, s, btCmd("sleep 1000 &"), 5)
	btMustRun(t, s, btCmd("nohup sleep 1001 >/dev/null 2>&1 &"), 5)
	done := make(chan *eventbus.Event, 1)
	go func() { done <- s.Run(context.Background(), btCmd("sleep 1002"), nil, nil) }()
	time.Sleep(300 * time.Millisecond)
	if n := len(liveSessionProcs(sid)); n < 4 {
		t.Fatalf("expected at least 3 processes in the session, found %d", n)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	select {
	case ev := <-done:
		if _, ok := ev.Observation.(*eventbus.ErrorObservation); !ok || !strings.HasPrefix(ev.Content, msgSessionInterrupt) {
			t.Errorf("Run after Close: %T %q", ev.Observation, ev.Content)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Run did not return after Close")
	}
	if err := s.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	if left := liveSessionProcs(sid); len(left) > 0 {
		for _, p := range left {
			b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/stat", p))
			t.Logf("left: %s", b)
		}
		t.Errorf("processes left after Close: %v", left)
	}
	ev := s.Run(context.Background(), btCmd("echo x"), nil, nil)
	if _, ok := ev.Observation.(*eventbus.ErrorObservation); !ok {
		t.Errorf("Run on a closed session: %T %q", ev.Observation, ev.Content)
	}
}

func TestRunContextCancelReturnsAndCommandKeepsRunning(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	s, err := NewBashSession(context.Background(), BashOptions{WorkDir: t.TempDir(), Env: []string{"HOME=" + t.TempDir()}})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	ev := s.Run(ctx, btCmd("sleep 0.8; echo late"), nil, nil)
	if _, ok := ev.Observation.(*eventbus.ErrorObservation); !ok {
		t.Fatalf("want an error observation, got %T %q", ev.Observation, ev.Content)
	}
	// The command is still running: a new command is refused...
	r := btMustRun(t, s, btCmd("echo other"), 5)
	if !strings.Contains(r.obs.Metadata.Suffix, "is NOT executed") {
		t.Errorf("want refusal, got %q %q", r.content, r.obs.Metadata.Suffix)
	}
	// ...and its output arrives through the empty command.
	a := btCmd("")
	a.Blocking = true
	r = btMustRun(t, s, a, 5)
	if r.content != "late" || r.obs.Metadata.ExitCode != 0 {
		t.Errorf("continuation: %q exit %d", r.content, r.obs.Metadata.ExitCode)
	}
}

func TestBashExitEndsSession(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	s, err := NewBashSession(context.Background(), BashOptions{WorkDir: t.TempDir(), Env: []string{"HOME=" + t.TempDir()}})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ev := s.Run(context.Background(), btCmd("exit 3"), nil, nil)
	if _, ok := ev.Observation.(*eventbus.ErrorObservation); !ok {
		t.Errorf("exit: want an error observation, got %T %q", ev.Observation, ev.Content)
	}
	ev = s.Run(context.Background(), btCmd("echo x"), nil, nil)
	if !strings.Contains(ev.Content, "exited") {
		t.Errorf("after exit: %q", ev.Content)
	}
}

func TestNewBashSessionRejectsBadOptions(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		opts BashOptions
		want string
	}{
		{"missing work dir", BashOptions{WorkDir: "/nonexistent/corral"}, "not an existing directory"},
		{"bad env entry", BashOptions{WorkDir: "/tmp", Env: []string{"NOEQUALS"}}, "NAME=VALUE"},
		{"bad env name", BashOptions{WorkDir: "/tmp", Env: []string{"A-B=1"}}, "NAME=VALUE"},
		{"unknown user", BashOptions{WorkDir: "/tmp", User: "no_such_user_corral"}, "no_such_user_corral"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s, err := NewBashSession(context.Background(), tc.opts)
			if err == nil {
				s.Close()
				t.Fatal("want an error")
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q does not mention %q", err, tc.want)
			}
		})
	}
}

func TestEnvOptionIsVisible(t *testing.T) {
	t.Parallel()
	s := btSession(t, BashOptions{Env: []string{"CORRAL_OPT=from option", "TERM=xterm"}})
	r := btMustRun(t, s, btCmd(`echo "$CORRAL_OPT|$TERM"`), 5)
	if r.content != "from option|xterm" {
		t.Errorf("got %q", r.content)
	}
}

// loginUser returns a non-root user whose login shell is bash, from /etc/passwd.
func loginUser() string {
	data, _ := os.ReadFile("/etc/passwd")
	for _, line := range strings.Split(string(data), "\n") {
		f := strings.Split(line, ":")
		if len(f) == 7 && f[2] != "0" && strings.HasSuffix(f[6], "/bash") {
			return f[0]
		}
	}
	return ""
}

func TestRunAsOtherUserViaSu(t *testing.T) {
	t.Parallel()
	if os.Geteuid() != 0 {
		t.Skip("switching users needs root")
	}
	u := loginUser()
	if u == "" {
		t.Skip("no non-root user with a bash login shell in /etc/passwd")
	}
	dir := t.TempDir()
	if err := os.Chmod(dir, 0o777); err != nil {
		t.Fatal(err)
	}
	s, err := NewBashSession(context.Background(), BashOptions{WorkDir: dir, User: u, Env: []string{"CORRAL_SU=yes"}})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	r := btMustRun(t, s, btCmd(`echo "$(whoami) $CORRAL_SU $(pwd)"`), 5)
	if r.content != u+" yes "+dir {
		t.Errorf("got %q", r.content)
	}
	if r.obs.Metadata.Username == nil || *r.obs.Metadata.Username != u {
		t.Errorf("username %v", r.obs.Metadata.Username)
	}
	// a long command goes through the session's command file, which the
	// user must be able to read
	long := strings.Repeat("y", 5000)
	if r := btMustRun(t, s, btCmd("echo "+long+" | wc -c"), 5); r.content != "5001" {
		t.Errorf("long command as %s: %q", u, r.content)
	}
}

// Close hangs up before killing, so scripts' exit traps run (pyenv's rehash
// leaves a stale lock behind when SIGKILLed while ~/.bashrc runs).
func TestCloseLetsExitTrapsRun(t *testing.T) {
	dir := t.TempDir()
	s, err := NewBashSession(context.Background(), BashOptions{WorkDir: dir, Env: []string{"HOME=" + t.TempDir()}})
	if err != nil {
		t.Fatal(err)
	}
	btMustRun(t, s, btCmd(`bash -c 'trap "echo bye > trapped" EXIT; sleep 100' &`), 5)
	time.Sleep(200 * time.Millisecond)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(dir + "/trapped")
	if err != nil || string(b) != "bye\n" {
		t.Errorf("exit trap did not run on Close: %q %v", b, err)
	}
}
