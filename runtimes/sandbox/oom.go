package sandbox

import (
	"os"
	"strconv"
)

// preferOOMKill marks a sandbox process (a shell or the Python
// interpreter; its children inherit the mark) as the kernel's first choice
// when memory runs out, so a command that exhausts a sandbox's memory limit
// is killed rather than the agent serving it — the session then reports
// exit 137 for that command instead of losing its sandbox. Raising a
// process's own score needs no privilege; a failure (no /proc) is ignored.
func preferOOMKill(pid int) {
	_ = os.WriteFile("/proc/"+strconv.Itoa(pid)+"/oom_score_adj", []byte("1000"), 0)
}
