package sandbox

import (
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
)

func TestPreferOOMKillMarksTheProcess(t *testing.T) {
	cmd := exec.Command("sleep", "30")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()
	preferOOMKill(cmd.Process.Pid)
	b, err := os.ReadFile("/proc/" + strconv.Itoa(cmd.Process.Pid) + "/oom_score_adj")
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.TrimSpace(string(b)); got != "1000" {
		t.Fatalf("oom_score_adj = %s, want 1000", got)
	}
}
