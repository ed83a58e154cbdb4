package harness

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"

	"github.com/nats-io/nkeys"

	"github.com/airtab/airtab/ground/natsvc"
	"github.com/airtab/airtab/ground/natsvc/natscluster"
)

// NATSCluster is an in-process JetStream cluster set up as production's:
// authorized by ground's auth callout, so aircraft log in with their
// registered nkeys and reach only their own subjects. NKeyFile and
// CalloutKeyFile are the keys ground runs with on it (ground's
// --nats-nkey and --nats-callout-key).
type NATSCluster struct {
	*natscluster.Cluster
	NKeyFile       string
	CalloutKeyFile string
}

// StartNATSCluster makes ground's nkey and the callout key in dir and
// starts a cluster of nodes nodes (JetStream files in dir/nats) that lets
// in ground by its nkey and everyone else by ground's answer.
func StartNATSCluster(ctx context.Context, dir string, nodes int, log *slog.Logger) (*NATSCluster, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	c := &NATSCluster{NKeyFile: filepath.Join(dir, "ground-nats.nk"), CalloutKeyFile: filepath.Join(dir, "nats-callout.nk")}
	ground, _, err := natsvc.LoadOrCreateNKey(c.NKeyFile, nkeys.PrefixByteUser)
	if err != nil {
		return nil, err
	}
	issuer, _, err := natsvc.LoadOrCreateNKey(c.CalloutKeyFile, nkeys.PrefixByteAccount)
	if err != nil {
		return nil, err
	}
	groundPub, _ := ground.PublicKey()
	issuerPub, _ := issuer.PublicKey()
	c.Cluster, err = natscluster.Start(ctx, natscluster.Config{Nodes: nodes, Dir: filepath.Join(dir, "nats"), Logger: log,
		Callout: &natscluster.Callout{GroundNKey: groundPub, Issuer: issuerPub}})
	if err != nil {
		return nil, fmt.Errorf("NATS cluster: %w", err)
	}
	return c, nil
}
