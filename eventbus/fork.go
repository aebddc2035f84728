package eventbus

import (
	"context"
	"errors"
	"fmt"
	"os"
)

// ImportItems creates session sid holding items (stored events of another
// session, in id order) under their own ids, so that ids appended later
// continue after the last one: the event half of forking a session. The
// session must not exist yet; on error it is removed again.
func (st *Store) ImportItems(ctx context.Context, sid string, items []*Item) (err error) {
	if err := ValidateSessionID(sid); err != nil {
		return err
	}
	if _, serr := os.Stat(st.path(sid)); serr == nil {
		return fmt.Errorf("eventbus: import into session %q: it already exists in %s; pick another id", sid, st.dir)
	} else if !errors.Is(serr, os.ErrNotExist) {
		return fmt.Errorf("eventbus: import into session %q: %w", sid, serr)
	}
	s, err := st.Open(sid)
	if err != nil {
		return err
	}
	defer func() {
		cerr := s.Close()
		if err == nil && cerr != nil {
			err = cerr
		}
		if err != nil {
			os.Remove(st.path(sid))
		}
	}()
	for _, it := range items {
		if aerr := s.log.appendWithID(ctx, it.ID, it.JSON); aerr != nil {
			return fmt.Errorf("eventbus: import event %d into session %q: %w", it.ID, sid, aerr)
		}
	}
	return nil
}
