package eventbus

import (
	"bytes"
	"context"
	"fmt"
	"strings"
)

// Filter selects events for Search, with OpenHands' EventFilter semantics
// plus search_events' id range, reverse and limit. The zero Filter matches
// every event.
type Filter struct {
	// StartID is the first id searched (inclusive, default 0).
	StartID int64
	// EndID, when not nil, is the last id searched (inclusive).
	EndID *int64
	// Reverse searches from the highest id down.
	Reverse bool
	// Limit stops after this many matches (0 = no limit).
	Limit int

	// ExcludeHidden drops events marked hidden.
	ExcludeHidden bool
	// Query keeps events whose serialised JSON contains it, case-insensitively.
	// Unlike OpenHands (json.dumps: ", " and ": " separators, non-ASCII as
	// \uXXXX) the text searched is the stored compact JSON, so a query that
	// spans a separator or contains non-ASCII may match differently.
	Query string
	// IncludeTypes keeps only events whose type matches one entry; ExcludeTypes
	// drops those that match one. An entry is a type string ("run", "read",
	// ...; matches actions and observations of that name), "action:<type>" or
	// "observation:<type>" for one kind, or "action" / "observation" for every
	// event of that kind (OpenHands passes classes; these are their names).
	IncludeTypes []string
	ExcludeTypes []string
	// Source keeps only events from this source ("agent", "user", "environment").
	Source Source
	// StartDate and EndDate bound the timestamp by string comparison, as
	// OpenHands does (an event without a timestamp passes).
	StartDate string
	EndDate   string
	// ExcludeCorralExtensions drops Corral's own event types
	// (Event.IsCorralExtension), leaving only events OpenHands can decode.
	ExcludeCorralExtensions bool
}

func typeMatches(e *Event, entry string) bool {
	kind := "observation"
	if e.IsAction() {
		kind = "action"
	}
	switch {
	case entry == kind:
		return true
	case strings.HasPrefix(entry, "action:"), strings.HasPrefix(entry, "observation:"):
		return entry == kind+":"+e.Type()
	default:
		return entry == e.Type()
	}
}

// Include reports whether e (whose stored JSON is js; may be nil, then e is
// encoded for Query) passes the filter's event predicates (not the id range
// or limit).
func (f *Filter) Include(e *Event, js []byte) bool {
	if len(f.IncludeTypes) > 0 {
		ok := false
		for _, t := range f.IncludeTypes {
			if typeMatches(e, t) {
				ok = true
				break
			}
		}
		if !ok {
			return false
		}
	}
	for _, t := range f.ExcludeTypes {
		if typeMatches(e, t) {
			return false
		}
	}
	if f.Source != "" && e.Source != f.Source {
		return false
	}
	if f.StartDate != "" && e.Timestamp != "" && e.Timestamp < f.StartDate {
		return false
	}
	if f.EndDate != "" && e.Timestamp != "" && e.Timestamp > f.EndDate {
		return false
	}
	if f.ExcludeCorralExtensions && e.IsCorralExtension() {
		return false
	}
	if f.ExcludeHidden && e.Hidden() {
		return false
	}
	if f.Query != "" {
		if js == nil {
			var err error
			if js, err = Marshal(e); err != nil {
				return false
			}
		}
		if !bytes.Contains(bytes.ToLower(js), []byte(strings.ToLower(f.Query))) {
			return false
		}
	}
	return true
}

// Search returns the stored events that pass f, in id order (descending if
// f.Reverse), at most f.Limit of them. Items carry the decoded event.
func (s *Stream) Search(ctx context.Context, f Filter) ([]*Item, error) {
	if f.Limit < 0 {
		return nil, fmt.Errorf("eventbus: search session %q: limit %d must be >= 0 (0 = no limit)", s.sid, f.Limit)
	}
	start := max(f.StartID, 0)
	end := int64(1<<63 - 1)
	if f.EndID != nil {
		end = *f.EndID
	}
	var out []*Item
	var ferr error
	n := 0
	err := s.log.read(start, end, f.Reverse, func(id int64, js []byte) bool {
		if n++; n%256 == 0 {
			if ferr = ctx.Err(); ferr != nil {
				return false
			}
		}
		e, err := Unmarshal(js)
		if err != nil {
			ferr = fmt.Errorf("eventbus: search session %q: stored event %d does not decode: %w", s.sid, id, err)
			return false
		}
		if !f.Include(e, js) {
			return true
		}
		out = append(out, &Item{ID: id, JSON: js, ev: e})
		return f.Limit == 0 || len(out) < f.Limit
	})
	if err == nil {
		err = ferr
	}
	if err != nil {
		return nil, err
	}
	return out, nil
}

// Get returns the stored event with the given id.
func (s *Stream) Get(ctx context.Context, id int64) (*Item, error) {
	items, err := s.Search(ctx, Filter{StartID: id, EndID: &id, Limit: 1})
	if err != nil {
		return nil, err
	}
	if len(items) == 0 {
		return nil, fmt.Errorf("eventbus: session %q has no event %d (last id %d)", s.sid, id, s.LastID())
	}
	return items[0], nil
}
