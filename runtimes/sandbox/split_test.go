package sandbox

import (
	"reflect"
	"strings"
	"testing"
)

func TestSplitBashCommands(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want []string
	}{
		{"single command", "ls -l", []string{"ls -l"}},
		{"blank input gives one empty command", "  \n\t ", []string{""}},
		{"quoted text", "echo 'Hello, world!'", []string{"echo 'Hello, world!'"}},
		{"&& chain", "cd /tmp && touch test.txt", []string{"cd /tmp && touch test.txt"}},
		{"; chain on one line", "echo a; echo b", []string{"echo a; echo b"}},
		{"pipeline", "grep 'pattern' file.txt | sort | uniq", []string{"grep 'pattern' file.txt | sort | uniq"}},
		{"for loop on one line", "for i in {1..5}; do echo $i; done", []string{"for i in {1..5}; do echo $i; done"}},
		{"two lines are two commands", "echo a\necho b", []string{"echo a", "echo b"}},
		{"empty lines between commands", "\nls -l\n\necho \"Hello\"\n\ncd /tmp\n", []string{"ls -l", `echo "Hello"`, "cd /tmp"}},
		{"heredoc then a command", "\ncat <<EOF\nmultiline\ntext\nEOF\necho \"Done\"\n", []string{"cat <<EOF\nmultiline\ntext\nEOF", `echo "Done"`}},
		{"heredoc with quoted delimiter and a fake terminator", "cat <<'END'\n$x\nEND2\nEND\necho z", []string{"cat <<'END'\n$x\nEND2\nEND", "echo z"}},
		{"heredoc <<- strips tabs", "cat <<-EOF\n\tbody\n\tEOF\nls", []string{"cat <<-EOF\n\tbody\n\tEOF", "ls"}},
		{"two heredocs on one line", "cat <<A <<B\na\nA\nb\nB\nls", []string{"cat <<A <<B\na\nA\nb\nB", "ls"}},
		{"here-string is not a heredoc", "cat <<< hi\nls", []string{"cat <<< hi", "ls"}},
		{"backslash continuation", "echo \\\n    -e 'hello' \\\n    -v\nls", []string{"echo \\\n    -e 'hello' \\\n    -v", "ls"}},
		{"comments glue to the previous command", "\necho \"Hello\" # This is a comment\n# This is another comment\nls -l\n", []string{"echo \"Hello\" # This is a comment\n# This is another comment", "ls -l"}},
		{"leading comment glues to the first command", "# setup\nls", []string{"# setup\nls"}},
		{"hash inside a word is not a comment", "echo a#b\nls", []string{"echo a#b", "ls"}},
		{"multi-line single quotes", "echo -e 'hello\nworld \"\n'\nls", []string{"echo -e 'hello\nworld \"\n'", "ls"}},
		{"escaped quotes in double quotes", "echo \"This is a \\\"quoted\\\" string\"\necho x", []string{`echo "This is a \"quoted\" string"`, "echo x"}},
		{"nested loops with && and newlines", "mkdir -p _m && \\\nfor m in {01..04}; do\n    for d in {01..05}; do\n        touch \"_m/$m-$d.md\"\n    done\ndone\nls", []string{"mkdir -p _m && \\\nfor m in {01..04}; do\n    for d in {01..05}; do\n        touch \"_m/$m-$d.md\"\n    done\ndone", "ls"}},
		{"if block", "if true; then\n  echo y\nelse\n  echo n\nfi\nls", []string{"if true; then\n  echo y\nelse\n  echo n\nfi", "ls"}},
		{"while loop", "while read l; do\n echo $l\ndone < f\nls", []string{"while read l; do\n echo $l\ndone < f", "ls"}},
		{"case statement", "case $x in\n  a) echo a;;\n  b|c) echo bc\n  ;;\n  *) echo other;;\nesac\nls", []string{"case $x in\n  a) echo a;;\n  b|c) echo bc\n  ;;\n  *) echo other;;\nesac", "ls"}},
		{"subshell across lines", "(\n cd /tmp\n ls\n)\npwd", []string{"(\n cd /tmp\n ls\n)", "pwd"}},
		{"brace group and function", "f() {\n  echo hi\n}\nf", []string{"f() {\n  echo hi\n}", "f"}},
		{"function keyword", "function g {\n  echo hi\n}\ng", []string{"function g {\n  echo hi\n}", "g"}},
		{"command substitution across lines", "x=$(\n echo a\n echo b\n)\necho $x", []string{"x=$(\n echo a\n echo b\n)", "echo $x"}},
		{"case inside command substitution", "y=$(case a in a) echo 1;; esac)\necho $y", []string{"y=$(case a in a) echo 1;; esac)", "echo $y"}},
		{"paren in quotes inside $( )", "echo \"$(echo \")\")\"\nls", []string{"echo \"$(echo \")\")\"", "ls"}},
		{"backticks across lines", "echo `echo a\necho b`\nls", []string{"echo `echo a\necho b`", "ls"}},
		{"pipe at end of line continues", "echo a |\n  grep a\nls", []string{"echo a |\n  grep a", "ls"}},
		{"|| at end of line continues", "false ||\n  echo b\nls", []string{"false ||\n  echo b", "ls"}},
		{"background job ends a command", "sleep 1 &\nls", []string{"sleep 1 &", "ls"}},
		{"${ } with a brace in quotes", "echo ${x:-\"}\"}\nls", []string{"echo ${x:-\"}\"}", "ls"}},
		{"arithmetic", "echo $(( (1+2)*3 ))\nls", []string{"echo $(( (1+2)*3 ))", "ls"}},
		{"process substitution", "diff <(ls a) <(ls b)\nls", []string{"diff <(ls a) <(ls b)", "ls"}},
		{"array assignment", "a=(1 2\n3)\necho ${a[@]}", []string{"a=(1 2\n3)", "echo ${a[@]}"}},
		{"ANSI-C quote with escaped quote", "echo $'it\\'s'\nls", []string{"echo $'it\\'s'", "ls"}},
		{"keyword as an argument is not a keyword", "echo if\nls", []string{"echo if", "ls"}},
		{"special key", "C-c", []string{"C-c"}},
		// Unparsable input comes back as one command.
		{"unclosed double quote", `echo "Unclosed quote`, []string{`echo "Unclosed quote`}},
		{"unclosed single quote", "echo 'Unclosed quote", []string{"echo 'Unclosed quote"}},
		{"unclosed heredoc", "cat <<EOF\nUnclosed heredoc", []string{"cat <<EOF\nUnclosed heredoc"}},
		{"unclosed backtick", "echo `unclosed backtick", []string{"echo `unclosed backtick"}},
		{"unclosed if", "if true; then\necho a\necho b", []string{"if true; then\necho a\necho b"}},
		{"stray closing paren", "echo a)\necho b", []string{"echo a)\necho b"}},
		{"dangling &&", "echo a &&", []string{"echo a &&"}},
		{"single quotes do not escape", `echo 'Single quotes don\'t escape'`, []string{`echo 'Single quotes don\'t escape'`}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := SplitBashCommands(tc.in)
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("SplitBashCommands(%q)\n got %q\nwant %q", tc.in, got, tc.want)
			}
		})
	}
}

// OpenHands' test_split_commands_util: nine commands joined by newlines
// split back into the same nine.
func TestSplitBashCommandsRoundTrip(t *testing.T) {
	cmds := []string{
		"ls -l",
		`echo -e "hello\nworld"`,
		`echo -e "hello it\'s me"`,
		"echo \\\n    -e 'hello' \\\n    -v",
		`echo -e 'hello\nworld\nare\nyou\nthere?'`,
		"echo -e 'hello\nworld\nare\nyou\\n\nthere?'",
		"echo -e 'hello\nworld \"\n'",
		"kubectl apply -f - <<EOF\napiVersion: v1\nkind: Pod\nmetadata:\n  name: busybox-sleep\nspec:\n  containers:\n  - name: busybox\n    image: busybox:1.28\n    args:\n    - sleep\n    - \"1000000\"\nEOF",
		"mkdir -p _modules && \\\nfor month in {01..04}; do\n    for day in {01..05}; do\n        touch \"_modules/2024-${month}-${day}-sample.md\"\n    done\ndone",
	}
	got := SplitBashCommands(strings.Join(cmds, "\n"))
	if !reflect.DeepEqual(got, cmds) {
		t.Errorf("got %d pieces %q\nwant %q", len(got), got, cmds)
	}
}

// stripSpace drops ASCII whitespace bytes (works on invalid UTF-8 too).
func stripSpace(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		switch s[i] {
		case ' ', '\t', '\n', '\r', '\v', '\f':
		default:
			b.WriteByte(s[i])
		}
	}
	return b.String()
}

func FuzzSplitBashCommands(f *testing.F) {
	for _, s := range []string{
		"ls -l", "echo a\necho b", "cat <<EOF\nx\nEOF\nls", "for i in 1; do\necho $i\ndone",
		"case a in a) x;; esac\nls", "echo $(echo `x`)\n(a)", "echo \"${x:-$(y)}\"", "# c\nls\n# d",
		"if a; then\nb\nfi", "echo 'a\nb'", "a &&\nb", "$((1+(2)))", "<<", "$(", "\\", "`", "${",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		pieces := SplitBashCommands(in)
		if len(pieces) == 0 {
			t.Fatalf("no pieces for %q", in)
		}
		if strings.TrimSpace(in) == "" { // Python's str.strip(): Unicode spaces too
			if len(pieces) != 1 || pieces[0] != "" {
				t.Fatalf("blank input %q gave %q", in, pieces)
			}
			return
		}
		if got, want := stripSpace(strings.Join(pieces, "")), stripSpace(in); got != want {
			t.Fatalf("pieces %q lose characters of %q", pieces, in)
		}
		if len(pieces) > 1 {
			for _, p := range pieces {
				if stripSpace(p) == "" {
					t.Fatalf("empty piece in %q for %q", pieces, in)
				}
			}
		}
	})
}
