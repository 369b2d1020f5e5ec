package cluster

import (
	"fmt"
	"net"
	"net/http"
	"strconv"

	protocluster "github.com/asynkron/protoactor-go/cluster"
	"github.com/asynkron/protoactor-go/cluster/clusterproviders/automanaged"
	"github.com/asynkron/protoactor-go/cluster/identitylookup/disthash"
	"github.com/labstack/echo"
)

// Membership is protoactor's static-peers provider (automanaged): every
// node answers GET /_health on its cluster host at port+1, and polls its
// peers' every PollInterval; a peer that does not answer leaves the
// member list at the next poll. The library would listen on 0.0.0.0; the
// endpoint is bound here to the cluster host instead, so that it is no
// more exposed than the cluster port.
func newMembership(n *Node, host string, healthPort int, kinds []string) (protocluster.ClusterProvider, error) {
	ln, err := net.Listen("tcp", net.JoinHostPort(host, strconv.Itoa(healthPort)))
	if err != nil {
		return nil, fmt.Errorf("cluster: membership endpoint: %w", err)
	}
	_, port, _ := splitHostPort(n.cfg.Bind)
	e := echo.New()
	e.HideBanner = true
	e.HidePort = true
	e.Listener = ln
	node := automanaged.NewNode(n.cfg.Name, n.system.ID, host, port, healthPort, kinds)
	e.GET("/_health", func(c echo.Context) error { return c.JSON(http.StatusOK, node) })
	e.GET("/_engine/members", func(c echo.Context) error {
		return c.JSON(http.StatusOK, view{ID: n.system.ID, Members: n.view.get()})
	})
	hosts := make([]string, 0, len(n.cfg.Peers))
	for _, p := range n.cfg.Peers {
		h, pp, _ := splitHostPort(p)
		hosts = append(hosts, net.JoinHostPort(h, strconv.Itoa(pp+1)))
	}
	return automanaged.NewWithTesting(n.cfg.PollInterval, healthPort, e, hosts...), nil
}

// newLookup places each stream on one member by rendezvous hashing of its
// id over the members (disthash).
func newLookup() protocluster.IdentityLookup { return disthash.New() }
