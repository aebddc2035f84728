package eventbus

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// Benchmarks for the event bus. Each measures its baseline in the same run
// and reports the ratio. Run them all with
//
//	go test -run '^$' -bench . -benchtime 1x ./eventbus
//
// (the benchmarks size their own work; see BENCHMARKS.md, "Event bus").

// benchEvents returns n realistic run observations (~300 bytes encoded).
func benchEvents(n int) []*Event {
	out := make([]*Event, n)
	for i := range out {
		out[i] = runObs(int64(i), i)
	}
	return out
}

// encodedRecords returns the framed records an event log would write for n
// run observations: the "same bytes" the raw-write baseline writes.
func encodedRecords(b *testing.B, n int) [][]byte {
	b.Helper()
	out := make([][]byte, n)
	for i := range out {
		e := runObs(int64(i), i)
		e.ID = int64(i)
		e.Timestamp = Timestamp(time.Now())
		js, err := Marshal(e)
		if err != nil {
			b.Fatal(err)
		}
		rec := make([]byte, recHeaderSize, recHeaderSize+len(js))
		out[i] = append(rec, js...)
	}
	return out
}

// rawSequentialWrite is baseline (a): one writer, one file, one write(2) per
// event of the same bytes, fsync at most every maxDelay (policy "batch"),
// "always" fsyncs after each write, "never" not at all.
func rawSequentialWrite(b *testing.B, dir string, recs [][]byte, pol SyncPolicy, maxDelay time.Duration) float64 {
	f, err := os.Create(filepath.Join(dir, "raw.log"))
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	start := time.Now()
	last := start
	for _, r := range recs {
		if _, err := f.Write(r); err != nil {
			b.Fatal(err)
		}
		switch pol {
		case SyncAlways:
			f.Sync()
		case SyncBatch:
			if now := time.Now(); now.Sub(last) >= maxDelay {
				f.Sync()
				last = now
			}
		}
	}
	if pol != SyncNever {
		f.Sync()
	}
	return float64(len(recs)) / time.Since(start).Seconds()
}

// openHandsFilePerEvent is baseline (b): OpenHands' layout, each event
// written to its own sessions/<sid>/events/<id>.json file (create, write,
// close, as LocalFileStore.write does). For "batch" the files are made
// durable with one syncfs(2) at most every maxDelay: cheaper than fsyncing
// each file, so generous to the baseline.
func openHandsFilePerEvent(b *testing.B, dir string, recs [][]byte, pol SyncPolicy, maxDelay time.Duration) float64 {
	ev := filepath.Join(dir, "sessions", "bench", "events")
	if err := os.MkdirAll(ev, 0o755); err != nil {
		b.Fatal(err)
	}
	d, err := os.Open(ev)
	if err != nil {
		b.Fatal(err)
	}
	defer d.Close()
	syncfs := func() {
		if err := unix.Syncfs(int(d.Fd())); err != nil {
			b.Fatal(err)
		}
	}
	start := time.Now()
	last := start
	for i, r := range recs {
		if err := os.WriteFile(filepath.Join(ev, strconv.Itoa(i)+".json"), r[recHeaderSize:], 0o644); err != nil {
			b.Fatal(err)
		}
		switch pol {
		case SyncAlways:
			syncfs()
		case SyncBatch:
			if now := time.Now(); now.Sub(last) >= maxDelay {
				syncfs()
				last = now
			}
		}
	}
	if pol != SyncNever {
		syncfs()
	}
	return float64(len(recs)) / time.Since(start).Seconds()
}

// BenchmarkDurableAppend100Sessions: 100 sessions, 4 concurrent appenders
// each (400 goroutines), sync "batch" with the default 2ms max delay, full
// Stream.Append path (encode, splice id, frame, group commit, fsync, ack,
// fan-out). Work: b.N events in total.
func BenchmarkDurableAppend100Sessions(b *testing.B) {
	const sessions, perSession = 100, 4
	cfg := testConfig(b.TempDir())
	st, err := OpenStore(cfg)
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	streams := make([]*Stream, sessions)
	for i := range streams {
		if streams[i], err = st.Open(fmt.Sprintf("bench-%03d", i)); err != nil {
			b.Fatal(err)
		}
	}
	events := benchEvents(1024)
	var next atomic.Int64
	total := int64(b.N)
	b.ResetTimer()
	start := time.Now()
	var wg sync.WaitGroup
	for g := 0; g < sessions*perSession; g++ {
		wg.Add(1)
		go func(s *Stream) {
			defer wg.Done()
			for {
				i := next.Add(1) - 1
				if i >= total {
					return
				}
				if _, err := s.Append(context.Background(), events[i%int64(len(events))]); err != nil {
					b.Error(err)
					return
				}
			}
		}(streams[g%sessions])
	}
	wg.Wait()
	elapsed := time.Since(start)
	b.StopTimer()
	ours := float64(b.N) / elapsed.Seconds()

	n := min(b.N, 200000)
	recs := encodedRecords(b, n)
	rawA := rawSequentialWrite(b, b.TempDir(), recs, SyncBatch, cfg.SyncMaxDelay)
	rawB := openHandsFilePerEvent(b, b.TempDir(), recs[:min(n, 5000)], SyncBatch, cfg.SyncMaxDelay)
	b.ReportMetric(ours, "events/s")
	b.ReportMetric(rawA, "baseline_raw_write_events/s")
	b.ReportMetric(ours/rawA, "ratio_vs_raw_write")
	b.ReportMetric(rawB, "baseline_file_per_event_events/s")
	b.ReportMetric(ours/rawB, "ratio_vs_file_per_event")
}

// BenchmarkAppendNeverSingleWriter: one goroutine appending sequentially to
// one stream with sync "never" (each Append returns after write(2)).
func BenchmarkAppendNeverSingleWriter(b *testing.B) {
	cfg := testConfig(b.TempDir())
	cfg.Sync = SyncNever
	st, err := OpenStore(cfg)
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	s, err := st.Open("single")
	if err != nil {
		b.Fatal(err)
	}
	events := benchEvents(1024)
	ctx := context.Background()
	b.ResetTimer()
	start := time.Now()
	for i := 0; i < b.N; i++ {
		if _, err := s.Append(ctx, events[i%len(events)]); err != nil {
			b.Fatal(err)
		}
	}
	elapsed := time.Since(start)
	b.StopTimer()
	ours := float64(b.N) / elapsed.Seconds()
	recs := encodedRecords(b, min(b.N, 200000))
	raw := rawSequentialWrite(b, b.TempDir(), recs, SyncNever, 0)
	b.ReportMetric(ours, "events/s")
	b.ReportMetric(raw, "baseline_raw_write_events/s")
	b.ReportMetric(ours/raw, "ratio_vs_raw_write")
}
