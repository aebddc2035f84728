package eventbus

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
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

// cpuTime is the process's user+system CPU time. The benchmarks report CPU
// per event next to wall-clock rates because the shared 2-core machine they
// run on is often heavily loaded, which wall-clock rates cannot show.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func reportCPU(b *testing.B, name string, cpu time.Duration, n int) {
	b.ReportMetric(float64(cpu.Microseconds())/float64(n), name+"_cpu_us/event")
}

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
// event of the same bytes, fdatasync at most every maxDelay (policy
// "batch"), "always" fdatasyncs after each write, "never" not at all.
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
			unix.Fdatasync(int(f.Fd()))
		case SyncBatch:
			if now := time.Now(); now.Sub(last) >= maxDelay {
				unix.Fdatasync(int(f.Fd()))
				last = now
			}
		}
	}
	if pol != SyncNever {
		unix.Fdatasync(int(f.Fd()))
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

// BenchmarkDurableAppend100Sessions: 100 sessions, k concurrent appenders
// each (sub-benchmarks k=1, 4, 16), sync "batch" with the default 2ms max
// delay, through the full Stream.Append path (encode, splice id, frame,
// group commit, fsync, ack, fan-out). b.N events in total. Group commit can
// only batch what is in flight, so throughput grows with k (Little's law:
// events/s = appends in flight / fsync latency).
//
// Each k runs with sync_method "wal" (the default: one store-wide log, one
// fdatasync per batch), "syncfs" (one syncfs(2) per batch covers all
// sessions) and "fsync" (each session file synced on its own), so the gain
// of the store-wide sync is measured in the same run. Baselines: (a) one
// raw file written record by record with an fdatasync every 2 ms, and (c)
// the same with an fdatasync after as many records as our batches held
// ("the same batching").
func BenchmarkDurableAppend100Sessions(b *testing.B) {
	for _, k := range []int{1, 4, 16} {
		for _, m := range []SyncMethod{SyncMethodWAL, SyncMethodSyncfs, SyncMethodFsync} {
			b.Run(fmt.Sprintf("appenders_per_session=%d/sync_method=%s", k, m), func(b *testing.B) { benchDurable(b, 100, k, m) })
		}
	}
}

func benchDurable(b *testing.B, sessions, perSession int, method SyncMethod) {
	cfg := testConfig(b.TempDir())
	cfg.SyncMethod = method
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
	syncs0 := st.syncCount(streams...)
	b.ResetTimer()
	start, cpu0 := time.Now(), cpuTime()
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
	elapsed, cpu := time.Since(start), cpuTime()-cpu0
	b.StopTimer()
	ours := float64(b.N) / elapsed.Seconds()
	reportCPU(b, "ours", cpu, b.N)
	// Store-wide syncfs calls plus per-file fsyncs (sync_method "fsync").
	syncs := st.syncCount(streams...) - syncs0
	b.ReportMetric(float64(b.N)/float64(max(syncs, 1)), "events/sync")
	b.ReportMetric(float64(syncs)/elapsed.Seconds(), "syncs/s")

	n := min(b.N, 100000)
	recs := encodedRecords(b, n)
	c0 := cpuTime()
	rawA := rawSequentialWrite(b, b.TempDir(), recs, SyncBatch, cfg.SyncMaxDelay)
	reportCPU(b, "baseline_raw_write", cpuTime()-c0, n)
	rawB := openHandsFilePerEvent(b, b.TempDir(), recs[:min(n, 2000)], SyncBatch, cfg.SyncMaxDelay)
	b.ReportMetric(ours, "events/s")
	b.ReportMetric(rawA, "baseline_raw_write_events/s")
	b.ReportMetric(ours/rawA, "ratio_vs_raw_write")
	b.ReportMetric(rawB, "baseline_file_per_event_events/s")
	b.ReportMetric(ours/rawB, "ratio_vs_file_per_event")
	perSync := max(1, int(float64(b.N)/float64(max(syncs, 1))))
	rawC := rawBatchedWrite(b, b.TempDir(), recs, perSync)
	b.ReportMetric(rawC, "baseline_raw_write_same_batching_events/s")
	b.ReportMetric(ours/rawC, "ratio_vs_raw_write_same_batching")
}

// rawBatchedWrite is baseline (c): one writer, one file, one write(2) per
// record of the same bytes and one fdatasync per perSync records.
func rawBatchedWrite(b *testing.B, dir string, recs [][]byte, perSync int) float64 {
	f, err := os.Create(filepath.Join(dir, "raw.log"))
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	start := time.Now()
	for i, r := range recs {
		if _, err := f.Write(r); err != nil {
			b.Fatal(err)
		}
		if (i+1)%perSync == 0 || i == len(recs)-1 {
			if err := unix.Fdatasync(int(f.Fd())); err != nil {
				b.Fatal(err)
			}
		}
	}
	return float64(len(recs)) / time.Since(start).Seconds()
}

// BenchmarkDurableAppend1Writer: one goroutine appending sequentially to one
// stream (what one session doing one action at a time does), with the
// default settings (sync "batch", default sync_method) and with "always".
// Baseline: raw write(2) + fdatasync per append of the same bytes to a file
// on the same filesystem. The disk is shared and its latency swings by 10x
// within seconds, so ours and the baseline alternate in rounds of 50 events
// and each side's time is summed: both see the same disk. Group commit
// cannot batch a lone writer, so the most it can do is add nothing: the
// ratio should be near 1.
func BenchmarkDurableAppend1Writer(b *testing.B) {
	for _, pol := range []SyncPolicy{SyncBatch, SyncAlways} {
		b.Run("sync="+string(pol), func(b *testing.B) {
			cfg := testConfig(b.TempDir())
			cfg.Sync = pol
			st, err := OpenStore(cfg)
			if err != nil {
				b.Fatal(err)
			}
			defer st.Close()
			s, err := st.Open("single")
			if err != nil {
				b.Fatal(err)
			}
			raw, err := os.Create(filepath.Join(cfg.StoreDir, "raw.log"))
			if err != nil {
				b.Fatal(err)
			}
			defer raw.Close()
			events := benchEvents(1024)
			recs := encodedRecords(b, len(events))
			ctx := context.Background()
			const round = 50
			var ours, base, cpu time.Duration
			b.ResetTimer()
			for done := 0; done < b.N; done += round {
				n := min(round, b.N-done)
				start, cpu0 := time.Now(), cpuTime()
				for i := done; i < done+n; i++ {
					if _, err := s.Append(ctx, events[i%len(events)]); err != nil {
						b.Fatal(err)
					}
				}
				ours += time.Since(start)
				cpu += cpuTime() - cpu0
				start = time.Now()
				for i := done; i < done+n; i++ {
					if _, err := raw.Write(recs[i%len(recs)]); err != nil {
						b.Fatal(err)
					}
					if err := unix.Fdatasync(int(raw.Fd())); err != nil {
						b.Fatal(err)
					}
				}
				base += time.Since(start)
			}
			b.StopTimer()
			reportCPU(b, "ours", cpu, b.N)
			b.ReportMetric(float64(b.N)/ours.Seconds(), "events/s")
			b.ReportMetric(float64(b.N)/base.Seconds(), "baseline_raw_write_fdatasync_events/s")
			b.ReportMetric(base.Seconds()/ours.Seconds(), "ratio_vs_raw_write_fdatasync")
		})
	}
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
	start, cpu0 := time.Now(), cpuTime()
	for i := 0; i < b.N; i++ {
		if _, err := s.Append(ctx, events[i%len(events)]); err != nil {
			b.Fatal(err)
		}
	}
	elapsed, cpu := time.Since(start), cpuTime()-cpu0
	b.StopTimer()
	ours := float64(b.N) / elapsed.Seconds()
	reportCPU(b, "ours", cpu, b.N)
	// Marshal's share, measured alone, so the store's own cost is visible.
	m0 := cpuTime()
	for i := 0; i < min(b.N, 20000); i++ {
		e := events[i%len(events)].Clone()
		e.Timestamp = Timestamp(time.Now())
		if _, err := Marshal(e); err != nil {
			b.Fatal(err)
		}
	}
	reportCPU(b, "marshal_only", cpuTime()-m0, min(b.N, 20000))
	recs := encodedRecords(b, min(b.N, 200000))
	c0 := cpuTime()
	raw := rawSequentialWrite(b, b.TempDir(), recs, SyncNever, 0)
	reportCPU(b, "baseline_raw_write", cpuTime()-c0, len(recs))
	b.ReportMetric(ours, "events/s")
	b.ReportMetric(raw, "baseline_raw_write_events/s")
	b.ReportMetric(ours/raw, "ratio_vs_raw_write")
}

// BenchmarkFanOut100Subscribers: one stream (sync "never"), 100 live
// subscribers each draining on its own goroutine, 1 or 4 writers appending
// b.N events in total. Deliveries/s = 100*b.N / time until every subscriber has all.
// Baseline: the bare mechanism, one goroutine sending b.N pre-built items to
// 100 buffered channels drained by 100 goroutines.
func BenchmarkFanOut100Subscribers(b *testing.B) {
	for _, w := range []int{1, 4} {
		b.Run(fmt.Sprintf("writers=%d", w), func(b *testing.B) { benchFanOut(b, w) })
	}
}

func benchFanOut(b *testing.B, writers int) {
	const subs = 100
	buf := min(max(b.N, 1024), 1<<20)
	cfg := testConfig(b.TempDir())
	cfg.Sync = SyncNever
	cfg.SubscriberBuffer = buf
	st, err := OpenStore(cfg)
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	s, err := st.Open("fanout")
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	var wg sync.WaitGroup
	subscriptions := make([]*Subscription, subs)
	for i := range subscriptions {
		sub, err := s.Subscribe(ctx, 0)
		if err != nil {
			b.Fatal(err)
		}
		subscriptions[i] = sub
		wg.Add(1)
		go func() {
			defer wg.Done()
			for n := 0; n < b.N; n++ {
				if _, ok := <-sub.C(); !ok {
					b.Errorf("subscriber ended early: %v", sub.Err())
					return
				}
			}
		}()
	}
	events := benchEvents(1024)
	b.ResetTimer()
	start, cpu0 := time.Now(), cpuTime()
	var next atomic.Int64
	var wwg sync.WaitGroup
	for w := 0; w < writers; w++ {
		wwg.Add(1)
		go func() {
			defer wwg.Done()
			for i := next.Add(1) - 1; i < int64(b.N); i = next.Add(1) - 1 {
				if _, err := s.Append(ctx, events[i%int64(len(events))]); err != nil {
					b.Error(err)
					return
				}
			}
		}()
	}
	wwg.Wait()
	wg.Wait()
	elapsed, cpu := time.Since(start), cpuTime()-cpu0
	b.StopTimer()
	b.ReportMetric(float64(cpu.Nanoseconds())/float64(subs*b.N), "ours_cpu_ns/delivery")
	for _, sub := range subscriptions {
		sub.Close()
	}
	ours := float64(subs*b.N) / elapsed.Seconds()

	// Baseline: bare channel fan-out of the same number of items.
	items := make([]*Item, 1024)
	for i := range items {
		items[i] = &Item{ID: int64(i)}
	}
	chans := make([]chan *Item, subs)
	var bwg sync.WaitGroup
	for i := range chans {
		chans[i] = make(chan *Item, buf)
		bwg.Add(1)
		go func(c chan *Item) {
			defer bwg.Done()
			for range c {
			}
		}(chans[i])
	}
	bstart, bcpu0 := time.Now(), cpuTime()
	for i := 0; i < b.N; i++ {
		it := items[i%len(items)]
		for _, c := range chans {
			c <- it
		}
	}
	for _, c := range chans {
		close(c)
	}
	bwg.Wait()
	base := float64(subs*b.N) / time.Since(bstart).Seconds()
	b.ReportMetric(float64((cpuTime()-bcpu0).Nanoseconds())/float64(subs*b.N), "baseline_cpu_ns/delivery")
	b.ReportMetric(ours, "deliveries/s")
	b.ReportMetric(base, "baseline_chan_fanout_deliveries/s")
	b.ReportMetric(ours/base, "ratio_vs_chan_fanout")
}

// BenchmarkReplay100k: subscribe from id 0 to a session holding 100,000
// stored run observations and receive all of them (bytes; the decoded-event
// variant is reported too). Baseline: reading the same log file with
// os.ReadFile and walking its frames.
func BenchmarkReplay100k(b *testing.B) {
	const n = 100000
	cfg := testConfig(b.TempDir())
	cfg.Sync = SyncNever
	st, err := OpenStore(cfg)
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	s, err := st.Open("replay")
	if err != nil {
		b.Fatal(err)
	}
	events := benchEvents(1024)
	var next atomic.Int64
	var wg sync.WaitGroup
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := next.Add(1) - 1; i < n; i = next.Add(1) - 1 {
				if _, err := s.Append(context.Background(), events[i%1024]); err != nil {
					b.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	// Reopen, as a server restart would: the index is built on open.
	s.Close()
	if s, err = st.Open("replay"); err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	replay := func(decode bool) time.Duration {
		start := time.Now()
		sub, err := s.Subscribe(ctx, 0)
		if err != nil {
			b.Fatal(err)
		}
		for i := 0; i < n; i++ {
			it, ok := <-sub.C()
			if !ok || it.ID != int64(i) {
				b.Fatalf("replay broke at %d: %v", i, sub.Err())
			}
			if decode {
				if _, err := it.Event(); err != nil {
					b.Fatal(err)
				}
			}
		}
		sub.Close()
		return time.Since(start)
	}
	b.ResetTimer()
	var total time.Duration
	cpu0 := cpuTime()
	for i := 0; i < b.N; i++ {
		total += replay(false)
	}
	b.ReportMetric((cpuTime()-cpu0).Seconds()/float64(b.N), "ours_cpu_s/replay")
	b.StopTimer()
	ours := total / time.Duration(b.N)
	decoded := replay(true)

	bstart := time.Now()
	data, err := os.ReadFile(st.path("replay"))
	if err != nil {
		b.Fatal(err)
	}
	count := 0
	for off := logHeaderSize; off+recHeaderSize <= len(data); count++ {
		off += recHeaderSize + int(uint32(data[off])|uint32(data[off+1])<<8|uint32(data[off+2])<<16|uint32(data[off+3])<<24)
	}
	base := time.Since(bstart)
	if count != n {
		b.Fatalf("baseline walked %d records, want %d", count, n)
	}
	b.ReportMetric(ours.Seconds(), "s/replay")
	b.ReportMetric(float64(n)/ours.Seconds(), "events/s")
	b.ReportMetric(decoded.Seconds(), "s/replay_decoded")
	b.ReportMetric(base.Seconds(), "baseline_readfile_s")
	b.ReportMetric(base.Seconds()/ours.Seconds(), "ratio_vs_readfile")
}
