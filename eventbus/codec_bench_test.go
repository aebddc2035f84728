package eventbus

import (
	"encoding/json"
	"testing"
)

func benchObservation() *Event {
	user, host, cwd, py := "openhands", "0301ebbced1e", "/workspace", "/usr/bin/python3"
	o := NewObservation(5, "total 4\ndrwxr-xr-x 2 root root 4096 Jan 27 23:16 game\n-rw-r--r-- 1 root root 120 Jan 27 23:16 2048.py",
		&CmdOutputObservation{Command: "ls -l /workspace", Metadata: CmdOutputMetadata{ExitCode: 0, PID: -1,
			Username: &user, Hostname: &host, WorkingDir: &cwd, PyInterpreterPath: &py,
			Suffix: "\n[The command completed with exit code 0.]"}})
	o.ID, o.Source, o.Timestamp = 6, SourceAgent, "2025-01-27T23:16:57.600730"
	return o
}

// BenchmarkMarshalObservation compares the codec with encoding/json
// marshalling an equivalent map (the baseline a naive codec would pay).
func BenchmarkMarshalObservation(b *testing.B) {
	e := benchObservation()
	out, _ := Marshal(e)
	var generic map[string]any
	_ = json.Unmarshal(out, &generic)
	b.Run("codec", func(b *testing.B) {
		b.ReportAllocs()
		for i := 0; i < b.N; i++ {
			if _, err := Marshal(e); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("baseline-json-map", func(b *testing.B) {
		b.ReportAllocs()
		for i := 0; i < b.N; i++ {
			if _, err := json.Marshal(generic); err != nil {
				b.Fatal(err)
			}
		}
	})
}

func BenchmarkUnmarshalObservation(b *testing.B) {
	out, _ := Marshal(benchObservation())
	b.Run("codec", func(b *testing.B) {
		b.ReportAllocs()
		for i := 0; i < b.N; i++ {
			if _, err := Unmarshal(out); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("baseline-json-map", func(b *testing.B) {
		b.ReportAllocs()
		for i := 0; i < b.N; i++ {
			var m map[string]any
			if err := json.Unmarshal(out, &m); err != nil {
				b.Fatal(err)
			}
		}
	})
}
