package agentwire

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"testing"
)

const procTCPHeader = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n"

func TestParseProcNetTCPKeepsLoopbackAndWildcardListeners(t *testing.T) {
	for _, tc := range []struct {
		name  string
		table string
		want  []ListeningPort
	}{
		{"a listener on 127.0.0.1 is kept",
			"   0: 0100007F:1F40 00000000:0000 0A 00000000:00000000 00:00000000 00000000  1000        0 1 1 0 100 0 0 10 0\n",
			[]ListeningPort{{8000, "127.0.0.1"}}},
		{"a listener on 0.0.0.0 is kept",
			"   0: 00000000:0050 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 2 1 0 100 0 0 10 0\n",
			[]ListeningPort{{80, "0.0.0.0"}}},
		{"a listener on another address is left out (127.0.0.1 does not reach it)",
			"   0: 0500000A:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 3 1 0 100 0 0 10 0\n",
			nil},
		{"an established connection is left out",
			"   0: 0100007F:1F40 0100007F:D2F0 01 00000000:00000000 00:00000000 00000000     0        0 4 1 0 20 4 30 10 -1\n",
			nil},
		{"tcp6 :: and ::1 listeners are kept",
			"   0: 00000000000000000000000000000000:1F41 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 5 1 0 100 0 0 10 0\n" +
				"   1: 00000000000000000000000001000000:1F42 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 6 1 0 100 0 0 10 0\n",
			[]ListeningPort{{8001, "::"}, {8002, "::1"}}},
		{"an empty table has no ports", "", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParseProcNetTCP(strings.NewReader(procTCPHeader + tc.table))
			if err != nil || !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("got %v, %v; want %v", got, err, tc.want)
			}
		})
	}
}

func TestParseProcNetTCPNamesTheBadLine(t *testing.T) {
	for _, tc := range []struct{ name, line string }{
		{"too few fields", "   0: 0100007F:1F40\n"},
		{"no port", "   0: 0100007F 00000000:0000 0A\n"},
		{"odd address", "   0: 0100007:1F40 00000000:0000 0A\n"},
		{"port zero", "   0: 0100007F:0000 00000000:0000 0A\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseProcNetTCP(strings.NewReader(procTCPHeader + tc.line))
			if err == nil || !strings.Contains(err.Error(), "line 2") {
				t.Fatalf("err = %v, want one naming line 2", err)
			}
		})
	}
}

func FuzzParseProcNetTCP(f *testing.F) {
	f.Add(procTCPHeader + "   0: 0100007F:1F40 00000000:0000 0A 00000000:00000000 00:00000000 00000000  1000 0 1\n")
	f.Add(procTCPHeader + "   0: 00000000000000000000000001000000:1F42 00000000000000000000000000000000:0000 0A\n")
	f.Fuzz(func(t *testing.T, table string) {
		ports, err := ParseProcNetTCP(strings.NewReader(table))
		if err != nil {
			return
		}
		for _, p := range ports {
			if p.Port < 1 || p.Port > 65535 || p.Address == "" {
				t.Fatalf("parsed %+v from %q", p, table)
			}
		}
	})
}

func TestParsePortRejectsWhatIsNotAPortNumber(t *testing.T) {
	for _, s := range []string{"0", "65536", "-1", "+80", "080", "http", "", "8000x"} {
		if _, err := ParsePort(s); err == nil || !strings.Contains(err.Error(), "1 to 65535") {
			t.Errorf("ParsePort(%q) = %v, want an error", s, err)
		}
	}
	if p, err := ParsePort("65535"); p != 65535 || err != nil {
		t.Errorf("ParsePort(65535) = %d, %v", p, err)
	}
}

// The port proxy is reached through Client.RoundTrip, which adds the
// agent's token; the agent lists the port (read from the real
// /proc/net/tcp) and refuses requests without the token.
func TestPortsThroughTheClient(t *testing.T) {
	app := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "%s %s token=%q", r.Method, r.URL.RequestURI(), r.Header.Get(HeaderAgentToken))
	}))
	defer app.Close()
	port := app.Listener.Addr().(*net.TCPAddr).Port
	a := startAgent(t, "unix")
	c := dial(t, a.addr)
	hc := &http.Client{Transport: c}
	ctx := context.Background()

	get := func(path string, rt http.RoundTripper) (int, string) {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://agent"+path, nil)
		resp, err := rt.RoundTrip(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if code, body := get(fmt.Sprintf("%s/%d/a%%2Fb?x=1", PathPorts, port), hc.Transport); code != 200 || body != `GET /a%2Fb?x=1 token=""` {
		t.Fatalf("proxied GET = %d %q", code, body)
	}
	code, body := get(PathPorts, hc.Transport)
	var listed struct{ Ports []ListeningPort }
	if code != 200 || json.Unmarshal([]byte(body), &listed) != nil || !containsPort(listed.Ports, port) {
		t.Fatalf("port list = %d %s, want port %d in it", code, body, port)
	}
	// Without the token (the client's bare transport), both are refused.
	bare := c.httpc.Transport
	for _, p := range []string{PathPorts, fmt.Sprintf("%s/%d/", PathPorts, port)} {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, c.baseURL+p, nil)
		resp, err := bare.RoundTrip(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusUnauthorized {
			t.Errorf("%s without token = %d, want 401", p, resp.StatusCode)
		}
	}
}

func containsPort(ps []ListeningPort, port int) bool {
	for _, p := range ps {
		if p.Port == port {
			return true
		}
	}
	return false
}
