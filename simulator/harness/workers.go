package harness

import (
	"context"
	"errors"
	"fmt"

	gapp "github.com/airtab/airtab/ground/app"
)

// Ground beyond one process. With GroundOptions.Postgres and
// GroundOptions.NATSCluster, ground's parts can run apart, as they do in
// production: Ground.Main is then the API process (--role api) when
// GroundOptions.Workers is positive, and that many clearing workers
// (--role clearing) run beside it, each a ground Main of its own in this
// process, with its own database pool and NATS connection, on the same
// database and JetStream consumer. The failover trials also run workers as
// child processes, to kill them (workers_test.go).

// role is the role Ground.Main runs: the one in GroundOptions, or api when
// clearing runs in workers of its own.
func (g *Ground) role() gapp.Role {
	switch {
	case g.opts.Role != "":
		return g.opts.Role
	case g.opts.Workers > 0:
		return gapp.RoleAPI
	}
	return gapp.RoleAll
}

// WorkerConfig is the configuration of one more clearing worker of g: g's
// with the clearing role and its own HTTP port (/metrics and /healthz).
func (g *Ground) WorkerConfig() gapp.Config {
	cfg := g.Config()
	cfg.Role = gapp.RoleClearing
	cfg.HTTPAddr = "127.0.0.1:0"
	// The API process answers the cluster's authorization requests; a
	// worker only logs in.
	cfg.NATSCalloutKeyFile = ""
	return cfg
}

// startWorkers starts GroundOptions.Workers clearing workers.
func (g *Ground) startWorkers(ctx context.Context) error {
	for range g.opts.Workers {
		if _, err := g.StartWorker(ctx); err != nil {
			return err
		}
	}
	return nil
}

// StartWorker starts one more clearing worker of g in this process. Close
// stops it with the rest of ground.
func (g *Ground) StartWorker(ctx context.Context) (*gapp.Main, error) {
	if g.opts.Postgres == "" || g.opts.NATSCluster == nil {
		return nil, errors.New("harness: clearing workers need GroundOptions.Postgres and GroundOptions.NATSCluster")
	}
	m := &gapp.Main{Config: g.WorkerConfig()}
	if err := m.Run(ctx); err != nil {
		return nil, fmt.Errorf("start clearing worker %d: %w", len(g.Workers)+1, err)
	}
	g.Workers = append(g.Workers, m)
	return m, nil
}

// closeWorkers stops the clearing workers.
func (g *Ground) closeWorkers() error {
	var errs []error
	for _, w := range g.Workers {
		errs = append(errs, w.Close())
	}
	g.Workers = nil
	return errors.Join(errs...)
}
