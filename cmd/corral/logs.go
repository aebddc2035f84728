package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
)

const logsUsage = `usage: corral logs [flags] SESSION

Prints the own log of a session's sandbox (its agent's output: the
container's stdout and stderr on Docker, the agent's log file on local,
what the agent logged on remote hosts),
one line per entry, each prefixed with its RFC 3339 UTC timestamp. It reads
through the API of a running "corral serve" (GET /api/sessions/SESSION/logs),
the one process that owns the sessions' store; --server or CORRAL_SERVER_URL
names it. With -f it follows the log until the sandbox stops (the last line
then says "corral: end of logs: ...") or Ctrl-C.

Exit codes: 0 done, 1 the server refused or failed (its message is printed),
2 bad flags, 130 interrupted.

flags:
`

// logsOpts are the flags of corral logs.
type logsOpts struct {
	server string
	token  string
	follow bool
	tail   int
}

func logsFlags(stderr io.Writer, o *logsOpts) *flag.FlagSet {
	fs := flag.NewFlagSet("corral logs", flag.ContinueOnError)
	fs.SetOutput(stderr)
	serverFlags(fs, &o.server, &o.token)
	fs.BoolVar(&o.follow, "f", false, "follow: keep printing new lines until the sandbox stops")
	fs.BoolVar(&o.follow, "follow", false, "same as -f")
	fs.IntVar(&o.tail, "tail", -1, "print only the last N lines (then follow with -f); -1 = the whole log")
	fs.Usage = func() { fmt.Fprint(stderr, logsUsage); fs.PrintDefaults() }
	return fs
}

// runLogs is `corral logs`. Flags may come before or after SESSION.
func runLogs(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	var o logsOpts
	fs := logsFlags(stderr, &o)
	rest, err := parseInterspersed(fs, args)
	if errors.Is(err, flag.ErrHelp) {
		return exitOK
	}
	if err != nil {
		return exitUsage
	}
	switch {
	case len(rest) != 1:
		fmt.Fprintf(stderr, "corral logs: want exactly one SESSION id, got %d argument(s) %q\n\n", len(rest), rest)
		fs.Usage()
		return exitUsage
	case o.tail < -1 || o.tail > 100_000:
		fmt.Fprintf(stderr, "corral logs: --tail %d: want a number of lines from 0 to 100000, or -1 for the whole log\n", o.tail)
		return exitUsage
	}
	u, err := logsURL(o, rest[0])
	if err != nil {
		fmt.Fprintf(stderr, "corral logs: --server %q: %v; give the URL corral serve prints, e.g. http://127.0.0.1:7070\n", o.server, err)
		return exitUsage
	}
	return streamLogs(ctx, u, o.token, stdout, stderr)
}

// logsURL is the API URL of SESSION's logs on server.
func logsURL(o logsOpts, sid string) (string, error) {
	q := url.Values{}
	if o.follow {
		q.Set("follow", "true")
	}
	if o.tail >= 0 {
		q.Set("tail", strconv.Itoa(o.tail))
	}
	return serverURL(o.server, q, "api", "sessions", sid, "logs")
}

// streamLogs copies the log at u to stdout as it arrives.
func streamLogs(ctx context.Context, u, token string, stdout, stderr io.Writer) int {
	res, code := callServer(ctx, "corral logs", http.MethodGet, u, token, http.StatusOK, stderr)
	if res == nil {
		return code
	}
	defer res.Body.Close()
	if _, err := io.Copy(stdout, res.Body); err != nil {
		if ctx.Err() != nil {
			return exitInterrupt
		}
		fmt.Fprintf(stderr, "corral logs: the stream broke: %v\n", err)
		return exitFailed
	}
	return exitOK
}
