package api

import (
	"embed"
	"net/http"
)

// uiFiles is the web UI: plain HTML, CSS and JavaScript, no build step and
// no request to any other origin.
//
//go:embed ui/index.html ui/app.js ui/term.js ui/style.css ui/favicon.svg
var uiFiles embed.FS

//go:embed openapi.json
var openAPIDoc []byte

// uiCSP keeps the page from loading anything the server did not serve.
const uiCSP = "default-src 'self'; connect-src 'self' ws: wss:; img-src 'self' data:; style-src 'self'; script-src 'self'; frame-ancestors 'none'"

func (s *Server) uiIndex(w http.ResponseWriter, r *http.Request) {
	s.uiAsset("index.html", "text/html; charset=utf-8")(w, r)
}

func (s *Server) uiAsset(name, contentType string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		b, err := uiFiles.ReadFile("ui/" + name)
		if err != nil {
			writeError(w, http.StatusInternalServerError, "internal", "the embedded UI file "+name+" is missing; the binary was built wrongly")
			return
		}
		w.Header().Set("Content-Type", contentType)
		w.Header().Set("Content-Security-Policy", uiCSP)
		w.Header().Set("X-Content-Type-Options", "nosniff")
		w.Header().Set("Cache-Control", "no-cache")
		_, _ = w.Write(b)
	}
}

func (s *Server) openAPI(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write(openAPIDoc)
}
