package cluster

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"slices"
	"strconv"
	"sync"
	"time"
)

// Exclusion. protoactor's member list never lets a member that failed a
// health check back in under the same member id: a node that was frozen
// (SIGSTOP, a long GC or VM pause) or cut off long enough for its peers to
// drop it stays out of their member lists for good, while its own list may
// still show everyone, so it would go on serving as a stale owner; and a
// node that dropped its peers never takes them back, so it would stay in
// a minority of one while they are up again. Each node therefore asks its
// peers every PollInterval whom they count as members (GET
// /_engine/members on their membership endpoint). It counts as excluded
// when, for ExcludeGrace, either a majority of the cluster answered
// without it, or it does not see a majority of members although enough
// peers answer to make one with it. It then stops serving and reports it
// on Excluded: the engine exits, and its supervisor starts it again with a
// new member id, which joins like any new member.

// DefaultExcludeGrace is how long a majority must leave a node out before
// it counts as excluded: longer than a peer's restart takes to list it.
const DefaultExcludeGrace = 3 * time.Second

// view is what a node answers at /_engine/members.
type view struct {
	ID      string   `json:"id"`
	Members []string `json:"members"`
}

// memberView is this node's current view.
type memberView struct {
	mu  sync.Mutex
	ids []string
}

func (v *memberView) set(ids []string) {
	v.mu.Lock()
	v.ids = ids
	v.mu.Unlock()
}

func (v *memberView) get() []string {
	v.mu.Lock()
	defer v.mu.Unlock()
	return v.ids
}

// Excluded is closed when the cluster has excluded this node (see above);
// the node has stopped serving by then.
func (n *Node) Excluded() <-chan struct{} { return n.excluded }

// watchExclusion polls the peers' views until the node stops.
func (n *Node) watchExclusion() {
	defer n.bg.Done()
	hc := &http.Client{Timeout: n.cfg.PollInterval}
	var since time.Time
	t := time.NewTicker(n.cfg.PollInterval)
	defer t.Stop()
	for {
		select {
		case <-n.ctx.Done():
			return
		case <-t.C:
		}
		answered, without := n.askPeers(hc)
		left := int32(without) >= n.quorum
		lost := !n.quorate() && int32(answered)+1 >= n.quorum
		switch {
		case !left && !lost:
			since = time.Time{}
		case since.IsZero():
			since = time.Now()
		case time.Since(since) >= n.cfg.ExcludeGrace:
			n.log.Error("this node was excluded by the cluster (the majority no longer counts it as a member, or it no longer counts peers that answer); leaving, to be started again with a new member id",
				"peers_answering", answered, "answering_without_it", without, "members_seen", n.members.Load(), "for", time.Since(since).Round(time.Millisecond))
			n.serving.Store(false)
			close(n.excluded)
			return
		}
	}
}

// askPeers asks every peer for its view: how many answered, and how many
// of those without this node.
func (n *Node) askPeers(hc *http.Client) (answered, without int) {
	me := n.system.ID
	var mu sync.Mutex
	var wg sync.WaitGroup
	for _, p := range n.cfg.Peers {
		if p == n.address {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			v, err := n.peerView(hc, p)
			if err != nil {
				return
			}
			mu.Lock()
			answered++
			if !slices.Contains(v.Members, me) {
				without++
			}
			mu.Unlock()
		}()
	}
	wg.Wait()
	return answered, without
}

func (n *Node) peerView(hc *http.Client, peer string) (view, error) {
	host, port, _ := splitHostPort(peer)
	ctx, cancel := context.WithTimeout(n.ctx, n.cfg.PollInterval)
	defer cancel()
	url := "http://" + net.JoinHostPort(host, strconv.Itoa(port+1)) + "/_engine/members"
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return view{}, err
	}
	resp, err := hc.Do(req)
	if err != nil {
		return view{}, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return view{}, fmt.Errorf("%s: %s", url, resp.Status)
	}
	var v view
	err = json.NewDecoder(resp.Body).Decode(&v)
	return v, err
}
