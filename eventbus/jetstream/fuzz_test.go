package jetstream

import (
	"strings"
	"testing"

	"corral/eventbus"
)

func FuzzSubjectTokenRoundTrips(f *testing.F) {
	for _, s := range []string{"a", "sess.1", "a_b", "a._2E", "..", "x_5F_", "-"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, sid string) {
		if eventbus.ValidateSessionID(sid) != nil {
			return
		}
		tok := SubjectToken(sid)
		if tok == "" || strings.ContainsAny(tok, ".*> \t\r\n") {
			t.Fatalf("token %q of %q is not one subject token", tok, sid)
		}
		back, err := SessionOfToken(tok)
		if err != nil || back != sid {
			t.Fatalf("SessionOfToken(%q) = %q, %v; want %q", tok, back, err, sid)
		}
	})
}

func FuzzSessionOfTokenNeverPanics(f *testing.F) {
	for _, s := range []string{"a_2Eb", "_", "_5", "_ZZ", "a.b", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, tok string) {
		sid, err := SessionOfToken(tok)
		if err == nil && SubjectToken(sid) != tok {
			t.Fatalf("SessionOfToken(%q) = %q, which encodes back to %q", tok, sid, SubjectToken(sid))
		}
	})
}

func FuzzSplitBody(f *testing.F) {
	f.Add([]byte("{\"id\":3,\"a\":1}\n{\"id\":4}"), int64(3), int64(4))
	f.Add([]byte("{\"id\":0}"), int64(0), int64(0))
	f.Add([]byte("{\"x\":1,\"id\":7}"), int64(7), int64(7))
	f.Add([]byte("\n\n"), int64(0), int64(1))
	f.Fuzz(func(t *testing.T, body []byte, first, last int64) {
		items, err := splitBody(body, first, last)
		if err != nil {
			return
		}
		if items[0].ID != first || items[len(items)-1].ID != last {
			t.Fatalf("ids %d-%d, headers %d-%d", items[0].ID, items[len(items)-1].ID, first, last)
		}
		for i := 1; i < len(items); i++ {
			if items[i].ID <= items[i-1].ID {
				t.Fatalf("ids not increasing: %d then %d", items[i-1].ID, items[i].ID)
			}
		}
	})
}
