package main

import (
	"flag"
	"os"
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
