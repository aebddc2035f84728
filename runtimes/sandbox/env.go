package sandbox

import (
	"fmt"
	"sort"
	"strings"
	"unicode/utf16"
)

// sortedUpperKeys returns env's keys upper-cased (OpenHands' add_env_vars
// upper-cases them) in sorted order, with the value of each. When two keys
// differ only in case, the lexically greatest original key wins.
func sortedUpperKeys(env map[string]string) ([]string, map[string]string) {
	orig := make([]string, 0, len(env))
	for k := range env {
		orig = append(orig, k)
	}
	sort.Strings(orig)
	vals := map[string]string{}
	for _, k := range orig {
		vals[strings.ToUpper(k)] = env[k]
	}
	keys := make([]string, 0, len(vals))
	for k := range vals {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys, vals
}

// ExportEnvCommand builds the command that sets env vars in the live shell,
// as OpenHands' add_env_vars does: `export K='value'; ...`. Unlike OpenHands,
// which uses JSON quoting as shell quoting (so `$`, backquotes and
// backslashes in a value were expanded by bash), values are single-quoted:
// the shell gets exactly the value given. Keys are upper-cased and must be
// shell names. Empty map → "" (run nothing).
func ExportEnvCommand(env map[string]string) (string, error) {
	keys, vals := sortedUpperKeys(env)
	var b strings.Builder
	for _, k := range keys {
		if !isShellName(k) {
			return "", fmt.Errorf("env var name %q is not a shell variable name (letters, digits and _, not starting with a digit)", k)
		}
		fmt.Fprintf(&b, "export %s=%s; ", k, ShellQuote(vals[k]))
	}
	return strings.TrimSpace(b.String()), nil
}

// PersistEnvCommand builds the command that appends each var to ~/.bashrc
// unless a line for that key already exists (so an overridden value is not
// persisted, as in OpenHands). The line written is itself quoted for the
// shell, so a value with quotes can never leave a broken ~/.bashrc (OpenHands
// writes `export K=abc"def` for the value abc"def). Empty map → "".
func PersistEnvCommand(env map[string]string) (string, error) {
	keys, vals := sortedUpperKeys(env)
	var b strings.Builder
	for _, k := range keys {
		if !isShellName(k) {
			return "", fmt.Errorf("env var name %q is not a shell variable name (letters, digits and _, not starting with a digit)", k)
		}
		line := "export " + k + "=" + ShellQuote(vals[k])
		fmt.Fprintf(&b, `touch ~/.bashrc; grep -q '^export %s=' ~/.bashrc || printf '%%s\n' %s >> ~/.bashrc; `, k, ShellQuote(line))
	}
	return strings.TrimSpace(b.String()), nil
}

// ShellQuote quotes s for bash with single quotes.
func ShellQuote(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

func isShellName(k string) bool {
	if k == "" {
		return false
	}
	for i, r := range k {
		if !(r == '_' || r >= 'A' && r <= 'Z' || r >= 'a' && r <= 'z' || i > 0 && r >= '0' && r <= '9') {
			return false
		}
	}
	return true
}

// IPythonEnvCode builds OpenHands' cell that sets the vars in the Python
// kernel: `import os` and one os.environ line per var. Empty map → "".
func IPythonEnvCode(env map[string]string) string {
	keys, vals := sortedUpperKeys(env)
	if len(keys) == 0 {
		return ""
	}
	var b strings.Builder
	b.WriteString("import os\n")
	for _, k := range keys {
		fmt.Fprintf(&b, "os.environ[\"%s\"] = %s\n", k, PyJSONString(vals[k]))
	}
	b.WriteString("\n")
	return b.String()
}

// PyJSONString encodes s exactly as Python's json.dumps(s) does (ASCII only,
// non-ASCII as \uXXXX escapes, no HTML escaping), which Go's encoding/json
// does not.
func PyJSONString(s string) string {
	var b strings.Builder
	b.WriteByte('"')
	for _, r := range s {
		switch r {
		case '"':
			b.WriteString(`\"`)
		case '\\':
			b.WriteString(`\\`)
		case '\n':
			b.WriteString(`\n`)
		case '\r':
			b.WriteString(`\r`)
		case '\t':
			b.WriteString(`\t`)
		case '\b':
			b.WriteString(`\b`)
		case '\f':
			b.WriteString(`\f`)
		default:
			switch {
			case r < 0x20 || (r >= 0x7f && r < 0x10000):
				fmt.Fprintf(&b, `\u%04x`, r)
			case r >= 0x10000:
				r1, r2 := utf16.EncodeRune(r)
				fmt.Fprintf(&b, `\u%04x\u%04x`, r1, r2)
			default:
				b.WriteRune(r)
			}
		}
	}
	b.WriteByte('"')
	return b.String()
}
