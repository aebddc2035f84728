package api

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/filters"

	"corral/runtimes/docker"
)

// BenchmarkPortProxy compares a request through the preview-port proxy
// (API server -> agent connection -> agent -> 127.0.0.1:{port}) with the
// same request straight to the app's address, in the same run: the local
// runtime shares the host's loopback, so "direct" is the baseline.
// small = latency of a tiny GET; 10MiB = download throughput (MB/s).
func BenchmarkPortProxy(b *testing.B) {
	f := newRealFixture(b, nil)
	id := f.readySession()
	f.runIn(id, "cat > echo_server.py <<'PYEOF'\n"+echoServer+"PYEOF")
	port := f.startInSandbox(id, "http", "python3 -u echo_server.py")
	urls := map[string]string{
		"direct":  fmt.Sprintf("http://127.0.0.1:%d", port),
		"proxied": fmt.Sprintf("%s/api/sessions/%s/ports/%d", f.ts.URL, id, port),
	}
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 4}}
	defer client.CloseIdleConnections()
	for _, size := range []struct {
		name, path string
		bytes      int64
	}{{"small", "/s", 0}, {"10MiB", "/big", 10 << 20}} {
		for _, via := range []string{"direct", "proxied"} {
			b.Run(size.name+"/"+via, func(b *testing.B) {
				if size.bytes > 0 {
					b.SetBytes(size.bytes)
				}
				for b.Loop() {
					resp, err := client.Get(urls[via] + size.path)
					if err != nil {
						b.Fatal(err)
					}
					n, err := io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					if err != nil || resp.StatusCode != 200 || (size.bytes > 0 && n != size.bytes) {
						b.Fatalf("GET %s = %d, %d bytes, %v", size.path, resp.StatusCode, n, err)
					}
				}
			})
		}
	}
}

// BenchmarkPortProxyDocker compares, in the same run, a request through the
// preview-port proxy to an app in a Docker sandbox (API server -> agent over
// its bind-mounted socket -> 127.0.0.1:{port} in the container) with the
// same request straight to the container's IP on the bridge network: the
// app is busybox httpd of the minimal image, one connection per request on
// both paths (it does not keep connections alive). The four requests
// alternate in every iteration, so load on the machine hits both paths
// alike. Reported: small-GET p50 of each path and the added latency, and
// the 10 MiB download's throughput of each path (MB/s) and the ratio
// proxied/direct.
func BenchmarkPortProxyDocker(b *testing.B) {
	f := newDockerFixture(b)
	id := readyDockerSession(b, f)
	const port = 8080
	f.runIn(id, fmt.Sprintf("mkdir -p /tmp/www && head -c %d /dev/zero > /tmp/www/big && echo small > /tmp/www/s && busybox httpd -p 0.0.0.0:%d -h /tmp/www", 10<<20, port))
	urls := map[string]string{
		"direct":  fmt.Sprintf("http://%s", net.JoinHostPort(containerIP(b, id), strconv.Itoa(port))),
		"proxied": fmt.Sprintf("%s/api/sessions/%s/ports/%d", f.ts.URL, id, port),
	}
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 4}}
	defer client.CloseIdleConnections()
	get := func(via, path string, want int64) time.Duration {
		t0 := time.Now()
		resp, err := client.Get(urls[via] + path)
		if err != nil {
			b.Fatalf("GET %s%s: %v", urls[via], path, err)
		}
		n, err := io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if err != nil || resp.StatusCode != 200 || (want > 0 && n != want) {
			b.Fatalf("GET %s%s = %d, %d bytes, %v", urls[via], path, resp.StatusCode, n, err)
		}
		return time.Since(t0)
	}
	for _, via := range []string{"direct", "proxied"} {
		waitHTTP(b, client, urls[via]+"/s")
	}
	lat := map[string][]time.Duration{}
	for b.Loop() {
		for _, via := range []string{"direct", "proxied"} {
			lat["small/"+via] = append(lat["small/"+via], get(via, "/s", 0))
			lat["big/"+via] = append(lat["big/"+via], get(via, "/big", 10<<20))
		}
	}
	ms := func(k string) float64 { return float64(pctDur(lat[k], 50).Microseconds()) / 1000 }
	mbps := func(k string) float64 { return float64(10<<20) / 1e6 / pctDur(lat[k], 50).Seconds() }
	b.ReportMetric(ms("small/direct"), "small-direct-p50-ms")
	b.ReportMetric(ms("small/proxied"), "small-proxied-p50-ms")
	b.ReportMetric(ms("small/proxied")-ms("small/direct"), "small-added-p50-ms")
	b.ReportMetric(ms("small/proxied")/ms("small/direct"), "small-ratio")
	b.ReportMetric(mbps("big/direct"), "10MiB-direct-MB/s")
	b.ReportMetric(mbps("big/proxied"), "10MiB-proxied-MB/s")
	b.ReportMetric(mbps("big/proxied")/mbps("big/direct"), "10MiB-throughput-ratio")
}

// containerIP is the bridge address of session id's container (docker
// inspect), which the host reaches directly.
func containerIP(tb testing.TB, id string) string {
	tb.Helper()
	cli := needDocker(tb)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	list, err := cli.ContainerList(ctx, container.ListOptions{Filters: filters.NewArgs(filters.Arg("label", docker.LabelSession+"="+id))})
	if err != nil || len(list) != 1 {
		tb.Fatalf("the container of session %s: %d found, %v", id, len(list), err)
	}
	insp, err := cli.ContainerInspect(ctx, list[0].ID)
	if err != nil {
		tb.Fatal(err)
	}
	for name, n := range insp.NetworkSettings.Networks {
		if n.IPAddress != "" {
			return n.IPAddress
		}
		tb.Logf("network %s of container %s has no IP address", name, list[0].ID)
	}
	tb.Fatalf("container %s of session %s has no IP address (network mode %s)", list[0].ID, id, insp.HostConfig.NetworkMode)
	return ""
}

// waitHTTP waits (up to a minute) until url answers 200: the app was
// started in the background.
func waitHTTP(tb testing.TB, client *http.Client, url string) {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		resp, err := client.Do(req)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return
			}
		}
		select {
		case <-ctx.Done():
			tb.Fatalf("%s never answered 200 (last: %v)", url, err)
		case <-tick.C:
		}
	}
}

// pctDur is the p-th percentile of d (sorted in place).
func pctDur(d []time.Duration, p int) time.Duration {
	slices.Sort(d)
	return d[min(len(d)*p/100, len(d)-1)]
}
