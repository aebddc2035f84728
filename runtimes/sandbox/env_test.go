package sandbox

import (
	"encoding/json"
	"os"
	"os/exec"
	"strings"
	"testing"
)

func TestEnvCommandsQuoteValuesExactly(t *testing.T) {
	env := map[string]string{"quux": `abc"def`, "FOOBAR": "xyz"}
	got, err := ExportEnvCommand(env)
	if err != nil {
		t.Fatal(err)
	}
	if want := `export FOOBAR='xyz'; export QUUX='abc"def';`; got != want {
		t.Errorf("export:\n got %s\nwant %s", got, want)
	}
	if got, want := IPythonEnvCode(env), "import os\nos.environ[\"FOOBAR\"] = \"xyz\"\nos.environ[\"QUUX\"] = \"abc\\\"def\"\n\n"; got != want {
		t.Errorf("ipython:\n got %q\nwant %q", got, want)
	}
	for _, f := range []func(map[string]string) (string, error){ExportEnvCommand, PersistEnvCommand} {
		if s, err := f(nil); s != "" || err != nil {
			t.Error("an empty map must give an empty command")
		}
		if _, err := f(map[string]string{"A B; rm -rf /": "x"}); err == nil {
			t.Error("a key that is not a shell name must be refused")
		}
	}
	if IPythonEnvCode(nil) != "" {
		t.Error("an empty map must give empty code")
	}
}

func TestEnvCommandsRoundTripThroughBashAndBashrc(t *testing.T) {
	values := map[string]string{"A": `abc"def`, "B": "multi\nline\ttab", "C": "naïve ✓ 😀", "D": `back\slash $HOME`, "E": `it's`}
	home := t.TempDir()
	exp, err := ExportEnvCommand(values)
	if err != nil {
		t.Fatal(err)
	}
	persist, err := PersistEnvCommand(values)
	if err != nil {
		t.Fatal(err)
	}
	show := ` printf '%s\0' "$A" "$B" "$C" "$D" "$E"`
	run := func(script string) []string {
		cmd := exec.Command("bash", "--norc", "-c", script)
		cmd.Env = []string{"HOME=" + home, "PATH=/usr/bin:/bin"}
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("%v: %s", err, script)
		}
		return strings.Split(strings.TrimSuffix(string(out), "\x00"), "\x00")
	}
	want := []string{values["A"], values["B"], values["C"], values["D"], values["E"]}
	if got := run(exp + show); strings.Join(got, "|") != strings.Join(want, "|") {
		t.Fatalf("live shell got %q want %q", got, want)
	}
	run(persist)
	run(persist) // idempotent: a key already in ~/.bashrc is not appended again
	if got := run(". ~/.bashrc;" + show); strings.Join(got, "|") != strings.Join(want, "|") {
		t.Fatalf("from ~/.bashrc got %q want %q", got, want)
	}
	rc, _ := os.ReadFile(home + "/.bashrc")
	if n := strings.Count(string(rc), "export A="); n != 1 {
		t.Fatalf("export A appears %d times in .bashrc:\n%s", n, rc)
	}
	// An override is not persisted (OpenHands' rule): the first value stays.
	over, _ := PersistEnvCommand(map[string]string{"A": "new"})
	run(over)
	if got := run(". ~/.bashrc;" + show); got[0] != values["A"] {
		t.Fatalf("override persisted: %q", got[0])
	}
}

func TestPyJSONStringMatchesPythonJSONDumps(t *testing.T) {
	inputs := []string{"", "plain", `q"uote`, `back\slash`, "ctl\x01\x1f\x7f", "\b\f\n\r\t", "é", "😀", "</script>&"}
	// Lines of Python's json.dumps of each input, in one interpreter.
	in, _ := json.Marshal(inputs)
	cmd := exec.Command("python3", "-c", "import json,sys\nfor s in json.load(sys.stdin): print(json.dumps(s))")
	cmd.Stdin = strings.NewReader(string(in))
	out, err := cmd.Output()
	if err != nil {
		t.Fatal(err)
	}
	want := strings.Split(strings.TrimSuffix(string(out), "\n"), "\n")
	for i, s := range inputs {
		if got := PyJSONString(s); got != want[i] {
			t.Errorf("PyJSONString(%q) = %s, python %s", s, got, want[i])
		}
	}
}
