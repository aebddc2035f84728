package main

import (
	"encoding/json"
	"fmt"
	"os"
	"strings"

	"corral/eventbus"
)

// decodeMCP turns the [mcp] section (read as plain TOML values) into the
// MCP configuration of sessions that give none. It goes through
// eventbus.ParseMCPConfig, so the section takes exactly what mcp_config
// takes in the API (sse_servers and shttp_servers as URLs or tables,
// [[mcp.stdio_servers]] with name, command, args, env) and is refused with
// the same field-named errors.
func (c *serveConfig) decodeMCP() error {
	raw := c.MCPTOML
	c.MCPTOML = nil
	if raw == nil {
		return nil
	}
	data, err := json.Marshal(raw)
	if err != nil {
		return fmt.Errorf("[mcp]: %w", err)
	}
	cfg, err := eventbus.ParseMCPConfig(data)
	if err != nil {
		return fmt.Errorf("[mcp]: %s", strings.Replace(err.Error(), "mcp_config", "mcp", 1))
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
