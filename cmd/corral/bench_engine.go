package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/client"

	"corral/actors"
	"corral/cmd/corral/farm"
	"corral/eventbus"
	"corral/runtimes"
	"corral/runtimes/docker"
	"corral/transport/api"
)

const benchCloseTimeout = 5 * time.Minute

func closeEngine(be *benchEngine, errp *error) {
	ctx, cancel := context.WithTimeout(context.Background(), benchCloseTimeout)
	defer cancel()
	if err := be.Close(ctx); err != nil && *errp == nil {
		*errp = fmt.Errorf("engine shutdown: %w", err)
	}
}

// newStoreEngine starts a bench engine on an event store of its own in
// o.dir/name, on the default store settings unless tune changes them, so
// that engine figures include what `corral serve` pays to store each event.
// It returns the settings for the figures' labels; the store closes with
// the engine.
func newStoreEngine(ctx context.Context, o *benchOpts, name string, s engineSettings, tune func(*eventbus.Config)) (*benchEngine, string, error) {
	cfg := eventbus.DefaultConfig()
	cfg.StoreDir = filepath.Join(o.dir, name)
	if tune != nil {
		tune(&cfg)
	}
	st, err := eventbus.OpenStore(cfg, eventbus.WithLogger(slog.New(slog.DiscardHandler)))
	if err != nil {
		return nil, "", fmt.Errorf("event store: %w", err)
	}
	s.store = st
	be, err := newBenchEngine(ctx, s)
	if err != nil {
		_ = st.Close()
		return nil, "", err
	}
	be.closers = append(be.closers, st.Close) // after the engine's shutdown
	return be, storeSettings(cfg), nil
}

// startSession creates a session and waits for STATUS$READY.
func startSession(ctx context.Context, be *benchEngine, backend, id string) error {
	info, err := be.CreateSession(ctx, actorsSpec(backend, id))
	if err != nil {
		return err
	}
	return be.WaitReady(ctx, info.ID)
}

// benchRoundtripUpper measures the engine layer (actors + local runtime) and
// the API layer above it, on the default store settings, then again with
// sync = never (labelled) to show what durability costs per action.
func benchRoundtripUpper(ctx context.Context, o *benchOpts, n int, report func(string, string, latencies)) error {
	for _, run := range []struct {
		store, suffix string
		tune          func(*eventbus.Config)
	}{
		{"roundtrip-store", "", nil},
		{"roundtrip-store-never", ", sync = never", func(c *eventbus.Config) { c.Sync = eventbus.SyncNever }},
	} {
		if err := roundtripEngineAndAPI(ctx, o, n, run.store, run.suffix, run.tune, report); err != nil {
			return err
		}
	}
	return nil
}

func roundtripEngineAndAPI(ctx context.Context, o *benchOpts, n int, store, suffix string, tune func(*eventbus.Config), report func(string, string, latencies)) (err error) {
	be, settings, err := newStoreEngine(ctx, o, store, engineSettings{backends: []string{"local"}, maxSessions: 4}, tune)
	if err != nil {
		return fmt.Errorf("engine layer: %w", err)
	}
	defer closeEngine(be, &err)
	const sid = "bench-roundtrip"
	if err := startSession(ctx, be, "local", sid); err != nil {
		return fmt.Errorf("engine layer: %w", err)
	}
	lat, err := measure(ctx, n, func(ctx context.Context, a *eventbus.Event) (*eventbus.Event, error) {
		_, obs, err := be.Run(ctx, sid, a)
		return obs, err
	})
	if err != nil {
		return fmt.Errorf("engine layer: %w", err)
	}
	report("engine"+suffix, settings, lat)

	// API: the same session through the HTTP API (POST .../actions?wait=true)
	// on a loopback listener.
	srv, err := api.New(api.NewEngineAdapter(be.Engine), api.DefaultConfig(), api.WithLogger(slog.New(slog.DiscardHandler)))
	if err != nil {
		return fmt.Errorf("api layer: %w", err)
	}
	defer srv.Close()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return fmt.Errorf("api layer: %w", err)
	}
	hs := &http.Server{Handler: srv}
	served := make(chan error, 1)
	go func() { served <- hs.Serve(ln) }()
	defer func() {
		hs.Close()
		<-served
	}()
	url := "http://" + ln.Addr().String() + "/api/sessions/" + sid + "/actions?wait=true"
	client := &http.Client{Timeout: time.Minute}
	lat, err = measure(ctx, n, func(ctx context.Context, a *eventbus.Event) (*eventbus.Event, error) {
		return postAction(ctx, client, url, a)
	})
	if err != nil {
		return fmt.Errorf("api layer: %w", err)
	}
	report("API (HTTP, wait=true)"+suffix, settings, lat)
	return nil
}

// postAction runs a through POST .../actions?wait=true and decodes the
// observation.
func postAction(ctx context.Context, client *http.Client, url string, a *eventbus.Event) (*eventbus.Event, error) {
	body, err := eventbus.Marshal(a)
	if err != nil {
		return nil, err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("POST %s: %s: %s", url, resp.Status, data)
	}
	return eventbus.Unmarshal(data)
}

// benchStart measures sandbox start (ready to run actions) and teardown per
// backend, straight on the runtimes.Backend.
func benchStart(ctx context.Context, o *benchOpts, emit func(figure)) (err error) {
	n := max(o.iterations/10, 5)
	for _, name := range splitList(o.backends) {
		be, err := newBenchEngine(ctx, engineSettings{backends: []string{name}, maxSessions: 4, image: o.image})
		if err != nil {
			return err
		}
		b := be.backends[name]
		var lat latencies
		for i := range n {
			t := time.Now()
			h, err := b.Start(ctx, runtimes.Spec{SessionID: fmt.Sprintf("bench-start-%d", i), Image: o.image})
			if err != nil {
				closeEngine(be, &err)
				return fmt.Errorf("%s start: %w", name, err)
			}
			lat = append(lat, time.Since(t))
			if err := b.Destroy(ctx, h); err != nil {
				closeEngine(be, &err)
				return fmt.Errorf("%s destroy: %w", name, err)
			}
		}
		var base latencies
		var baseName string
		switch name {
		case "docker":
			baseName = "docker run --rm IMAGE true (API)"
			base, err = dockerRunBaseline(ctx, o.image, n)
		default:
			baseName = "bash -c true"
			base, err = bashBaseline(ctx, n)
		}
		closeEngine(be, &err)
		if err != nil {
			return err
		}
		emit(newFigure(name+" sandbox start p50", lat.pct(50)/1000, "ms", baseName+" p50", base.pct(50)/1000))
		emit(newFigure(name+" sandbox start p99", lat.pct(99)/1000, "ms", baseName+" p99", base.pct(99)/1000))
		if name == "docker" {
			warm, err := dockerWarmStarts(ctx, o.image, n)
			if err != nil {
				return err
			}
			emit(newFigure("docker warm-pool start p50", warm.pct(50)/1000, "ms", baseName+" p50", base.pct(50)/1000))
			emit(newFigure("docker warm-pool start p99", warm.pct(99)/1000, "ms", baseName+" p99", base.pct(99)/1000))
		}
	}
	return nil
}

// warmReadier is the Docker backend's warm-pool gauge (docker.Backend).
type warmReadier interface{ WarmReady(image string) int }

// dockerWarmStarts times n starts to READY from a Docker backend with
// [runtime.docker] warm_pool = 1, each after the pool has refilled (no
// refill competes with the timed start), and checks that each one really
// was a pool container.
func dockerWarmStarts(ctx context.Context, image string, n int) (lat latencies, err error) {
	cfg := defaultServeConfig()
	cfg.Runtime = cfg.Runtime.Clone()
	dc, ok := cfg.Runtime.Backends["docker"].(*docker.Config)
	if !ok {
		return nil, errors.New("warm-pool start: this build has no docker runtime configuration")
	}
	dc.WarmPool = 1
	be, err := newBenchEngine(ctx, engineSettings{backends: []string{"docker"}, maxSessions: 4, image: image, config: &cfg})
	if err != nil {
		return nil, err
	}
	defer closeEngine(be, &err)
	b := be.backends["docker"]
	pool, ok := b.(warmReadier)
	if !ok {
		return nil, fmt.Errorf("warm-pool start: the docker backend (%T) has no warm pool", b)
	}
	for i := range n {
		if err := waitWarm(ctx, pool, image); err != nil {
			return nil, err
		}
		t := time.Now()
		h, err := b.Start(ctx, runtimes.Spec{SessionID: fmt.Sprintf("bench-warm-%d", i), Image: image})
		if err != nil {
			return nil, fmt.Errorf("docker warm-pool start: %w", err)
		}
		lat = append(lat, time.Since(t))
		name := h.Meta["container_name"]
		if err := b.Destroy(ctx, h); err != nil {
			return nil, fmt.Errorf("docker destroy: %w", err)
		}
		if !strings.HasPrefix(name, "corral-pool-") {
			return nil, fmt.Errorf("docker warm-pool start %d got container %q, not one from the pool: the pool did not serve a plain start", i, name)
		}
	}
	return lat, nil
}

// waitWarm waits (up to two minutes) until the pool holds an idle
// container of image; the pool's size is 1, so it is then not refilling.
func waitWarm(ctx context.Context, pool warmReadier, image string) error {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for pool.WarmReady(image) < 1 {
		select {
		case <-ctx.Done():
			return fmt.Errorf("docker warm pool of %q did not fill within 2 minutes: %w", image, ctx.Err())
		case <-tick.C:
		}
	}
	return nil
}

// dockerRunBaseline is `docker run --rm IMAGE true` through the Docker API:
// create, start, wait, remove.
func dockerRunBaseline(ctx context.Context, image string, n int) (latencies, error) {
	if image == "" {
		image = docker.DefaultImage
	}
	cli, err := client.NewClientWithOpts(client.FromEnv, client.WithAPIVersionNegotiation())
	if err != nil {
		return nil, err
	}
	defer cli.Close()
	var lat latencies
	for range n {
		t := time.Now()
		c, err := cli.ContainerCreate(ctx, &container.Config{Image: image, Cmd: []string{"true"}, Labels: map[string]string{"corral.bench": "baseline"}}, nil, nil, nil, "")
		if err != nil {
			return nil, fmt.Errorf("baseline docker run %s: %w", image, err)
		}
		okC, errC := cli.ContainerWait(ctx, c.ID, container.WaitConditionNextExit)
		if err := cli.ContainerStart(ctx, c.ID, container.StartOptions{}); err != nil {
			_ = cli.ContainerRemove(ctx, c.ID, container.RemoveOptions{Force: true})
			return nil, fmt.Errorf("baseline docker start: %w", err)
		}
		select {
		case <-okC:
		case err := <-errC:
			return nil, fmt.Errorf("baseline docker wait: %w", err)
		}
		if err := cli.ContainerRemove(ctx, c.ID, container.RemoveOptions{Force: true}); err != nil {
			return nil, fmt.Errorf("baseline docker rm: %w", err)
		}
		lat = append(lat, time.Since(t))
	}
	return lat, nil
}

// benchSessions runs N concurrent sessions of M `true` actions each for
// every N of --sessions and reports throughput, p99 and errors; baseline:
// the same number of concurrent workers each fork/exec'ing `bash -c true` M
// times.
func benchSessions(ctx context.Context, o *benchOpts, emit func(figure)) (err error) {
	var counts []int
	for _, s := range splitList(o.sessions) {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 {
			return fmt.Errorf("--sessions %q: want a comma-separated list of positive counts", o.sessions)
		}
		counts = append(counts, n)
	}
	m := max(o.actions, 1)
	for _, n := range counts {
		be, settings, err := newStoreEngine(ctx, o, fmt.Sprintf("sessions-%d-store", n), engineSettings{backends: []string{o.runtime}, maxSessions: n, image: o.image}, nil)
		if err != nil {
			return err
		}
		r, runErr := runSessions(ctx, be, o.runtime, n, m)
		closeEngine(be, &runErr)
		if runErr != nil {
			return runErr
		}
		leaked := 0
		if o.runtime == "docker" {
			leaked, err = leakedContainers(ctx)
			if err != nil {
				return err
			}
		}
		base, err := concurrentBash(ctx, n, m)
		if err != nil {
			return err
		}
		label := fmt.Sprintf("%s %d sessions x %d", o.runtime, n, m)
		emit(newFigure(label+": throughput", r.rate, "actions/s", "bash -c true, same concurrency", base.rate).on(settings))
		emit(newFigure(label+": action p99", r.lat.pct(99)/1000, "ms", "bash -c true p99", base.lat.pct(99)/1000).on(settings))
		emit(newFigure(label+": session start p99", r.start.pct(99)/1000, "ms", "bash -c true p99", base.lat.pct(99)/1000).on(settings))
		emit(newFigure(label+": errors", float64(r.errors), "count", "zero", 0).on(settings))
		if o.runtime == "docker" {
			emit(newFigure(label+": leaked containers", float64(leaked), "count", "zero", 0).on(settings))
		}
		if r.errors > 0 {
			return fmt.Errorf("%s: %d errors, first: %v", label, r.errors, r.firstErr)
		}
	}
	return nil
}

type sessionsResult struct {
	rate       float64
	lat, start latencies
	errors     int64
	firstErr   error
}

func runSessions(ctx context.Context, be *benchEngine, backend string, n, m int) (*sessionsResult, error) {
	res := &sessionsResult{}
	var (
		mu      sync.Mutex
		wg      sync.WaitGroup
		errs    atomic.Int64
		ready   sync.WaitGroup
		startAt = make(chan struct{})
		actBeg  time.Time
	)
	fail := func(err error) {
		if errs.Add(1) == 1 {
			mu.Lock()
			res.firstErr = err
			mu.Unlock()
		}
	}
	ready.Add(n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sid := fmt.Sprintf("bench-s%d-%d", n, i)
			t := time.Now()
			err := startSession(ctx, be, backend, sid)
			d := time.Since(t)
			ready.Done()
			if err != nil {
				fail(fmt.Errorf("session %s: %w", sid, err))
				return
			}
			defer func() {
				if _, err := be.Stop(context.WithoutCancel(ctx), sid); err != nil {
					fail(fmt.Errorf("stop %s: %w", sid, err))
				}
			}()
			<-startAt
			lat, err := measure(ctx, m, func(ctx context.Context, a *eventbus.Event) (*eventbus.Event, error) {
				_, obs, err := be.Run(ctx, sid, a)
				return obs, err
			})
			mu.Lock()
			res.start = append(res.start, d)
			res.lat = append(res.lat, lat...)
			mu.Unlock()
			if err != nil {
				fail(fmt.Errorf("session %s: %w", sid, err))
			}
		}()
	}
	ready.Wait()
	actBeg = time.Now()
	close(startAt)
	wg.Wait()
	res.rate = float64(len(res.lat)) / time.Since(actBeg).Seconds()
	res.errors = errs.Load()
	return res, nil
}

type bashResult struct {
	rate float64
	lat  latencies
}

// concurrentBash is the sessions baseline: n workers, m fork/execs each.
func concurrentBash(ctx context.Context, n, m int) (*bashResult, error) {
	var (
		mu    sync.Mutex
		wg    sync.WaitGroup
		all   latencies
		first error
	)
	begin := time.Now()
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			lat, err := bashBaseline(ctx, m)
			mu.Lock()
			defer mu.Unlock()
			all = append(all, lat...)
			if err != nil && first == nil {
				first = err
			}
		}()
	}
	wg.Wait()
	if first != nil {
		return nil, first
	}
	return &bashResult{rate: float64(len(all)) / time.Since(begin).Seconds(), lat: all}, nil
}

// leakedContainers counts Corral-managed containers still present.
func leakedContainers(ctx context.Context) (int, error) {
	cli, err := client.NewClientWithOpts(client.FromEnv, client.WithAPIVersionNegotiation())
	if err != nil {
		return 0, err
	}
	defer cli.Close()
	cs, err := cli.ContainerList(ctx, container.ListOptions{All: true, Filters: filters.NewArgs(filters.Arg("label", docker.LabelManaged+"=true"))})
	if err != nil {
		return 0, fmt.Errorf("list containers: %w", err)
	}
	n := 0
	for _, c := range cs {
		if len(c.Labels[docker.LabelSession]) > 6 && c.Labels[docker.LabelSession][:6] == "bench-" {
			n++
		}
	}
	return n, nil
}

// benchFarm runs a farm of --jobs synthetic jobs (actions: `true`) and
// compares its wall time with sum(sandbox start)/concurrency, the time the
// starts alone would take at that concurrency.
func benchFarm(ctx context.Context, o *benchOpts, emit func(figure)) (err error) {
	be, settings, err := newStoreEngine(ctx, o, "farm-store", engineSettings{backends: []string{o.runtime}, maxSessions: o.concurrency, image: o.image}, nil)
	if err != nil {
		return err
	}
	defer closeEngine(be, &err)
	jobs := syntheticJobs(max(o.jobs, 1))
	out := filepath.Join(o.dir, "farm-out")
	f := farm.New(farm.NewActorsEngine(be.Engine), out, farm.WithConcurrency(o.concurrency), farm.WithRetries(0),
		farm.WithRuntime(farm.Runtime{Backend: o.runtime, Image: o.image}))
	t := time.Now()
	sum, err := f.Run(ctx, jobs, nil)
	wall := time.Since(t).Seconds()
	if err != nil {
		return err
	}
	var starts float64
	for _, r := range sum.Results {
		starts += r.StartupSeconds
	}
	ideal := starts / float64(o.concurrency)
	emit(newFigure(fmt.Sprintf("farm %d jobs (%s, concurrency %d): wall time", len(jobs), o.runtime, o.concurrency), wall, "s", "sum(sandbox start)/concurrency", ideal).on(settings))
	emit(newFigure("farm: jobs not passed", float64(len(jobs)-sum.Counts[farm.StatusPassed]), "count", "zero", 0).on(settings))
	if !sum.OK() {
		return errors.New("farm: not every synthetic job passed; see " + filepath.Join(out, farm.ResultsFile))
	}
	return nil
}

func actorsSpec(backend, id string) actors.SessionSpec {
	return actors.SessionSpec{ID: id, Runtime: backend, SkipGitConfig: true}
}
