package remote

import (
	"os"
	"path/filepath"
	"sync"
	"testing"
)

var (
	agentOnce sync.Once
	agentPath string
	agentErr  error
)

func TestMain(m *testing.M) {
	code := m.Run()
	if agentErr == nil && agentPath != "" {
		os.RemoveAll(filepath.Dir(agentPath))
	}
	os.Exit(code)
}
