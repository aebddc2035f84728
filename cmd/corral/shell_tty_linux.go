package main

import (
	"errors"
	"io"
	"os"

	"golang.org/x/sys/unix"
)

// terminalHungUp reports whether r is a terminal that has been hung up
// (closed by its other end: the window, the SSH connection). Linux
// answers every ioctl on a hung-up terminal's descriptor with EIO; a live
// terminal after Ctrl-D answers, and a file or pipe says ENOTTY.
func terminalHungUp(r io.Reader) bool {
	f, ok := r.(*os.File)
	if !ok {
		return false
	}
	rc, err := f.SyscallConn()
	if err != nil {
		return false
	}
	var ioctlErr error
	if err := rc.Control(func(fd uintptr) {
		_, ioctlErr = unix.IoctlGetTermios(int(fd), unix.TCGETS)
	}); err != nil {
		return false
	}
	return errors.Is(ioctlErr, unix.EIO)
}
