package jetstream

import (
	"context"
	"errors"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// attemptTimeout bounds one request to the stream leader within an
// operation's op timeout. After a kill -9 of the leader, the other
// replicas go on believing in it until their raft election timers fire
// (4 to 9 s after its last heartbeat in nats-server, not configurable), and
// meanwhile drop every request meant for it without an answer: a request
// sent into that window ends only at its own timeout. Short attempts,
// repeated until the operation's deadline, reach the new leader within one
// attempt of its election instead of one whole op timeout later, which is
// what bounds a failover when the dead node led the stream.
const attemptTimeout = time.Second

// retryPause is the pause between two attempts that found no leader.
const retryPause = 50 * time.Millisecond

// untilLeader runs op with attempts of at most attemptTimeout each, again
// while an attempt fails because no leader answered (leaderMissing), until
// the op timeout has passed since the call or ctx ends. It returns op's
// last error, for classify.
func (l *Log) untilLeader(ctx context.Context, op func(context.Context) error) error {
	deadline := time.Now().Add(l.o.opTimeout)
	for {
		end := time.Now().Add(attemptTimeout)
		if end.After(deadline) {
			end = deadline
		}
		actx, cancel := context.WithDeadline(ctx, end)
		err := op(actx)
		cancel()
		if err == nil || !leaderMissing(err) || ctx.Err() != nil || !time.Now().Add(retryPause).Before(deadline) {
			return err
		}
		if !sleepCtx(ctx, retryPause) {
			return err
		}
	}
}

// leaderMissing reports an error that means no stream leader answered:
// the request timed out or found no responder, or a replica said the group
// has no leader (503). Another attempt may reach a leader elected since.
func leaderMissing(err error) bool {
	var apiErr *jetstream.APIError
	return errors.Is(err, context.DeadlineExceeded) || errors.Is(err, nats.ErrTimeout) ||
		errors.Is(err, nats.ErrNoResponders) || errors.Is(err, jetstream.ErrNoStreamResponse) ||
		errors.As(err, &apiErr) && apiErr.Code == 503
}
