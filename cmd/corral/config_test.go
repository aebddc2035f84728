package main

import (
	"reflect"
	"strings"
	"testing"
)

type testSection struct {
	Dir  string `toml:"dir"`
	Sync string `toml:"sync"`
}

type testConfig struct {
	Listen string      `toml:"listen"`
	Store  testSection `toml:"store"`
}

func TestDecodeConfig(t *testing.T) {
	tests := []struct {
		name    string
		text    string
		wantErr string
		want    testConfig
	}{
		{name: "defaults survive an empty file", text: "", want: testConfig{Listen: "127.0.0.1:7070", Store: testSection{Sync: "batch"}}},
		{name: "known keys are set", text: "listen = \"127.0.0.1:9\"\n[store]\ndir = \"/d\"\n",
			want: testConfig{Listen: "127.0.0.1:9", Store: testSection{Dir: "/d", Sync: "batch"}}},
		{name: "unknown top-level key is named", text: "lisen = \"x\"\n", wantErr: "unknown key(s) lisen"},
		{name: "unknown nested key is named with its table", text: "[store]\nsyn = \"never\"\n", wantErr: "unknown key(s) store.syn"},
		{name: "syntax error names the line", text: "listen = \"x\"\nbad line\n", wantErr: "line 2"},
		{name: "wrong type is reported", text: "listen = 5\n", wantErr: "listen"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg := testConfig{Listen: "127.0.0.1:7070", Store: testSection{Sync: "batch"}}
			err := decodeConfig("test.toml", tc.text, &cfg)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want it to contain %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if cfg != tc.want {
				t.Fatalf("got %+v want %+v", cfg, tc.want)
			}
		})
	}
}

// TestExampleConfigIsTrue keeps examples/corral.toml honest: it must load
// without unknown keys and state exactly the built-in defaults.
func TestExampleConfigIsTrue(t *testing.T) {
	got := defaultServeConfig()
	if err := loadConfigFile("../../examples/corral.toml", &got); err != nil {
		t.Fatal(err)
	}
	want := defaultServeConfig()
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("examples/corral.toml differs from the defaults:\n got %+v\nwant %+v", got, want)
	}
}
