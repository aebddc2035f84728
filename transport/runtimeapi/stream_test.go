package runtimeapi

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// upstreamProvisioner is a Provisioner whose one sandbox's agent HTTP API
// is the server at addr (every other call is refused): it exercises the
// proxy's own behaviour on real sockets.
type upstreamProvisioner struct {
	Provisioner
	addr string
}

func (p upstreamProvisioner) AgentHTTP(ctx context.Context, rid string, do func(context.Context, http.RoundTripper) error) error {
	tr := &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "tcp", p.addr)
	}}
	defer tr.CloseIdleConnections()
	return do(ctx, tr)
}

func TestProxyStreamsEachEventBeforeTheNextIsWritten(t *testing.T) {
	next := make(chan struct{})
	upstream := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/mcp/sse" || r.Header.Get("X-Session-API-Key") != "k" {
			http.Error(w, "wrong path or key: "+r.URL.Path, http.StatusBadRequest)
			return
		}
		w.Header().Set("Content-Type", "text/event-stream")
		// As the agent does: its message endpoint under the forwarded prefix.
		fmt.Fprintf(w, "event: endpoint\ndata: %s/mcp/message?sessionId=s1\n\n", r.Header.Get("X-Forwarded-Prefix"))
		w.(http.Flusher).Flush()
		for i := 1; i <= 3; i++ {
			select {
			case <-next: // the client saw the previous event
			case <-r.Context().Done():
				return
			}
			fmt.Fprintf(w, "event: message\ndata: {\"n\":%d}\n\n", i)
			w.(http.Flusher).Flush()
		}
	}))
	defer upstream.Close()
	h, err := New(upstreamProvisioner{addr: upstream.Listener.Addr().String()}, apiKey)
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.Handle("/runtime-api/", http.StripPrefix("/runtime-api", h))
	srv := httptest.NewServer(mux)
	defer srv.Close()

	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", srv.URL+"/runtime-api/sandbox/rid1/mcp/sse", nil)
	req.Header.Set("X-Session-API-Key", "k")
	req.Header.Set("X-Forwarded-Prefix", "/elsewhere") // a client's is replaced
	resp, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		b, _ := io.ReadAll(resp.Body)
		t.Fatalf("GET /mcp/sse through the proxy = %d %s", resp.StatusCode, b)
	}
	rd := bufio.NewReader(resp.Body)
	readEvent := func() string {
		t.Helper()
		var ev strings.Builder
		for {
			line, err := rd.ReadString('\n')
			if err != nil {
				t.Fatalf("stream ended after %q: %v", ev.String(), err)
			}
			if line == "\n" {
				return ev.String()
			}
			ev.WriteString(line)
		}
	}
	if got, want := readEvent(), "event: endpoint\ndata: /runtime-api/sandbox/rid1/mcp/message?sessionId=s1\n"; got != want {
		t.Fatalf("first event %q, want %q (the endpoint behind the proxy)", got, want)
	}
	for i := 1; i <= 3; i++ {
		// The upstream writes event i only after this send: reading it
		// proves the previous one was not held back in a buffer.
		next <- struct{}{}
		if got, want := readEvent(), fmt.Sprintf("event: message\ndata: {\"n\":%d}\n", i); got != want {
			t.Fatalf("event %d = %q, want %q", i, got, want)
		}
	}
}
