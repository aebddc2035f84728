package eventbus

import (
	"context"
	"fmt"
)

// ImportItems creates session sid holding items (stored events of another
// session, in id order) under their own ids, so that ids appended later
// continue after the last one: the event half of forking a session. The
// session must not exist yet; on error it is removed again.
func (st *Store) ImportItems(ctx context.Context, sid string, items []*Item) error {
	if err := ValidateSessionID(sid); err != nil {
		return err
	}
	return st.importInto(sid, func(s *Stream) error {
		for _, it := range items {
			if err := s.log.appendWithID(ctx, it.ID, it.JSON); err != nil {
				return fmt.Errorf("eventbus: import event %d into session %q: %w", it.ID, sid, err)
			}
		}
		return nil
	})
}
