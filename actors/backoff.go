package actors

import (
	"math/rand/v2"
	"time"
)

// backoff is the delay before restart attempt n (1-based): initial·2^(n-1),
// capped at max, with ±20 % jitter so sessions that failed together do not
// restart in lock-step. protoactor's "exponential" strategy grows linearly
// and never gives up, hence this one.
func backoff(initial, max time.Duration, attempt int) time.Duration {
	if attempt < 1 {
		attempt = 1
	}
	d := initial
	for i := 1; i < attempt && d < max; i++ {
		d *= 2
	}
	if d > max {
		d = max
	}
	jitter := (rand.Float64()*0.4 - 0.2) * float64(d)
	return d + time.Duration(jitter)
}
