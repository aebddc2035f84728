package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"strings"
	"testing"

	"corral/eventbus"
)

func TestBenchEventsPrintsEachFigureWithItsBaselineAndStoreSettingsAsJSON(t *testing.T) {
	var out, errb bytes.Buffer
	args := []string{"events", "--json", "--events", "400", "--durable-events", "20", "--append-sessions", "4",
		"--replay-events", "300", "--subscribers", "3", "--dir", t.TempDir()}
	if code := runBench(context.Background(), args, &out, &errb); code != 0 {
		t.Fatalf("exit %d: %s", code, errb.String())
	}
	defaults := storeSettings(eventbus.DefaultConfig())
	want := map[string]string{ // figure -> the store settings it must run with
		"durable append, 1 writer":   defaults,
		"durable append, 4 sessions": defaults,
		"never append, 1 writer":     "sync = never",
		"fan-out, 3 subscribers":     "sync = never, subscriber_buffer = 116",
		"replay, 300 events":         defaults,
		"decoded replay, 300 events": defaults,
	}
	sc := bufio.NewScanner(&out)
	for sc.Scan() {
		var f figure
		if err := json.Unmarshal(sc.Bytes(), &f); err != nil {
			t.Fatalf("line %q: %v", sc.Text(), err)
		}
		if f.Value <= 0 || f.Baseline == "" || f.BaselineValue <= 0 || f.Ratio != f.Value/f.BaselineValue {
			t.Errorf("incomplete figure %+v", f)
		}
		settings, ok := want[f.Name]
		if !ok {
			t.Errorf("unexpected figure %q", f.Name)
			continue
		}
		if f.Settings != settings {
			t.Errorf("%s ran on %q, want %q", f.Name, f.Settings, settings)
		}
		delete(want, f.Name)
	}
	for name := range want {
		t.Errorf("figure %q missing", name)
	}
}

func TestStoreSettingsNameTheDefaultsOrWhatDiffers(t *testing.T) {
	cfg := eventbus.DefaultConfig()
	if got := storeSettings(cfg); got != "defaults (sync = batch)" {
		t.Errorf("defaults: %q", got)
	}
	cfg.StoreDir = "/elsewhere" // where the store lives is no setting of note
	if got := storeSettings(cfg); got != "defaults (sync = batch)" {
		t.Errorf("other dir: %q", got)
	}
	cfg.Sync, cfg.SubscriberBuffer = eventbus.SyncNever, 7
	if got := storeSettings(cfg); got != "sync = never, subscriber_buffer = 7" {
		t.Errorf("changed: %q", got)
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

// Engine, API, sessions and farm figures measure what `corral serve` runs:
// the event store on its default settings. A figure on other settings
// says so in its name.
func TestBenchEngineFiguresRunOnTheDefaultStoreSettings(t *testing.T) {
	buildAgent(t)
	defaults := storeSettings(eventbus.DefaultConfig())
	for _, args := range [][]string{
		{"roundtrip", "-n", "3"},
		{"sessions", "--sessions", "2", "--actions", "2"},
		{"farm", "--jobs", "2", "--concurrency", "2"},
	} {
		t.Run(args[0], func(t *testing.T) {
			var out, errb bytes.Buffer
			args := append(args, "--json", "--dir", t.TempDir())
			if code := runBench(context.Background(), args, &out, &errb); code != 0 {
				t.Fatalf("exit %d: %s", code, errb.String())
			}
			sc := bufio.NewScanner(&out)
			onDefaults := 0
			for sc.Scan() {
				var f figure
				if err := json.Unmarshal(sc.Bytes(), &f); err != nil {
					t.Fatalf("line %q: %v", sc.Text(), err)
				}
				switch {
				case strings.HasPrefix(f.Name, "executor ") || strings.HasPrefix(f.Name, "agentwire "):
					if f.Settings != "" { // below the engine: no store
						t.Errorf("%s has store settings %q", f.Name, f.Settings)
					}
				case strings.Contains(f.Name, "sync = never"):
					if f.Settings != "sync = never" {
						t.Errorf("%s ran on %q", f.Name, f.Settings)
					}
				case f.Settings != defaults:
					t.Errorf("%s ran on %q, want %q", f.Name, f.Settings, defaults)
				default:
					onDefaults++
				}
			}
			if onDefaults == 0 {
				t.Errorf("no figure on the default settings:\n%s", out.String())
			}
		})
	}
}
