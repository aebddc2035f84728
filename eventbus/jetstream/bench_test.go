package jetstream

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"corral/eventbus"
)

// benchObs is a realistic ~300-byte `run` observation.
func benchObs(i int) *eventbus.Event {
	s := func(v string) *string { return &v }
	o := &eventbus.CmdOutputObservation{
		Command: fmt.Sprintf("ls -la /workspace/project-%d", i),
		Metadata: eventbus.CmdOutputMetadata{ExitCode: 0, PID: -1, Username: s("openhands"), Hostname: s("0301ebbced1e"),
			WorkingDir: s("/workspace"), PyInterpreterPath: s("/usr/bin/python3"), Suffix: "\n[The command completed with exit code 0.]"},
	}
	e := eventbus.NewObservation(0, "total 8\ndrwxr-xr-x 2 openhands openhands 4096 Nov 27 00:31 .\n", o)
	e.Source = eventbus.SourceAgent
	return e
}

// timeAppends appends n events to a fresh session of st and returns the
// mean time per durable append.
func timeAppends(b *testing.B, st *eventbus.Store, sid string, n int) time.Duration {
	s, err := st.Open(sid)
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	evs := make([]*eventbus.Event, n)
	for i := range evs {
		evs[i] = benchObs(i)
	}
	start := time.Now()
	for _, e := range evs {
		if _, err := s.Append(context.Background(), e); err != nil {
			b.Fatal(err)
		}
	}
	return time.Since(start) / time.Duration(n)
}

// timeRawPublish publishes n event-sized messages with nats.go to the same
// stream and returns the mean time per acknowledged publish.
func timeRawPublish(b *testing.B, url string, n int) time.Duration {
	nc, err := nats.Connect(url)
	if err != nil {
		b.Fatal(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		b.Fatal(err)
	}
	body, _ := eventbus.Marshal(benchObs(0))
	start := time.Now()
	for i := 0; i < n; i++ {
		if _, err := js.Publish(context.Background(), "corral.events.rawbench", body); err != nil {
			b.Fatal(err)
		}
	}
	return time.Since(start) / time.Duration(n)
}

// BenchmarkDurableAppend compares, in the same run and with one sequential
// writer, a durable append through the replicated store (file store +
// JetStream R1 or R3, all servers in this process on loopback) with the
// single-node file store and with a raw nats.go publish to the same stream.
func BenchmarkDurableAppend(b *testing.B) {
	for _, r := range []int{1, 3} {
		b.Run(fmt.Sprintf("R%d", r), func(b *testing.B) {
			c := startCluster(b, r)
			l := openLog(b, c.url(), WithReplicas(r))
			file := openStore(b, nil, nil)
			repl := openStore(b, l, nil)
			timeAppends(b, repl, "warmup", 50)
			timeRawPublish(b, c.url(), 50)
			b.ResetTimer()
			fileT := timeAppends(b, file, "bench", b.N)
			replT := timeAppends(b, repl, "bench", b.N)
			rawT := timeRawPublish(b, c.url(), b.N)
			b.StopTimer()
			b.ReportMetric(float64(fileT.Nanoseconds()), "file-ns/append")
			b.ReportMetric(float64(replT.Nanoseconds()), "jetstream-ns/append")
			b.ReportMetric(float64(rawT.Nanoseconds()), "rawpublish-ns/op")
			b.ReportMetric(float64(replT)/float64(fileT), "x-file")
			b.ReportMetric(float64(replT)/float64(rawT), "x-rawpublish")
		})
	}
}
