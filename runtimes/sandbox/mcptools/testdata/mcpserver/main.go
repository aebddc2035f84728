// Command mcpserver is the MCP server the mcptools and sandbox tests start
// over stdio (built with go build into a temporary directory). Its tools
// cover every case the hub must handle: echo, add, a tool error, a slow
// tool, a tool that kills the server and a tool whose result is not valid
// MCP content. MCPSERVER_PREFIX renames its tools (prefix + name) so two
// copies can run side by side; MCPSERVER_FAIL makes it exit at once with
// that text on stderr; MCPSERVER_HANG makes it never answer.
package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/mark3labs/mcp-go/mcp"
	"github.com/mark3labs/mcp-go/server"
)

// corruptMarker is the text the "corrupt" tool returns; corruptWriter
// rewrites the content item carrying it into one of an unknown type, which
// no MCP client can parse.
const corruptMarker = "__corral_corrupt__"

type corruptWriter struct{ w io.Writer }

func (c corruptWriter) Write(p []byte) (int, error) {
	out := bytes.ReplaceAll(p, []byte(`"type":"text","text":"`+corruptMarker+`"`), []byte(`"type":"hologram","beams":3`))
	if _, err := c.w.Write(out); err != nil {
		return 0, err
	}
	return len(p), nil
}

func main() {
	if msg := os.Getenv("MCPSERVER_FAIL"); msg != "" {
		fmt.Fprintln(os.Stderr, msg)
		os.Exit(3)
	}
	if os.Getenv("MCPSERVER_HANG") != "" {
		fmt.Fprintln(os.Stderr, "mcpserver: hanging before the handshake")
		select {}
	}
	p := os.Getenv("MCPSERVER_PREFIX")
	s := server.NewMCPServer("corral-test-mcpserver", "1.0.0", server.WithToolCapabilities(false))
	s.AddTool(mcp.NewTool(p+"echo", mcp.WithDescription("Echo the text back, with the working directory and MCPSERVER_TAG if asked."),
		mcp.WithString("text", mcp.Required()), mcp.WithString("show")),
		func(ctx context.Context, r mcp.CallToolRequest) (*mcp.CallToolResult, error) {
			text := r.GetString("text", "")
			switch r.GetString("show", "") {
			case "cwd":
				wd, _ := os.Getwd()
				text += " cwd=" + wd
			case "env":
				text += " tag=" + os.Getenv("MCPSERVER_TAG") + " home_env=" + os.Getenv("CORRAL_TEST_EXEC_ENV")
			case "pid":
				text += fmt.Sprintf(" pid=%d", os.Getpid())
			case "uid":
				text += fmt.Sprintf(" uid=%d", os.Getuid())
			}
			return mcp.NewToolResultText(text), nil
		})
	s.AddTool(mcp.NewTool(p+"add", mcp.WithDescription("Add two numbers."),
		mcp.WithNumber("a", mcp.Required()), mcp.WithNumber("b", mcp.Required())),
		func(ctx context.Context, r mcp.CallToolRequest) (*mcp.CallToolResult, error) {
			sum := r.GetFloat("a", 0) + r.GetFloat("b", 0)
			res := mcp.NewToolResultText(fmt.Sprint(sum))
			res.StructuredContent = map[string]any{"sum": sum}
			return res, nil
		})
	s.AddTool(mcp.NewTool(p+"fail", mcp.WithDescription("Always answer with a tool error.")),
		func(ctx context.Context, r mcp.CallToolRequest) (*mcp.CallToolResult, error) {
			return mcp.NewToolResultError("the tool failed on purpose"), nil
		})
	s.AddTool(mcp.NewTool(p+"slow", mcp.WithDescription("Sleep for seconds (default 3600), then answer."), mcp.WithNumber("seconds")),
		func(ctx context.Context, r mcp.CallToolRequest) (*mcp.CallToolResult, error) {
			d := time.Duration(r.GetFloat("seconds", 3600) * float64(time.Second))
			select {
			case <-time.After(d):
				return mcp.NewToolResultText("slept"), nil
			case <-ctx.Done():
				return nil, ctx.Err()
			}
		})
	s.AddTool(mcp.NewTool(p+"crash", mcp.WithDescription("Write to stderr and exit with status 7.")),
		func(ctx context.Context, r mcp.CallToolRequest) (*mcp.CallToolResult, error) {
			fmt.Fprintln(os.Stderr, "mcpserver: crashing on purpose")
			os.Exit(7)
			return nil, nil
		})
	s.AddTool(mcp.NewTool(p+"corrupt", mcp.WithDescription("Answer with content of an unknown type.")),
		func(ctx context.Context, r mcp.CallToolRequest) (*mcp.CallToolResult, error) {
			return mcp.NewToolResultText(corruptMarker), nil
		})
	if err := server.NewStdioServer(s).Listen(context.Background(), os.Stdin, corruptWriter{os.Stdout}); err != nil && !strings.Contains(err.Error(), "EOF") {
		fmt.Fprintln(os.Stderr, "mcpserver:", err)
		os.Exit(1)
	}
}
