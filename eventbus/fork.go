package eventbus

import (
	"context"
	"fmt"
)

// ImportItems creates session sid holding items (stored events of another
// session, in id order) under their own ids, so that ids appended later
// continue after the last one: the event half of forking a session. The
// session must not exist yet; on error it is removed again. A replicated
// store (WithReplica) replicates the events, so the copy survives a
// failover.
func (st *Store) ImportItems(ctx context.Context, sid string, items []*Item) error {
	if err := ValidateSessionID(sid); err != nil {
		return err
	}
	return st.importInto(sid, true, func(s *Stream) error {
		if err := s.log.appendItems(ctx, items); err != nil {
			return fmt.Errorf("eventbus: import events into session %q: %w", sid, err)
		}
		return nil
	})
}
