package agentwire

import (
	"bufio"
	"bytes"
	"net/http"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// serveServerInfo answers OpenHands' /server_info from /proc (reference §5.3):
// the agent process's CPU (sampled over 0.1 s), memory and I/O, and the
// root filesystem's usage. Values that cannot be read are 0.
func (s *Server) serveServerInfo(w http.ResponseWriter, r *http.Request) {
	now := time.Now()
	cpu0, t0 := procCPUSeconds(), time.Now()
	select {
	case <-time.After(100 * time.Millisecond):
	case <-r.Context().Done():
		return
	}
	cpu1, t1 := procCPUSeconds(), time.Now()
	cpuPct := 0.0
	if d := t1.Sub(t0).Seconds(); d > 0 {
		cpuPct = round2((cpu1 - cpu0) / d * 100)
	}
	status := procKV("/proc/self/status")
	rss, vms := status["VmRSS"]*1024, status["VmSize"]*1024
	memTotal := procKV("/proc/meminfo")["MemTotal"] * 1024
	memPct := 0.0
	if memTotal > 0 {
		memPct = round2(float64(rss) / float64(memTotal) * 100)
	}
	var disk map[string]any
	var st syscall.Statfs_t
	if syscall.Statfs("/", &st) == nil {
		total := st.Blocks * uint64(st.Bsize)
		free := st.Bavail * uint64(st.Bsize)
		used := (st.Blocks - st.Bfree) * uint64(st.Bsize)
		pct := 0.0
		if used+free > 0 {
			pct = round2(float64(used) / float64(used+free) * 100)
		}
		disk = map[string]any{"total": total, "used": used, "free": free, "percent": pct}
	} else {
		disk = map[string]any{"total": 0, "used": 0, "free": 0, "percent": 0.0}
	}
	io := procKV("/proc/self/io")
	writeJSON(w, http.StatusOK, map[string]any{
		"uptime":    now.Sub(s.started).Seconds(),
		"idle_time": now.Sub(time.Unix(0, s.lastExec.Load())).Seconds(),
		"resources": map[string]any{
			"cpu_percent": cpuPct,
			"memory":      map[string]any{"rss": rss, "vms": vms, "percent": memPct},
			"disk":        disk,
			"io":          map[string]any{"read_bytes": io["read_bytes"], "write_bytes": io["write_bytes"]},
		},
	})
}

func round2(f float64) float64 { return float64(int64(f*100+0.5)) / 100 }

// procCPUSeconds is this process's user+system CPU time from /proc/self/stat.
func procCPUSeconds() float64 {
	b, err := os.ReadFile("/proc/self/stat")
	if err != nil {
		return 0
	}
	// Fields after the command name (which may contain spaces) start after ")".
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 13 {
		return 0
	}
	ut, _ := strconv.ParseUint(f[11], 10, 64)
	st, _ := strconv.ParseUint(f[12], 10, 64)
	const clkTck = 100 // USER_HZ is 100 on every Linux ABI Go supports
	return float64(ut+st) / clkTck
}

// procKV parses "Key:   123 kB" or "key: 123" lines into Key -> 123.
func procKV(path string) map[string]uint64 {
	out := map[string]uint64{}
	f, err := os.Open(path)
	if err != nil {
		return out
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if !ok {
			continue
		}
		fs := strings.Fields(v)
		if len(fs) == 0 {
			continue
		}
		if n, err := strconv.ParseUint(fs[0], 10, 64); err == nil {
			out[k] = n
		}
	}
	return out
}
