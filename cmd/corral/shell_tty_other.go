//go:build !linux

package main

import "io"

// terminalHungUp: only Linux is told apart; elsewhere the SIGHUP that
// follows a hangup ends the shell through its context.
func terminalHungUp(io.Reader) bool { return false }
