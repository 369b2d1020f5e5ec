package cluster

import (
	"context"
	"sync"
	"time"
)

// Background steps across nodes. A stream that owes steps is in the
// store's pending index. No node resumes them at start-up by itself:
// every node wakes each pending stream through the cluster, so that it
// activates on its owner, after it joins, after every membership change
// (a dead node's streams have new owners) and every SweepInterval. A wake
// of an active stream does nothing, so the sweeps of several nodes
// overlap harmlessly.

const sweepParallel = 8

func (n *Node) kickSweep() {
	select {
	case n.sweep <- struct{}{}:
	default:
	}
}

func (n *Node) sweeper() {
	n.every(n.sweep, func() {
		n.presence.expire(time.Now().Add(-3*n.cfg.SweepInterval), n.pushMembers)
	}, n.wakePending)
}

// every runs fn when trigger fires and every SweepInterval (after tick,
// when set), until the node stops.
func (n *Node) every(trigger <-chan struct{}, tick, fn func()) {
	defer n.bg.Done()
	t := time.NewTicker(n.cfg.SweepInterval)
	defer t.Stop()
	for {
		select {
		case <-n.ctx.Done():
			return
		case <-trigger:
		case <-t.C:
			if tick != nil {
				tick()
			}
		}
		fn()
	}
}

func (n *Node) wakePending() {
	ctx, cancel := context.WithTimeout(n.ctx, n.cfg.SweepInterval)
	defer cancel()
	streams, err := n.store.Pending(ctx)
	if err != nil {
		if n.ctx.Err() == nil {
			n.log.Warn("list pending streams", "err", err)
		}
		return
	}
	sem := make(chan struct{}, sweepParallel)
	var wg sync.WaitGroup
	for _, s := range streams {
		if _, err := n.kindOf(s); err != nil {
			continue
		}
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			rep, err := n.request(ctx, &envelope{Op: opWake, Stream: s})
			if err == nil && rep.Err != nil {
				err = decodeError(s, rep.Err)
			}
			if err != nil && n.ctx.Err() == nil {
				n.log.Warn("wake pending stream", "stream", s, "err", err)
			}
		}()
	}
	wg.Wait()
}

// reporter sends this node's room members to the rooms' owners after a
// membership change and every SweepInterval.
func (n *Node) reporter() {
	n.every(n.report, nil, func() {
		for stream, members := range n.hub.PresenceStreams() {
			n.reportPresence(stream, members, true)
		}
	})
}
