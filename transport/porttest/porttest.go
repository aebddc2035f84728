package porttest

import (
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"strconv"
	"strings"
	"testing"
)

// lowest is the first port Blocks considers: above the well-known and the
// usual registered service ports a developer machine may be running.
const lowest = 10000

// Blocks returns count ports P, none of whose blocks P..P+size-1 overlap,
// each port free on 127.0.0.1 and on all interfaces just now, all below the
// ephemeral range. It fails t when they cannot be found.
func Blocks(t testing.TB, count, size int) []int {
	t.Helper()
	top := ephemeralLow() - size
	if top <= lowest {
		t.Fatalf("porttest: the ephemeral range starts at %d, leaving no room below it for %d ports", top+size, size)
	}
	taken := map[int]bool{}
	var out []int
	for range 100 * count {
		if len(out) == count {
			return out
		}
		p := lowest + rand.IntN(top-lowest)
		if overlaps(taken, p, size) || !free(p, size) {
			continue
		}
		for i := range size {
			taken[p+i] = true
		}
		out = append(out, p)
	}
	if len(out) == count {
		return out
	}
	t.Fatalf("porttest: found %d of %d blocks of %d free ports between %d and %d", len(out), count, size, lowest, top+size)
	return nil
}

// Ports returns n distinct free ports: Blocks(t, n, 1).
func Ports(t testing.TB, n int) []int {
	t.Helper()
	return Blocks(t, n, 1)
}

func overlaps(taken map[int]bool, p, size int) bool {
	for i := range size {
		if taken[p+i] {
			return true
		}
	}
	return false
}

// free binds each port on 127.0.0.1 and on all interfaces (protoactor's
// automanaged health server listens on the latter) and lets go at once.
func free(p, n int) bool {
	for i := range n {
		for _, host := range []string{"127.0.0.1", ""} {
			l, err := net.Listen("tcp", net.JoinHostPort(host, strconv.Itoa(p+i)))
			if err != nil {
				return false
			}
			l.Close()
		}
	}
	return true
}

// ephemeralLow is the first port of Linux's ephemeral range, or IANA's
// 49152 where the range cannot be read.
func ephemeralLow() int {
	b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range")
	if err != nil {
		return 49152
	}
	var lo, hi int
	if _, err := fmt.Sscan(strings.TrimSpace(string(b)), &lo, &hi); err != nil || lo <= 0 {
		return 49152
	}
	return lo
}
