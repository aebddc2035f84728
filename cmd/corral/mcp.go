package main

import (
	"encoding/json"
	"fmt"
	"os"
	"strings"

	"corral/eventbus"
)

// mcpTOML is the [mcp] section as the file gives it. Each server is kept
// as its plain TOML value (a URL string or a table) and the whole goes
// through eventbus.ParseMCPConfig, so the section takes exactly what
// mcp_config takes in the API (sse_servers and shttp_servers as URLs or
// tables, [[mcp.stdio_servers]] with name, command, args, env) and is
// refused with the same field-named errors, unknown keys included.
type mcpTOML struct {
	SSEServers   []tomlValue `toml:"sse_servers" json:"sse_servers,omitempty"`
	SHTTPServers []tomlValue `toml:"shttp_servers" json:"shttp_servers,omitempty"`
	StdioServers []tomlValue `toml:"stdio_servers" json:"stdio_servers,omitempty"`
}

// tomlValue keeps a TOML value as decoded (string, table, ...); being a
// toml.Unmarshaler, its keys count as known: ParseMCPConfig checks them.
type tomlValue struct{ v any }

func (t *tomlValue) UnmarshalTOML(v any) error { t.v = v; return nil }

func (t tomlValue) MarshalJSON() ([]byte, error) { return json.Marshal(t.v) }

// decodeMCP turns the [mcp] section into the MCP configuration of sessions
// that give none.
func (c *serveConfig) decodeMCP() error {
	raw := c.MCPTOML
	c.MCPTOML = mcpTOML{}
	data, err := json.Marshal(raw)
	if err != nil {
		return fmt.Errorf("[mcp]: %w", err)
	}
	cfg, err := eventbus.ParseMCPConfig(data)
	if err != nil {
		return fmt.Errorf("[mcp]: %s", strings.Replace(err.Error(), "mcp_config", "mcp", 1))
	}
	if cfg.IsZero() {
		cfg = eventbus.MCPConfig{}
	}
	c.MCP = cfg
	return nil
}

// readMCPConfigFile reads an mcp_config JSON file (corral exec --mcp-config).
func readMCPConfigFile(path string) (*eventbus.MCPConfig, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("--mcp-config: %w", err)
	}
	cfg, err := eventbus.ParseMCPConfig(data)
	if err != nil {
		return nil, fmt.Errorf("--mcp-config %s: %w", path, err)
	}
	return &cfg, nil
}
