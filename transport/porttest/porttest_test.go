package porttest

import (
	"net"
	"strconv"
	"testing"
)

func TestBlocksAreFreeBelowTheEphemeralRangeAndDoNotOverlap(t *testing.T) {
	seen := map[int]bool{}
	for _, p := range Blocks(t, 20, 4) {
		if p < lowest || p+4 > ephemeralLow() {
			t.Fatalf("block %d..%d is not below the ephemeral range (starts at %d)", p, p+3, ephemeralLow())
		}
		for i := range 4 {
			if seen[p+i] {
				t.Fatalf("port %d is in two blocks", p+i)
			}
			seen[p+i] = true
			l, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(p+i))
			if err != nil {
				t.Fatalf("port %d of the block is not free: %v", p+i, err)
			}
			l.Close()
		}
	}
}

func TestAPortInUseIsNotFree(t *testing.T) {
	p := Ports(t, 1)[0]
	l, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(p))
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	if free(p, 1) {
		t.Fatalf("free(%d) is true while a listener holds it", p)
	}
}
