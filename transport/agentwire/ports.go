package agentwire

import (
	"bufio"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
)

// PathPorts is the agent's preview-port endpoint: GET PathPorts lists the
// TCP ports listening on the sandbox's loopback, and any request to
// PathPorts/{port}/{path...} is reverse-proxied (HTTP and WebSocket) to
// 127.0.0.1:{port} from inside the sandbox, so no host port is published.
const PathPorts = "/ports"

// HeaderAgentToken carries the agent's token on PathPorts requests. It is
// not Authorization so that a proxied application still gets the client's
// own Authorization header; the agent removes it before proxying.
// Client.RoundTrip sets it on every PathPorts request.
const HeaderAgentToken = "X-Corral-Agent-Token"

// ListeningPort is one TCP port a process in the sandbox listens on, on an
// address 127.0.0.1 reaches (127.0.0.1, 0.0.0.0, ::1 or ::).
type ListeningPort struct {
	Port    int    `json:"port"`
	Address string `json:"address"`
}

// portError is the body of a failed proxied request, in the shape of
// Corral's API errors, since the API passes it through unchanged.
func portError(w http.ResponseWriter, status int, code, msg string) {
	writeJSON(w, status, map[string]any{"error": map[string]string{"code": code, "message": msg}})
}

func (s *Server) portTokenOK(r *http.Request) bool {
	return subtle.ConstantTimeCompare([]byte(r.Header.Get(HeaderAgentToken)), s.token) == 1 || s.bearerOK(r)
}

func (s *Server) mountPorts(mux *http.ServeMux) {
	mux.HandleFunc("GET "+PathPorts, s.servePortList)
	mux.HandleFunc(PathPorts+"/{port}", s.servePort)
	mux.HandleFunc(PathPorts+"/{port}/{rest...}", s.servePort)
}

func (s *Server) servePortList(w http.ResponseWriter, r *http.Request) {
	if !s.portTokenOK(r) {
		unauthorized(w)
		return
	}
	ports, err := ListeningPorts("/proc/net/tcp", "/proc/net/tcp6")
	if err != nil {
		portError(w, http.StatusInternalServerError, "ports_unreadable", fmt.Sprintf("listing the sandbox's listening ports: %v", err))
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"ports": ports})
}

// ParsePort checks a port path segment: a decimal number in 1..65535.
func ParsePort(s string) (int, error) {
	p, err := strconv.Atoi(s)
	if err != nil || p < 1 || p > 65535 || strconv.Itoa(p) != s {
		return 0, fmt.Errorf("port %q is not a TCP port number: give a decimal number from 1 to 65535", s)
	}
	return p, nil
}

// servePort proxies the request to 127.0.0.1:{port}; WebSocket upgrades
// are passed through by httputil.ReverseProxy (both ends are hijacked and
// copied until either closes).
func (s *Server) servePort(w http.ResponseWriter, r *http.Request) {
	if !s.portTokenOK(r) {
		unauthorized(w)
		return
	}
	port, err := ParsePort(r.PathValue("port"))
	if err != nil {
		portError(w, http.StatusBadRequest, "invalid_port", err.Error())
		return
	}
	target := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	// The rest of the path as escaped by the client: segments "", ports,
	// {port}, rest.
	rest := "/"
	if parts := strings.SplitN(r.URL.EscapedPath(), "/", 4); len(parts) == 4 {
		rest += parts[3]
	}
	rp := &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.Out.URL.Scheme, pr.Out.URL.Host, pr.Out.Host = "http", target, ""
			pr.Out.URL.RawPath = rest
			pr.Out.URL.Path, _ = url.PathUnescape(rest)
			pr.Out.Header.Del(HeaderAgentToken)
			if pr.Out.Header.Get("Authorization") == "Bearer "+string(s.token) {
				pr.Out.Header.Del("Authorization") // the agent's token is no business of the app
			}
		},
		Transport:     s.portTransport,
		FlushInterval: -1,
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
			if r.Context().Err() != nil {
				return // the client went away: nobody to answer
			}
			portError(w, http.StatusBadGateway, "port_unreachable",
				fmt.Sprintf("nothing answered on %s inside the sandbox: %v; start a server listening on port %d there (GET /api/sessions/{id}/ports lists the listening ones)", target, err, port))
		},
	}
	rp.ServeHTTP(w, r)
}

// ListeningPorts reads Linux's /proc/net/tcp-format files and returns the
// sorted, de-duplicated TCP ports in state LISTEN on an address 127.0.0.1
// reaches. A missing file (no IPv6) is skipped.
func ListeningPorts(files ...string) ([]ListeningPort, error) {
	seen := map[int]ListeningPort{}
	for _, name := range files {
		f, err := os.Open(name)
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, err
		}
		ports, err := ParseProcNetTCP(f)
		f.Close()
		if err != nil {
			return nil, fmt.Errorf("%s: %w", name, err)
		}
		for _, p := range ports {
			if _, dup := seen[p.Port]; !dup {
				seen[p.Port] = p
			}
		}
	}
	out := make([]ListeningPort, 0, len(seen))
	for _, p := range seen {
		out = append(out, p)
	}
	slices.SortFunc(out, func(a, b ListeningPort) int { return a.Port - b.Port })
	return out, nil
}

// ParseProcNetTCP parses one /proc/net/tcp or /proc/net/tcp6 table and
// returns its LISTEN (state 0A) sockets bound to loopback or to every
// address. Lines it cannot read are an error naming the line.
func ParseProcNetTCP(r io.Reader) ([]ListeningPort, error) {
	var out []ListeningPort
	sc := bufio.NewScanner(r)
	for n := 1; sc.Scan(); n++ {
		fields := strings.Fields(sc.Text())
		if n == 1 || len(fields) == 0 {
			continue // the header
		}
		if len(fields) < 4 {
			return nil, fmt.Errorf("line %d: %d fields, want at least 4 (sl local_address rem_address st)", n, len(fields))
		}
		if fields[3] != "0A" {
			continue
		}
		hexIP, hexPort, ok := strings.Cut(fields[1], ":")
		port, err := strconv.ParseUint(hexPort, 16, 16)
		if !ok || err != nil || port == 0 {
			return nil, fmt.Errorf("line %d: local address %q is not HEXIP:HEXPORT", n, fields[1])
		}
		ip, err := procIP(hexIP)
		if err != nil {
			return nil, fmt.Errorf("line %d: %w", n, err)
		}
		if ip.IsLoopback() || ip.IsUnspecified() {
			out = append(out, ListeningPort{Port: int(port), Address: ip.String()})
		}
	}
	return out, sc.Err()
}

// procIP decodes the kernel's hex address: 32-bit words in host (little
// endian) byte order.
func procIP(h string) (net.IP, error) {
	b, err := hex.DecodeString(h)
	if err != nil || (len(b) != 4 && len(b) != 16) {
		return nil, fmt.Errorf("address %q is not 8 or 32 hex digits", h)
	}
	for i := 0; i < len(b); i += 4 {
		b[i], b[i+1], b[i+2], b[i+3] = b[i+3], b[i+2], b[i+1], b[i]
	}
	return net.IP(b), nil
}
