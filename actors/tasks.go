package actors

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"corral/eventbus"
)

// taskTracking answers a task_tracking action as OpenHands' run_action does
// (reference §1.5): the list lives in TASKS.md of the session directory, not
// in the sandbox. It does file IO: call it off the actor goroutine.
func taskTracking(dir string, a *eventbus.TaskTrackingAction) (content string, obs eventbus.Observation) {
	path := filepath.Join(dir, "TASKS.md")
	switch a.Command {
	case "plan":
		var tasks []map[string]any
		if len(a.TaskList) > 0 && string(a.TaskList) != "null" {
			if err := json.Unmarshal(a.TaskList, &tasks); err != nil {
				return fmt.Sprintf("Failed to write task list to session directory %s: task_list is not a list of tasks: %v", path, err),
					&eventbus.ErrorObservation{}
			}
		}
		var b strings.Builder
		b.WriteString("# Task List\n\n")
		for i, t := range tasks {
			icon := "⏳"
			switch str(t["status"]) {
			case "in_progress":
				icon = "🔄"
			case "done":
				icon = "✅"
			}
			b.WriteString(strconv.Itoa(i+1) + ". " + icon + " " + str(t["title"]) + "\n" + str(t["notes"]) + "\n")
		}
		if err := os.WriteFile(path, []byte(b.String()), 0o644); err != nil {
			return fmt.Sprintf("Failed to write task list to session directory %s: %v", path, err), &eventbus.ErrorObservation{}
		}
		list := a.TaskList
		if len(list) == 0 || string(list) == "null" {
			list = json.RawMessage(`[]`)
		}
		return fmt.Sprintf("Task list has been updated with %d items. Stored in session directory: %s", len(tasks), path),
			&eventbus.TaskTrackingObservation{Command: a.Command, TaskList: list}
	case "view":
		data, err := os.ReadFile(path)
		switch {
		case errors.Is(err, fs.ErrNotExist):
			return `No task list found. Use the "plan" command to create one.`,
				&eventbus.TaskTrackingObservation{Command: a.Command, TaskList: json.RawMessage(`[]`)}
		case err != nil:
			return fmt.Sprintf("Failed to read the task list: %v", err),
				&eventbus.TaskTrackingObservation{Command: a.Command, TaskList: json.RawMessage(`[]`)}
		}
		return string(data), &eventbus.TaskTrackingObservation{Command: a.Command, TaskList: json.RawMessage(`[]`)}
	}
	return "Unknown command: " + a.Command,
		&eventbus.TaskTrackingObservation{Command: a.Command, TaskList: json.RawMessage(`[]`)}
}

// str renders a JSON value the way Python's f-string would for the common
// cases (strings as-is, missing as empty).
func str(v any) string {
	switch x := v.(type) {
	case nil:
		return ""
	case string:
		return x
	default:
		b, _ := json.Marshal(x)
		return string(b)
	}
}

// sessionDir returns (creating it) the directory of a session's own files:
// <data_dir>/<sid>, or <store dir>/<sid>.files next to its event log.
func sessionDir(store *eventbus.Store, dataDir, sid string) (string, error) {
	d := filepath.Join(store.Dir(), sid+".files")
	if dataDir != "" {
		d = filepath.Join(dataDir, sid)
	}
	if err := os.MkdirAll(d, 0o755); err != nil {
		return "", fmt.Errorf("create session directory %s (set [engine] data_dir to a writable directory): %w", d, err)
	}
	return d, nil
}
