package sandbox

import (
	"fmt"
	"io/fs"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"syscall"
)

type accessMode int

const (
	accessRead accessMode = 1 << iota
	accessWrite
)

// accessChecker refuses file operations the executor's user could not do
// itself. It matters only when the executor runs as root on behalf of a
// less privileged user (the OpenHands server does the same: it runs as root
// and acts for the sandbox user); otherwise the kernel already enforces it
// and check is a no-op.
type accessChecker struct {
	asUser   bool
	uid, gid int
	groups   map[int]bool
}

func newAccessChecker(username string) (*accessChecker, error) {
	if username == "" || os.Geteuid() != 0 {
		return &accessChecker{}, nil
	}
	u, err := user.Lookup(username)
	if err != nil {
		return nil, fmt.Errorf("look up sandbox user %q: %w (create the user or pass WithUser(\"\"))", username, err)
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	c := &accessChecker{asUser: uid != 0, uid: uid, gid: gid, groups: map[int]bool{gid: true}}
	if gids, err := u.GroupIds(); err == nil {
		for _, g := range gids {
			if n, err := strconv.Atoi(g); err == nil {
				c.groups[n] = true
			}
		}
	}
	return c, nil
}

// check returns a *fs.PathError with EACCES when the user may not access p
// with mode want (or search one of its parent directories). A missing path
// is not an error here: the operation itself reports it.
func (c *accessChecker) check(p string, want accessMode) error {
	if c == nil || !c.asUser {
		return nil
	}
	for dir := filepath.Dir(p); ; dir = filepath.Dir(dir) {
		if st, err := os.Stat(dir); err == nil && !c.allowed(st, 1) {
			return &fs.PathError{Op: "open", Path: p, Err: syscall.EACCES}
		}
		if dir == filepath.Dir(dir) {
			break
		}
	}
	st, err := os.Stat(p)
	if err != nil {
		return nil
	}
	if want&accessRead != 0 && !c.allowed(st, 4) {
		return &fs.PathError{Op: "open", Path: p, Err: syscall.EACCES}
	}
	if want&accessWrite != 0 && !c.allowed(st, 2) {
		return &fs.PathError{Op: "open", Path: p, Err: syscall.EACCES}
	}
	return nil
}

// allowed applies the classic owner/group/other permission bits for bit
// (4 read, 2 write, 1 execute/search).
func (c *accessChecker) allowed(st fs.FileInfo, bit fs.FileMode) bool {
	sys, ok := st.Sys().(*syscall.Stat_t)
	if !ok {
		return true
	}
	perm := st.Mode().Perm()
	switch {
	case int(sys.Uid) == c.uid:
		return perm&(bit<<6) != 0
	case c.groups[int(sys.Gid)]:
		return perm&(bit<<3) != 0
	}
	return perm&bit != 0
}
