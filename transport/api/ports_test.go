package api

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"mime/multipart"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"

	"corral/eventbus"
)

// echoServer is a Python HTTP server for the sandbox: it binds an
// ephemeral port on 127.0.0.1, prints it, and answers GET and POST with
// what it received (and the Authorization header it got, in X-Auth);
// GET /big is 10 MiB.
const echoServer = `import http.server
BIG = b"x" * (10 << 20)
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        if self.path == "/big":
            return self.reply(BIG)
        self.reply(("GET " + self.path).encode())
    def do_POST(self):
        n = int(self.headers.get("Content-Length") or 0)
        self.reply(b"POST " + self.path.encode() + b" " + self.rfile.read(n))
    def reply(self, body):
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("X-Auth", self.headers.get("Authorization") or "none")
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *a):
        pass
s = http.server.ThreadingHTTPServer(("127.0.0.1", 0), H)
print(s.server_address[1], flush=True)
s.serve_forever()
`

// runIn runs command in the session's bash and returns its output.
func (f *fixture) runIn(id, command string) string {
	f.t.Helper()
	body, _ := json.Marshal(map[string]any{"action": "run", "args": map[string]any{"command": command}})
	code, b, _ := f.do("POST", "/api/sessions/"+id+"/actions?wait=true", string(body))
	if code != 200 {
		f.t.Fatalf("run %q = %d %s", command, code, b)
	}
	obs, err := eventbus.Unmarshal(b)
	if err != nil {
		f.t.Fatal(err)
	}
	if run, ok := obs.Observation.(*eventbus.CmdOutputObservation); !ok || run.Metadata.ExitCode != 0 {
		f.t.Fatalf("run %q: observation %s", command, b)
	}
	return obs.Content
}

// startInSandbox starts cmd in the background in the session's sandbox,
// its stdout in name.out, and returns the port it prints first; a
// cleanup kills it.
func (f *fixture) startInSandbox(id, name, cmd string) int {
	f.t.Helper()
	f.runIn(id, fmt.Sprintf("%s > %s.out 2> %s.err & echo $! > %s.pid", cmd, name, name, name))
	f.t.Cleanup(func() {
		f.do("POST", "/api/sessions/"+id+"/actions?wait=true", fmt.Sprintf(`{"action":"run","args":{"command":"kill $(cat %s.pid)"}}`, name))
	})
	// The shell waits for the server's first line (a poll inside the
	// sandbox bounded by timeout), so the test waits on that event.
	out := f.runIn(id, fmt.Sprintf(`timeout 60 sh -c 'until [ -s %s.out ]; do sleep 0.02; done'; echo "port=$(head -n1 %s.out)"; cat %s.err`, name, name, name))
	m := regexp.MustCompile(`port=(\d+)`).FindStringSubmatch(out)
	if m == nil {
		f.t.Fatalf("%s printed no port: %q", name, out)
	}
	port, _ := strconv.Atoi(m[1])
	return port
}

func TestPreviewPortsThroughTheAPI(t *testing.T) {
	if testing.Short() {
		t.Skip("starts real local sandboxes; skipped in -short mode")
	}
	const token = "ports-test-token-0123456789"
	f := newRealFixture(t, func(c *Config) { c.AuthTokens = []string{token} })
	f.token = token
	wsecho := buildWSEcho(t)
	id := f.readySession()
	f.runIn(id, "cat > echo_server.py <<'PYEOF'\n"+echoServer+"PYEOF")
	httpPort := f.startInSandbox(id, "http", "python3 -u echo_server.py")
	wsPort := f.startInSandbox(id, "ws", wsecho)
	base := fmt.Sprintf("/api/sessions/%s/ports/", id)

	t.Run("the sandbox's listening ports are listed with their URLs", func(t *testing.T) {
		var got struct{ Ports []Port }
		f.mustJSON("GET", "/api/sessions/"+id+"/ports", nil, 200, &got)
		for _, want := range []int{httpPort, wsPort} {
			found := false
			for _, p := range got.Ports {
				if p.Port == want {
					found = p.URL == base+strconv.Itoa(want)+"/" && p.Address == "127.0.0.1"
				}
			}
			if !found {
				t.Errorf("port %d not listed right in %+v", want, got.Ports)
			}
		}
	})

	t.Run("GET reaches the application with path and query, without Corral's token", func(t *testing.T) {
		code, b, hdr := f.do("GET", fmt.Sprintf("%s%d/some%%2Fpath/x?q=1", base, httpPort), nil)
		if code != 200 || string(b) != "GET /some%2Fpath/x?q=1" || hdr.Get("X-Auth") != "none" {
			t.Fatalf("GET = %d %q X-Auth=%q", code, b, hdr.Get("X-Auth"))
		}
	})

	t.Run("a browser link's ?access_token= is accepted and not passed on", func(t *testing.T) {
		code, b, _ := f.do("GET", fmt.Sprintf("%s%d/x?access_token=%s&q=1", base, httpPort, token), nil, "Authorization", "")
		if code != 200 || string(b) != "GET /x?q=1" {
			t.Fatalf("GET with access_token = %d %q", code, b)
		}
	})

	t.Run("POST carries its body", func(t *testing.T) {
		code, b, _ := f.do("POST", fmt.Sprintf("%s%d/form", base, httpPort), "a=1&b=2")
		if code != 200 || string(b) != "POST /form a=1&b=2" {
			t.Fatalf("POST = %d %q", code, b)
		}
	})

	t.Run("requests without the token are refused", func(t *testing.T) {
		code, _, _ := f.do("GET", fmt.Sprintf("%s%d/", base, httpPort), nil, "Authorization", "")
		if code != http.StatusUnauthorized {
			t.Fatalf("no token = %d, want 401", code)
		}
	})

	t.Run("a WebSocket echoes and its close reaches the client", func(t *testing.T) {
		checkWSEcho(t, f.fixture, fmt.Sprintf("%s%d/", base, wsPort))
	})

	t.Run("bad and closed ports", func(t *testing.T) { checkBadPorts(t, f.fixture, base) })

	t.Run("an unknown session is a 404", func(t *testing.T) {
		code, b, _ := f.do("GET", fmt.Sprintf("/api/sessions/nosuch/ports/%d/", httpPort), nil)
		if code != 404 {
			t.Fatalf("unknown session = %d %s", code, b)
		}
	})
}

// closedPort returns a loopback port that was just free and is closed
// again: nothing listens on it.
func closedPort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	return port
}

// checkWSEcho dials path (a wsecho behind the proxy), checks two echoes,
// then that the server's close (4000) reaches the client.
func checkWSEcho(t *testing.T, f *fixture, path string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	u := "ws" + strings.TrimPrefix(f.ts.URL, "http") + path
	hdr := http.Header{}
	if f.token != "" {
		hdr.Set("Authorization", "Bearer "+f.token)
	}
	c, _, err := websocket.Dial(ctx, u, &websocket.DialOptions{HTTPHeader: hdr})
	if err != nil {
		t.Fatalf("dial %s: %v", u, err)
	}
	defer c.CloseNow()
	for _, msg := range []string{"hello", "again"} {
		if err := c.Write(ctx, websocket.MessageText, []byte(msg)); err != nil {
			t.Fatal(err)
		}
		_, b, err := c.Read(ctx)
		if err != nil || string(b) != "echo:"+msg {
			t.Fatalf("echo of %q = %q, %v", msg, b, err)
		}
	}
	if err := c.Write(ctx, websocket.MessageText, []byte("close")); err != nil {
		t.Fatal(err)
	}
	_, _, err = c.Read(ctx)
	if st := websocket.CloseStatus(err); st != 4000 {
		t.Fatalf("after close: %v (status %d), want the server's close 4000", err, st)
	}
}

// checkBadPorts: a closed port is a 502, a port that is no port a 400,
// each with a JSON error naming the port.
func checkBadPorts(t *testing.T, f *fixture, base string) {
	closed := closedPort(t)
	for _, tc := range []struct {
		name, port string
		status     int
		code       string
	}{
		{"a port nothing listens on is a 502", strconv.Itoa(closed), 502, "port_unreachable"},
		{"port 0 is out of range", "0", 400, "invalid_port"},
		{"port 65536 is out of range", "65536", 400, "invalid_port"},
		{"a name is not a port", "http", 400, "invalid_port"},
		{"a signed number is not a port", "+80", 400, "invalid_port"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, b, _ := f.do("GET", base+tc.port+"/", nil)
			var e errorBody
			if code != tc.status || json.Unmarshal(b, &e) != nil || e.Error.Code != tc.code || !strings.Contains(e.Error.Message, tc.port) {
				t.Fatalf("GET port %s = %d %s, want %d %s", tc.port, code, b, tc.status, tc.code)
			}
		})
	}
}

// buildWSEcho builds testdata/wsecho (static, so it runs in any image)
// once per test binary, next to the agent buildAgent makes.
func buildWSEcho(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(filepath.Dir(buildAgent(t)), "wsecho")
	wsechoOnce.Do(func() {
		cmd := exec.Command("go", "build", "-o", bin, "./testdata/wsecho")
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			wsechoErr = fmt.Errorf("build wsecho: %v\n%s", err, out)
		}
	})
	if wsechoErr != nil {
		t.Fatal(wsechoErr)
	}
	return bin
}

var (
	wsechoOnce sync.Once
	wsechoErr  error
)

// The same proxy on Docker: the app listens on the container's own
// loopback, which nothing outside the container can reach but its agent.
func TestPreviewPortsOfADockerSandbox(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a real container; skipped in -short mode")
	}
	f := newDockerFixture(t)
	id := readyDockerSession(t, f)
	bin := buildWSEcho(t)
	var form bytes.Buffer
	mw := multipart.NewWriter(&form)
	fw, err := mw.CreateFormFile("file", "wsecho")
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(bin)
	if err != nil {
		t.Fatal(err)
	}
	fw.Write(b)
	mw.Close()
	if code, body, _ := f.do("POST", "/api/sessions/"+id+"/files?destination=/tmp/wsbin", form.Bytes(), "Content-Type", mw.FormDataContentType()); code != 201 {
		t.Fatalf("upload wsecho = %d %s", code, body)
	}
	f.runIn(id, "chmod +x /tmp/wsbin/wsecho")
	port := f.startInSandbox(id, "/tmp/wsbin/srv", "/tmp/wsbin/wsecho")
	base := fmt.Sprintf("/api/sessions/%s/ports/", id)

	var got struct{ Ports []Port }
	f.mustJSON("GET", "/api/sessions/"+id+"/ports", nil, 200, &got)
	if len(got.Ports) != 1 || got.Ports[0].Port != port {
		t.Errorf("ports = %+v, want only the app's %d (the container's own loopback)", got.Ports, port)
	}
	code, body, _ := f.do("POST", fmt.Sprintf("%s%d/p?q=1", base, port), "payload")
	if code != 200 || string(body) != "POST /p?q=1 payload" {
		t.Fatalf("POST = %d %q", code, body)
	}
	checkWSEcho(t, f, fmt.Sprintf("%s%d/", base, port))
	checkBadPorts(t, f, base)
}
