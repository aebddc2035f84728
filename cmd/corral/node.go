package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"text/tabwriter"
)

const nodeUsage = `usage: corral node list [--server URL]
       corral node drain ID [--server URL]

Works on a running cluster through any member's API (--server):
  list    the members: id, status, sessions, API and cluster address
  drain   move node ID's sessions to the other members (before stopping it;
          SIGTERM of a node drains it too, within [cluster] drain_timeout)

flags:
`

// clusterView is GET /api/cluster.
type clusterView struct {
	Self    string `json:"self"`
	Members []struct {
		ID       string `json:"id"`
		Address  string `json:"address"`
		API      string `json:"api"`
		Status   string `json:"status"`
		Sessions int    `json:"sessions"`
	} `json:"members"`
}

// runNode implements `corral node`. args excludes "node".
func runNode(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("corral node", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var server, token string
	serverFlags(fs, &server, &token)
	fs.Usage = func() { fmt.Fprint(stderr, nodeUsage); fs.PrintDefaults() }
	pos, err := parseInterspersed(fs, args)
	if errors.Is(err, flag.ErrHelp) {
		return exitOK
	}
	if err != nil {
		return exitUsage
	}
	switch {
	case len(pos) == 1 && pos[0] == "list":
		return nodeList(ctx, server, token, stdout, stderr)
	case len(pos) == 2 && pos[0] == "drain":
		return nodeDrain(ctx, server, token, pos[1], stdout, stderr)
	}
	fmt.Fprintf(stderr, "corral node: want \"list\" or \"drain ID\", got %q (see corral node -h)\n", pos)
	return exitUsage
}

func nodeList(ctx context.Context, server, token string, stdout, stderr io.Writer) int {
	u, err := serverURL(server, nil, "api", "cluster")
	if err != nil {
		fmt.Fprintf(stderr, "corral node: --server %q: %v\n", server, err)
		return exitUsage
	}
	res, code := callServer(ctx, "corral node", http.MethodGet, u, token, http.StatusOK, stderr)
	if res == nil {
		return code
	}
	defer res.Body.Close()
	var cv clusterView
	if err := json.NewDecoder(res.Body).Decode(&cv); err != nil {
		fmt.Fprintf(stderr, "corral node: GET /api/cluster: %v\n", err)
		return exitFailed
	}
	if len(cv.Members) == 0 {
		fmt.Fprintln(stderr, "corral node: the server is not in a cluster (started without --join)")
		return exitFailed
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NODE\tSTATUS\tSESSIONS\tAPI\tADDRESS")
	for _, m := range cv.Members {
		id := m.ID
		if id == cv.Self {
			id += " (this)"
		}
		fmt.Fprintf(tw, "%s\t%s\t%d\t%s\t%s\n", id, m.Status, m.Sessions, m.API, m.Address)
	}
	_ = tw.Flush()
	return exitOK
}

func nodeDrain(ctx context.Context, server, token, id string, stdout, stderr io.Writer) int {
	u, err := serverURL(server, nil, "api", "cluster", "nodes", id, "drain")
	if err != nil {
		fmt.Fprintf(stderr, "corral node: --server %q: %v\n", server, err)
		return exitUsage
	}
	res, code := callServer(ctx, "corral node drain", http.MethodPost, u, token, http.StatusOK, stderr)
	if res == nil {
		return code
	}
	res.Body.Close()
	fmt.Fprintf(stdout, "corral: node %s drained: its sessions run on the other members now\n", id)
	return exitOK
}
