package actors

import (
	"context"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"testing"
	"time"

	"corral/runtimes"
	"corral/runtimes/local"
)

// TestNoLeaksAfter500Sessions starts and stops 500 local sessions (each a
// real agent process with a bash) and checks that goroutines, child
// processes, sockets and workspaces are all gone afterwards.
func TestNoLeaksAfter500Sessions(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: 500 agent processes")
	}
	const sessions, parallel = 500, 4
	tmp := t.TempDir()
	before := runtime.NumGoroutine()

	b, err := local.New(local.WithAgentBinary(agentBin), local.WithTempDir(tmp), local.WithEnv("HOME="+t.TempDir()))
	if err != nil {
		t.Fatal(err)
	}
	reg, _ := runtimes.NewRegistry(b)
	cfg := testConfig()
	cfg.DefaultRuntime = "local"
	e, err := NewEngine(cfg, reg, WithLogger(testLogger(t)), WithHostEnv([]string{}))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	sem := make(chan struct{}, parallel)
	var wg sync.WaitGroup
	for i := 0; i < sessions; i++ {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			info, err := e.CreateSession(ctx, SessionSpec{})
			if err != nil {
				t.Error(err)
				return
			}
			if err := e.WaitReady(ctx, info.ID); err != nil {
				t.Error(err)
				return
			}
			if i%10 == 0 { // some run an action, some stop idle
				if _, _, err := e.Run(ctx, info.ID, cmd("echo hi")); err != nil {
					t.Error(err)
				}
			}
			if _, err := e.Stop(ctx, info.ID); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	if n := countChildren(t); n != 0 {
		t.Errorf("%d child processes left after every session stopped", n)
	}
	if err := e.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	ents, _ := os.ReadDir(tmp)
	for _, en := range ents {
		t.Errorf("left behind in the temp dir: %s", filepath.Join(tmp, en.Name()))
	}
	deadline := time.Now().Add(10 * time.Second)
	for runtime.NumGoroutine() > before && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if after := runtime.NumGoroutine(); after > before {
		buf := make([]byte, 1<<20)
		t.Fatalf("goroutines: %d before, %d after:\n%s", before, after, buf[:runtime.Stack(buf, true)])
	}
}
