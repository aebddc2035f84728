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

func TestSSEEndpointEventsAreRewrittenToTheProxiedPath(t *testing.T) {
	const prefix = "/runtime-api/sandbox/rid1"
	long := strings.Repeat("x", 100<<10)
	for _, tc := range []struct {
		name, in, want string
	}{
		{"absolute path", "event: endpoint\ndata: /mcp/message?sessionId=abc\n\n",
			"event: endpoint\ndata: " + prefix + "/mcp/message?sessionId=abc\n\n"},
		{"no space after the colon, CRLF", "event:endpoint\r\ndata:/mcp/message?sessionId=abc\r\n\r\n",
			"event:endpoint\r\ndata: " + prefix + "/mcp/message?sessionId=abc\r\n\r\n"},
		{"full URL on the agent's host", "event: endpoint\ndata: http://sandbox/mcp/message?sessionId=abc\n\n",
			"event: endpoint\ndata: " + prefix + "/mcp/message?sessionId=abc\n\n"},
		{"relative path stays relative", "event: endpoint\ndata: message?sessionId=abc\n\n",
			"event: endpoint\ndata: message?sessionId=abc\n\n"},
		{"URL elsewhere is left alone", "event: endpoint\ndata: https://example.com/mcp/message\n\n",
			"event: endpoint\ndata: https://example.com/mcp/message\n\n"},
		{"message events pass unchanged", "event: message\ndata: /not/an/endpoint\n\nevent: endpoint\ndata: /m\n\n",
			"event: message\ndata: /not/an/endpoint\n\nevent: endpoint\ndata: " + prefix + "/m\n\n"},
		{"a data line after the endpoint event ended is not rewritten", "event: endpoint\ndata: /m\n\ndata: /x\n\n",
			"event: endpoint\ndata: " + prefix + "/m\n\ndata: /x\n\n"},
		{"a line longer than the buffer passes whole", "event: message\ndata: " + long + "\n\nevent: endpoint\ndata: /m\n\n",
			"event: message\ndata: " + long + "\n\nevent: endpoint\ndata: " + prefix + "/m\n\n"},
		{"stream ending without a newline", "event: endpoint\ndata: /m", "event: endpoint\ndata: " + prefix + "/m"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp := &http.Response{Header: http.Header{"Content-Type": {"text/event-stream; charset=utf-8"}},
				Body: io.NopCloser(strings.NewReader(tc.in))}
			rewriteSSEEndpoint(resp, prefix)
			got, err := io.ReadAll(iotestOneByte{resp.Body})
			if err != nil {
				t.Fatal(err)
			}
			if string(got) != tc.want {
				t.Fatalf("got %q\nwant %q", abbreviate(string(got)), abbreviate(tc.want))
			}
		})
	}
	t.Run("other content types are not touched", func(t *testing.T) {
		body := io.NopCloser(strings.NewReader("event: endpoint\ndata: /m\n\n"))
		resp := &http.Response{Header: http.Header{"Content-Type": {"application/json"}}, Body: body}
		rewriteSSEEndpoint(resp, prefix)
		if resp.Body != body {
			t.Fatal("a JSON body was wrapped")
		}
	})
}

// iotestOneByte reads through small reads, as a slow client would.
type iotestOneByte struct{ r io.Reader }

func (o iotestOneByte) Read(p []byte) (int, error) {
	if len(p) > 7 {
		p = p[:7]
	}
	return o.r.Read(p)
}

func abbreviate(s string) string {
	if len(s) > 200 {
		return s[:100] + "..." + s[len(s)-100:]
	}
	return s
}

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
		fmt.Fprint(w, "event: endpoint\ndata: /mcp/message?sessionId=s1\n\n")
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
