package sandbox

import (
	"encoding/json"
	"os/exec"
	"strings"
	"testing"
)

func TestEnvCommandsMatchOpenHands(t *testing.T) {
	env := map[string]string{"quux": `abc"def`, "FOOBAR": "xyz"}
	if got, want := ExportEnvCommand(env), `export FOOBAR="xyz"; export QUUX="abc\"def";`; got != want {
		t.Errorf("export:\n got %s\nwant %s", got, want)
	}
	want := `touch ~/.bashrc; grep -q "^export FOOBAR=" ~/.bashrc || echo "export FOOBAR="xyz"" >> ~/.bashrc; ` +
		`touch ~/.bashrc; grep -q "^export QUUX=" ~/.bashrc || echo "export QUUX="abc\"def"" >> ~/.bashrc;`
	if got := PersistEnvCommand(env); got != want {
		t.Errorf("persist:\n got %s\nwant %s", got, want)
	}
	if got, want := IPythonEnvCode(env), "import os\nos.environ[\"FOOBAR\"] = \"xyz\"\nos.environ[\"QUUX\"] = \"abc\\\"def\"\n\n"; got != want {
		t.Errorf("ipython:\n got %q\nwant %q", got, want)
	}
	for _, f := range []func(map[string]string) string{ExportEnvCommand, PersistEnvCommand, IPythonEnvCode} {
		if f(nil) != "" || f(map[string]string{}) != "" {
			t.Error("an empty map must give an empty command")
		}
	}
}

func TestExportEnvCommandRoundTripsThroughBash(t *testing.T) {
	values := map[string]string{"A": `abc"def`, "B": "multi\nline\ttab", "C": "naïve ✓ 😀", "D": `back\slash $HOME`}
	out, err := exec.Command("bash", "-c", ExportEnvCommand(values)+` printf '%s\0' "$A" "$B" "$C" "$D"`).Output()
	if err != nil {
		t.Fatal(err)
	}
	got := strings.Split(strings.TrimSuffix(string(out), "\x00"), "\x00")
	// Bash treats the JSON escapes inside double quotes its own way; what
	// matters is that it agrees with OpenHands, whose command is the same.
	py := `import json,subprocess,sys
vals={"A":'abc"def',"B":"multi\nline\ttab","C":"naïve ✓ 😀","D":"back\\slash $HOME"}
cmd="".join(f"export {k}={json.dumps(v)}; " for k,v in vals.items()).strip()
sys.stdout.write(cmd)`
	pyCmd, err := exec.Command("python3", "-c", py).Output()
	if err != nil {
		t.Fatal(err)
	}
	if string(pyCmd) != ExportEnvCommand(values) {
		t.Fatalf("differs from Python's json.dumps command:\n go %s\n py %s", ExportEnvCommand(values), pyCmd)
	}
	if got[0] != `abc"def` {
		t.Fatalf("A = %q", got[0])
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
