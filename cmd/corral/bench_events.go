package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"corral/eventbus"
)

// benchEvents measures the event store at the disk's limit: durable appends
// on the default settings (one writer, then many sessions at once), appends
// that never sync, fan-out to many live subscribers and the replay of a long
// session, as stored bytes and decoded. Each figure has a baseline doing
// the same I/O or work without the event bus, measured in the same run
// right after it.
func benchEvents(ctx context.Context, o *benchOpts, emit func(figure)) error {
	b := &eventsBench{o: o}
	for _, step := range []func(context.Context, func(figure)) error{
		b.durableOneWriter, b.durableSessions, b.neverOneWriter, b.fanOut, b.replay,
	} {
		if err := step(ctx, emit); err != nil {
			return err
		}
	}
	return nil
}

type eventsBench struct {
	o *benchOpts
}

// event is a realistic `run` observation (~400 bytes encoded): what most
// of a session's log is made of.
func benchEvent(i int) *eventbus.Event {
	user, host, cwd, py := "openhands", "corral-bench", "/workspace", "/usr/bin/python3"
	md := eventbus.CmdOutputMetadata{ExitCode: 0, PID: -1, Username: &user, Hostname: &host, WorkingDir: &cwd,
		PyInterpreterPath: &py, Suffix: "\n[The command completed with exit code 0.]"}
	return eventbus.NewObservation(int64(i), fmt.Sprintf("total 8\n-rw-r--r-- 1 root root 120 Jan 27 23:16 output-%d.txt\n", i),
		&eventbus.CmdOutputObservation{Command: "ls -l /workspace", Metadata: md})
}

// openStore opens a store in a directory of its own under the scratch
// directory. Settings are the defaults unless tune changes them (and then
// the figure's name says so).
func (b *eventsBench) openStore(name string, tune func(*eventbus.Config)) (*eventbus.Store, string, error) {
	cfg := eventbus.DefaultConfig()
	cfg.StoreDir = filepath.Join(b.o.dir, name)
	if tune != nil {
		tune(&cfg)
	}
	// Quiet: the store's notices would land in the scenario's stderr, which
	// make bench reads as a failure.
	st, err := eventbus.OpenStore(cfg, eventbus.WithLogger(slog.New(slog.DiscardHandler)))
	return st, storeSettings(cfg), err
}

// sampleLine is the bytes the raw baselines write per event: the encoded
// event with its id, and a newline.
func sampleLine() ([]byte, error) {
	e := benchEvent(1)
	e.ID = 1
	js, err := eventbus.Marshal(e)
	return append(js, '\n'), err
}

// appendSeq appends n events to stream one after the other and returns the
// rate.
func appendSeq(ctx context.Context, stream *eventbus.Stream, n int) (float64, error) {
	begin := time.Now()
	for i := range n {
		if _, err := stream.Append(ctx, benchEvent(i)); err != nil {
			return 0, err
		}
	}
	return float64(n) / time.Since(begin).Seconds(), nil
}

// rawSeq writes line n times to a new file with write(2), with an
// fdatasync after each write when durable, and returns the rate.
func rawSeq(path string, line []byte, n int, durable bool) (float64, error) {
	f, err := os.Create(path)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	begin := time.Now()
	for range n {
		if _, err := f.Write(line); err != nil {
			return 0, err
		}
		if durable {
			if err := unix.Fdatasync(int(f.Fd())); err != nil {
				return 0, fmt.Errorf("fdatasync %s: %w", path, err)
			}
		}
	}
	return float64(n) / time.Since(begin).Seconds(), nil
}

// durableOneWriter: one session appending one event at a time on the
// default settings (sync = batch), as a session running one action after
// another does; an append is acknowledged only once durable.
func (b *eventsBench) durableOneWriter(ctx context.Context, emit func(figure)) error {
	return b.oneWriter(ctx, emit, oneWriterRun{
		name: "durable append, 1 writer", key: "durable-1", events: b.o.durableEvents,
		baseline: "raw write+fdatasync per append", fdatasync: true,
	})
}

// durableSessions: many sessions appending at once, each one event at a
// time, on the default settings.
func (b *eventsBench) durableSessions(ctx context.Context, emit func(figure)) error {
	st, settings, err := b.openStore("durable-n", nil)
	if err != nil {
		return err
	}
	defer st.Close()
	sessions := max(b.o.appendSessions, 1)
	per := max(b.o.events/sessions, 1)
	streams := make([]*eventbus.Stream, sessions)
	for i := range streams {
		if streams[i], err = st.Open(fmt.Sprintf("bench-durable-%03d", i)); err != nil {
			return err
		}
	}
	elapsed, err := parallel(sessions, func(w int) error {
		for i := range per {
			if _, err := streams[w].Append(ctx, benchEvent(i)); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("durable append, %d sessions: %w", sessions, err)
	}
	rate := float64(sessions*per) / elapsed.Seconds()

	line, err := sampleLine()
	if err != nil {
		return err
	}
	g, err := newGroupFile(filepath.Join(b.o.dir, "raw-durable-n"))
	if err != nil {
		return err
	}
	defer g.f.Close()
	elapsed, err = parallel(sessions, func(int) error {
		for range per {
			if err := g.append(line); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("durable append baseline: %w", err)
	}
	base := float64(sessions*per) / elapsed.Seconds()
	emit(newFigure(fmt.Sprintf("durable append, %d sessions", sessions), rate, "events/s",
		fmt.Sprintf("raw write, %d writers, group fdatasync (%.1f events/sync)", sessions, float64(sessions*per)/float64(g.syncs)), base).on(settings))
	return nil
}

// parallel runs f(0..n-1) in n goroutines started together and returns the
// time until the last finished and the first error.
func parallel(n int, f func(w int) error) (time.Duration, error) {
	var wg sync.WaitGroup
	errs := make(chan error, n)
	start := make(chan struct{})
	for w := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			if err := f(w); err != nil {
				errs <- err
			}
		}()
	}
	begin := time.Now()
	close(start)
	wg.Wait()
	elapsed := time.Since(begin)
	close(errs)
	return elapsed, <-errs
}

// groupFile is the least a durable log must do: write(2) each record to one
// file and make it durable with fdatasync before acknowledging, with
// leader/follower group commit (the first writer to need a sync runs one;
// the writers that arrive meanwhile share the next).
type groupFile struct {
	f       *os.File
	mu      sync.Mutex
	cond    *sync.Cond
	written int64 // records written
	synced  int64 // records covered by a finished fdatasync
	syncing bool
	syncs   int64
	err     error
}

func newGroupFile(path string) (*groupFile, error) {
	f, err := os.Create(path)
	if err != nil {
		return nil, err
	}
	g := &groupFile{f: f}
	g.cond = sync.NewCond(&g.mu)
	return g, nil
}

func (g *groupFile) append(line []byte) error {
	g.mu.Lock()
	defer g.mu.Unlock()
	if _, err := g.f.Write(line); err != nil {
		return err
	}
	g.written++
	mine := g.written
	for g.synced < mine && g.err == nil {
		if g.syncing {
			g.cond.Wait()
			continue
		}
		g.syncing = true
		upto := g.written
		g.mu.Unlock()
		err := unix.Fdatasync(int(g.f.Fd()))
		g.mu.Lock()
		g.syncing, g.synced, g.err = false, upto, err
		g.syncs++
		g.cond.Broadcast()
	}
	return g.err
}

// neverOneWriter: one writer with sync = never (acknowledged once written
// to the OS), against write(2) of the same bytes.
func (b *eventsBench) neverOneWriter(ctx context.Context, emit func(figure)) error {
	return b.oneWriter(ctx, emit, oneWriterRun{
		name: "never append, 1 writer", key: "never-1", events: b.o.events,
		baseline: "raw write(2)", configure: func(c *eventbus.Config) { c.Sync = eventbus.SyncNever },
	})
}

// oneWriterRun is one sequential-writer figure: the store settings it
// runs on and the raw baseline it is held to.
type oneWriterRun struct {
	name, key string
	events    int
	configure func(*eventbus.Config) // nil: the default settings
	baseline  string
	fdatasync bool // the baseline syncs after every write
}

// oneWriter appends r.events events to one session, one at a time, then
// writes the same bytes as many times to a plain file for the baseline.
func (b *eventsBench) oneWriter(ctx context.Context, emit func(figure), r oneWriterRun) error {
	st, settings, err := b.openStore(r.key, r.configure)
	if err != nil {
		return err
	}
	defer st.Close()
	stream, err := st.Open("bench-" + r.key)
	if err != nil {
		return err
	}
	n := max(r.events, 1)
	rate, err := appendSeq(ctx, stream, n)
	if err != nil {
		return fmt.Errorf("%s: %w", r.name, err)
	}
	line, err := sampleLine()
	if err != nil {
		return err
	}
	base, err := rawSeq(filepath.Join(b.o.dir, "raw-"+r.key), line, n, r.fdatasync)
	if err != nil {
		return fmt.Errorf("%s baseline: %w", r.name, err)
	}
	emit(newFigure(r.name, rate, "events/s", r.baseline, base).on(settings))
	return nil
}

// fanOut: one writer, many live subscribers. The store does not sync
// (sync = never) and its subscriber buffer holds the whole run, so the
// figure is delivery, not disk, and no subscriber is dropped for lagging.
func (b *eventsBench) fanOut(ctx context.Context, emit func(figure)) error {
	subs := max(b.o.subscribers, 1)
	n := max(b.o.events/4, 100)
	st, settings, err := b.openStore("fanout", func(c *eventbus.Config) { c.Sync, c.SubscriberBuffer = eventbus.SyncNever, n+16 })
	if err != nil {
		return err
	}
	defer st.Close()
	stream, err := st.Open("bench-fanout")
	if err != nil {
		return err
	}
	sctx, cancel := context.WithCancel(ctx)
	defer cancel()
	got := make(chan error, subs)
	for range subs {
		sub, err := stream.Subscribe(sctx, 0)
		if err != nil {
			return err
		}
		go func() {
			defer sub.Close()
			got <- drain(sub, n, nil)
		}()
	}
	begin := time.Now()
	for i := range n {
		if _, err := stream.Append(ctx, benchEvent(i)); err != nil {
			return fmt.Errorf("fan-out append: %w", err)
		}
	}
	for range subs {
		if err := <-got; err != nil {
			return fmt.Errorf("fan-out: %w", err)
		}
	}
	rate := float64(n*subs) / time.Since(begin).Seconds()
	emit(newFigure(fmt.Sprintf("fan-out, %d subscribers", subs), rate, "deliveries/s", "Go channels, 1 producer", chanFanOut(subs, n)).on(settings))
	return nil
}

// drain reads n items from sub, passing each to each (if not nil).
func drain(sub *eventbus.Subscription, n int, each func(*eventbus.Item) error) error {
	c := 0
	for it := range sub.C() {
		if each != nil {
			if err := each(it); err != nil {
				return err
			}
		}
		if c++; c == n {
			return nil
		}
	}
	return fmt.Errorf("subscription ended after %d of %d events: %v", c, n, sub.Err())
}

// chanFanOut is the baseline of fanOut: one producer, a buffered Go
// channel per consumer.
func chanFanOut(subs, n int) float64 {
	chans := make([]chan []byte, subs)
	for i := range chans {
		chans[i] = make(chan []byte, n)
	}
	var wg sync.WaitGroup
	begin := time.Now()
	for _, ch := range chans {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range n {
				<-ch
			}
		}()
	}
	msg := []byte("event")
	for range n {
		for _, ch := range chans {
			ch <- msg
		}
	}
	wg.Wait()
	return float64(n*subs) / time.Since(begin).Seconds()
}

// replay: a session of many stored events, read back from the start after
// the store was reopened, first as stored bytes (what a server forwards),
// then decoded into events.
func (b *eventsBench) replay(ctx context.Context, emit func(figure)) error {
	n := max(b.o.replayEvents, 1)
	rawPath := filepath.Join(b.o.dir, "raw-replay")
	if err := b.fillReplay(ctx, n, rawPath); err != nil {
		return err
	}
	st, settings, err := b.openStore("replay", nil)
	if err != nil {
		return err
	}
	defer st.Close()
	stream, err := st.Open("bench-replay")
	if err != nil {
		return err
	}
	bytesTook, err := timeReplay(ctx, stream, n, nil)
	if err != nil {
		return fmt.Errorf("replay: %w", err)
	}
	base, err := timeRawReplay(rawPath, n, nil)
	if err != nil {
		return err
	}
	emit(newFigure(fmt.Sprintf("replay, %d events", n), bytesTook.Seconds(), "s", "read(2) of the same bytes, split into events", base.Seconds()).on(settings))

	decode := func(it *eventbus.Item) error { _, err := it.Event(); return err }
	decTook, err := timeReplay(ctx, stream, n, decode)
	if err != nil {
		return fmt.Errorf("decoded replay: %w", err)
	}
	base, err = timeRawReplay(rawPath, n, func(line []byte) error {
		var m map[string]any
		return json.Unmarshal(line, &m)
	})
	if err != nil {
		return err
	}
	emit(newFigure(fmt.Sprintf("decoded replay, %d events", n), decTook.Seconds(), "s", "read(2) + encoding/json into maps", base.Seconds()).on(settings))
	return nil
}

// fillReplay appends n events to the replay session on the default
// settings, from many goroutines at once so that group commit makes the
// filling quick (it is not measured), and writes their stored bytes, one
// per line in id order, to rawPath for the baselines.
func (b *eventsBench) fillReplay(ctx context.Context, n int, rawPath string) error {
	st, _, err := b.openStore("replay", nil)
	if err != nil {
		return err
	}
	defer st.Close()
	stream, err := st.Open("bench-replay")
	if err != nil {
		return err
	}
	const writers = 64
	lines := make([][]byte, n)
	_, err = parallel(writers, func(w int) error {
		for i := w; i < n; i += writers {
			stored, err := stream.Append(ctx, benchEvent(i))
			if err != nil {
				return err
			}
			js, err := eventbus.Marshal(stored)
			if err != nil {
				return err
			}
			if stored.ID < 0 || stored.ID >= int64(n) {
				return fmt.Errorf("appended event got id %d, outside 0..%d", stored.ID, n-1)
			}
			lines[stored.ID] = append(js, '\n')
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("replay: fill: %w", err)
	}
	if err := st.Close(); err != nil {
		return fmt.Errorf("replay: close the filled store: %w", err)
	}
	return os.WriteFile(rawPath, bytes.Join(lines, nil), 0o644)
}

// timeReplay subscribes from the first event and times reading n items.
func timeReplay(ctx context.Context, stream *eventbus.Stream, n int, each func(*eventbus.Item) error) (time.Duration, error) {
	begin := time.Now()
	sub, err := stream.Subscribe(ctx, 0)
	if err != nil {
		return 0, err
	}
	defer sub.Close()
	if err := drain(sub, n, each); err != nil {
		return 0, err
	}
	return time.Since(begin), nil
}

// timeRawReplay reads the baseline file and splits it into its n events.
func timeRawReplay(path string, n int, each func([]byte) error) (time.Duration, error) {
	begin := time.Now()
	data, err := os.ReadFile(path)
	if err != nil {
		return 0, err
	}
	c := 0
	for len(data) > 0 {
		i := bytes.IndexByte(data, '\n')
		if i < 0 {
			return 0, errors.New("replay baseline: last line has no newline")
		}
		if each != nil {
			if err := each(data[:i]); err != nil {
				return 0, fmt.Errorf("replay baseline: line %d: %w", c+1, err)
			}
		}
		data = data[i+1:]
		c++
	}
	if c != n {
		return 0, fmt.Errorf("replay baseline: %d lines, want %d", c, n)
	}
	return time.Since(begin), nil
}
