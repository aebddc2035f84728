// Command wsecho is a test server for the preview-port proxy: it listens
// on 127.0.0.1 (port 0 unless given), prints its port on stdout, echoes
// every WebSocket message and, on the text message "close", closes the
// connection with status 4000 "bye". A plain HTTP request is answered
// "METHOD URI BODY", with the Authorization it got in X-Auth.
package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"

	"github.com/coder/websocket"
)

func main() {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		fmt.Fprintln(os.Stderr, "wsecho:", err)
		os.Exit(1)
	}
	fmt.Println(ln.Addr().(*net.TCPAddr).Port)
	err = http.Serve(ln, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Upgrade") == "" {
			body, _ := io.ReadAll(r.Body)
			auth := r.Header.Get("Authorization")
			if auth == "" {
				auth = "none"
			}
			w.Header().Set("X-Auth", auth)
			fmt.Fprintf(w, "%s %s %s", r.Method, r.URL.RequestURI(), body)
			return
		}
		c, err := websocket.Accept(w, r, nil)
		if err != nil {
			return
		}
		defer c.CloseNow()
		ctx := context.Background()
		for {
			typ, b, err := c.Read(ctx)
			if err != nil {
				return
			}
			if string(b) == "close" {
				c.Close(4000, "bye")
				return
			}
			if err := c.Write(ctx, typ, append([]byte("echo:"), b...)); err != nil {
				return
			}
		}
	}))
	fmt.Fprintln(os.Stderr, "wsecho:", err)
	os.Exit(1)
}
