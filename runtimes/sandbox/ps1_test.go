package sandbox

import (
	"encoding/json"
	"regexp"
	"strings"
	"testing"
)

func TestPS1PromptLayout(t *testing.T) {
	if !strings.HasPrefix(ps1Prompt, `\n###PS1JSON###\n`) || !strings.HasSuffix(ps1Prompt, `\n###PS1END###\n`) {
		t.Errorf("prompt does not start/end with the markers: %q", ps1Prompt)
	}
	// The JSON part, with bash's \n turned into newlines, has exactly the six keys.
	body := strings.TrimSuffix(strings.TrimPrefix(ps1Prompt, `\n###PS1JSON###\n`), `\n###PS1END###\n`)
	body = strings.ReplaceAll(body, `\n`, "\n")
	body = strings.NewReplacer(`\u`, "u", `\h`, "h").Replace(body)
	var m map[string]string
	if err := json.Unmarshal([]byte(body), &m); err != nil {
		t.Fatalf("prompt body is not JSON: %v\n%s", err, body)
	}
	keys := []string{"pid", "exit_code", "username", "hostname", "working_dir", "py_interpreter_path"}
	if len(m) != len(keys) {
		t.Errorf("keys %v, want %v", m, keys)
	}
	for _, k := range keys {
		if _, ok := m[k]; !ok {
			t.Errorf("missing key %q", k)
		}
	}
}

func block(body string) string { return "\n###PS1JSON###\n" + body + "\n###PS1END###\n" }

func TestFindPS1Blocks(t *testing.T) {
	full := `{"pid": "", "exit_code": "0", "username": "u", "hostname": "h", "working_dir": "/w", "py_interpreter_path": "/usr/bin/python"}`
	tests := []struct {
		name   string
		text   string
		count  int
		exit   int
		pid    int
		cwd    string
		noUser bool
	}{
		{"a full block", "out" + block(full), 1, 0, -1, "/w", false},
		{"string numbers are parsed", block(`{"exit_code": "2", "pid": "123"}`), 1, 2, 123, "", true},
		{"floats are truncated", block(`{"exit_code": 1.9, "pid": "7.0"}`), 1, 1, 7, "", true},
		{"unparsable numbers give -1", block(`{"exit_code": "x", "pid": null}`), 1, -1, -1, "", true},
		{"missing fields keep defaults", block(`{}`), 1, -1, -1, "", true},
		{"invalid JSON is skipped", block(`{not json`), 0, 0, 0, "", true},
		{"empty body is skipped", block(``), 0, 0, 0, "", true},
		{"text after the object is skipped", block(`{}}`), 0, 0, 0, "", true},
		{"a second value is skipped", block(`{} {}`), 0, 0, 0, "", true},
		{"marker not at line start is ignored", "x###PS1JSON###\n{}\n###PS1END###", 0, 0, 0, "", true},
		{"the last of several blocks wins", block(`{"exit_code": "1"}`) + "mid" + block(`{"exit_code": "3", "working_dir": "/b"}`), 2, 3, -1, "/b", true},
		{"invalid block between valid ones", block(`{"exit_code": "1"}`) + block(`nope`) + block(`{"exit_code": "4"}`), 2, 4, -1, "", true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			blocks := findPS1Blocks([]byte(tc.text))
			if len(blocks) != tc.count {
				t.Fatalf("found %d blocks, want %d", len(blocks), tc.count)
			}
			if tc.count == 0 {
				return
			}
			md := blocks[len(blocks)-1].meta
			if md.ExitCode != tc.exit || md.PID != tc.pid {
				t.Errorf("exit %d pid %d, want %d %d", md.ExitCode, md.PID, tc.exit, tc.pid)
			}
			if (md.WorkingDir == nil && tc.cwd != "") || (md.WorkingDir != nil && *md.WorkingDir != tc.cwd) {
				t.Errorf("working_dir %v, want %q", md.WorkingDir, tc.cwd)
			}
			if (md.Username == nil) != tc.noUser {
				t.Errorf("username %v", md.Username)
			}
		})
	}
}

// The block finder agrees with OpenHands' regex on where blocks are.
func TestFindPS1BlocksMatchesReferenceRegex(t *testing.T) {
	re := regexp.MustCompile(`(?ms)^###PS1JSON###(.*?)###PS1END###`)
	text := "a\n" + block(`{"exit_code": "0"}`) + "b\n" + block(`{"exit_code": "1"}`)
	want := re.FindAllStringIndex(text, -1)
	got := findPS1Blocks([]byte(text))
	if len(got) != len(want) {
		t.Fatalf("got %d blocks, regex %d", len(got), len(want))
	}
	for i := range got {
		if got[i].start != want[i][0] || got[i].end != want[i][1] {
			t.Errorf("block %d at %d-%d, regex %v", i, got[i].start, got[i].end, want[i])
		}
	}
}

func TestPyFloat(t *testing.T) {
	for in, want := range map[float64]string{1: "1.0", 2.5: "2.5", 120: "120.0", 0.1: "0.1", 1e-5: "1e-05", 1e16: "1e+16", 30.25: "30.25"} {
		if got := pyFloat(in); got != want {
			t.Errorf("pyFloat(%v) = %q, want %q", in, got, want)
		}
	}
}

func TestCRLFConversionAcrossChunks(t *testing.T) {
	var c crlf
	var out []byte
	for _, chunk := range []string{"a\r", "\nb\r", "c\r\n", "\r", "\r\n"} {
		out = c.convert(out, []byte(chunk))
	}
	if string(out) != "a\nb\rc\n\r\n" {
		t.Errorf("got %q", out)
	}
}

func TestTruncateContentCountsCharacters(t *testing.T) {
	s := strings.Repeat("é", 20) + strings.Repeat("ü", 20)
	got := truncateContent(s, 30)
	want := strings.Repeat("é", 15) + truncationMarker + strings.Repeat("ü", 15)
	if got != want {
		t.Errorf("got %q", got)
	}
	if truncateContent("short", 30) != "short" {
		t.Error("short content changed")
	}
}
