package sandbox

import (
	"encoding/json"
	"strconv"
	"strings"
	"testing"
	"unicode"
	"unicode/utf8"
)

// applyZeroContextDiff applies editDiff's output (a unified diff without
// context lines) to the lines of a.
func applyZeroContextDiff(t *testing.T, a []string, diff string) []string {
	if diff == "" {
		return a
	}
	lines := strings.Split(diff, "\n")
	if len(lines) < 3 || !strings.HasPrefix(lines[0], "--- ") || !strings.HasPrefix(lines[1], "+++ ") {
		t.Fatalf("bad diff header: %q", diff)
	}
	type hunk struct {
		start, n int
		add      []string
	}
	parseRange := func(s string) (int, int) {
		st, l, ok := strings.Cut(s, ",")
		start, err := strconv.Atoi(st)
		if err != nil {
			t.Fatalf("bad range %q in %q", s, diff)
		}
		n := 1
		if ok {
			n, _ = strconv.Atoi(l)
		}
		return start, n
	}
	var hunks []hunk
	for _, l := range lines[2:] {
		switch {
		case strings.HasPrefix(l, "@@ -"):
			f := strings.Fields(l)
			s, n := parseRange(strings.TrimPrefix(f[1], "-"))
			if n > 0 {
				s-- // 1-based first deleted line; with n == 0 s is the line after which to insert
			}
			hunks = append(hunks, hunk{start: s, n: n})
		case strings.HasPrefix(l, "+"):
			hunks[len(hunks)-1].add = append(hunks[len(hunks)-1].add, l[1:])
		case strings.HasPrefix(l, "-"):
		default:
			t.Fatalf("unexpected diff line %q in %q", l, diff)
		}
	}
	out := append([]string(nil), a...)
	for i := len(hunks) - 1; i >= 0; i-- {
		h := hunks[i]
		out = append(out[:h.start], append(append([]string(nil), h.add...), out[h.start+h.n:]...)...)
	}
	return out
}

func rstripAll(l []string) []string {
	out := make([]string, len(l))
	for i, s := range l {
		out[i] = strings.TrimRightFunc(s, unicode.IsSpace)
	}
	return out
}

func FuzzEditDiff(f *testing.F) {
	f.Add("a\nb\nc", "a\nB\nc")
	f.Add("", "x\n")
	f.Add("x\ny\nx\ny\n", "y\nx\n")
	f.Add(strings.Repeat("same\n", 250)+"end", strings.Repeat("same\n", 240)+"new\nend")
	f.Fuzz(func(t *testing.T, a, b string) {
		d := editDiff(a, b, "/f")
		if a == b && d != "" {
			t.Fatalf("diff of equal texts: %q", d)
		}
		got := rstripAll(applyZeroContextDiff(t, strings.Split(a, "\n"), d))
		want := rstripAll(strings.Split(b, "\n"))
		if strings.Join(got, "\n") != strings.Join(want, "\n") {
			t.Fatalf("patch does not reproduce b:\na=%q\nb=%q\ndiff=%q\ngot=%q", a, b, d, got)
		}
	})
}

func FuzzPyJSONString(f *testing.F) {
	for _, s := range []string{"", "plain", `q"\`, "\x00\x1f\x7f", "é😀", "\u2028"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		out := PyJSONString(s)
		for i := 0; i < len(out); i++ {
			if out[i] < 0x20 || out[i] > 0x7e {
				t.Fatalf("non-printable-ASCII byte %#x in %q", out[i], out)
			}
		}
		if !utf8.ValidString(s) {
			return
		}
		var back string
		if err := json.Unmarshal([]byte(out), &back); err != nil || back != s {
			t.Fatalf("round trip of %q via %s gave %q, %v", s, out, back, err)
		}
	})
}

func FuzzZipEntryPath(f *testing.F) {
	for _, s := range []string{"a.txt", "dir/", "../x", "/abs", "a/../../b", `..\x`, "C:x", "a/./b", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, name string) {
		rel, err := zipEntryPath(name)
		if err != nil {
			return
		}
		if rel == ".." || strings.HasPrefix(rel, "../") || strings.HasPrefix(rel, "/") {
			t.Fatalf("zipEntryPath(%q) = %q escapes the destination", name, rel)
		}
	})
}

func FuzzParseInsertLine(f *testing.F) {
	for _, s := range []string{"1", `"185"`, `" 7 "`, "null", "", "2.0", "2.5", `"x"`, "true", "[1]", `"1_000"`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		n, err := parseInsertLine(raw)
		if err != nil && !strings.HasPrefix(err.Error(), "Invalid insert_line value: ") {
			t.Fatalf("error text %q", err)
		}
		if err == nil && n != nil && strings.TrimSpace(string(raw)) == "" {
			t.Fatal("a value from nothing")
		}
	})
}
