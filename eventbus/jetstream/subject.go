package jetstream

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"

	"corral/eventbus"
)

// SubjectToken encodes session id sid as one NATS subject token (and KV
// key): '_' becomes "_5F" and '.' becomes "_2E", every other allowed
// character stays. Distinct session ids give distinct tokens.
func SubjectToken(sid string) string {
	if !strings.ContainsAny(sid, "._") {
		return sid
	}
	var b strings.Builder
	b.Grow(len(sid) + 8)
	for i := 0; i < len(sid); i++ {
		switch c := sid[i]; c {
		case '_':
			b.WriteString("_5F")
		case '.':
			b.WriteString("_2E")
		default:
			b.WriteByte(c)
		}
	}
	return b.String()
}

// SessionOfToken decodes a token made by SubjectToken; it fails for text
// SubjectToken cannot produce.
func SessionOfToken(tok string) (string, error) {
	var b strings.Builder
	for i := 0; i < len(tok); i++ {
		c := tok[i]
		switch {
		case c == '_':
			if i+2 >= len(tok) {
				return "", fmt.Errorf("jetstream: subject token %q has a cut escape at %d", tok, i)
			}
			switch tok[i+1 : i+3] {
			case "5F":
				b.WriteByte('_')
			case "2E":
				b.WriteByte('.')
			default:
				return "", fmt.Errorf("jetstream: subject token %q has an unknown escape %q at %d", tok, tok[i:i+3], i)
			}
			i += 2
		case c == '.':
			return "", fmt.Errorf("jetstream: subject token %q has a raw '.' at %d", tok, i)
		default:
			b.WriteByte(c)
		}
	}
	sid := b.String()
	if err := eventbus.ValidateSessionID(sid); err != nil {
		return "", fmt.Errorf("jetstream: subject token %q does not name a session: %w", tok, err)
	}
	return sid, nil
}

// groupBody joins the records' JSON with '\n'.
func groupBody(recs []eventbus.ReplicaRecord) ([]byte, error) {
	n := 0
	for _, r := range recs {
		n += len(r.JSON) + 1
	}
	body := make([]byte, 0, n)
	for i, r := range recs {
		if bytes.IndexByte(r.JSON, '\n') >= 0 {
			return nil, fmt.Errorf("jetstream: event %d holds a raw newline; only compact JSON can be replicated", r.ID)
		}
		if i > 0 {
			body = append(body, '\n')
		}
		body = append(body, r.JSON...)
	}
	return body, nil
}

// splitBody splits a group message's body into its records and reads each
// record's id from its JSON; ids must increase and lie in [first, last]
// (the message's Corral-First-Id / Corral-Last-Id headers).
func splitBody(body []byte, first, last int64) ([]*eventbus.Item, error) {
	var items []*eventbus.Item
	prev := first - 1
	for len(body) > 0 {
		line := body
		if i := bytes.IndexByte(body, '\n'); i >= 0 {
			line, body = body[:i], body[i+1:]
		} else {
			body = nil
		}
		id, err := recordID(line)
		if err != nil {
			return nil, err
		}
		if id <= prev || id > last {
			return nil, fmt.Errorf("jetstream: record id %d out of order (previous %d, group %d-%d)", id, prev, first, last)
		}
		prev = id
		items = append(items, &eventbus.Item{ID: id, JSON: line})
	}
	if len(items) == 0 || items[0].ID != first || prev != last {
		return nil, fmt.Errorf("jetstream: group body does not hold ids %d-%d", first, last)
	}
	return items, nil
}

// recordID reads the "id" of a stored record: its first key, as eventbus
// writes it.
func recordID(js []byte) (int64, error) {
	const pfx = `{"id":`
	if !bytes.HasPrefix(js, []byte(pfx)) {
		// Not written by eventbus (which puts the id first): decode it.
		var v struct {
			ID *int64 `json:"id"`
		}
		if err := json.Unmarshal(js, &v); err != nil || v.ID == nil || *v.ID < 0 {
			return 0, fmt.Errorf("jetstream: record %.40q has no valid \"id\"", js)
		}
		return *v.ID, nil
	}
	rest := js[len(pfx):]
	end := bytes.IndexAny(rest, ",}")
	if end <= 0 {
		return 0, fmt.Errorf("jetstream: record %.40q has no id value", js)
	}
	id, err := strconv.ParseInt(string(rest[:end]), 10, 64)
	if err != nil || id < 0 {
		return 0, fmt.Errorf("jetstream: record %.40q has a bad id", js)
	}
	return id, nil
}
