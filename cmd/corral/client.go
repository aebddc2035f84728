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
	"os"
	"strings"
)

// serverFlags registers --server and --token, the flags of the commands
// that work through a running corral serve's API (logs, fork).
func serverFlags(fs *flag.FlagSet, server, token *string) {
	def := os.Getenv("CORRAL_SERVER_URL")
	if def == "" {
		def = "http://127.0.0.1:7070"
	}
	fs.StringVar(server, "server", def, "base URL of corral serve (env CORRAL_SERVER_URL)")
	fs.StringVar(token, "token", os.Getenv("CORRAL_TOKEN"), "bearer token, one of the server's [server] auth_tokens (env CORRAL_TOKEN)")
}

// serverURL is the URL of the API path elem (escaped) with query q under
// server, the base URL corral serve prints.
func serverURL(server string, q url.Values, elem ...string) (string, error) {
	u, err := url.Parse(strings.TrimSuffix(server, "/"))
	if err == nil && (u.Scheme != "http" && u.Scheme != "https" || u.Host == "") {
		err = errors.New("not an http(s) URL with a host")
	}
	if err != nil {
		return "", err
	}
	u = u.JoinPath(elem...)
	u.RawQuery = q.Encode()
	return u.String(), nil
}

// callServer sends method to u with token. It returns the response when
// its status is want; otherwise it prints why as cmd's error (the server's
// JSON error, or what it answered) and returns the exit code to end with.
func callServer(ctx context.Context, cmd, method, u, token string, want int, stderr io.Writer) (*http.Response, int) {
	req, err := http.NewRequestWithContext(ctx, method, u, nil)
	if err != nil {
		fmt.Fprintf(stderr, "%s: %v\n", cmd, err)
		return nil, exitUsage
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return nil, exitInterrupt
		}
		fmt.Fprintf(stderr, "%s: cannot reach corral serve: %v (is it running? --server names it)\n", cmd, err)
		return nil, exitFailed
	}
	if res.StatusCode == want {
		return res, exitOK
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(res.Body, 64<<10))
	var e struct {
		Error struct{ Code, Message string } `json:"error"`
	}
	if json.Unmarshal(b, &e) == nil && e.Error.Message != "" {
		fmt.Fprintf(stderr, "%s: %s (%s, HTTP %d)\n", cmd, e.Error.Message, e.Error.Code, res.StatusCode)
	} else {
		fmt.Fprintf(stderr, "%s: the server answered %s: %s\n", cmd, res.Status, strings.TrimSpace(string(b)))
	}
	return nil, exitFailed
}
