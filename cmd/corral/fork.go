package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
)

const forkUsage = `usage: corral fork [flags] SESSION

Forks a running session through the API of a running "corral serve"
(POST /api/sessions/SESSION/fork): the new session holds SESSION's events
up to --at (default: all of them; new ids continue from there) and its
sandbox starts from SESSION's filesystem as it is now (local: a copy of the
workspace; docker: docker commit of the container and a copy of
/workspace). Processes are not carried over. A session running an action
is refused: fork once the action has its observation. Prints the new
session's id; --json prints the server's answer.

Exit codes: 0 forked, 1 the server refused or failed (its message is
printed), 2 bad flags, 130 interrupted.

flags:
`

type forkOpts struct {
	server, token, id string
	at                int64
	json              bool
}

func forkFlags(stderr io.Writer, o *forkOpts) *flag.FlagSet {
	fs := flag.NewFlagSet("corral fork", flag.ContinueOnError)
	fs.SetOutput(stderr)
	serverFlags(fs, &o.server, &o.token)
	fs.Int64Var(&o.at, "at", -1, "last event id the fork gets; -1 = the latest")
	fs.StringVar(&o.id, "id", "", "the new session's id; empty = a new one")
	fs.BoolVar(&o.json, "json", false, "print the server's JSON answer (the session and forked_from)")
	fs.Usage = func() { fmt.Fprint(stderr, forkUsage); fs.PrintDefaults() }
	return fs
}

// runFork is `corral fork`. Flags may come before or after SESSION.
func runFork(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	var o forkOpts
	fs := forkFlags(stderr, &o)
	rest, err := parseInterspersed(fs, args)
	if errors.Is(err, flag.ErrHelp) {
		return exitOK
	}
	if err != nil {
		return exitUsage
	}
	switch {
	case len(rest) != 1:
		fmt.Fprintf(stderr, "corral fork: want exactly one SESSION id, got %d argument(s) %q\n\n", len(rest), rest)
		fs.Usage()
		return exitUsage
	case o.at < -1:
		fmt.Fprintf(stderr, "corral fork: --at %d: want an event id (0 or more), or -1 for the latest\n", o.at)
		return exitUsage
	}
	q := url.Values{}
	if o.at >= 0 {
		q.Set("at", strconv.FormatInt(o.at, 10))
	}
	if o.id != "" {
		q.Set("id", o.id)
	}
	u, err := serverURL(o.server, q, "api", "sessions", rest[0], "fork")
	if err != nil {
		fmt.Fprintf(stderr, "corral fork: --server %q: %v; give the URL corral serve prints, e.g. http://127.0.0.1:7070\n", o.server, err)
		return exitUsage
	}
	res, code := callServer(ctx, "corral fork", http.MethodPost, u, o.token, http.StatusCreated, stderr)
	if res == nil {
		return code
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(res.Body, 1<<20))
	var ans struct {
		ID string `json:"id"`
	}
	if o.json {
		fmt.Fprintf(stdout, "%s\n", strings.TrimSpace(string(b)))
		return exitOK
	}
	if err := json.Unmarshal(b, &ans); err != nil || ans.ID == "" {
		fmt.Fprintf(stderr, "corral fork: the server's answer names no session: %s\n", b)
		return exitFailed
	}
	fmt.Fprintln(stdout, ans.ID)
	return exitOK
}
