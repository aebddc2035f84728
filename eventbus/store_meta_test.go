package eventbus

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestSaveMetaRoundTripsAndReplacesTheRecordWithMode0600(t *testing.T) {
	st, _ := newTestStore(t, nil)
	for _, rec := range []string{`{"token":"t1","env":{"A":"1"}}`, `{"token":"t2"}`} {
		if err := st.SaveMeta("s1", []byte(rec)); err != nil {
			t.Fatal(err)
		}
		got, err := st.LoadMeta("s1")
		if err != nil {
			t.Fatal(err)
		}
		if string(got) != rec {
			t.Fatalf("LoadMeta = %s, want %s", got, rec)
		}
	}
	fi, err := os.Stat(filepath.Join(st.Dir(), "s1.meta.json"))
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Fatalf("metadata file mode %v, want 0600 (it holds tokens)", fi.Mode().Perm())
	}
}

func TestSaveMetaAndLoadMetaRefuseBadInput(t *testing.T) {
	st, _ := newTestStore(t, nil)
	tests := []struct {
		name    string
		call    func() error
		wantErr string
		notExit bool // the error must wrap fs.ErrNotExist
	}{
		{name: "SaveMeta of a path-like session id", call: func() error { return st.SaveMeta("a/../x", []byte(`{}`)) }, wantErr: "character"},
		{name: "SaveMeta of a session id starting with a dot", call: func() error { return st.SaveMeta(".x", []byte(`{}`)) }, wantErr: "must not start with '.'"},
		{name: "SaveMeta of bytes that are not JSON", call: func() error { return st.SaveMeta("x", []byte(`{"a":`)) }, wantErr: "not valid JSON"},
		{name: "LoadMeta of a bad session id", call: func() error { _, err := st.LoadMeta("a/b"); return err }, wantErr: "character"},
		{name: "LoadMeta of a session without a record", call: func() error { _, err := st.LoadMeta("none"); return err }, wantErr: "has no metadata record", notExit: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.call()
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("error %v, want one containing %q", err, tc.wantErr)
			}
			if tc.notExit != errors.Is(err, fs.ErrNotExist) {
				t.Fatalf("errors.Is(%v, fs.ErrNotExist) = %v, want %v", err, !tc.notExit, tc.notExit)
			}
		})
	}
}

func TestACrashDuringSaveMetaLeavesThePreviousRecordAndItsTempFileIsRemovedOnOpen(t *testing.T) {
	dir := t.TempDir()
	st, err := OpenStore(testConfig(dir))
	if err != nil {
		t.Fatal(err)
	}
	if err := st.SaveMeta("s1", []byte(`{"v":1}`)); err != nil {
		t.Fatal(err)
	}
	// What a crash between writing the temporary file and renaming it
	// leaves: a partial temporary file next to the previous record.
	tmp := filepath.Join(dir, tmpPrefix+"s1.meta.json.123456")
	if err := os.WriteFile(tmp, []byte(`{"v":2,"tok`), 0o600); err != nil {
		t.Fatal(err)
	}
	if got, err := st.LoadMeta("s1"); err != nil || string(got) != `{"v":1}` {
		t.Fatalf("LoadMeta with a leftover temp file = %s, %v; want the previous record", got, err)
	}
	if ids, _ := st.Sessions(); strings.Join(ids, ",") != "s1" {
		t.Fatalf("Sessions() = %v, want [s1] (a temp file is no session)", ids)
	}
	st.Close()

	st, err = OpenStore(testConfig(dir))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if _, err := os.Stat(tmp); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("OpenStore left the crash's temp file: %v", err)
	}
	if got, err := st.LoadMeta("s1"); err != nil || string(got) != `{"v":1}` {
		t.Fatalf("LoadMeta after reopen = %s, %v; want the previous record", got, err)
	}
	if err := st.SaveMeta("s1", []byte(`{"v":2}`)); err != nil {
		t.Fatal(err)
	}
	if got, _ := st.LoadMeta("s1"); string(got) != `{"v":2}` {
		t.Fatalf("LoadMeta after a new save = %s", got)
	}
	ents, _ := os.ReadDir(dir)
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), tmpPrefix) {
			t.Fatalf("SaveMeta left a temp file %s", e.Name())
		}
	}
}

func TestSessionsListsSessionsWithEventsOrMetadataAndNotTheStoresOwnFiles(t *testing.T) {
	st, _ := newTestStore(t, nil)
	s, err := st.Open("with-events")
	if err != nil {
		t.Fatal(err)
	}
	mustAppend(t, s, runObs(0, 0))
	s.Close()
	for sid, rec := range map[string]string{"with-events": `{}`, "meta-only": `{"a":1}`, "x.meta": `{}`} {
		if err := st.SaveMeta(sid, []byte(rec)); err != nil {
			t.Fatal(err)
		}
	}
	for _, name := range []string{"notes.txt", ".hidden.meta.json", tmpPrefix + "y.meta.json.1", "bad id.events"} {
		os.WriteFile(filepath.Join(st.Dir(), name), []byte(`{}`), 0o644)
	}
	ids, err := st.Sessions()
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(ids, ","); got != "meta-only,with-events,x.meta" {
		t.Fatalf("Sessions() = %v, want meta-only,with-events,x.meta", ids)
	}
}

func TestDeleteRemovesASessionsEventsAndMetadata(t *testing.T) {
	tests := []struct {
		name         string
		events, meta bool
	}{
		{name: "events and metadata", events: true, meta: true},
		{name: "metadata only", meta: true},
		{name: "events only", events: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			st, _ := newTestStore(t, nil)
			if tc.events {
				s, err := st.Open("s")
				if err != nil {
					t.Fatal(err)
				}
				mustAppend(t, s, runObs(0, 0))
				s.Close()
			}
			if tc.meta {
				if err := st.SaveMeta("s", []byte(`{}`)); err != nil {
					t.Fatal(err)
				}
			}
			if err := st.Delete("s"); err != nil {
				t.Fatal(err)
			}
			if _, err := st.LoadMeta("s"); !errors.Is(err, fs.ErrNotExist) {
				t.Fatalf("LoadMeta after Delete: %v", err)
			}
			if ids, _ := st.Sessions(); len(ids) != 0 {
				t.Fatalf("Sessions() after Delete = %v", ids)
			}
			if err := st.Delete("s"); err == nil || !strings.Contains(err.Error(), "no such session") {
				t.Fatalf("second Delete: %v", err)
			}
		})
	}
}
