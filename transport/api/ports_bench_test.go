package api

import (
	"fmt"
	"io"
	"net/http"
	"testing"
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
