package runtimes

import (
	"context"
	"errors"
	"reflect"
	"strings"
	"testing"

	"github.com/BurntSushi/toml"
)

// stubBackend is a Backend that only has a name (the embedded interface
// is nil: only Name is ever called here).
type stubBackend struct {
	Backend
	name   string
	closed bool
}

func (b *stubBackend) Name() string { return b.name }
func (b *stubBackend) Close() error { b.closed = true; return nil }

type stubConfig struct {
	Size  int      `toml:"size"`
	Mode  string   `toml:"mode"`
	Tags  []string `toml:"tags"`
	Reap  bool     `toml:"reap_orphans"`
	Inner struct {
		Depth int `toml:"depth"`
	} `toml:"inner"`
}

func (c *stubConfig) Validate() error {
	if c.Mode != "a" && c.Mode != "b" {
		return errors.New(`mode: want "a" or "b"`)
	}
	return nil
}

func (c *stubConfig) ReapOrphansAtStart() bool { return c.Reap }

func stubFactory(name string, got *stubConfig) Factory {
	return NewFactory(name, func() stubConfig { return stubConfig{Size: 1, Mode: "a", Reap: true} },
		func(_ context.Context, c stubConfig, env Env) (Backend, error) {
			if env.Logger == nil {
				return nil, errors.New("nil logger")
			}
			if got != nil {
				*got = c
			}
			return &stubBackend{name: name}, nil
		})
}

// decodeRuntime decodes text the way a program does: [runtime] into a map
// of primitives, then Factories.Decode, then the undecoded-keys check.
func decodeRuntime(fs *Factories, text string) (Config, error) {
	var file struct {
		Runtime map[string]toml.Primitive `toml:"runtime"`
	}
	cfg := fs.DefaultConfig("one")
	md, err := toml.Decode(text, &file)
	if err != nil {
		return cfg, err
	}
	if err := fs.Decode(md, "runtime", file.Runtime, &cfg); err != nil {
		return cfg, err
	}
	if u := md.Undecoded(); len(u) > 0 {
		keys := make([]string, len(u))
		for i, k := range u {
			keys[i] = k.String()
		}
		return cfg, errors.New("unknown key(s) " + strings.Join(keys, ", "))
	}
	return cfg, nil
}

func TestFactoriesDecode(t *testing.T) {
	fs := NewFactories(stubFactory("one", nil), stubFactory("two", nil))
	tests := []struct {
		name    string
		text    string
		wantErr string
		check   func(t *testing.T, c Config)
	}{
		{name: "empty file keeps every default", text: "", check: func(t *testing.T, c Config) {
			if !reflect.DeepEqual(c, fs.DefaultConfig("one")) {
				t.Errorf("got %+v", c)
			}
		}},
		{name: "sections decode into their own config", text: "[runtime]\nenabled = [\"two\", \"one\"]\n[runtime.two]\nsize = 5\ntags = [\"x\"]\n[runtime.two.inner]\ndepth = 3\n",
			check: func(t *testing.T, c Config) {
				if !reflect.DeepEqual(c.Enabled, []string{"two", "one"}) {
					t.Errorf("enabled %v", c.Enabled)
				}
				two := c.Backends["two"].(*stubConfig)
				if two.Size != 5 || two.Mode != "a" || len(two.Tags) != 1 || two.Inner.Depth != 3 {
					t.Errorf("two = %+v", two)
				}
				if one := c.Backends["one"].(*stubConfig); one.Size != 1 {
					t.Errorf("one changed: %+v", one)
				}
			}},
		{name: "unknown key is named with its section", text: "[runtime.two]\nsiez = 5\n", wantErr: "unknown key(s) runtime.two.siez"},
		{name: "unknown nested key is named", text: "[runtime.two.inner]\ndeep = 5\n", wantErr: "runtime.two.inner.deep"},
		{name: "unknown section lists the known runtimes", text: "[runtime.three]\nsize = 1\n", wantErr: `[runtime.three]: unknown runtime "three"; known: one, two`},
		{name: "unknown enabled name lists the known runtimes", text: "[runtime]\nenabled = [\"one\", \"thre\"]\n", wantErr: `[runtime] enabled: unknown runtime "thre"; known: one, two`},
		{name: "wrong type names the key", text: "[runtime.one]\nsize = \"big\"\n", wantErr: "size"},
		{name: "validation names the section", text: "[runtime.one]\nmode = \"c\"\n", wantErr: `[runtime.one]: mode: want "a" or "b"`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c, err := decodeRuntime(fs, tc.text)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want it to contain %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			tc.check(t, c)
		})
	}
}

func TestFactoriesNew(t *testing.T) {
	var got stubConfig
	fs := NewFactories(stubFactory("one", &got))
	cfg := fs.DefaultConfig("one")
	cfg.Backends["one"].(*stubConfig).Size = 7
	b, err := fs.New(context.Background(), "one", cfg, Env{})
	if err != nil {
		t.Fatal(err)
	}
	if b.Name() != "one" || got.Size != 7 {
		t.Fatalf("backend %q, config %+v", b.Name(), got)
	}
	if _, err := fs.New(context.Background(), "two", cfg, Env{}); err == nil || !strings.Contains(err.Error(), `unknown runtime "two"; known: one`) {
		t.Fatalf("unknown name: %v", err)
	}
	cfg.Backends["one"].(*stubConfig).Mode = "z"
	if _, err := fs.New(context.Background(), "one", cfg, Env{}); err == nil || !strings.Contains(err.Error(), "[runtime.one]: mode") {
		t.Fatalf("invalid config: %v", err)
	}
	delete(cfg.Backends, "one")
	if _, err := fs.New(context.Background(), "one", cfg, Env{}); err != nil || got.Size != 1 {
		t.Fatalf("missing config should mean defaults: %v %+v", err, got)
	}
	wrong := Config{Backends: map[string]any{"one": 5}}
	if _, err := fs.New(context.Background(), "one", wrong, Env{}); err == nil || !strings.Contains(err.Error(), "configuration is a int") {
		t.Fatalf("wrong config type: %v", err)
	}
	liar := NewFactories(NewFactory("a", func() struct{} { return struct{}{} },
		func(context.Context, struct{}, Env) (Backend, error) { return &stubBackend{name: "b"}, nil }))
	if _, err := liar.New(context.Background(), "a", liar.DefaultConfig(), Env{}); err == nil || !strings.Contains(err.Error(), `named "b"`) {
		t.Fatalf("misnamed backend: %v", err)
	}
}

func TestFactoriesPanics(t *testing.T) {
	for name, fs := range map[string][]Factory{
		"duplicate": {stubFactory("one", nil), stubFactory("one", nil)},
		"empty":     {stubFactory("", nil)},
		"reserved":  {stubFactory(EnabledKey, nil)},
		"nil":       {nil},
	} {
		t.Run(name, func(t *testing.T) {
			defer func() {
				if recover() == nil {
					t.Fatal("no panic")
				}
			}()
			NewFactories(fs...)
		})
	}
}

func TestConfigCloneAndReap(t *testing.T) {
	fs := NewFactories(stubFactory("one", nil), stubFactory("two", nil))
	c := fs.DefaultConfig("one", "two")
	c.Backends["two"].(*stubConfig).Reap = false
	cp := c.Clone()
	cp.Backends["one"].(*stubConfig).Size = 99
	cp.Enabled[0] = "x"
	if c.Backends["one"].(*stubConfig).Size != 1 || c.Enabled[0] != "one" {
		t.Fatal("Clone shares state with the original")
	}
	if got := c.ReapOrphans(c.Enabled); !reflect.DeepEqual(got, []string{"one"}) {
		t.Fatalf("ReapOrphans = %v", got)
	}
}
