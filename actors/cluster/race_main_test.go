// With -race only the tests that start no protoactor member run (logic_test.go);
// cluster_test.go, built without -race, has the TestMain of the other build.

//go:build race

package cluster

import (
	"testing"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }
