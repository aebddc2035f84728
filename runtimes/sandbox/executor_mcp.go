package sandbox

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/mark3labs/mcp-go/mcp"

	"corral/eventbus"
	"corral/runtimes/sandbox/mcptools"
)

// mcpState holds the executor's MCP hub, created on first use so that an
// executor that never sees MCP starts nothing.
type mcpState struct {
	mu     sync.Mutex
	hub    *mcptools.Hub
	closed bool // a hub created after Close is closed at once
}

func (x *Executor) mcpHub() *mcptools.Hub {
	x.mcp.mu.Lock()
	defer x.mcp.mu.Unlock()
	if x.mcp.hub == nil {
		x.mcp.hub = mcptools.New(
			mcptools.WithDir(x.Cwd),
			mcptools.WithEnv(x.cfg.environ()),
			mcptools.WithCredential(x.cred),
			mcptools.WithLogger(x.cfg.logger),
		)
		if x.mcp.closed {
			_ = x.mcp.hub.Close()
		}
	}
	return x.mcp.hub
}

// ConfigureMCP replaces the executor's whole MCP configuration: stdio
// servers start inside the sandbox (as the executor's user, in its
// environment and current directory), SSE and streamable-HTTP servers are
// connected, servers configured exactly as before keep running, removed ones
// stop. An invalid cfg changes nothing and returns the validation error.
//
// A server that fails to start does not fail the call: the others are in
// use and the error is a *mcptools.PartialError (test with errors.As) that
// names each failed server and why; calls of tools then get an error
// observation that lists them. Any other error is fatal (closed executor,
// invalid config).
func (x *Executor) ConfigureMCP(ctx context.Context, cfg eventbus.MCPConfig) error {
	if x.isClosed() {
		return errors.New("the sandbox executor is closed: MCP servers were not configured")
	}
	return x.mcpHub().Configure(ctx, cfg)
}

// MCPConfig returns the MCP configuration last given to ConfigureMCP.
func (x *Executor) MCPConfig() eventbus.MCPConfig { return x.mcpHub().Config() }

// MCPHandler serves the aggregated MCP server of the stdio servers under
// prefix: streamable HTTP at prefix, SSE at prefix+"/sse" (see
// mcptools.Hub.Handler). The caller authenticates requests.
func (x *Executor) MCPHandler(prefix string) http.Handler { return x.mcpHub().Handler(prefix) }

// closeMCP stops the MCP servers; the hub answers ErrClosed afterwards.
func (x *Executor) closeMCP() {
	x.mcp.mu.Lock()
	x.mcp.closed = true
	h := x.mcp.hub
	x.mcp.mu.Unlock()
	if h != nil {
		_ = h.Close()
	}
}

// callMCP runs call_tool_mcp as OpenHands' call_tool_mcp does: an `mcp`
// observation whose content is json.dumps(result.model_dump(mode='json')),
// OpenHands' timeout or McpError JSON, or an error observation.
func (x *Executor) callMCP(ctx context.Context, a *eventbus.MCPAction, timeout float64) *eventbus.Event {
	args := a.Arguments
	if len(bytes.TrimSpace(args)) == 0 || string(args) == "null" {
		args = json.RawMessage(`{}`)
	}
	limit := time.Duration(timeout * float64(time.Second))
	res, err := x.mcpHub().Call(ctx, a.Name, args, limit)
	obs := func(content string) *eventbus.Event {
		return eventbus.NewObservation(eventbus.InvalidID, content, &eventbus.MCPObservation{Name: a.Name, Arguments: append(json.RawMessage(nil), args...)})
	}
	var (
		tErr *mcptools.TimeoutError
		rErr *mcptools.RPCError
	)
	switch {
	case err == nil:
		content, derr := dumpCallToolResult(res)
		if derr != nil {
			return eventbus.NewError(eventbus.InvalidID, "", fmt.Sprintf("MCP tool %q returned a result that cannot be encoded: %v", a.Name, derr))
		}
		return obs(content)
	case errors.As(err, &tErr):
		return obs(mcpErrorContent(fmt.Sprintf("Tool %q timed out after %s seconds", a.Name, pyFloat(tErr.After.Seconds()))))
	case errors.As(err, &rErr):
		return obs(mcpErrorContent(rErr.Error()))
	case errors.Is(err, mcptools.ErrNoServers):
		return eventbus.NewError(eventbus.InvalidID, "", "No MCP clients found: "+err.Error()+". Tool "+strconv.Quote(a.Name)+" was not called.")
	case ctx.Err() != nil:
		return eventbus.NewError(eventbus.InvalidID, "", "MCP tool "+strconv.Quote(a.Name)+" was cancelled: "+ctx.Err().Error())
	}
	return eventbus.NewError(eventbus.InvalidID, "", err.Error())
}

// mcpErrorContent is OpenHands' content for a timed-out or failed call:
// json.dumps({'isError': True, 'error': msg, 'content': []}).
func mcpErrorContent(msg string) string {
	return `{"isError": true, "error": ` + PyJSONString(msg) + `, "content": []}`
}

// dumpCallToolResult renders res as Python's
// json.dumps(CallToolResult.model_dump(mode='json')) with mcp 1.16's models:
// every field of the model in its order, null for unset ones, ", " and ": "
// separators, non-ASCII escaped, floats as Python writes them. Fields the
// Python models do not know are dropped (mcp-go drops a server's extra
// fields already).
func dumpCallToolResult(res *mcp.CallToolResult) (string, error) {
	raw, err := json.Marshal(res)
	if err != nil {
		return "", err
	}
	v, err := parseOrdered(raw)
	if err != nil {
		return "", err
	}
	in, ok := v.(*pyObj)
	if !ok {
		return "", errors.New("the result is not a JSON object")
	}
	if len(res.RawStructuredContent) > 0 {
		if sc, err := parseOrdered(res.RawStructuredContent); err == nil {
			in.set("structuredContent", sc)
		}
	}
	out := &pyObj{}
	out.set("meta", in.get("_meta"))
	var blocks []any
	if list, ok := in.get("content").([]any); ok {
		for _, c := range list {
			if o, ok := c.(*pyObj); ok {
				blocks = append(blocks, dumpContentBlock(o))
			}
		}
	}
	out.set("content", append([]any{}, blocks...))
	out.set("structuredContent", in.get("structuredContent"))
	isErr, _ := in.get("isError").(bool)
	out.set("isError", isErr)
	var b strings.Builder
	writePy(&b, out)
	return b.String(), nil
}

// Field orders of mcp 1.16's content models (TextContent, ImageContent,
// AudioContent, EmbeddedResource, ResourceLink).
var contentFields = map[string][]string{
	"text":          {"type", "text", "annotations", "_meta"},
	"image":         {"type", "data", "mimeType", "annotations", "_meta"},
	"audio":         {"type", "data", "mimeType", "annotations", "_meta"},
	"resource":      {"type", "resource", "annotations", "_meta"},
	"resource_link": {"name", "title", "uri", "description", "mimeType", "size", "icons", "annotations", "_meta", "type"},
}

func dumpContentBlock(in *pyObj) *pyObj {
	typ, _ := in.get("type").(string)
	fields, ok := contentFields[typ]
	if !ok {
		return in
	}
	out := &pyObj{}
	for _, f := range fields {
		v := in.get(f)
		switch f {
		case "description", "mimeType":
			// mcp-go writes a resource link's missing description and
			// mimeType as "", Python keeps None.
			if v == "" {
				v = nil
			}
		case "uri":
			if u, ok := v.(string); ok {
				v = pyAnyURL(u)
			}
		case "annotations":
			if a, ok := v.(*pyObj); ok {
				v = dumpAnnotations(a)
			}
		case "resource":
			if r, ok := v.(*pyObj); ok {
				v = dumpResourceContents(r)
			}
		}
		out.set(strings.TrimPrefix(f, "_"), v)
	}
	return out
}

// pyAnyURL applies the normalisation of pydantic's AnyUrl that matters
// for MCP resource URIs: an http(s)/ws(s) URL with an empty path gets "/".
func pyAnyURL(s string) string {
	u, err := url.Parse(s)
	if err != nil || u.Host == "" || u.Path != "" || u.Opaque != "" {
		return s
	}
	switch strings.ToLower(u.Scheme) {
	case "http", "https", "ws", "wss":
		u.Path = "/"
		return u.String()
	}
	return s
}

// dumpAnnotations: audience, priority (a float), then extra fields.
func dumpAnnotations(in *pyObj) *pyObj {
	out := &pyObj{}
	out.set("audience", in.get("audience"))
	p := in.get("priority")
	if n, ok := p.(json.Number); ok {
		p = pyFloatNumber(n)
	}
	out.set("priority", p)
	for _, k := range in.keys {
		if k != "audience" && k != "priority" {
			out.set(k, in.get(k))
		}
	}
	return out
}

// dumpResourceContents: uri, mimeType, meta, then text or blob.
func dumpResourceContents(in *pyObj) *pyObj {
	out := &pyObj{}
	uri := in.get("uri")
	if u, ok := uri.(string); ok {
		uri = pyAnyURL(u)
	}
	out.set("uri", uri)
	out.set("mimeType", in.get("mimeType"))
	out.set("meta", in.get("_meta"))
	for _, k := range []string{"text", "blob"} {
		if v, ok := in.vals[k]; ok {
			out.set(k, v)
		}
	}
	return out
}

// pyObj is a JSON object that keeps its key order.
type pyObj struct {
	keys []string
	vals map[string]any
}

func (o *pyObj) get(k string) any { return o.vals[k] }

func (o *pyObj) set(k string, v any) {
	if o.vals == nil {
		o.vals = map[string]any{}
	}
	if _, ok := o.vals[k]; !ok {
		o.keys = append(o.keys, k)
	}
	o.vals[k] = v
}

// parseOrdered decodes JSON keeping object key order and number literals.
func parseOrdered(data []byte) (any, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	v, err := parseValue(dec)
	if err != nil {
		return nil, err
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, errors.New("trailing data after the JSON value")
	}
	return v, nil
}

func parseValue(dec *json.Decoder) (any, error) {
	t, err := dec.Token()
	if err != nil {
		return nil, err
	}
	switch d := t.(type) {
	case json.Delim:
		switch d {
		case '{':
			o := &pyObj{}
			for dec.More() {
				k, err := dec.Token()
				if err != nil {
					return nil, err
				}
				v, err := parseValue(dec)
				if err != nil {
					return nil, err
				}
				o.set(k.(string), v)
			}
			_, err := dec.Token()
			return o, err
		case '[':
			list := []any{}
			for dec.More() {
				v, err := parseValue(dec)
				if err != nil {
					return nil, err
				}
				list = append(list, v)
			}
			_, err := dec.Token()
			return list, err
		}
		return nil, fmt.Errorf("unexpected %v", d)
	}
	return t, nil
}

// pyFloatValue marks a number Python holds as a float.
type pyFloatValue float64

func pyFloatNumber(n json.Number) any {
	f, err := n.Float64()
	if err != nil {
		return n
	}
	return pyFloatValue(f)
}

// writePy writes v as Python's json.dumps does.
func writePy(b *strings.Builder, v any) {
	switch t := v.(type) {
	case nil:
		b.WriteString("null")
	case bool:
		b.WriteString(strconv.FormatBool(t))
	case string:
		b.WriteString(PyJSONString(t))
	case pyFloatValue:
		b.WriteString(pyFloat(float64(t)))
	case json.Number:
		b.WriteString(pyNumber(t))
	case []any:
		b.WriteByte('[')
		for i, e := range t {
			if i > 0 {
				b.WriteString(", ")
			}
			writePy(b, e)
		}
		b.WriteByte(']')
	case *pyObj:
		b.WriteByte('{')
		for i, k := range t.keys {
			if i > 0 {
				b.WriteString(", ")
			}
			b.WriteString(PyJSONString(k))
			b.WriteString(": ")
			writePy(b, t.vals[k])
		}
		b.WriteByte('}')
	default:
		b.WriteString("null")
	}
}

// pyNumber writes a JSON number as Python's json.loads then json.dumps
// does: integers unchanged, other numbers as Python floats.
func pyNumber(n json.Number) string {
	s := string(n)
	if !strings.ContainsAny(s, ".eE") {
		if s == "-0" {
			return "0"
		}
		return s
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil {
		return s
	}
	return pyFloat(f)
}

// MCPTools lists the tools of the running MCP servers (the first server
// offering a name wins), sorted by name: what an agent may call with
// call_tool_mcp.
func (x *Executor) MCPTools() []mcp.Tool { return x.mcpHub().Tools() }
