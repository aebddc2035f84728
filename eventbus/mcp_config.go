package eventbus

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/url"
	"regexp"
	"strings"
)

// MCPConfig is OpenHands' MCPConfig (openhands/core/config/mcp_config.py):
// the MCP servers a session's agent may call tools on. It travels as
// `mcp_config` in POST /api/sessions, a farm job's `runtime`, `[mcp]` in
// corral.toml, and (its stdio part, as a list) in the body of the agent's
// POST /update_mcp_server.
type MCPConfig struct {
	SSEServers   []MCPRemoteServer `json:"sse_servers"`
	StdioServers []MCPStdioServer  `json:"stdio_servers"`
	SHTTPServers []MCPRemoteServer `json:"shttp_servers"`
}

// MCPRemoteServer is an SSE or streamable-HTTP MCP server, reached by URL
// from inside the sandbox. In JSON a bare string is the URL.
type MCPRemoteServer struct {
	URL    string `json:"url"`
	APIKey string `json:"api_key,omitempty"`
	// Timeout is the tool-call timeout in seconds (shttp only; OpenHands'
	// default is 60, 0 means that default).
	Timeout int `json:"timeout,omitempty"`
}

// MCPStdioServer is an MCP server the agent starts inside the sandbox and
// talks to over its stdin and stdout.
type MCPStdioServer struct {
	Name    string            `json:"name"`
	Command string            `json:"command"`
	Args    []string          `json:"args"`
	Env     map[string]string `json:"env"`
}

// IsZero reports whether the config names no server.
func (c MCPConfig) IsZero() bool {
	return len(c.SSEServers) == 0 && len(c.StdioServers) == 0 && len(c.SHTTPServers) == 0
}

// ParseMCPConfig decodes and validates an MCPConfig. Like OpenHands it
// accepts bare URL strings for remote servers, refuses unknown fields, and
// takes a stdio server's args as a list (or a string of words without
// quotes) and env as an object (or "K=V,K2=V2"). Errors name the field.
func ParseMCPConfig(data []byte) (MCPConfig, error) {
	var c MCPConfig
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&c); err != nil {
		return MCPConfig{}, fmt.Errorf("mcp_config: %w (want {\"sse_servers\": [...], \"shttp_servers\": [...], \"stdio_servers\": [{\"name\", \"command\", \"args\", \"env\"}]})", err)
	}
	if err := c.Validate(); err != nil {
		return MCPConfig{}, err
	}
	return c, nil
}

// ParseMCPStdioServers decodes the body of OpenHands' POST
// /update_mcp_server: a JSON list of stdio servers.
func ParseMCPStdioServers(data []byte) ([]MCPStdioServer, error) {
	var list []MCPStdioServer
	if err := json.Unmarshal(data, &list); err != nil {
		return nil, fmt.Errorf("request must be a list of MCP stdio servers ([{\"name\", \"command\", \"args\", \"env\"}]): %w", err)
	}
	c := MCPConfig{StdioServers: list}
	if err := c.Validate(); err != nil {
		return nil, err
	}
	return list, nil
}

var (
	mcpServerName = regexp.MustCompile(`^[a-zA-Z0-9_-]+$`)
	mcpEnvName    = regexp.MustCompile(`^[a-zA-Z_][a-zA-Z0-9_]*$`)
)

// Validate applies OpenHands' rules: URLs with an http, https, ws or wss
// scheme and a host, unique URLs; stdio names of letters, digits, '-' and
// '_', unique; a command that is one executable (no spaces); env names that
// are identifiers; shttp timeouts in 1..3600 seconds.
func (c MCPConfig) Validate() error {
	seen := map[string]string{}
	for kind, list := range map[string][]MCPRemoteServer{"sse_servers": c.SSEServers, "shttp_servers": c.SHTTPServers} {
		for i, s := range list {
			where := fmt.Sprintf("mcp_config.%s[%d]", kind, i)
			u, err := url.Parse(strings.TrimSpace(s.URL))
			if err != nil || u.Host == "" || !(u.Scheme == "http" || u.Scheme == "https" || u.Scheme == "ws" || u.Scheme == "wss") {
				return fmt.Errorf("%s.url %q is not a valid MCP server URL: it needs an http, https, ws or wss scheme and a host", where, s.URL)
			}
			if prev, dup := seen[s.URL]; dup {
				return fmt.Errorf("%s.url %q is already given by %s: each server once", where, s.URL, prev)
			}
			seen[s.URL] = where
			if s.Timeout < 0 || s.Timeout > 3600 {
				return fmt.Errorf("%s.timeout %d is out of range: give seconds from 1 to 3600, or leave it out for 60", where, s.Timeout)
			}
		}
	}
	names := map[string]int{}
	for i, s := range c.StdioServers {
		where := fmt.Sprintf("mcp_config.stdio_servers[%d]", i)
		if !mcpServerName.MatchString(s.Name) {
			return fmt.Errorf("%s.name %q is not valid: use letters, digits, '-' and '_' only", where, s.Name)
		}
		if j, dup := names[s.Name]; dup {
			return fmt.Errorf("%s.name %q is already used by stdio_servers[%d]: names must be unique", where, s.Name, j)
		}
		names[s.Name] = i
		if strings.TrimSpace(s.Command) == "" || strings.ContainsAny(s.Command, " \t\n") {
			return fmt.Errorf("%s.command %q must be one executable without spaces (put its arguments in args)", where, s.Command)
		}
		for k := range s.Env {
			if !mcpEnvName.MatchString(k) {
				return fmt.Errorf("%s.env: %q is not a valid environment variable name (a letter or '_', then letters, digits and '_')", where, k)
			}
		}
	}
	return nil
}

// UnmarshalJSON accepts a bare URL string as well as an object.
func (s *MCPRemoteServer) UnmarshalJSON(data []byte) error {
	var u string
	if json.Unmarshal(data, &u) == nil {
		*s = MCPRemoteServer{URL: u}
		return nil
	}
	type plain MCPRemoteServer
	var p plain
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&p); err != nil {
		return fmt.Errorf("an MCP server is a URL string or {\"url\", \"api_key\", \"timeout\"}: %w", err)
	}
	*s = MCPRemoteServer(p)
	return nil
}

// UnmarshalJSON accepts args as a string of words and env as "K=V,K2=V2",
// as OpenHands does.
func (s *MCPStdioServer) UnmarshalJSON(data []byte) error {
	var raw struct {
		Name    string          `json:"name"`
		Command string          `json:"command"`
		Args    json.RawMessage `json:"args"`
		Env     json.RawMessage `json:"env"`
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&raw); err != nil {
		return fmt.Errorf("an MCP stdio server is {\"name\", \"command\", \"args\", \"env\"}: %w", err)
	}
	out := MCPStdioServer{Name: strings.TrimSpace(raw.Name), Command: strings.TrimSpace(raw.Command)}
	args, err := parseMCPArgs(raw.Args)
	if err != nil {
		return fmt.Errorf("stdio server %q: %w", out.Name, err)
	}
	env, err := parseMCPEnv(raw.Env)
	if err != nil {
		return fmt.Errorf("stdio server %q: %w", out.Name, err)
	}
	out.Args, out.Env = args, env
	*s = out
	return nil
}

func parseMCPArgs(raw json.RawMessage) ([]string, error) {
	if len(raw) == 0 || string(raw) == "null" {
		return nil, nil
	}
	var list []string
	if json.Unmarshal(raw, &list) == nil {
		return list, nil
	}
	var s string
	if err := json.Unmarshal(raw, &s); err != nil {
		return nil, fmt.Errorf("args must be a list of strings")
	}
	if strings.ContainsAny(s, `"'\`) {
		return nil, fmt.Errorf("args %q has quotes or backslashes: give args as a JSON list of strings instead", s)
	}
	return strings.Fields(s), nil
}

func parseMCPEnv(raw json.RawMessage) (map[string]string, error) {
	if len(raw) == 0 || string(raw) == "null" {
		return nil, nil
	}
	var m map[string]string
	if json.Unmarshal(raw, &m) == nil {
		return m, nil
	}
	var s string
	if err := json.Unmarshal(raw, &s); err != nil {
		return nil, fmt.Errorf("env must be an object of strings or \"KEY=VALUE,KEY2=VALUE2\"")
	}
	m = map[string]string{}
	for _, pair := range strings.Split(s, ",") {
		pair = strings.TrimSpace(pair)
		if pair == "" {
			continue
		}
		k, v, ok := strings.Cut(pair, "=")
		if !ok {
			return nil, fmt.Errorf("env entry %q must be KEY=VALUE", pair)
		}
		m[strings.TrimSpace(k)] = v
	}
	return m, nil
}
