package cluster

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	protocluster "github.com/asynkron/protoactor-go/cluster"
	"google.golang.org/protobuf/types/known/structpb"
)

// placementName is every member's placement actor: it spawns the session
// grains of this member and releases sessions when asked.
const placementName = "corral-placement"

// Messages that cross members are protobuf (protoactor drops anything else
// silently): activation uses protoactor's own ActivationRequest/Response,
// the rest are structpb.Struct with an "op" field.
const (
	opLocate   = "locate"   // to a grain: answer once Adopt finished
	opRelease  = "release"  // to a placement actor: stop owning "sid"
	opDraining = "draining" // to a placement actor: this node is being drained
)

func opMsg(op, sid string) *structpb.Struct {
	return &structpb.Struct{Fields: map[string]*structpb.Value{
		"op": structpb.NewStringValue(op), "sid": structpb.NewStringValue(sid)}}
}

func reply(err error) *structpb.Struct {
	s := &structpb.Struct{Fields: map[string]*structpb.Value{"ok": structpb.NewBoolValue(err == nil)}}
	if err != nil {
		s.Fields["error"] = structpb.NewStringValue(err.Error())
	}
	return s
}

func replyErr(res any) error {
	s, ok := res.(*structpb.Struct)
	if !ok {
		return fmt.Errorf("unexpected answer %T", res)
	}
	if s.Fields["ok"].GetBoolValue() {
		return nil
	}
	return errors.New(s.Fields["error"].GetStringValue())
}

// lookup is the cluster.IdentityLookup of Kind "session": the owner comes
// from the placement bucket (sticky; no re-hashing on topology change), and
// the grain is activated by the owner's placement actor.
type lookup struct {
	n    *Node
	m    *member // the membership it belongs to
	pid  *actor.PID
	once sync.Once
}

var _ protocluster.IdentityLookup = (*lookup)(nil)

func (l *lookup) Setup(c *protocluster.Cluster, _ []string, _ bool) {
	props := actor.PropsFromProducer(func() actor.Actor { return &placement{n: l.n, m: l.m, grains: map[string]*actor.PID{}} })
	l.pid, _ = c.ActorSystem.Root.SpawnNamed(props, placementName)
}

// Get resolves a session grain: owner from the bucket (claimed for a live
// member if its owner is dead), then an activation on that owner.
func (l *lookup) Get(ci *protocluster.ClusterIdentity) *actor.PID {
	if ci.Kind != sessionKind {
		return nil
	}
	ctx, cancel := context.WithTimeout(l.n.ctx, 30*time.Second)
	defer cancel()
	m, err := l.n.Owner(ctx, ci.Identity)
	if err != nil {
		return nil
	}
	pid, err := l.n.activationPID(ctx, m.Address, ci.Identity)
	if err != nil {
		return nil
	}
	return pid
}

// RemovePid: nothing cached here; a placement actor forgets a grain when it stops.
func (l *lookup) RemovePid(*protocluster.ClusterIdentity, *actor.PID) {}

func (l *lookup) Shutdown() {
	l.once.Do(func() {
		if l.pid != nil {
			_ = l.m.sys.Root.PoisonFuture(l.pid).Wait()
		}
	})
}

// dropGrain stops this member's grain of sid (the engine is released by the caller).
func (l *lookup) dropGrain(sid string) {
	if l.pid != nil {
		l.m.sys.Root.Send(l.pid, &dropGrain{sid: sid})
	}
}

type dropGrain struct{ sid string }

// activationPID asks the placement actor at addr for the grain of sid.
func (n *Node) activationPID(ctx context.Context, addr, sid string) (*actor.PID, error) {
	req := &protocluster.ActivationRequest{ClusterIdentity: protocluster.NewClusterIdentity(sid, sessionKind)}
	res, err := n.mem().sys.Root.RequestFuture(actor.NewPID(addr, placementName), req, timeoutOf(ctx, 10*time.Second)).Result()
	if err != nil {
		return nil, fmt.Errorf("activation request to %s: %w", addr, err)
	}
	r, ok := res.(*protocluster.ActivationResponse)
	if !ok || r.Pid == nil {
		return nil, fmt.Errorf("activation request to %s: no grain (answer %T)", addr, res)
	}
	return r.Pid, nil
}

// activate spawns the grain of sid on target and waits until its Adopt ended.
func (n *Node) activate(ctx context.Context, target viewMember, sid string) error {
	pid, err := n.activationPID(ctx, target.Address, sid)
	if err != nil {
		return fmt.Errorf("cluster: activating session %s on node %s: %w", sid, target.ID, err)
	}
	res, err := n.mem().sys.Root.RequestFuture(pid, opMsg(opLocate, sid), timeoutOf(ctx, activateTimeout)).Result()
	if err == nil {
		err = replyErr(res)
	}
	if err != nil {
		return fmt.Errorf("cluster: node %s adopting session %s: %w", target.ID, sid, err)
	}
	return nil
}

// tell sends op to the placement actor of the member at addr and waits for its answer.
func (n *Node) tell(ctx context.Context, addr, op, sid string) error {
	res, err := n.mem().sys.Root.RequestFuture(actor.NewPID(addr, placementName), opMsg(op, sid), timeoutOf(ctx, time.Minute)).Result()
	if err != nil {
		return err
	}
	return replyErr(res)
}

func timeoutOf(ctx context.Context, def time.Duration) time.Duration {
	if d, ok := ctx.Deadline(); ok {
		return max(time.Until(d), time.Millisecond)
	}
	return def
}

// placement is a member's activator: one grain per session it owns.
// Engine calls (Release) run on goroutines; Receive never blocks.
type placement struct {
	n      *Node
	m      *member
	grains map[string]*actor.PID // sid -> grain
}

func (p *placement) Receive(ctx actor.Context) {
	switch msg := ctx.Message().(type) {
	case *protocluster.ActivationRequest:
		ctx.Respond(&protocluster.ActivationResponse{Pid: p.spawn(ctx, msg.ClusterIdentity)})
	case *structpb.Struct:
		p.onOp(ctx, msg)
	case *dropGrain:
		if pid, ok := p.grains[msg.sid]; ok {
			ctx.Stop(pid)
			delete(p.grains, msg.sid)
		}
	case *actor.Terminated:
		for sid, pid := range p.grains {
			if pid.Equal(msg.Who) {
				delete(p.grains, sid)
			}
		}
	}
}

func (p *placement) spawn(ctx actor.Context, ci *protocluster.ClusterIdentity) *actor.PID {
	if pid, ok := p.grains[ci.Identity]; ok {
		return pid
	}
	kind := p.m.c.GetClusterKind(sessionKind)
	pid := ctx.Spawn(protocluster.WithClusterIdentity(kind.Props, ci))
	p.grains[ci.Identity] = pid
	return pid
}

func (p *placement) onOp(ctx actor.Context, msg *structpb.Struct) {
	sid := msg.Fields["sid"].GetStringValue()
	switch op := msg.Fields["op"].GetStringValue(); op {
	case opRelease:
		p.n.released.Store(sid, true) // the placement change that follows is expected
		p.release(ctx, sid, ctx.Sender())
	case opDraining:
		p.n.draining.Store(true)
		p.n.publishState(true)
		ctx.Respond(reply(nil))
	default:
		ctx.Respond(reply(fmt.Errorf("unknown op %q", op)))
	}
}

// release stops the grain of sid (if any) and calls Adopter.Release on a
// goroutine; replyTo (when set) gets the outcome.
func (p *placement) release(ctx actor.Context, sid string, replyTo *actor.PID) {
	if pid, ok := p.grains[sid]; ok {
		ctx.Stop(pid)
		delete(p.grains, sid)
	}
	n, sys := p.n, p.m.sys
	n.goAsync(func() {
		err := n.ad.Release(n.ctx, sid)
		if err != nil {
			n.log.Warn("releasing a session failed", "sid", sid, "err", err)
		}
		if replyTo != nil {
			sys.Root.Send(replyTo, reply(err))
		}
	})
}

// grain is the activation of one session on its owner: it runs Adopt (on a
// goroutine, retried with backoff, see adoptWithRetry) and answers opLocate
// when that ended. A failed Adopt stops the grain so a later activation
// tries again.
type grain struct {
	n       *Node
	m       *member
	sid     string
	done    bool
	err     error
	waiting []*actor.PID
}

type adopted struct{ err error }

func (g *grain) Receive(ctx actor.Context) {
	switch msg := ctx.Message().(type) {
	case *protocluster.ClusterInit:
		g.sid = msg.Identity.Identity
		self, n, sid, sys := ctx.Self(), g.n, g.sid, g.m.sys
		n.goAsync(func() {
			err := n.adoptWithRetry(sid)
			sys.Root.Send(self, &adopted{err: err})
		})
	case *adopted:
		g.done, g.err = true, msg.err
		for _, w := range g.waiting {
			ctx.Send(w, reply(g.err))
		}
		g.waiting = nil
		if g.err != nil {
			ctx.Stop(ctx.Self()) // a later activation tries again
		} else {
			g.n.log.Info("session adopted", "sid", g.sid)
		}
	case *structpb.Struct:
		switch {
		case ctx.Sender() == nil:
		case g.done:
			ctx.Respond(reply(g.err))
		default:
			g.waiting = append(g.waiting, ctx.Sender())
		}
	}
}
