// Command corral-agent is the static in-sandbox agent: it runs a
// runtimes/sandbox executor and serves it over agentwire (WebSocket at
// /agentwire, bearer token) and OpenHands' action-execution HTTP API
// (/alive, /server_info, /execute_action, /list_files, /upload_file,
// /download_files, header X-Session-API-Key) on one listener, a unix socket
// or TCP.
//
// Build it with CGO_ENABLED=0. It must stay lean (idle RSS <= 15 MB): never
// import prometheus, the Docker client or protoactor here. When started as
// PID 1 it splits itself into a tiny reaping init and the real agent; see
// init_linux.go for why.
package main
