package actors

import (
	"encoding/json"
	"maps"
	"time"

	actorpb "corral/actors/proto"
	"corral/eventbus"
	"corral/runtimes"
)

func specToPB(s SessionSpec) *actorpb.SessionSpec {
	p := &actorpb.SessionSpec{SessionId: s.ID, Runtime: s.Runtime, Workspace: s.Workspace, Env: maps.Clone(s.Env),
		Image: s.Image, Repository: s.Repository, Branch: s.Branch, KeepRuntimeAlive: s.KeepRuntimeAlive,
		Labels: maps.Clone(s.Labels), SkipGitConfig: s.SkipGitConfig}
	if s.Attach != nil {
		p.AttachHandleJson, _ = json.Marshal(s.Attach)
	}
	if s.Resources != (runtimes.Resources{}) {
		p.Resources = &actorpb.Resources{MemoryBytes: s.Resources.MemoryBytes, NanoCpus: s.Resources.NanoCPUs, PidsLimit: s.Resources.PidsLimit}
	}
	if s.MCP != nil {
		p.McpConfigJson, _ = json.Marshal(s.MCP)
	}
	return p
}

func specFromPB(p *actorpb.SessionSpec) SessionSpec {
	if p == nil {
		return SessionSpec{}
	}
	s := SessionSpec{ID: p.SessionId, Runtime: p.Runtime, Workspace: p.Workspace, Env: p.Env, Image: p.Image,
		Repository: p.Repository, Branch: p.Branch, KeepRuntimeAlive: p.KeepRuntimeAlive,
		Attach: handleFromJSON(p.AttachHandleJson), Labels: p.Labels, SkipGitConfig: p.SkipGitConfig}
	if r := p.Resources; r != nil {
		s.Resources = runtimes.Resources{MemoryBytes: r.MemoryBytes, NanoCPUs: r.NanoCpus, PidsLimit: r.PidsLimit}
	}
	s.MCP = mcpFromJSON(p.McpConfigJson)
	return s
}

func infoFromPB(p *actorpb.SessionInfo) SessionInfo {
	if p == nil {
		return SessionInfo{}
	}
	i := SessionInfo{ID: p.SessionId, Runtime: p.Runtime, State: p.State, RuntimeStatus: p.RuntimeStatus,
		QueuePosition: int(p.QueuePosition), Workspace: p.Workspace, Image: p.Image, Created: time.UnixMilli(p.CreatedUnixMs).UTC(),
		Error: p.Error, Handle: handleFromJSON(p.HandleJson), Restarts: int(p.Restarts)}
	i.LastActivity = i.Created
	if p.LastActivityUnixMs > 0 {
		i.LastActivity = time.UnixMilli(p.LastActivityUnixMs).UTC()
	}
	return i
}

func infoToPB(i SessionInfo) *actorpb.SessionInfo {
	p := &actorpb.SessionInfo{SessionId: i.ID, Runtime: i.Runtime, State: i.State, RuntimeStatus: i.RuntimeStatus,
		QueuePosition: int32(i.QueuePosition), Workspace: i.Workspace, Image: i.Image, Error: i.Error, Restarts: int32(i.Restarts)}
	if !i.Created.IsZero() {
		p.CreatedUnixMs = i.Created.UnixMilli()
	}
	if !i.LastActivity.IsZero() {
		p.LastActivityUnixMs = i.LastActivity.UnixMilli()
	}
	if i.Handle != nil {
		p.HandleJson, _ = json.Marshal(i.Handle)
	}
	return p
}

// mcpFromJSON decodes SessionSpec.mcp_config_json (written by specToPB
// from a validated config, so a decoding failure means no config).
func mcpFromJSON(b []byte) *eventbus.MCPConfig {
	if len(b) == 0 {
		return nil
	}
	var c eventbus.MCPConfig
	if json.Unmarshal(b, &c) != nil {
		return nil
	}
	return &c
}

// handleFromJSON decodes SessionInfo.handle_json.
func handleFromJSON(b []byte) *runtimes.Handle {
	if len(b) == 0 {
		return nil
	}
	var h runtimes.Handle
	if json.Unmarshal(b, &h) != nil {
		return nil
	}
	return &h
}
