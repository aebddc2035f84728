package sandbox

import (
	"bytes"
	"encoding/json"
	"io"
	"math"
	"strconv"
	"strings"

	"corral/eventbus"
)

// The PS1 metadata protocol (reference §6.2): after every command bash
// prints a JSON block between these markers; the block tells us the command
// finished and carries its exit code and the shell's state.
const (
	ps1Begin = "###PS1JSON###"
	ps1End   = "###PS1END###"
)

// ps1Prompt is the PS1 bash prints. It keeps OpenHands' layout (leading
// newline, indented JSON with the six keys, values as JSON strings) but
// takes the values from variables that promptCommand computes, so that a
// working directory containing `"`, `\` or `$` still yields valid JSON and
// is never re-expanded by bash, and so that no subshell is forked per
// prompt (OpenHands runs $(pwd) and $(which python) every time).
const ps1Prompt = `\n` + ps1Begin + `\n{\n` +
	`  "pid": "${__oh_pid}",\n` +
	`  "exit_code": "${__oh_ec}",\n` +
	`  "username": "\u",\n` +
	`  "hostname": "\h",\n` +
	`  "working_dir": "${__oh_wd}",\n` +
	`  "py_interpreter_path": "${__oh_py}"\n` +
	`}\n` + ps1End + `\n`

// promptCommand is exported as PROMPT_COMMAND (as OpenHands does, so nested
// bash shells print the same prompt). It is self-contained bash: no
// functions, no forks. It resolves python like `which python` (first
// executable python on $PATH) and JSON-escapes the strings.
var promptCommand = `__oh_ec=$? __oh_pid=$!; ` +
	`__oh_wd=$PWD; ` + jsonEscapeVar("__oh_wd") +
	`__oh_py=; IFS=: read -r -d '' -a __oh_pp <<< "$PATH"; ` +
	`for __oh_d in "${__oh_pp[@]}"; do __oh_d=${__oh_d%$'\n'}; ` +
	`if [[ -f ${__oh_d:-.}/python && -x ${__oh_d:-.}/python ]]; then __oh_py=${__oh_d:-.}/python; break; fi; done; ` +
	jsonEscapeVar("__oh_py") +
	`PS1=` + shellQuote(ps1Prompt)

// jsonEscapeVar returns bash that escapes the variable for a JSON string.
func jsonEscapeVar(v string) string {
	return v + `=${` + v + `//\\/\\\\}; ` +
		v + `=${` + v + `//\"/\\\"}; ` +
		v + `=${` + v + `//$'\n'/\\n}; ` +
		v + `=${` + v + `//$'\t'/\\t}; ` +
		v + `=${` + v + `//$'\r'/\\r}; `
}

// shellQuote quotes s for bash as one single-quoted word.
func shellQuote(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// ps1Block is one PS1 metadata block found in the output.
type ps1Block struct {
	start, end int // byte offsets of the block (from ###PS1JSON### to after ###PS1END###)
	meta       eventbus.CmdOutputMetadata
}

// findPS1Blocks returns the valid PS1 blocks of text in order, like
// OpenHands' CMD_OUTPUT_METADATA_PS1_REGEX (`^###PS1JSON###(.*?)###PS1END###`,
// multiline, dot-all) plus its rule that blocks whose body is not valid JSON
// are skipped.
func findPS1Blocks(text []byte) []ps1Block {
	var blocks []ps1Block
	pos := 0
	for pos < len(text) {
		k := bytes.Index(text[pos:], []byte(ps1Begin))
		if k < 0 {
			break
		}
		start := pos + k
		if start > 0 && text[start-1] != '\n' {
			pos = start + 1
			continue
		}
		bodyStart := start + len(ps1Begin)
		e := bytes.Index(text[bodyStart:], []byte(ps1End))
		if e < 0 {
			break
		}
		end := bodyStart + e + len(ps1End)
		if meta, ok := parsePS1Body(text[bodyStart : bodyStart+e]); ok {
			blocks = append(blocks, ps1Block{start: start, end: end, meta: meta})
			pos = end
			continue
		}
		// Not JSON: the regex would resume after this match.
		pos = end
	}
	return blocks
}

// parsePS1Body parses a block's JSON body into metadata following
// CmdOutputMetadata.from_ps1_match: pid and exit_code go through
// int(float(str(v))) with -1 when that fails; string fields are taken when
// they are strings; missing fields keep their defaults.
func parsePS1Body(body []byte) (eventbus.CmdOutputMetadata, bool) {
	md := eventbus.DefaultMetadata()
	dec := json.NewDecoder(bytes.NewReader(bytes.TrimSpace(body)))
	dec.UseNumber()
	var m map[string]any
	if err := dec.Decode(&m); err != nil || m == nil {
		return md, false
	}
	// Nothing may follow the object (Python's json.loads: "Extra data");
	// More would miss a stray '}' or ']'.
	if _, err := dec.Token(); err != io.EOF {
		return md, false
	}
	if v, ok := m["pid"]; ok {
		md.PID = coerceInt(v)
	}
	if v, ok := m["exit_code"]; ok {
		md.ExitCode = coerceInt(v)
	}
	str := func(key string) *string {
		if s, ok := m[key].(string); ok {
			return &s
		}
		return nil
	}
	md.Username = str("username")
	md.Hostname = str("hostname")
	md.WorkingDir = str("working_dir")
	md.PyInterpreterPath = str("py_interpreter_path")
	return md, true
}

// coerceInt is Python's int(float(str(v))) with -1 on failure.
func coerceInt(v any) int {
	var s string
	switch x := v.(type) {
	case string:
		s = x
	case json.Number:
		s = x.String()
	default:
		return -1
	}
	f, err := strconv.ParseFloat(strings.TrimSpace(s), 64)
	if err != nil || math.IsNaN(f) || math.IsInf(f, 0) || f > math.MaxInt32 || f < math.MinInt32 {
		return -1
	}
	return int(f) // truncates toward zero, like Python's int()
}

// pyFloat formats f like Python's repr(float): 1 -> "1.0", 2.5 -> "2.5".
func pyFloat(f float64) string {
	a := math.Abs(f)
	if a != 0 && (a < 1e-4 || a >= 1e16) {
		return strconv.FormatFloat(f, 'e', -1, 64)
	}
	s := strconv.FormatFloat(f, 'f', -1, 64)
	if !strings.ContainsAny(s, ".eInN") {
		s += ".0"
	}
	return s
}
