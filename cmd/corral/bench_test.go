package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"strings"
	"testing"
)

func TestBenchEventsPrintsEachFigureWithItsBaselineAsJSON(t *testing.T) {
	var out, errb bytes.Buffer
	code := runBench(context.Background(), []string{"events", "--json", "--events", "2000", "--subscribers", "10", "--dir", t.TempDir()}, &out, &errb)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errb.String())
	}
	sc := bufio.NewScanner(&out)
	n := 0
	for sc.Scan() {
		var f figure
		if err := json.Unmarshal(sc.Bytes(), &f); err != nil {
			t.Fatalf("line %q: %v", sc.Text(), err)
		}
		if f.Name == "" || f.Value <= 0 || f.Baseline == "" || f.BaselineValue <= 0 || f.Ratio != f.Value/f.BaselineValue {
			t.Errorf("incomplete figure %+v", f)
		}
		n++
	}
	if n != 2 {
		t.Errorf("got %d figures, want append and fan-out", n)
	}
}

func TestBenchRejectsUnknownScenarioNamingTheKnownOnes(t *testing.T) {
	var out, errb bytes.Buffer
	if code := runBench(context.Background(), []string{"nope"}, &out, &errb); code != 2 {
		t.Errorf("exit %d, want 2", code)
	}
	if !strings.Contains(errb.String(), "events, farm, roundtrip, sessions, start") {
		t.Errorf("stderr %q should list the scenarios", errb.String())
	}
}
