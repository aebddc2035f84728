package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"time"

	"corral/eventbus"
)

// benchEvents measures the durable store's append throughput and a
// stream's fan-out to many subscribers, each against a baseline doing the
// same I/O or delivery without the event bus.
func benchEvents(ctx context.Context, o *benchOpts, emit func(figure)) error {
	// 8 sessions with 8 concurrent appenders each: the store's group commit
	// needs concurrency to amortise fsync, as in a busy node.
	const sessions, appenders = 8, 8
	n := max(o.events, sessions*appenders)
	ev := func(i int) *eventbus.Event {
		md := eventbus.DefaultMetadata()
		md.ExitCode = 0
		return eventbus.NewObservation(int64(i), fmt.Sprintf("output line %d of a typical command", i),
			&eventbus.CmdOutputObservation{Command: "ls -la /workspace", Metadata: md})
	}
	sample, err := eventbus.Marshal(ev(1))
	if err != nil {
		return err
	}

	// Append: `sessions` streams written concurrently, batch fsync policy.
	cfg := eventbus.DefaultConfig()
	cfg.StoreDir = filepath.Join(o.dir, "events-store")
	cfg.SubscriberBuffer = n + 16
	st, err := eventbus.OpenStore(cfg)
	if err != nil {
		return err
	}
	defer st.Close()
	var wg sync.WaitGroup
	var errs chan error
	begin := time.Now()
	errs = make(chan error, sessions*appenders)
	per := n / (sessions * appenders)
	for s := range sessions {
		stream, err := st.Open(fmt.Sprintf("bench-append-%d", s))
		if err != nil {
			return err
		}
		for range appenders {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := range per {
					if _, err := stream.Append(ctx, ev(i)); err != nil {
						errs <- err
						return
					}
				}
			}()
		}
	}
	wg.Wait()
	appendRate := float64(per*sessions*appenders) / time.Since(begin).Seconds()
	close(errs)
	if err := <-errs; err != nil {
		return fmt.Errorf("append: %w", err)
	}

	// Baseline: the same bytes written with write(2) to one file per
	// session, with an fsync every 2 ms like the batch policy.
	begin = time.Now()
	errs = make(chan error, sessions)
	for s := range sessions {
		wg.Add(1)
		go func() {
			defer wg.Done()
			f, err := os.Create(filepath.Join(o.dir, fmt.Sprintf("raw-%d", s)))
			if err != nil {
				errs <- err
				return
			}
			defer f.Close()
			last := time.Now()
			line := append(append([]byte(nil), sample...), '\n')
			for range per * appenders {
				if _, err := f.Write(line); err != nil {
					errs <- err
					return
				}
				if time.Since(last) >= cfg.SyncMaxDelay {
					_ = f.Sync()
					last = time.Now()
				}
			}
			_ = f.Sync()
		}()
	}
	wg.Wait()
	rawRate := float64(per*sessions*appenders) / time.Since(begin).Seconds()
	close(errs)
	if err := <-errs; err != nil {
		return fmt.Errorf("raw write baseline: %w", err)
	}
	emit(newFigure(fmt.Sprintf("store append, %d sessions x %d appenders (batch fsync)", sessions, appenders), appendRate, "events/s", "raw write+fsync/2ms", rawRate))

	// Fan-out: one stream, many live subscribers. Its store does not fsync,
	// so the figure is delivery, not disk.
	fcfg := cfg
	fcfg.StoreDir = filepath.Join(o.dir, "fanout-store")
	fcfg.Sync = eventbus.SyncNever
	fst, err := eventbus.OpenStore(fcfg)
	if err != nil {
		return err
	}
	defer fst.Close()
	subs := max(o.subscribers, 1)
	fan := max(n/4, 100)
	stream, err := fst.Open("bench-fanout")
	if err != nil {
		return err
	}
	sctx, cancel := context.WithCancel(ctx)
	defer cancel()
	got := make(chan int, subs)
	for range subs {
		sub, err := stream.Subscribe(sctx, 0)
		if err != nil {
			return err
		}
		go func() {
			c := 0
			for range sub.C() {
				c++
				if c == fan {
					break
				}
			}
			got <- c
			sub.Close()
		}()
	}
	begin = time.Now()
	for i := range fan {
		if _, err := stream.Append(ctx, ev(i)); err != nil {
			return fmt.Errorf("fan-out append: %w", err)
		}
	}
	for range subs {
		if c := <-got; c != fan {
			return fmt.Errorf("fan-out: a subscriber got %d of %d events", c, fan)
		}
	}
	fanRate := float64(fan*subs) / time.Since(begin).Seconds()

	// Baseline: one producer, a buffered Go channel per consumer.
	chans := make([]chan []byte, subs)
	for i := range chans {
		chans[i] = make(chan []byte, fan)
	}
	begin = time.Now()
	for _, ch := range chans {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range fan {
				<-ch
			}
		}()
	}
	for range fan {
		for _, ch := range chans {
			ch <- sample
		}
	}
	wg.Wait()
	chanRate := float64(fan*subs) / time.Since(begin).Seconds()
	emit(newFigure(fmt.Sprintf("fan-out to %d subscribers (no fsync)", subs), fanRate, "deliveries/s", "Go channels", chanRate))
	return nil
}
