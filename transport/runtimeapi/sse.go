package runtimeapi

import (
	"bufio"
	"bytes"
	"io"
	"net/http"
	"net/url"
	"strings"
)

// An MCP SSE stream (the agent's /mcp/sse, OpenHands' MCP proxy) starts
// with an "endpoint" event naming where the client POSTs its messages. The
// agent names it from its own root ("/mcp/message?sessionId=..."), which
// from outside is this proxy's {mount}/sandbox/{rid}/mcp/message: the
// proxy rewrites that one event so OpenHands' MCP client (and mcp-go's,
// which refuse an endpoint on another origin) stay behind the proxy.

// rewriteSSEEndpoint wraps resp's body when it is an event stream, so the
// endpoint events name prefix+path. Every other byte passes unchanged, line
// by line as it arrives: the proxy still flushes each event at once.
func rewriteSSEEndpoint(resp *http.Response, prefix string) {
	ct := resp.Header.Get("Content-Type")
	if !strings.HasPrefix(strings.ToLower(strings.TrimSpace(ct)), "text/event-stream") {
		return
	}
	resp.Header.Del("Content-Length") // the rewritten body is longer
	resp.ContentLength = -1
	resp.Body = &sseEndpointRewriter{src: bufio.NewReaderSize(resp.Body, 64<<10), body: resp.Body, prefix: prefix, lineStart: true}
}

// sseEndpointRewriter is an event-stream body whose endpoint events'
// absolute paths (or URLs on the agent's own host, "sandbox") get prefix.
type sseEndpointRewriter struct {
	src    *bufio.Reader
	body   io.Closer
	prefix string

	pending   []byte
	err       error
	lineStart bool // the next byte read starts a line
	endpoint  bool // the current event is an "endpoint" event
}

func (s *sseEndpointRewriter) Read(p []byte) (int, error) {
	for len(s.pending) == 0 && s.err == nil {
		line, err := s.src.ReadSlice('\n')
		if len(line) > 0 {
			s.pending = s.rewrite(line)
		}
		switch err {
		case nil:
			s.lineStart = true
		case bufio.ErrBufferFull:
			s.lineStart = false // a line longer than the buffer: the rest passes as is
		default:
			s.err = err
		}
	}
	if len(s.pending) == 0 {
		return 0, s.err
	}
	n := copy(p, s.pending)
	s.pending = s.pending[n:]
	return n, nil
}

func (s *sseEndpointRewriter) Close() error { return s.body.Close() }

// rewrite returns line (a copy: ReadSlice's buffer is reused), rewritten
// when it is the data line of an endpoint event.
func (s *sseEndpointRewriter) rewrite(line []byte) []byte {
	out := append([]byte(nil), line...)
	if !s.lineStart {
		return out
	}
	text := strings.TrimRight(string(line), "\r\n")
	switch {
	case text == "":
		s.endpoint = false // the event ended
	case strings.HasPrefix(text, "event:"):
		s.endpoint = strings.TrimSpace(strings.TrimPrefix(text, "event:")) == "endpoint"
	case s.endpoint && strings.HasPrefix(text, "data:"):
		data := strings.TrimPrefix(strings.TrimPrefix(text, "data:"), " ")
		if to, ok := s.endpointPath(data); ok {
			eol := line[len(text):]
			return append([]byte("data: "+to), bytes.Clone(eol)...)
		}
	}
	return out
}

// endpointPath maps the agent's endpoint to the proxied one.
func (s *sseEndpointRewriter) endpointPath(data string) (string, bool) {
	if strings.HasPrefix(data, "/") && !strings.HasPrefix(data, "//") {
		return s.prefix + data, true
	}
	u, err := url.Parse(data)
	if err != nil || !u.IsAbs() || u.Host != proxiedHost {
		return "", false // relative to the stream's URL already, or elsewhere
	}
	return s.prefix + u.RequestURI(), true
}
