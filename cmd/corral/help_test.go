package main

import (
	"bytes"
	"context"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// commandsOf lists the commands the top-level usage names, so that a new
// command is covered without touching this test.
func commandsOf(t *testing.T, usage string) []string {
	t.Helper()
	_, list, ok := strings.Cut(usage, "commands:\n")
	if !ok {
		t.Fatalf("usage has no commands: section:\n%s", usage)
	}
	var cmds []string
	for _, line := range strings.Split(list, "\n") {
		if !strings.HasPrefix(line, "  ") {
			break
		}
		cmds = append(cmds, strings.Fields(line)[0])
	}
	return cmds
}

// flagLine is a flag's first line in PrintDefaults output: "  -name" and,
// for non-boolean flags, the placeholder of its value.
var flagLine = regexp.MustCompile(`^  -([A-Za-z0-9][-A-Za-z0-9_.]*)(?: ([^\t]*))?(?:\t|$)`)

// The placeholders the flag package prints on its own. Anything else comes
// from a `backquoted` word in the usage string, which the flag package
// takes as the placeholder name ("-image corral image build").
var typePlaceholders = []string{"", "string", "int", "uint", "int64", "uint64", "float", "duration", "value"}

// TestEveryFlagHelpHasNoBackquotePlaceholder runs --help of every command
// (and `image build`) and checks each flag's line: no usage string may use
// backquotes, which the flag package turns into the value's placeholder.
func TestEveryFlagHelpHasNoBackquotePlaceholder(t *testing.T) {
	cmds := commandsOf(t, usage)
	if len(cmds) < 7 || !slices.Contains(cmds, "replay") || !slices.Contains(cmds, "farm") {
		t.Fatalf("commands parsed from the usage: %v", cmds)
	}
	var invocations [][]string
	for _, c := range cmds {
		if c == "version" {
			continue
		}
		invocations = append(invocations, []string{c, "--help"})
	}
	invocations = append(invocations, []string{"image", "build", "--help"})
	for _, args := range invocations {
		t.Run(strings.Join(args, " "), func(t *testing.T) {
			var out, errb bytes.Buffer
			code := run(context.Background(), args, strings.NewReader(""), &out, &errb)
			help := out.String() + errb.String()
			if code != 0 {
				t.Fatalf("exit %d, want 0:\n%s", code, help)
			}
			flags := 0
			for _, line := range strings.Split(help, "\n") {
				m := flagLine.FindStringSubmatch(line)
				if m == nil {
					continue
				}
				flags++
				if !slices.Contains(typePlaceholders, m[2]) {
					t.Errorf("flag -%s shows the placeholder %q, taken from backquotes in its usage: %q", m[1], m[2], line)
				}
			}
			if flags == 0 {
				t.Fatalf("no flag lines in the help:\n%s", help)
			}
		})
	}
}

func TestFlagLineFindsABackquotePlaceholder(t *testing.T) {
	for _, tc := range []struct {
		line, name, placeholder string
	}{
		{"  -image string", "image", "string"},
		{"  -image corral image build", "image", "corral image build"},
		{"  -v\tlog engine details to stderr", "v", ""},
		{"  -retry-errors", "retry-errors", ""},
		{"  -n int", "n", "int"},
	} {
		m := flagLine.FindStringSubmatch(tc.line)
		if m == nil || m[1] != tc.name || m[2] != tc.placeholder {
			t.Errorf("flagLine(%q) = %q, want name %q placeholder %q", tc.line, m, tc.name, tc.placeholder)
		}
	}
}
