package docker

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestParseVolume(t *testing.T) {
	cases := []struct {
		in      string
		want    volumeMount
		wantErr string
	}{
		{in: "/host/dir:/workspace", want: volumeMount{Source: "/host/dir", Target: "/workspace"}},
		{in: "/host/dir:/data:ro", want: volumeMount{Source: "/host/dir", Target: "/data", ReadOnly: true}},
		{in: "/host/dir/../x:/data/:rw", want: volumeMount{Source: "/host/x", Target: "/data"}},
		{in: "myvol:/cache", want: volumeMount{Source: "myvol", Target: "/cache", Named: true}},
		{in: "volume:myvol:/cache:ro", want: volumeMount{Source: "myvol", Target: "/cache", ReadOnly: true, Named: true}},
		{in: "/only-one-part", wantErr: "want host:container[:mode]"},
		{in: "/a:/b:rw:extra", wantErr: "want host:container[:mode]"},
		{in: "/a:relative", wantErr: "must be absolute"},
		{in: "/a:/b:overlay", wantErr: "overlay mounts are not supported"},
		{in: "/a:/b:rx", wantErr: `unknown mode "rx"`},
		{in: "../up:/b", wantErr: "neither an absolute host path nor a valid volume name"},
		{in: ":/b", wantErr: "empty host or container part"},
		{in: "/a:/.corral/run", wantErr: "reserved"},
	}
	for _, c := range cases {
		t.Run(c.in, func(t *testing.T) {
			got, err := parseVolume(c.in)
			if c.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), c.wantErr) {
					t.Fatalf("err = %v, want it to mention %q", err, c.wantErr)
				}
				return
			}
			if err != nil || got != c.want {
				t.Fatalf("parseVolume = %+v, %v; want %+v", got, err, c.want)
			}
		})
	}
}

func TestMountsForPicksTheWorkspace(t *testing.T) {
	cases := []struct {
		name      string
		workspace string
		volumes   []string
		wantWS    string // source of the /workspace mount, "" for the anonymous volume
		wantErr   string
	}{
		{name: "default is an anonymous volume"},
		{name: "host dir", workspace: "/srv/ws", wantWS: "/srv/ws"},
		{name: "named volume", workspace: "volume:wsvol", wantWS: "wsvol"},
		{name: "from volumes", volumes: []string{"/srv/a:/workspace:rw", "/srv/b:/data"}, wantWS: "/srv/a"},
		{name: "twice", workspace: "/srv/ws", volumes: []string{"/srv/a:/workspace"}, wantErr: "already mounted"},
		{name: "workspace with colon", workspace: "/srv/ws:/x", wantErr: "want an absolute host directory"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, ws, err := mountsFor(c.workspace, c.volumes)
			if c.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), c.wantErr) {
					t.Fatalf("err = %v, want %q", err, c.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			got := ""
			if ws != nil {
				got = ws.Source
			}
			if got != c.wantWS {
				t.Errorf("workspace source %q, want %q", got, c.wantWS)
			}
		})
	}
}

func FuzzParseVolume(f *testing.F) {
	for _, s := range []string{"/a:/b", "/a:/b:ro", "volume:v:/c", "v:/c:rw", "::", "/a:/b:overlay", "a:b:c:d"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		m, err := parseVolume(s)
		if err != nil {
			return
		}
		if !strings.HasPrefix(m.Target, "/") || m.Source == "" {
			t.Fatalf("accepted %q as %+v", s, m)
		}
		if m2, err := parseVolume(m.bind()); err != nil || m2 != m {
			t.Fatalf("bind() of %q = %q does not parse back: %+v %v", s, m.bind(), m2, err)
		}
	})
}

func TestFindAptSource(t *testing.T) {
	scripts := t.TempDir()
	for _, s := range []string{"bookworm", "trixie"} {
		os.WriteFile(filepath.Join(scripts, s), nil, 0o644)
	}
	cases := []struct {
		name    string
		files   map[string]string
		want    AptSource
		wantErr string
	}{
		{
			name: "deb822 skips security and updates suites",
			files: map[string]string{"sources.list.d/debian.sources": "Types: deb\nURIs: http://deb.example/debian-security\nSuites: bookworm-security\nComponents: main\n\n" +
				"Types: deb deb-src\nURIs: http://deb.example/debian\nSuites: bookworm-updates bookworm\nComponents: main\n"},
			want: AptSource{URI: "http://deb.example/debian", Suite: "bookworm"},
		},
		{
			name:  "one-line with options",
			files: map[string]string{"sources.list": "# comment\ndeb-src http://x/debian trixie main\ndeb [arch=amd64 signed-by=/k.gpg] http://mirror/debian trixie main\n"},
			want:  AptSource{URI: "http://mirror/debian", Suite: "trixie"},
		},
		{
			name:    "unknown suites only",
			files:   map[string]string{"sources.list.d/node.sources": "Types: deb\nURIs: https://deb.nodesource.com/node_20.x\nSuites: nodistro\n"},
			wantErr: "pass --mirror and --suite",
		},
		{
			name:    "disabled files are ignored",
			files:   map[string]string{"sources.list.d/x.list.disabled": "deb http://m/debian bookworm main\n"},
			wantErr: "no `deb` entries",
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			os.MkdirAll(filepath.Join(dir, "sources.list.d"), 0o755)
			for name, body := range c.files {
				os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644)
			}
			got, err := FindAptSource(dir, scripts)
			if c.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), c.wantErr) {
					t.Fatalf("err = %v, want %q", err, c.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			got.File = ""
			if got != c.want {
				t.Errorf("got %+v, want %+v", got, c.want)
			}
		})
	}
}
