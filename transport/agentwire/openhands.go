package agentwire

import (
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"mime"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"corral/eventbus"
)

// OpenHands' action-execution server endpoints (reference §5), served on the
// same listener as agentwire so that OpenHands' HTTP client can drive the
// agent. Their quirks are kept on purpose: most failures are HTTP 500 with a
// "detail", list_files never fails.

func (s *Server) mountOpenHands(mux *http.ServeMux) {
	mux.HandleFunc("GET /alive", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	})
	mux.HandleFunc("GET /server_info", s.serveServerInfo)
	mux.HandleFunc("POST /execute_action", s.sessionKey(s.serveExecuteAction))
	mux.HandleFunc("POST /list_files", s.sessionKey(s.serveListFiles))
	mux.HandleFunc("POST /upload_file", s.sessionKey(s.serveUploadFile))
	mux.HandleFunc("GET /download_files", s.sessionKey(s.serveDownloadFiles))
	mux.HandleFunc("GET "+PathVSCodeToken, s.sessionKey(serveVSCodeToken))
}

// PathVSCodeToken is OpenHands' VS Code connection-token endpoint.
const PathVSCodeToken = "/vscode/connection_token"

// serveVSCodeToken answers as OpenHands' action-execution server does
// without its VS Code plugin: {"token": null}, which its client turns into
// "no VS Code" (an empty vscode_url) instead of an error. Corral's agent
// runs no VS Code server.
func serveVSCodeToken(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, map[string]any{"token": nil})
}

// sessionKey requires X-Session-API-Key to be the token (or an extra
// session key), compared in constant time; else 403 as OpenHands answers.
func (s *Server) sessionKey(next http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		got := []byte(r.Header.Get("X-Session-API-Key"))
		ok := subtle.ConstantTimeCompare(got, s.token) == 1
		for _, k := range s.o.sessionKeys {
			ok = subtle.ConstantTimeCompare(got, []byte(k)) == 1 || ok
		}
		if !ok {
			writeJSON(w, http.StatusForbidden, map[string]string{"detail": "Invalid API Key"})
			return
		}
		next(w, r)
	}
}

func detail(w http.ResponseWriter, status int, msg string) {
	writeJSON(w, status, map[string]string{"detail": msg})
}

// readLimited reads r's body up to limit bytes; ok is false after it has
// answered 413.
func readLimited(w http.ResponseWriter, r *http.Request, limit int64) ([]byte, bool) {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, limit))
	var tooBig *http.MaxBytesError
	if errors.As(err, &tooBig) {
		detail(w, http.StatusRequestEntityTooLarge, fmt.Sprintf("Request body too large: the limit is %d bytes", limit))
		return nil, false
	}
	if err != nil {
		detail(w, http.StatusInternalServerError, "Internal server error: reading the request body: "+err.Error())
		return nil, false
	}
	return body, true
}

func (s *Server) serveExecuteAction(w http.ResponseWriter, r *http.Request) {
	body, ok := readLimited(w, r, s.o.maxActionBody)
	if !ok {
		return
	}
	var req struct {
		Action json.RawMessage `json:"action"`
	}
	if err := json.Unmarshal(body, &req); err != nil {
		detail(w, http.StatusInternalServerError, "Internal server error: body is not JSON {\"action\": {...}}: "+err.Error())
		return
	}
	if len(req.Action) == 0 || string(req.Action) == "null" {
		detail(w, http.StatusInternalServerError, "Internal server error: body has no \"action\"")
		return
	}
	ev, err := eventbus.Unmarshal(req.Action)
	if err != nil {
		detail(w, http.StatusInternalServerError, "Internal server error: "+err.Error())
		return
	}
	if !ev.IsAction() {
		detail(w, http.StatusInternalServerError, "Internal server error: 400: Invalid action type")
		return
	}
	// The action outlives a client that hangs up (as in OpenHands); only
	// the agent's shutdown cancels it.
	obs := s.execute(s.ctx, ev, nil)
	out, err := eventbus.Marshal(obs)
	if err != nil {
		detail(w, http.StatusInternalServerError, "Internal server error: encoding the observation: "+err.Error())
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write(out)
}

func (s *Server) serveListFiles(w http.ResponseWriter, r *http.Request) {
	body, ok := readLimited(w, r, 1<<20)
	if !ok {
		return
	}
	var req struct {
		Path *string `json:"path"`
	}
	path := ""
	if len(body) > 0 && json.Unmarshal(body, &req) == nil && req.Path != nil {
		path = *req.Path
	}
	files := s.exec.ListFiles(path)
	if files == nil {
		files = []string{}
	}
	writeJSON(w, http.StatusOK, files)
}

func (s *Server) serveUploadFile(w http.ResponseWriter, r *http.Request) {
	dest := r.URL.Query().Get("destination")
	recursive, _ := strconv.ParseBool(r.URL.Query().Get("recursive"))
	r.Body = http.MaxBytesReader(w, r.Body, s.o.maxUploadBody)
	mr, err := r.MultipartReader()
	if err != nil {
		detail(w, http.StatusInternalServerError, "400: expected a multipart/form-data body with a \"file\" field: "+err.Error())
		return
	}
	for {
		part, err := mr.NextPart()
		if err != nil {
			var tooBig *http.MaxBytesError
			if errors.As(err, &tooBig) {
				detail(w, http.StatusRequestEntityTooLarge, fmt.Sprintf("Request body too large: the limit is %d bytes", s.o.maxUploadBody))
				return
			}
			detail(w, http.StatusInternalServerError, "400: no \"file\" field in the multipart body")
			return
		}
		if part.FormName() != "file" {
			continue
		}
		name := part.FileName()
		if err := s.exec.UploadZip(dest, part, name, recursive); err != nil {
			var tooBig *http.MaxBytesError
			if errors.As(err, &tooBig) {
				detail(w, http.StatusRequestEntityTooLarge, fmt.Sprintf("Request body too large: the limit is %d bytes", s.o.maxUploadBody))
				return
			}
			detail(w, http.StatusInternalServerError, "500: "+err.Error())
			return
		}
		writeJSON(w, http.StatusOK, map[string]any{"filename": name, "destination": dest, "recursive": recursive})
		return
	}
}

func (s *Server) serveDownloadFiles(w http.ResponseWriter, r *http.Request) {
	// OpenHands answers every failure, a missing path included, with 500.
	s.downloadZip(w, r.URL.Query().Get("path"), func(_ bool, msg string) { detail(w, http.StatusInternalServerError, msg) })
}

// downloadZip spools the zip to a temporary file first, so that an error
// found halfway becomes a clean error response instead of a torn zip. fail
// is told whether the path is missing (the two endpoints answer that
// differently).
func (s *Server) downloadZip(w http.ResponseWriter, path string, fail func(missing bool, msg string)) {
	tmp, err := os.CreateTemp("", "corral-download-*.zip")
	if err != nil {
		fail(false, "creating a temporary file for the zip: "+err.Error())
		return
	}
	defer os.Remove(tmp.Name())
	defer tmp.Close()
	if err := s.exec.DownloadZip(tmp, path); err != nil {
		fail(errors.Is(err, fs.ErrNotExist), err.Error())
		return
	}
	if _, err := tmp.Seek(0, io.SeekStart); err != nil {
		fail(false, err.Error())
		return
	}
	name := filepath.Base(filepath.Clean(path)) + ".zip"
	w.Header().Set("Content-Type", "application/zip")
	w.Header().Set("Content-Disposition", mime.FormatMediaType("attachment", map[string]string{"filename": name}))
	http.ServeContent(w, &http.Request{Method: http.MethodGet, Header: http.Header{}}, name, time.Time{}, tmp)
}

// serveUpload is agentwire's upload: the body is the file itself (a zip when
// recursive or when filename ends in .zip), no multipart.
func (s *Server) serveUpload(w http.ResponseWriter, r *http.Request) {
	if !s.bearerOK(r) {
		unauthorized(w)
		return
	}
	q := r.URL.Query()
	recursive, _ := strconv.ParseBool(q.Get("recursive"))
	body := http.MaxBytesReader(w, r.Body, s.o.maxUploadBody)
	if err := s.exec.UploadZip(q.Get("destination"), body, q.Get("filename"), recursive); err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			writeJSON(w, http.StatusRequestEntityTooLarge, map[string]string{"code": "too_large", "error": fmt.Sprintf("upload larger than the agent's limit of %d bytes", s.o.maxUploadBody)})
			return
		}
		writeJSON(w, http.StatusBadRequest, map[string]string{"code": "upload_failed", "error": err.Error()})
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"filename": q.Get("filename"), "destination": q.Get("destination"), "recursive": recursive})
}

func (s *Server) serveDownload(w http.ResponseWriter, r *http.Request) {
	if !s.bearerOK(r) {
		unauthorized(w)
		return
	}
	s.downloadZip(w, r.URL.Query().Get("path"), func(missing bool, msg string) {
		if missing {
			writeJSON(w, http.StatusNotFound, map[string]string{"code": "not_found", "error": msg})
			return
		}
		writeJSON(w, http.StatusBadRequest, map[string]string{"code": "download_failed", "error": msg})
	})
}
