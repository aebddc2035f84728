package api

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"corral/eventbus"
)

// emitWithRuntimeStatus stores, in order: status, message, status,
// message, message, status (ids 0..5), as a session whose runtime status
// changes around its actions. It returns the ids of the OpenHands events.
func (e *testEngine) emitWithRuntimeStatus(t *testing.T, id string) []int64 {
	t.Helper()
	s, err := e.session(id)
	if err != nil {
		t.Fatal(err)
	}
	var openHands []int64
	for i, corral := range []bool{true, false, true, false, false, true} {
		ev := eventbus.NewAction(eventbus.SourceAgent, &eventbus.MessageAction{Content: fmt.Sprint("m", i)})
		if corral {
			ev = eventbus.NewObservation(eventbus.InvalidID, "", &eventbus.RuntimeStatusObservation{Status: eventbus.StatusReady, Level: "info"})
		}
		stored, err := s.stream.Append(context.Background(), ev)
		if err != nil {
			t.Fatal(err)
		}
		if !corral {
			openHands = append(openHands, stored.ID)
		}
	}
	return openHands
}

// openHandsIDs decodes events and fails unless each is OpenHands JSON when
// onlyOpenHands; it returns their ids.
func openHandsIDs(t *testing.T, raws []json.RawMessage, onlyOpenHands bool) []int64 {
	t.Helper()
	var ids []int64
	for _, raw := range raws {
		e, err := eventbus.Unmarshal(raw)
		if err != nil {
			t.Fatalf("event does not decode: %v: %s", err, raw)
		}
		if onlyOpenHands && (e.IsCorralExtension() || strings.Contains(string(raw), `"runtime_status"`)) {
			t.Fatalf("a Corral-only event in OpenHands JSON: %s", raw)
		}
		ids = append(ids, e.ID)
	}
	return ids
}

func TestEventListingServesOpenHandsEventsOnlyUnlessCorralEventsIsAsked(t *testing.T) {
	f := newFixture(t, nil)
	id := f.newSession()
	f.eng.emitWithRuntimeStatus(t, id)
	tests := []struct {
		name     string
		query    string
		wantIDs  []int64
		wantMore bool
	}{
		{"default lists OpenHands events", "", []int64{1, 3, 4}, false},
		{"limit counts OpenHands events only", "?limit=2", []int64{1, 3}, true},
		{"next page after a skipped id", "?after=3", []int64{4}, false},
		{"corral_events=false is the default", "?corral_events=false", []int64{1, 3, 4}, false},
		{"corral_events=true adds runtime status", "?corral_events=true", []int64{0, 1, 2, 3, 4, 5}, false},
		{"corral_events=1 with limit", "?corral_events=1&limit=1", []int64{0}, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var p eventPage
			f.mustJSON("GET", "/api/sessions/"+id+"/events"+tc.query, nil, 200, &p)
			ids := openHandsIDs(t, p.Events, !strings.Contains(tc.query, "corral_events=t") && !strings.Contains(tc.query, "corral_events=1"))
			if fmt.Sprint(ids) != fmt.Sprint(tc.wantIDs) || p.HasMore != tc.wantMore {
				t.Fatalf("ids %v has_more %v, want %v %v", ids, p.HasMore, tc.wantIDs, tc.wantMore)
			}
		})
	}
	code, b, _ := f.do("GET", "/api/sessions/"+id+"/events?corral_events=maybe", nil)
	if c, msg := errorCode(t, b); code != 400 || c != "invalid_request" || !strings.Contains(msg, "corral_events=true") {
		t.Fatalf("corral_events=maybe = %d %s", code, b)
	}
}

func TestWSStreamsOpenHandsEventsOnlyUnlessCorralEventsIsAsked(t *testing.T) {
	tests := []struct {
		name    string
		query   string
		wantIDs []int64
	}{
		{"default skips runtime status, replayed and live", "", []int64{1, 3, 4, 7, 9, 10}},
		{"corral_events=true sends them", "&corral_events=true", []int64{0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t, nil)
			id := f.newSession()
			f.eng.emitWithRuntimeStatus(t, id) // replayed: 0..5
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			c := f.dialURL(ctx, f.wsURL(id, -1)+tc.query)
			defer c.CloseNow()
			var ids []int64
			for len(ids) < len(tc.wantIDs) {
				fr, err := readFrame(ctx, t, c)
				if err != nil {
					t.Fatalf("after ids %v: %v", ids, err)
				}
				if fr.Type != FrameEvent {
					continue
				}
				ids = append(ids, openHandsIDs(t, []json.RawMessage{fr.Event}, tc.query == "")...)
				if len(ids) == 3 && tc.query == "" || len(ids) == 6 && tc.query != "" {
					f.eng.emitWithRuntimeStatus(t, id) // live: 6..11
				}
			}
			if fmt.Sprint(ids) != fmt.Sprint(tc.wantIDs) {
				t.Fatalf("streamed ids %v, want %v", ids, tc.wantIDs)
			}
		})
	}
	f := newFixture(t, nil)
	id := f.newSession()
	code, b, _ := f.do("GET", "/api/sessions/"+id+"/events/ws?corral_events=maybe", nil)
	if c, _ := errorCode(t, b); code != 400 || c != "invalid_request" {
		t.Fatalf("ws with corral_events=maybe = %d %s", code, b)
	}
}

// dialURL opens a WebSocket to url (f.wsURL plus extra query parameters).
func (f *fixture) dialURL(ctx context.Context, url string) *websocket.Conn {
	f.t.Helper()
	hdr := http.Header{}
	if f.token != "" {
		hdr.Set("Authorization", "Bearer "+f.token)
	}
	c, _, err := websocket.Dial(ctx, url, &websocket.DialOptions{HTTPHeader: hdr})
	if err != nil {
		f.t.Fatalf("dial %s: %v", url, err)
	}
	c.SetReadLimit(-1)
	return c
}
