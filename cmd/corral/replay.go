package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"

	"corral/eventbus"
	"corral/runtimes/sandbox"
)

const replayUsage = `usage: corral replay TRAJECTORY.json [--runtime local|cli|docker|kubernetes|remote] [--image IMAGE] [--workspace DIR] [--config FILE] [--no-map] [--diff] [--strict] [-v]

Runs the runnable actions of an OpenHands trajectory (a JSON array of
events) in a fresh session, in order, and prints for each the recorded
observation beside the new one: type, exit code and whether the content is
the same. --diff prints, under each differing action, a unified diff of the
recorded and the new observation (type, exit code, content). A summary line
follows. Paths under /workspace are mapped to the session's workspace
(--no-map to keep them). A trajectory recorded on a workspace that already
held files (OpenHands' wrong_initial_state.json) differs by design.

exit codes:
  0  every runnable action got an observation (differences are reported, not failures)
  1  an action got no observation, or --strict and some observation differs
  2  bad flags, configuration or trajectory file
  3  the sandbox did not start
  130 interrupted

flags:
`

// replayResult is one replayed action.
type replayResult struct {
	action        *eventbus.Event
	recorded, now *eventbus.Event
	same          bool
	why           string
}

func runReplay(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	var o cliOpts
	var noMap, strict, showDiff bool
	fs := cliFlags("corral replay", replayUsage, stderr, &o)
	fs.BoolVar(&noMap, "no-map", false, "do not map /workspace paths to the session's workspace")
	fs.BoolVar(&strict, "strict", false, "exit 1 when any observation differs from the recorded one")
	fs.BoolVar(&showDiff, "diff", false, "under each differing action, print a unified diff of the recorded and the new observation (content and exit code)")
	// Accept the trajectory before, between or after the flags.
	positional, err := parseInterspersed(fs, args)
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return exitOK
		}
		return exitUsage
	}
	if len(positional) != 1 {
		fmt.Fprintf(stderr, "corral replay: give exactly one trajectory file (got %d: %q)\n", len(positional), positional)
		fs.Usage()
		return exitUsage
	}
	path := positional[0]
	inputs, err := readEventFile(path)
	if err != nil {
		fmt.Fprintf(stderr, "corral replay: %v\n", err)
		return exitUsage
	}
	var events []*eventbus.Event
	for _, in := range inputs {
		if in.err != nil {
			fmt.Fprintf(stderr, "corral replay: %v\n", in.err)
			return exitUsage
		}
		events = append(events, in.ev)
	}
	recorded := map[int64]*eventbus.Event{}
	for _, ev := range events {
		if !ev.IsAction() && ev.Cause != nil {
			if _, seen := recorded[*ev.Cause]; !seen {
				recorded[*ev.Cause] = ev
			}
		}
	}
	cs, code, err := openCLISession(ctx, o, stderr)
	if err != nil {
		fmt.Fprintf(stderr, "corral replay: %v\n", err)
		return code
	}
	defer cs.close()
	info, _ := cs.eng.Get(ctx, cs.sid)
	mapPath := keepPath
	if !noMap && info.Workspace != "" {
		ws := info.Workspace
		mapPath = func(s string) string { return strings.ReplaceAll(s, "/workspace", ws) }
	}

	var results []replayResult
	missing := false
	for _, ev := range events {
		if !ev.IsAction() || !ev.Action.Runnable() {
			continue
		}
		act := ev.Clone()
		act.ID, act.Cause = eventbus.InvalidID, nil
		mapAction(act, mapPath)
		_, obs, err := cs.eng.Run(ctx, cs.sid, act)
		if err != nil {
			if ctx.Err() != nil {
				return exitInterrupt
			}
			fmt.Fprintf(stderr, "corral replay: action %d (%s): %v\n", ev.ID, ev.Type(), err)
			missing = true
			break
		}
		r := replayResult{action: ev, recorded: recorded[ev.ID], now: obs}
		r.same, r.why = compareObservations(r.recorded, obs, mapPath)
		results = append(results, r)
		fmt.Fprintln(stdout, formatReplay(r))
		if showDiff && !r.same && r.recorded != nil && r.now != nil {
			fmt.Fprint(stdout, replayDiff(r, mapPath))
		}
	}
	same, differ, unrecorded := 0, 0, 0
	for _, r := range results {
		switch {
		case r.recorded == nil:
			unrecorded++
		case r.same:
			same++
		default:
			differ++
		}
	}
	fmt.Fprintf(stdout, "replayed %d actions of %s: %d same, %d differ, %d without a recorded observation\n",
		len(results), path, same, differ, unrecorded)
	switch {
	case missing:
		return exitFailed
	case strict && differ > 0:
		return exitFailed
	}
	return exitOK
}

// mapAction rewrites /workspace paths of file actions and commands.
func mapAction(ev *eventbus.Event, m func(string) string) {
	switch a := ev.Action.(type) {
	case *eventbus.CmdRunAction:
		a.Command = m(a.Command)
	case *eventbus.FileReadAction:
		a.Path = m(a.Path)
	case *eventbus.FileWriteAction:
		a.Path = m(a.Path)
	case *eventbus.FileEditAction:
		a.Path = m(a.Path)
	case *eventbus.IPythonRunCellAction:
		a.Code = m(a.Code)
	}
}

// exitOf returns the exit code of a run observation ("-" for others).
func exitOf(ev *eventbus.Event) string {
	if ev == nil {
		return "-"
	}
	if o, ok := ev.Observation.(*eventbus.CmdOutputObservation); ok {
		return fmt.Sprint(o.Metadata.ExitCode)
	}
	return "-"
}

// compareObservations says whether the new observation matches the
// recorded one: same type, same exit code, same content as the agent sees
// it (after mapping the recorded /workspace paths; see observedText).
func compareObservations(rec, now *eventbus.Event, m func(string) string) (bool, string) {
	if rec == nil {
		return false, "no recorded observation"
	}
	if now == nil {
		return false, "no new observation"
	}
	if rec.Type() != now.Type() {
		return false, "type differs"
	}
	if exitOf(rec) != exitOf(now) {
		return false, "exit code differs"
	}
	if observedText(rec, m) != observedText(now, keepPath) {
		return false, "content differs"
	}
	return true, "same"
}

// keepPath is the path mapping of new observations: they already hold
// the session's paths.
func keepPath(s string) string { return s }

// observedText is the content of an observation as compared: the text
// the agent is shown, with leading and trailing blank space trimmed.
// Recorded edit observations of older OpenHands versions hold the unified
// diff in content and the agent-facing result in the extra
// formatted_output_and_error ("File created successfully at: ..."); newer
// ones, and Corral, hold that result in content. Comparing the diff with
// the result made every such edit DIFFER.
func observedText(ev *eventbus.Event, m func(string) string) string {
	text := ev.Content
	if _, ok := ev.Observation.(*eventbus.FileEditObservation); ok {
		if legacy, ok := legacyEditOutput(ev); ok {
			text = legacy
		}
	}
	return strings.TrimSpace(m(text))
}

// legacyEditOutput returns extras.formatted_output_and_error of a recorded
// edit observation, which the codec keeps verbatim but does not model.
func legacyEditOutput(ev *eventbus.Event) (string, bool) {
	b, err := eventbus.Marshal(ev)
	if err != nil {
		return "", false
	}
	var doc struct {
		Extras struct {
			Formatted *string `json:"formatted_output_and_error"`
		} `json:"extras"`
	}
	if json.Unmarshal(b, &doc) != nil || doc.Extras.Formatted == nil {
		return "", false
	}
	return *doc.Extras.Formatted, true
}

// replayDiff is the --diff block of a differing action: a unified diff of
// the recorded and the new observation, each as its type, exit code and
// compared content, indented under the action's line.
func replayDiff(r replayResult, m func(string) string) string {
	side := func(ev *eventbus.Event, m func(string) string) string {
		head := "[" + ev.Type() + " observation"
		if code := exitOf(ev); code != "-" {
			head += ", exit code " + code
		}
		return head + "]\n" + observedText(ev, m)
	}
	d := sandbox.UnifiedDiff(side(r.recorded, m), side(r.now, keepPath),
		fmt.Sprintf("recorded observation %d", r.recorded.ID), fmt.Sprintf("new observation %d", r.now.ID), 3)
	if d == "" {
		return ""
	}
	var b strings.Builder
	for _, line := range strings.SplitAfter(strings.TrimSuffix(d, "\n"), "\n") {
		b.WriteString("    " + line)
	}
	b.WriteString("\n")
	return b.String()
}

func formatReplay(r replayResult) string {
	summary := r.action.Type()
	switch a := r.action.Action.(type) {
	case *eventbus.CmdRunAction:
		summary += " " + firstLineOf(a.Command)
	case *eventbus.FileReadAction:
		summary += " " + a.Path
	case *eventbus.FileWriteAction:
		summary += " " + a.Path
	case *eventbus.FileEditAction:
		summary += " " + a.Command + " " + a.Path
	}
	rec, recExit := "none", "-"
	if r.recorded != nil {
		rec, recExit = r.recorded.Type(), exitOf(r.recorded)
	}
	now, nowExit := "none", "-"
	if r.now != nil {
		now, nowExit = r.now.Type(), exitOf(r.now)
	}
	verdict := "SAME"
	if !r.same {
		verdict = "DIFFER (" + r.why + ")"
	}
	return fmt.Sprintf("action %d %s: recorded %s exit %s | new %s exit %s | %s", r.action.ID, summary, rec, recExit, now, nowExit, verdict)
}

func firstLineOf(s string) string {
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		s = s[:i] + " ..."
	}
	if len(s) > 60 {
		s = s[:60] + "..."
	}
	return s
}
